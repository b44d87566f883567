//! ImportAssignments: many imports in one call, each checked as ImportAssignment checks it. The
//! accepted items are stored together, every refused item says why (the field and the rule), and a
//! repeated call stores nothing twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rz_proto::assignment::v1 as pb;

fn batch(items: Vec<pb::ImportAssignmentRequest>) -> pb::ImportAssignmentsRequest {
    pb::ImportAssignmentsRequest { assignments: items }
}

#[tokio::test]
async fn a_batch_stores_the_good_items_and_says_why_each_bad_one_was_refused() {
    let mut app = spawn_app().await;
    let good: Vec<_> = (1..=3)
        .map(|n| import_request(&bsn(n), OLD, "2021-07-01", "2022-12-31", true))
        .collect();
    // Not contracted on its start (the old contract ended on 2022-06-30).
    let late = import_request(&bsn(4), OLD, "2022-07-01", "2022-12-31", true);
    // Bad fields: no BSN or key, an end before the start, an unknown subsegment.
    let mut bad = import_request("", OLD, "2021-07-01", "2021-06-30", true);
    bad.idempotency_key = "bad".into();
    bad.subsegment_code = "nope".into();
    // Stacks on the first good item (same client, same subsegment, overlapping period).
    let mut stacked = import_request(&bsn(1), OLD, "2022-01-01", "2022-06-30", true);
    stacked.idempotency_key = "stacked".into();
    let items = vec![
        good[0].clone(),
        late,
        good[1].clone(),
        bad,
        stacked,
        good[2].clone(),
    ];
    let r = app
        .a
        .client
        .import_assignments(batch(items.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.imported, r.replayed, r.refused), (3, 0, 3));
    assert_eq!(r.outcomes.len(), 6);
    for (i, o) in r.outcomes.iter().enumerate() {
        assert_eq!(o.index as usize, i);
        assert_eq!(o.idempotency_key, items[i].idempotency_key);
    }
    for i in [0, 2, 5] {
        let o = &r.outcomes[i];
        assert!(o.refused.is_none(), "{o:?}");
        assert_eq!(o.municipality, M);
        assert!(o.number > 0);
    }
    let late = r.outcomes[1].refused.as_ref().unwrap();
    assert_eq!(
        (late.code.as_str(), late.rule.as_str()),
        ("FAILED_PRECONDITION", "import.provider_contracted")
    );
    let bad = r.outcomes[3].refused.as_ref().unwrap();
    assert_eq!(bad.code, "INVALID_ARGUMENT");
    let fields: Vec<&str> = bad.fields.iter().map(|f| f.field.as_str()).collect();
    for field in ["bsn", "period.end", "subsegment_code"] {
        assert!(fields.contains(&field), "{field} missing in {fields:?}");
    }
    let stacked = r.outcomes[4].refused.as_ref().unwrap();
    assert_eq!(stacked.rule, "assignment.no_stacking");
    assert_eq!(app.a.count("assignments").await, 3);
    // Numbers are distinct and each good item can be read back like a single import.
    let mut numbers: Vec<u32> = [0, 2, 5].iter().map(|&i| r.outcomes[i].number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 3);
    let single = app
        .a
        .client
        .import_assignment(good[1].clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(single.number, r.outcomes[2].number);

    // The same call again stores nothing new: the good items are replays, the bad ones refused again.
    let before = app.a.snapshot().await;
    let again = app
        .a
        .client
        .import_assignments(batch(items))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.imported, again.replayed, again.refused), (0, 3, 3));
    for i in [0, 2, 5] {
        assert!(again.outcomes[i].replayed);
        assert_eq!(again.outcomes[i].number, r.outcomes[i].number);
    }
    assert_eq!(app.a.snapshot().await, before);
}

#[tokio::test]
async fn an_empty_or_oversized_batch_is_refused_whole() {
    let mut app = spawn_app().await;
    let e = app
        .a
        .client
        .import_assignments(batch(Vec::new()))
        .await
        .unwrap_err();
    assert_invalid(&e, "assignments");
    let many: Vec<_> = (0..1_001)
        .map(|n| import_request(&bsn(n), OLD, "2021-07-01", "2022-12-31", true))
        .collect();
    let e = app
        .a
        .client
        .import_assignments(batch(many))
        .await
        .unwrap_err();
    assert_invalid(&e, "assignments");
    assert_eq!(app.a.count("assignments").await, 0);
}

#[tokio::test]
async fn a_key_reused_for_another_item_is_refused_and_the_rest_is_stored() {
    let mut app = spawn_app().await;
    let first = import_request(&bsn(1), OLD, "2021-07-01", "2022-12-31", true);
    let mut other = import_request(&bsn(2), OLD, "2021-07-01", "2022-12-31", true);
    other.idempotency_key = first.idempotency_key.clone();
    let third = import_request(&bsn(3), OLD, "2021-07-01", "2022-12-31", true);
    let r = app
        .a
        .client
        .import_assignments(batch(vec![first, other, third]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.imported, r.refused), (2, 1));
    let refused = r.outcomes[1].refused.as_ref().unwrap();
    assert_eq!(refused.code, "ALREADY_EXISTS");
    assert_eq!(app.a.count("assignments").await, 2);
}

/// A batch whose items need no item-by-item answer is written with set-based statements; what it
/// stores and sends is what single imports store and send: the assignment, its idempotency key
/// pointing at it, the sealed BSN, the provider's message (kept for the XML download, published
/// with the client block) and the lifecycle event.
#[tokio::test]
async fn a_clean_batch_stores_and_sends_what_single_imports_would() {
    let mut app = spawn_app().await;
    let items: Vec<_> = (11..=14)
        .map(|n| import_request(&bsn(n), OLD, "2021-07-01", "2022-12-31", true))
        .collect();
    let r = app
        .a
        .client
        .import_assignments(batch(items.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.imported, r.replayed, r.refused), (4, 0, 0));
    let single = app
        .a
        .client
        .import_assignment(import_request(
            &bsn(15),
            OLD,
            "2021-07-01",
            "2022-12-31",
            true,
        ))
        .await
        .unwrap()
        .into_inner();

    // Each batch item reads back like the single import, but for its number and client.
    for o in &r.outcomes {
        let a = app.a.get(o.number).await;
        assert_eq!(a.municipality, M);
        // Providers and notification tell imported care apart (no letter to the resident).
        assert_eq!(a.origin, "import");
        assert_eq!(
            pb::Assignment {
                number: single.number,
                client_key: single.client_key.clone(),
                ..a.clone()
            },
            single
        );
    }
    // Two events an assignment, in the outbox and to the provider with the client's BSN.
    let outbox = app.a.outbox().await;
    assert_eq!(outbox.len(), 10, "{outbox:?}");
    let lifecycle = outbox
        .iter()
        .filter(|(_, t)| t == "nl.regiozorg.assignment.lifecycle.v1")
        .count();
    assert_eq!(lifecycle, 5);
    let messages = app.a.messages_to(OLD).await;
    assert_eq!(messages.len(), 5);
    let mut bsns: Vec<String> = messages
        .iter()
        .map(|(_, m)| m.client.as_ref().unwrap().bsn.clone())
        .collect();
    bsns.sort();
    assert_eq!(bsns, (11..=15).map(bsn).collect::<Vec<_>>());
    assert_eq!(app.a.count("provider_messages").await, 5);
    assert_eq!(app.a.count("client_identities").await, 5);
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM client_identities WHERE bsn IS NOT NULL OR sealed IS NULL",
    )
    .fetch_one(&app.a.pool)
    .await
    .unwrap();
    assert_eq!(plain, 0);
    // Message numbers are distinct per municipality.
    let ids: i64 = sqlx::query_scalar("SELECT count(DISTINCT message_id) FROM provider_messages")
        .fetch_one(&app.a.pool)
        .await
        .unwrap();
    assert_eq!(ids, 5);

    // The same batch again: replays of the same numbers (the keys point at them), nothing new.
    let before = app.a.snapshot().await;
    let again = app
        .a
        .client
        .import_assignments(batch(items))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.imported, again.replayed, again.refused), (0, 4, 0));
    for (o, first) in again.outcomes.iter().zip(&r.outcomes) {
        assert!(o.replayed);
        assert_eq!(o.number, first.number);
    }
    assert_eq!(app.a.snapshot().await, before);
}

/// Two batches at once for the same clients: one stores them, the other answers replays (or
/// refuses nothing twice); never two assignments for one client and subsegment.
#[tokio::test]
async fn concurrent_batches_for_the_same_clients_store_each_client_once() {
    let app = spawn_app().await;
    let items: Vec<_> = (21..=40)
        .map(|n| import_request(&bsn(n), OLD, "2021-07-01", "2022-12-31", true))
        .collect();
    // The same clients under other keys: these would stack on the first batch's.
    let others: Vec<_> = items
        .iter()
        .map(|i| pb::ImportAssignmentRequest {
            idempotency_key: format!("other-{}", i.idempotency_key),
            ..i.clone()
        })
        .collect();
    let (mut a, mut b) = (app.a.client.clone(), app.a.client.clone());
    let (ra, rb) = tokio::join!(
        a.import_assignments(batch(items)),
        b.import_assignments(batch(others))
    );
    let (ra, rb) = (ra.unwrap().into_inner(), rb.unwrap().into_inner());
    assert_eq!(ra.imported + rb.imported, 20, "{ra:?} {rb:?}");
    assert_eq!(ra.refused + rb.refused, 20);
    for o in ra.outcomes.iter().chain(&rb.outcomes) {
        if let Some(refused) = &o.refused {
            assert_eq!(refused.rule, "assignment.no_stacking");
        }
    }
    assert_eq!(app.a.count("assignments").await, 20);
}
