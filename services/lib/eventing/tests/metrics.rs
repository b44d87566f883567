//! The relay's and the consumers' counters (exported by `rz_platform::metrics`) against real
//! PostgreSQL and NATS: published rows, deliveries, redeliveries of an event that failed once, and
//! a dead letter, which the dead-letter stream's count shows too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rz_eventing::consumer::ConsumerMetrics;
use rz_eventing::relay::{OutboxRelay, RelayMetrics};
use rz_eventing::{
    ConsumerSpec, Event, EventConsumer, HandleError, Handler, Namespace, NewEvent, outbox,
};
use rz_platform::Shutdown;
use rz_platform::db::Migration;
use rz_testkit::TestEnv;
use sqlx::{PgConnection, PgPool};

const MIGRATIONS: &[Migration] = &[
    Migration::shared(rz_eventing::OUTBOX_INBOX),
    Migration::shared(rz_eventing::OUTBOX_WAKE),
    Migration::shared(rz_eventing::OUTBOX_VACUUM),
];

/// "ok" applies, "retry" fails transiently once, "bad" fails permanently.
#[derive(Clone, Default)]
struct Picky {
    failed_once: Arc<Mutex<HashSet<String>>>,
}

impl Handler for Picky {
    async fn handle(&self, _tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        let body: String = event.decode()?;
        match body.as_str() {
            "bad" => Err(HandleError::Permanent("not acceptable".into())),
            "retry" if self.failed_once.lock().unwrap().insert(body.clone()) => {
                Err(HandleError::Transient("downstream unavailable".into()))
            }
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn the_relay_and_a_consumer_count_publishes_deliveries_redeliveries_and_dead_letters() {
    let env = TestEnv::load();
    let pool = PgPool::connect(&env.fresh_database().await).await.unwrap();
    rz_platform::db::migrate(&pool, MIGRATIONS).await.unwrap();
    let (_client, js) = rz_eventing::connect(&env.nats_url, "test").await.unwrap();
    let ns = Namespace::new(&env.namespace()).unwrap();
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: ns.stream_name("demo"),
        subjects: vec![format!("{}.demo.>", ns.as_str())],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        rz_eventing::dlq::count(&js, &ns).await.unwrap(),
        0,
        "no stream yet"
    );

    let mut tx = pool.begin().await.unwrap();
    for body in ["ok", "retry", "bad"] {
        let e = NewEvent::new(
            ns.subject("demo", Some("0222"), None, "happened"),
            "nl.regiozorg.demo.happened.v1",
            "test",
            body,
            &body.to_owned(),
        );
        outbox::enqueue(&mut tx, &e).await.unwrap();
    }
    tx.commit().await.unwrap();
    let relay_metrics = RelayMetrics::default();
    let relay = OutboxRelay::new(pool.clone(), js.clone()).with_metrics(relay_metrics.clone());
    assert_eq!(relay.publish_batch().await.unwrap(), 3);
    assert_eq!(relay_metrics.published.get(), 3);
    assert_eq!(relay_metrics.dead_lettered.get(), 0);

    let counters = ConsumerMetrics::default();
    let mut spec = ConsumerSpec::new(
        "counted",
        ns.stream_name("demo"),
        format!("{}.demo.>", ns.as_str()),
    );
    spec.retry_delay = Duration::from_millis(50);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(
        EventConsumer::new(js.clone(), pool.clone(), ns.clone(), spec, Picky::default())
            .with_metrics(counters.clone())
            .run(shutdown.clone()),
    );
    // ok: one delivery; retry: two (the second a redelivery); bad: one, then dead-lettered.
    for _ in 0..200 {
        if counters.delivered.get() >= 4 && counters.dead_lettered.get() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
    task.await.unwrap().unwrap();
    assert_eq!(counters.delivered.get(), 4);
    assert_eq!(counters.redelivered.get(), 1);
    assert_eq!(counters.dead_lettered.get(), 1);
    assert_eq!(rz_eventing::dlq::count(&js, &ns).await.unwrap(), 1);
}
