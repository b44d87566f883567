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
