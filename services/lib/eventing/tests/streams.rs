//! The streams' replicas and retention, and the outbox rows of events with personal data, against
//! a real NATS server and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use async_nats::jetstream;
use rz_eventing::relay::OutboxRelay;
use rz_eventing::{Namespace, NewEvent, StreamSettings, outbox};
use rz_platform::db::Migration;
use rz_testkit::TestEnv;
use sqlx::PgPool;

const MIGRATIONS: &[Migration] = &[
    Migration::shared(rz_eventing::OUTBOX_INBOX),
    Migration::shared(rz_eventing::OUTBOX_WAKE),
    Migration::shared(rz_eventing::OUTBOX_VACUUM),
];

const DAY: u64 = 86_400;

fn settings(
    days: u64,
    personal_days: u64,
    dlq_days: u64,
    max_bytes: Option<i64>,
) -> StreamSettings {
    StreamSettings {
        replicas: 1,
        max_age: Duration::from_secs(days * DAY),
        personal_max_age: Duration::from_secs(personal_days * DAY),
        dead_letter_max_age: Duration::from_secs(dlq_days * DAY),
        max_bytes,
    }
}

async fn nats() -> (jetstream::Context, Namespace) {
    let env = TestEnv::load();
    let (_client, js) = rz_eventing::connect(&env.nats_url, "test").await.unwrap();
    (js, Namespace::new(&env.namespace()).unwrap())
}

async fn config_of(js: &jetstream::Context, name: &str) -> jetstream::stream::Config {
    js.get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone()
}

#[tokio::test]
async fn every_stream_gets_its_retention_and_the_personal_one_the_shortest() {
    let (js, ns) = nats().await;
    let s = settings(30, 7, 14, None);
    rz_eventing::ensure_stream(&js, &ns, "registration", &s)
        .await
        .unwrap();
    rz_eventing::ensure_stream(&js, &ns, "assignment", &s)
        .await
        .unwrap();
    rz_eventing::dlq::ensure_stream_with(&js, &ns, &s)
        .await
        .unwrap();
    let registration = config_of(&js, &ns.stream_name("registration")).await;
    let assignment = config_of(&js, &ns.stream_name("assignment")).await;
    let dlq = config_of(&js, &ns.dlq_stream()).await;
    assert_eq!(registration.max_age, Duration::from_secs(30 * DAY));
    assert_eq!(assignment.max_age, Duration::from_secs(7 * DAY));
    assert_eq!(dlq.max_age, Duration::from_secs(14 * DAY));
    for c in [&registration, &assignment, &dlq] {
        assert_eq!(c.num_replicas, 1, "{}", c.name);
        assert_eq!(c.max_bytes, -1, "{}", c.name);
        assert_eq!(
            c.discard,
            jetstream::stream::DiscardPolicy::New,
            "{}",
            c.name
        );
    }
}

#[tokio::test]
async fn an_existing_stream_is_brought_to_the_settings_at_start() {
    let (js, ns) = nats().await;
    // As an earlier version made them: no retention, no size limit, old events dropped when full.
    for (name, subject) in [
        (
            ns.stream_name("assignment"),
            format!("{}.assignment.>", ns.as_str()),
        ),
        (ns.dlq_stream(), format!("{}.dlq.>", ns.as_str())),
    ] {
        js.create_stream(jetstream::stream::Config {
            name,
            subjects: vec![subject],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    js.publish(format!("{}.assignment.0222.x", ns.as_str()), "kept".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let s = settings(30, 5, 10, Some(64 * 1024 * 1024));
    rz_eventing::ensure_stream(&js, &ns, "assignment", &s)
        .await
        .unwrap();
    rz_eventing::dlq::ensure_stream_with(&js, &ns, &s)
        .await
        .unwrap();
    let assignment = config_of(&js, &ns.stream_name("assignment")).await;
    assert_eq!(assignment.max_age, Duration::from_secs(5 * DAY));
    assert_eq!(assignment.max_bytes, 64 * 1024 * 1024);
    assert_eq!(assignment.discard, jetstream::stream::DiscardPolicy::New);
    let dlq = config_of(&js, &ns.dlq_stream()).await;
    assert_eq!(dlq.max_age, Duration::from_secs(10 * DAY));
    // The update keeps what the stream holds.
    let info = js
        .get_stream(ns.stream_name("assignment"))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.messages, 1);

    // Settings that match change nothing, and a second start is as good as the first.
    rz_eventing::ensure_stream(&js, &ns, "assignment", &s)
        .await
        .unwrap();
    assert_eq!(
        config_of(&js, &ns.stream_name("assignment")).await,
        assignment
    );
}

#[tokio::test]
async fn more_replicas_than_the_servers_can_hold_is_an_error_not_ignored() {
    let (js, ns) = nats().await;
    let mut s = settings(30, 7, 14, None);
    s.replicas = 3;
    // One nats-server here, not a cluster of three: the stream cannot have three replicas.
    let err = rz_eventing::ensure_stream(&js, &ns, "registration", &s)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("replica"), "{err}");
}

#[tokio::test]
async fn the_outbox_keeps_no_payload_with_personal_data_once_published() {
    let env = TestEnv::load();
    let pool = PgPool::connect(&env.fresh_database().await).await.unwrap();
    rz_platform::db::migrate(&pool, MIGRATIONS).await.unwrap();
    let (_client, js) = rz_eventing::connect(&env.nats_url, "test").await.unwrap();
    let ns = Namespace::new(&env.namespace()).unwrap();
    let s = StreamSettings::default();
    for context in ["assignment", "registration"] {
        rz_eventing::ensure_stream(&js, &ns, context, &s)
            .await
            .unwrap();
    }
    let personal = NewEvent::new(
        ns.subject("assignment", Some("0222"), Some("12345678"), "assigned"),
        "nl.regiozorg.assignment.assigned.v1",
        "test",
        "a1",
        &"carries a BSN".to_owned(),
    );
    let other = NewEvent::new(
        ns.subject("registration", None, None, "contract_changed"),
        "nl.regiozorg.registration.contract_changed.v1",
        "test",
        "c1",
        &"no personal data".to_owned(),
    );
    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(&mut tx, &personal).await.unwrap();
    outbox::enqueue(&mut tx, &other).await.unwrap();
    tx.commit().await.unwrap();

    let relay = OutboxRelay::new(pool.clone(), js.clone());
    assert_eq!(relay.publish_batch().await.unwrap(), 2);
    let rows: Vec<(uuid::Uuid, bool, usize)> = sqlx::query_as::<_, (uuid::Uuid, bool, Vec<u8>)>(
        "SELECT id, published_at IS NOT NULL, payload FROM outbox ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, published, payload)| (id, published, payload.len()))
    .collect();
    // Both published; the assignment event's payload (a BSN) is gone from the outbox, its row
    // the record that it was sent; the other keeps its payload for the outbox's retention.
    assert_eq!(
        rows,
        [
            (personal.id, true, 0),
            (other.id, true, "no personal data".len() + 2)
        ]
    );
    for context in ["assignment", "registration"] {
        let info = js
            .get_stream(ns.stream_name(context))
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        assert_eq!(info.state.messages, 1, "{context}");
    }
}
