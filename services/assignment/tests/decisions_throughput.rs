//! What makes the decision consumer fast without weakening it: municipalities consumed side by
//! side, upstream answers fetched for a batch before it is applied (and not needed when that
//! fails), and assignment numbers that stay unique when many transactions of one municipality
//! take them at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use assignment::decisions::{DECISION_GRANTED, DecisionHandler, Wanted};
use assignment::{Assigner, FixedClock};
use common::*;
use rz_eventing::{Event, Handler, Namespace};
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::types::v1 as types;
use tonic::transport::Channel;

const BERKELLAND: &str = "1859";

async fn resident_and_decision(
    access: &mut AccessServiceClient<Channel>,
    municipality: &str,
    n: u32,
) -> String {
    let b = bsn(n);
    access
        .register_resident(acc::RegisterResidentRequest {
            idempotency_key: format!("res-{n}"),
            bsn: b.clone(),
            given_names: "Sam".into(),
            family_name: "Jansen".into(),
            birth_date: "2012-05-01".into(),
            address: Some(acc::Address {
                street: "Markt".into(),
                house_number: format!("{n}"),
                postal_code: "7001EW".into(),
                city: "Ergens".into(),
                municipality: municipality.into(),
            }),
            legal_representative: Some(acc::LegalRepresentative {
                name: "Ouder".into(),
                relation: "ouder".into(),
            }),
            gender: "1".into(),
        })
        .await
        .expect("resident registers");
    let case = access
        .open_case(acc::OpenCaseRequest {
            idempotency_key: format!("case-{n}"),
            bsn: b.clone(),
            law: types::Law::Jeugdwet as i32,
            date: "2022-06-20".into(),
        })
        .await
        .expect("case opens")
        .into_inner();
    access
        .decide(acc::DecideRequest {
            case_id: case.id,
            date: "2022-06-21".into(),
            grant: vec![youth_product("2022-07-01", "2022-12-31", "")],
            refusal_reason: String::new(),
        })
        .await
        .expect("decided");
    key_of(&b)
}

async fn numbers(pool: &sqlx::PgPool, municipality: &str) -> Vec<i64> {
    sqlx::query_scalar("SELECT number FROM assignments WHERE municipality = $1 ORDER BY number")
        .bind(municipality)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Decisions of two municipalities, interleaved: the partitioned consumer assigns all of them,
/// each municipality numbering its own.
#[tokio::test]
async fn decisions_of_two_municipalities_are_both_assigned() {
    let stack = Stack::builder()
        .landscape(Landscape::standard())
        .access(M)
        .access(BERKELLAND)
        .assignment()
        .today(d(START))
        .start()
        .await;
    let mut doetinchem = stack.access(M);
    let mut berkelland = stack.access(BERKELLAND);
    let both = Assignment::of(stack);
    let mut keys = Vec::new();
    for n in 0..6 {
        keys.push((M, resident_and_decision(&mut doetinchem, M, 100 + n).await));
        keys.push((
            BERKELLAND,
            resident_and_decision(&mut berkelland, BERKELLAND, 200 + n).await,
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut missing = Vec::new();
        for (m, key) in &keys {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM assignments WHERE municipality = $1 AND client_key = $2",
            )
            .bind(m)
            .bind(key)
            .fetch_one(&both.pool)
            .await
            .unwrap();
            if n == 0 {
                missing.push(*m);
            }
        }
        if missing.is_empty() {
            break;
        }
        let unassigned = both.assigner.list_unassigned(None).await.unwrap();
        assert!(
            tokio::time::Instant::now() < deadline,
            "not assigned after 20 s: {missing:?}; recorded as not assigned: {unassigned:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (d, b) = (
        numbers(&both.pool, M).await,
        numbers(&both.pool, BERKELLAND).await,
    );
    assert_eq!(d.len(), 6, "{d:?}");
    assert_eq!(b.len(), 6, "{b:?}");
    // Unique per municipality (the primary key says so too) and every one within the standard.
    assert_eq!(d.iter().collect::<HashSet<_>>().len(), 6);
    assert!(d.iter().chain(&b).all(|n| (1..=999_999_999).contains(n)));
    // Each event applied once: one inbox row per decision event (and per case event of access).
    let issued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE event_type = 'nl.regiozorg.assignment.issued.v1'",
    )
    .fetch_one(&both.pool)
    .await
    .unwrap();
    assert_eq!(issued, 12);
}

fn granted_event(ns: &str, client_key: &str, product_id: &str) -> Event {
    let product = acc::GrantedProduct {
        id: product_id.into(),
        case_id: "c-1".into(),
        client_key: client_key.into(),
        law: types::Law::Jeugdwet as i32,
        subsegment_code: "IAJ-ON".into(),
        period: period("2023-01-01", "2023-06-30"),
        status: "active".into(),
        version: 1,
        ..Default::default()
    };
    let payload = acc::DecisionGranted {
        case: Some(acc::Case {
            id: "c-1".into(),
            client_key: client_key.into(),
            law: types::Law::Jeugdwet as i32,
            decided_on: "2022-06-21".into(),
            products: vec![product],
            ..Default::default()
        }),
        municipality: M.into(),
    };
    Event {
        id: uuid::Uuid::now_v7(),
        event_type: DECISION_GRANTED.into(),
        source: "regiozorg/access/0222".into(),
        subject: "c-1".into(),
        time: chrono::Utc::now(),
        nats_subject: format!("{ns}.access.{M}._.decision_granted"),
        traceparent: None,
        payload: prost::Message::encode_to_vec(&payload).into(),
    }
}

async fn apply(handler: &DecisionHandler, pool: &sqlx::PgPool, event: &Event) {
    let mut tx = pool.begin().await.unwrap();
    handler.handle(&mut tx, event).await.expect("applied");
    tx.commit().await.unwrap();
}

async fn assigned(pool: &sqlx::PgPool, product_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM assignments WHERE granted_product_id = $1")
        .bind(product_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A prefetch asks access and registration for a batch at once; when its calls fail it leaves
/// nothing behind and the decision is applied by the normal path, which asks itself.
#[tokio::test]
async fn a_failed_prefetch_falls_back_to_the_normal_path() {
    let mut app = spawn_app().await;
    let person = bsn(300);
    app.register_resident(&person, "2012-05-01").await;
    let key = key_of(&person);
    let pool = app.a.pool.clone();
    let ns = Namespace::new(&app.namespace).unwrap();

    // An assigner whose access and registration cannot be reached: its prefetch fetches nothing
    // (and fails no faster than the connect, without an error).
    let mut config = assignment::Config::default();
    config.assignment.registration_endpoint = "http://127.0.0.1:9".into();
    config.assignment.access_endpoints = [(M.to_string(), "http://127.0.0.1:9".to_string())].into();
    config.assignment.upstream_timeout_secs = 1;
    let unreachable = Assigner::new(
        pool.clone(),
        ns.clone(),
        Arc::new(
            assignment::upstream::Upstream::new(
                &config.assignment,
                &app.a.stack.as_service("assignment").tls(),
            )
            .unwrap(),
        ),
        Arc::new(FixedClock::new(d("2022-06-27"))),
        SECRET.as_bytes(),
        Arc::new(
            rz_platform::sealing::Keyring::load(&rz_stack::personal_keys_file(), None).unwrap(),
        ),
    );
    let failing = granted_event(&app.namespace, &key, "p-failed-prefetch");
    let wanted = Wanted::of(&[&failing]);
    assert!(!wanted.is_empty());
    let got = unreachable.prefetch(wanted).await;
    assert_eq!(got.clients(), 0);

    // The real assigner: a handler whose prefetch did not run (or failed) applies the decision.
    let handler = DecisionHandler::new(app.a.assigner.clone());
    apply(&handler, &pool, &failing).await;
    assert_eq!(assigned(&pool, "p-failed-prefetch").await, 1);

    // And with a prefetch: the client block is fetched ahead and the decision applied the same.
    let ahead = granted_event(&app.namespace, &key_of(&bsn(301)), "p-prefetched");
    app.register_resident(&bsn(301), "2012-05-01").await;
    assert_eq!(
        app.a
            .assigner
            .prefetch(Wanted::of(&[&ahead]))
            .await
            .clients(),
        1
    );
    handler.prefetch(&[&ahead]).await;
    assert_eq!(handler.prefetched_events(), 1);
    apply(&handler, &pool, &ahead).await;
    assert_eq!(assigned(&pool, "p-prefetched").await, 1);
    // Applying it again (a redelivery past the inbox) changes nothing.
    apply(&handler, &pool, &ahead).await;
    assert_eq!(assigned(&pool, "p-prefetched").await, 1);
    // A batch's clients come with one call per municipality: the known ones, not the unknown.
    app.register_resident(&bsn(302), "2012-05-02").await;
    let batch = [
        granted_event(&app.namespace, &key_of(&bsn(301)), "p-b1"),
        granted_event(&app.namespace, &key_of(&bsn(302)), "p-b2"),
        granted_event(&app.namespace, &key_of(&bsn(303)), "p-b3"),
    ];
    let refs: Vec<&rz_eventing::Event> = batch.iter().collect();
    assert_eq!(
        app.a.assigner.prefetch(Wanted::of(&refs)).await.clients(),
        2
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

async fn migrated() -> sqlx::PgPool {
    let env = rz_testkit::TestEnv::load();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(40)
        .connect(&env.fresh_database().await)
        .await
        .unwrap();
    rz_platform::db::migrate(&pool, assignment::store::MIGRATIONS)
        .await
        .unwrap();
    pool
}

/// Numbers come from a sequence per municipality: a transaction that took a number and is still
/// open does not hold up another of the same municipality; concurrent transactions get distinct
/// numbers; a rolled-back transaction leaves a gap, never a repeat; numbers continue after what
/// the counter rows gave out before.
#[tokio::test]
async fn numbers_stay_unique_and_nobody_waits_for_an_open_transaction() {
    use assignment::store::{next_message_number, next_number};
    let pool = migrated().await;
    // Given out before the sequences existed.
    sqlx::query("INSERT INTO assignment_counters VALUES ('0222', 41)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO message_counters VALUES ('0222', 7)")
        .execute(&pool)
        .await
        .unwrap();

    // The first use makes the municipality's sequences (others wait for that transaction, once).
    let mut making = pool.begin().await.unwrap();
    assert_eq!(next_number(&mut making, M).await.unwrap(), 42);
    assert_eq!(next_message_number(&mut making, M).await.unwrap(), 8);
    making.commit().await.unwrap();

    let mut first = pool.begin().await.unwrap();
    assert_eq!(next_number(&mut first, M).await.unwrap(), 43);
    assert_eq!(next_message_number(&mut first, M).await.unwrap(), 9);
    // `first` is still open: another transaction gets the next numbers at once.
    let mut second = pool.begin().await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), next_number(&mut second, M))
        .await
        .expect("a second transaction does not wait for the first")
        .unwrap();
    assert_eq!(n, 44);
    let m = tokio::time::timeout(Duration::from_secs(2), next_message_number(&mut second, M))
        .await
        .expect("message numbers do not wait either")
        .unwrap();
    assert_eq!(m, 10);
    second.rollback().await.unwrap();
    first.commit().await.unwrap();

    // Many at once, in two municipalities (one of them new: its sequence is made by whoever comes
    // first), half of them rolled back.
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let m = if i % 2 == 0 { M } else { "1859" };
            let mut tx = pool.begin().await.unwrap();
            let n = next_number(&mut tx, m).await.unwrap();
            tokio::time::sleep(Duration::from_millis(u64::from(i % 5) * 10)).await;
            let committed = i % 4 < 2;
            if committed {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            (m, n, committed)
        }));
    }
    let (mut seen, mut kept) = (HashSet::new(), HashSet::new());
    for t in tasks {
        let (m, n, committed) = t.await.unwrap();
        if committed {
            assert!(kept.insert((m, n)), "number {n} of {m} committed twice");
        }
        if m == M {
            // An existing sequence never gives a number twice, not even after a rollback. (The
            // transaction that makes a new municipality's sequence may roll back and take the
            // sequence with it; its numbers were never visible outside it.)
            assert!(seen.insert(n), "number {n} of {m} given twice");
            assert!(n > 44, "{n} repeats a number given out before");
        }
    }
    assert_eq!(kept.len(), 16);
    let mut tx = pool.begin().await.unwrap();
    let after = next_number(&mut tx, M).await.unwrap();
    assert!(
        after > 43 + 16,
        "{after}: a rolled-back number must not come back"
    );
    assert!(!seen.contains(&after));
}
