//! The outbox relay, the inbox consumer and the dead-letter path against real PostgreSQL and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use rz_eventing::dlq::DeadLetters;
use rz_eventing::relay::OutboxRelay;
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
    Migration {
        version: 101,
        name: "effects",
        sql: "CREATE TABLE effects (seq BIGSERIAL, event_id UUID NOT NULL, body TEXT NOT NULL)",
    },
];

struct Fixture {
    pool: PgPool,
    js: jetstream::Context,
    ns: Namespace,
}

async fn fixture() -> Fixture {
    let env = TestEnv::load();
    let pool = PgPool::connect(&env.fresh_database().await).await.unwrap();
    rz_platform::db::migrate(&pool, MIGRATIONS).await.unwrap();
    let (_client, js) = rz_eventing::connect(&env.nats_url, "test").await.unwrap();
    let ns = Namespace::new(&env.namespace()).unwrap();
    rz_eventing::ensure_stream(&js, &ns, "demo", &rz_eventing::StreamSettings::default())
        .await
        .unwrap();
    Fixture { pool, js, ns }
}

fn event(ns: &Namespace, body: &str) -> NewEvent {
    NewEvent::new(
        ns.subject("demo", Some("0222"), Some("12345678"), "happened"),
        "nl.regiozorg.demo.happened.v1",
        "test",
        body,
        &body.to_owned(),
    )
}

/// Publishes an event straight to JetStream the way the relay does, with a chosen Nats-Msg-Id.
async fn publish_raw(f: &Fixture, e: &NewEvent, msg_id: &str) {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", msg_id);
    h.insert("ce-id", e.id.to_string().as_str());
    h.insert("ce-type", e.event_type.as_str());
    h.insert("ce-source", e.source.as_str());
    h.insert("ce-subject", e.subject.as_str());
    h.insert("ce-time", e.time.to_rfc3339().as_str());
    f.js.publish_with_headers(e.nats_subject.clone(), h, e.payload.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn stream_messages(f: &Fixture) -> u64 {
    f.js.get_stream(f.ns.stream_name("demo"))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

/// Records every applied event in `effects`; fails as configured.
#[derive(Clone, Default)]
struct Recorder {
    /// Bodies that fail transiently this many more times.
    fail_times: Arc<Mutex<HashMap<String, u32>>>,
    /// Bodies that fail until this flag is cleared.
    broken: Arc<Mutex<Vec<String>>>,
    permanent: Arc<AtomicBool>,
}

impl Handler for Recorder {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        let body: String = event.decode()?;
        // Write first, then fail: the rollback must undo the write.
        sqlx::query("INSERT INTO effects (event_id, body) VALUES ($1, $2)")
            .bind(event.id)
            .bind(&body)
            .execute(&mut *tx)
            .await?;
        match self.failure(&body) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Recorder {
    /// The failure configured for `body` now, if any (a transient one is used up).
    fn failure(&self, body: &str) -> Option<HandleError> {
        if let Some(n) = self
            .fail_times
            .lock()
            .unwrap()
            .get_mut(body)
            .filter(|n| **n > 0)
        {
            *n -= 1;
            return Some(HandleError::Transient("downstream unavailable".into()));
        }
        if self.broken.lock().unwrap().iter().any(|b| b == body) {
            if self.permanent.load(Ordering::SeqCst) {
                return Some(HandleError::Permanent("body is not acceptable".into()));
            }
            return Some(HandleError::Transient("still broken".into()));
        }
        None
    }
}

async fn effects(pool: &PgPool, body: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM effects WHERE body = $1")
        .bind(body)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn spec(f: &Fixture, name: &str) -> ConsumerSpec {
    let mut s = ConsumerSpec::new(
        name,
        f.ns.stream_name("demo"),
        format!("{}.demo.>", f.ns.as_str()),
    );
    s.max_attempts = 3;
    s.retry_delay = Duration::from_millis(50);
    s
}

#[tokio::test]
async fn relay_publishes_with_the_event_id_and_marks_rows_only_after_the_ack() {
    let f = fixture().await;
    let mut tx = f.pool.begin().await.unwrap();
    let ids: Vec<_> = ["a", "b", "c"].iter().map(|b| event(&f.ns, b)).collect();
    for e in &ids {
        outbox::enqueue(&mut tx, e).await.unwrap();
    }
    // Not committed yet: the relay sees nothing.
    let relay = OutboxRelay::new(f.pool.clone(), f.js.clone());
    assert_eq!(relay.publish_batch().await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(relay.publish_batch().await.unwrap(), 3);
    assert_eq!(
        outbox::pending(&mut f.pool.acquire().await.unwrap())
            .await
            .unwrap(),
        0
    );
    assert_eq!(stream_messages(&f).await, 3);

    // The message carries the envelope; Nats-Msg-Id is the event id.
    let stream = f.js.get_stream(f.ns.stream_name("demo")).await.unwrap();
    let first = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        first.headers.get("Nats-Msg-Id").unwrap().as_str(),
        ids[0].id.to_string()
    );
    assert_eq!(
        first.headers.get("ce-id").unwrap().as_str(),
        ids[0].id.to_string()
    );
    assert_eq!(first.headers.get("ce-specversion").unwrap().as_str(), "1.0");
    assert_eq!(
        first.subject.as_str(),
        format!("{}.demo.0222.12345678.happened", f.ns.as_str())
    );

    // A crash between ack and mark republishes; JetStream drops the duplicate by its id.
    sqlx::query("UPDATE outbox SET published_at = NULL")
        .execute(&f.pool)
        .await
        .unwrap();
    assert_eq!(relay.publish_batch().await.unwrap(), 3);
    assert_eq!(stream_messages(&f).await, 3);

    // Published rows are kept for the retention period only; pending rows are never deleted.
    assert_eq!(relay.delete_published().await.unwrap(), 0);
    sqlx::query("UPDATE outbox SET published_at = now() - interval '8 days' WHERE id = $1")
        .bind(ids[0].id)
        .execute(&f.pool)
        .await
        .unwrap();
    assert_eq!(relay.delete_published().await.unwrap(), 1);

    // Running relay: a row written in this process is published promptly after its commit,
    // without a NOTIFY (the trigger is gone) and long before the relay's poll.
    // The relay's poll is an hour here: only the wake can bring the row out in time, and the
    // writer commits 30 ms after it wrote (the relay must look again until it has).
    let triggers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'outbox_notify'")
            .fetch_one(&f.pool)
            .await
            .unwrap();
    assert_eq!(triggers, 0, "no NOTIFY in the writing transaction");
    let shutdown = Shutdown::new();
    let running = tokio::spawn(
        OutboxRelay::new(f.pool.clone(), f.js.clone())
            .with_poll(Duration::from_secs(3_600))
            .run(shutdown.clone()),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tx = f.pool.begin().await.unwrap();
    outbox::enqueue(&mut tx, &event(&f.ns, "d")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    tx.commit().await.unwrap();
    let committed = std::time::Instant::now();
    wait_until("the fourth message", || async {
        stream_messages(&f).await == 4
    })
    .await;
    assert!(
        committed.elapsed() < Duration::from_secs(2),
        "published {:?} after its commit",
        committed.elapsed()
    );
    shutdown.trigger();
    running.await.unwrap();
}

#[tokio::test]
async fn a_duplicated_and_a_redelivered_event_have_exactly_one_effect() {
    let f = fixture().await;
    let recorder = Recorder::default();
    recorder
        .fail_times
        .lock()
        .unwrap()
        .insert("flaky".into(), 2);
    let shutdown = Shutdown::new();
    let consumer = EventConsumer::new(
        f.js.clone(),
        f.pool.clone(),
        f.ns.clone(),
        spec(&f, "exactly-once"),
        recorder.clone(),
    );
    let task = tokio::spawn(consumer.run(shutdown.clone()));

    // The same event twice on the stream (published under two message ids, so the duplicate
    // window does not catch it), and an event whose handler fails twice before it succeeds.
    let dup = event(&f.ns, "dup");
    publish_raw(&f, &dup, "m1").await;
    publish_raw(&f, &dup, "m2").await;
    let flaky = event(&f.ns, "flaky");
    publish_raw(&f, &flaky, "m3").await;
    let marker = event(&f.ns, "marker");
    publish_raw(&f, &marker, "m4").await;

    wait_until("both events applied", || async {
        effects(&f.pool, "flaky").await == 1 && effects(&f.pool, "marker").await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(effects(&f.pool, "dup").await, 1);
    assert_eq!(effects(&f.pool, "flaky").await, 1);
    let inbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'exactly-once'")
            .fetch_one(&f.pool)
            .await
            .unwrap();
    assert_eq!(inbox, 3);
    assert!(
        DeadLetters::new(f.js.clone(), f.ns.clone())
            .list()
            .await
            .unwrap()
            .is_empty()
    );
    shutdown.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_event_that_always_fails_ends_in_the_dead_letter_stream_and_can_be_replayed() {
    let f = fixture().await;
    let recorder = Recorder::default();
    recorder.broken.lock().unwrap().push("poison".into());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(
        EventConsumer::new(
            f.js.clone(),
            f.pool.clone(),
            f.ns.clone(),
            spec(&f, "dlq-test"),
            recorder.clone(),
        )
        .run(shutdown.clone()),
    );
    let poison = event(&f.ns, "poison");
    publish_raw(&f, &poison, "p1").await;
    // A message without an envelope cannot be applied at all.
    f.js.publish(
        format!("{}.demo._._.garbage", f.ns.as_str()),
        "not an event".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    publish_raw(&f, &event(&f.ns, "healthy"), "h1").await;

    let dlq = DeadLetters::new(f.js.clone(), f.ns.clone());
    wait_until("two dead letters", || async {
        dlq.list().await.unwrap().len() == 2
    })
    .await;
    let letters = dlq.list().await.unwrap();
    let p = letters
        .iter()
        .find(|l| l.event_id == poison.id.to_string())
        .expect("poison dead-lettered");
    assert_eq!((p.consumer.as_str(), p.attempts), ("dlq-test", 3));
    assert!(p.reason.contains("still broken"), "{}", p.reason);
    assert_eq!(p.original_subject, poison.nats_subject);
    let g = letters
        .iter()
        .find(|l| l.event_id.is_empty())
        .expect("malformed dead-lettered");
    assert!(g.reason.contains("malformed"), "{}", g.reason);
    // The failures left no effect; the healthy event went through.
    assert_eq!(effects(&f.pool, "poison").await, 0);
    assert_eq!(effects(&f.pool, "healthy").await, 1);

    // A replay before the cause is fixed fails again and lands in the dead-letter stream again
    // (under a new sequence): nothing is lost.
    dlq.replay(p.sequence).await.unwrap();
    let again = {
        let mut found = None;
        for _ in 0..200 {
            found = dlq
                .list()
                .await
                .unwrap()
                .into_iter()
                .find(|l| l.event_id == poison.id.to_string());
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        found.expect("dead-lettered again")
    };
    assert_ne!(again.sequence, p.sequence);

    // The operator fixes the cause and replays: applied once, gone from the dead-letter stream.
    recorder.broken.lock().unwrap().clear();
    dlq.replay(again.sequence).await.unwrap();
    wait_until("the replayed event applied", || async {
        effects(&f.pool, "poison").await == 1
    })
    .await;
    assert_eq!(dlq.list().await.unwrap().len(), 1);
    shutdown.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_without_retries() {
    let f = fixture().await;
    let recorder = Recorder::default();
    recorder.broken.lock().unwrap().push("bad".into());
    recorder.permanent.store(true, Ordering::SeqCst);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(
        EventConsumer::new(
            f.js.clone(),
            f.pool.clone(),
            f.ns.clone(),
            spec(&f, "permanent"),
            recorder,
        )
        .run(shutdown.clone()),
    );
    publish_raw(&f, &event(&f.ns, "bad"), "b1").await;
    let dlq = DeadLetters::new(f.js.clone(), f.ns.clone());
    wait_until("a dead letter", || async {
        dlq.list().await.unwrap().len() == 1
    })
    .await;
    let letter = &dlq.list().await.unwrap()[0];
    assert_eq!(letter.attempts, 1);
    assert!(letter.reason.contains("not acceptable"));
    shutdown.trigger();
    task.await.unwrap().unwrap();
}

/// Events already on the stream when the consumer starts arrive together and are applied in
/// batches: in stream order, each exactly once, a duplicate inside a batch ignored, and a failing
/// event in the middle of a batch neither loses nor doubles the events around it.
#[tokio::test]
async fn a_backlog_is_applied_in_batches_in_order_exactly_once() {
    let recorder = Recorder::default();
    backlog_in_batches("batches", recorder.clone(), &recorder).await;
}

/// A handler that applies a batch with one statement ([`Handler::BATCHES`]) and names the failing
/// event's position, as the webhook matcher does.
#[derive(Clone, Default)]
struct BatchRecorder {
    inner: Recorder,
    sizes: Arc<Mutex<Vec<usize>>>,
}

impl Handler for BatchRecorder {
    const BATCHES: bool = true;

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        self.inner.handle(tx, event).await
    }

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        events: &[&Event],
    ) -> Result<(), (usize, HandleError)> {
        self.sizes.lock().unwrap().push(events.len());
        let mut ids = Vec::new();
        let mut bodies = Vec::new();
        for (k, e) in events.iter().enumerate() {
            ids.push(e.id);
            bodies.push(e.decode::<String>().map_err(|err| (k, err.into()))?);
        }
        sqlx::query(
            "INSERT INTO effects (event_id, body) SELECT * FROM unnest($1::uuid[], $2::text[])",
        )
        .bind(&ids)
        .bind(&bodies)
        .execute(&mut *tx)
        .await
        .map_err(|e| (0, e.into()))?;
        // The failures as `Recorder` has them, after the write (the rollback must undo it).
        for (k, body) in bodies.iter().enumerate() {
            if let Some(e) = self.inner.failure(body) {
                return Err((k, e));
            }
        }
        Ok(())
    }
}

/// The backlog test with a handler that takes whole batches: the same guarantees, and the
/// handler really got several events per call.
#[tokio::test]
async fn a_batch_handler_gets_the_backlog_in_batches_in_order_exactly_once() {
    let handler = BatchRecorder::default();
    backlog_in_batches("whole-batches", handler.clone(), &handler.inner).await;
    let sizes = handler.sizes.lock().unwrap().clone();
    assert!(sizes.iter().any(|n| *n > 1), "batch sizes {sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 32), "batch sizes {sizes:?}");
}

/// 200 events (one sent twice) already on the stream; `recorder` holds the failures: `b-050`
/// fails once (transient), `b-120` always (permanent).
async fn backlog_in_batches<H: Handler + Clone>(name: &str, handler: H, recorder: &Recorder) {
    let f = fixture().await;
    recorder
        .fail_times
        .lock()
        .unwrap()
        .insert("b-050".into(), 1);
    recorder.broken.lock().unwrap().push("b-120".into());
    recorder.permanent.store(true, Ordering::SeqCst);
    let mut bodies = Vec::new();
    for i in 0..200 {
        let body = format!("b-{i:03}");
        let e = event(&f.ns, &body);
        publish_raw(&f, &e, &format!("m{i}")).await;
        if i == 10 {
            // The same event again right behind it (another message id): one effect.
            publish_raw(&f, &e, "m10-again").await;
        }
        bodies.push(body);
    }
    let shutdown = Shutdown::new();
    let mut s = spec(&f, name);
    s.batch = 32;
    let task = tokio::spawn(
        EventConsumer::new(f.js.clone(), f.pool.clone(), f.ns.clone(), s, handler)
            .run(shutdown.clone()),
    );
    wait_until("the backlog applied", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(DISTINCT body) FROM effects")
            .fetch_one(&f.pool)
            .await
            .unwrap();
        n == 199
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for b in &bodies {
        let want = if b == "b-120" { 0 } else { 1 };
        assert_eq!(effects(&f.pool, b).await, want, "{b}");
    }
    // The permanently failing one went to the dead-letter stream, nothing else did.
    let dead = DeadLetters::new(f.js.clone(), f.ns.clone())
        .list()
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    // Apart from the retried one (applied after its redelivery), effects follow stream order.
    let order: Vec<String> = sqlx::query_scalar("SELECT body FROM effects ORDER BY seq")
        .fetch_all(&f.pool)
        .await
        .unwrap();
    let without_retried: Vec<&String> = order.iter().filter(|b| *b != "b-050").collect();
    let mut sorted = without_retried.clone();
    sorted.sort();
    assert_eq!(without_retried, sorted);
    // More than one event per transaction: fewer distinct transaction ids than events.
    let xids: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM inbox WHERE consumer = $1")
            .bind(name)
            .fetch_one(&f.pool)
            .await
            .unwrap();
    assert!(xids < 100, "{xids} transactions for 199 events");
    shutdown.trigger();
    task.await.unwrap().unwrap();
}

/// Records `(partition, body)` effects; the event `hold` waits (inside its transaction) until
/// `release` is set; remembers which events a prefetch saw before they were applied.
#[derive(Clone, Default)]
struct Partitioned {
    hold: Arc<Mutex<Option<String>>>,
    release: Arc<AtomicBool>,
    prefetched: Arc<Mutex<std::collections::HashSet<uuid::Uuid>>>,
    handled_without_prefetch: Arc<Mutex<Vec<String>>>,
}

impl Handler for Partitioned {
    async fn prefetch(&self, events: &[&Event]) {
        let mut p = self.prefetched.lock().unwrap();
        for e in events {
            p.insert(e.id);
        }
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        let body: String = event.decode()?;
        if !self.prefetched.lock().unwrap().contains(&event.id) {
            self.handled_without_prefetch
                .lock()
                .unwrap()
                .push(body.clone());
        }
        sqlx::query("INSERT INTO effects (event_id, body) VALUES ($1, $2)")
            .bind(event.id)
            .bind(&body)
            .execute(&mut *tx)
            .await?;
        if self.hold.lock().unwrap().as_deref() == Some(body.as_str()) {
            for _ in 0..400 {
                if self.release.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        Ok(())
    }
}

fn event_in(ns: &Namespace, municipality: &str, body: &str) -> NewEvent {
    NewEvent::new(
        ns.subject("demo", Some(municipality), None, "happened"),
        "nl.regiozorg.demo.happened.v1",
        "test",
        body,
        &body.to_owned(),
    )
}

async fn committed(pool: &PgPool, prefix: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM effects WHERE starts_with(body, $1)")
        .bind(prefix)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// With `partition_token`, a municipality whose event is stuck does not hold up another
/// municipality's events; within a municipality the events stay in stream order; every event
/// has one effect (a duplicate too); the prefetch hook saw every event before it was applied.
#[tokio::test]
async fn partitions_proceed_independently_each_in_order_exactly_once() {
    let f = fixture().await;
    let handler = Partitioned::default();
    *handler.hold.lock().unwrap() = Some("a-000".into());
    for i in 0..60 {
        let a = event_in(&f.ns, "0222", &format!("a-{i:03}"));
        publish_raw(&f, &a, &format!("a{i}")).await;
        let b = event_in(&f.ns, "1859", &format!("b-{i:03}"));
        publish_raw(&f, &b, &format!("b{i}")).await;
        if i == 7 {
            publish_raw(&f, &b, "b7-again").await;
        }
    }
    let shutdown = Shutdown::new();
    let mut s = spec(&f, "partitioned");
    s.batch = 16;
    s.partition_token = Some(2);
    assert_eq!(
        s.partition_key(&f.ns.subject("demo", Some("0222"), None, "x")),
        "0222"
    );
    let task = tokio::spawn(
        EventConsumer::new(
            f.js.clone(),
            f.pool.clone(),
            f.ns.clone(),
            s,
            handler.clone(),
        )
        .run(shutdown.clone()),
    );
    // 1859 is applied completely while 0222's first event is still in its transaction.
    wait_until("1859 applied", || async {
        committed(&f.pool, "b-").await == 60
    })
    .await;
    assert_eq!(committed(&f.pool, "a-").await, 0, "0222 must still wait");
    handler.release.store(true, Ordering::SeqCst);
    wait_until("0222 applied", || async {
        committed(&f.pool, "a-").await == 60
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..60 {
        assert_eq!(effects(&f.pool, &format!("a-{i:03}")).await, 1);
        assert_eq!(effects(&f.pool, &format!("b-{i:03}")).await, 1);
    }
    for prefix in ["a-", "b-"] {
        let order: Vec<String> =
            sqlx::query_scalar("SELECT body FROM effects WHERE starts_with(body, $1) ORDER BY seq")
                .bind(prefix)
                .fetch_all(&f.pool)
                .await
                .unwrap();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{prefix} out of stream order");
    }
    assert!(
        handler.handled_without_prefetch.lock().unwrap().is_empty(),
        "applied without a prefetch first: {:?}",
        handler.handled_without_prefetch.lock().unwrap()
    );
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the partitioned consumer stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_event_that_can_never_be_published_is_dead_lettered_and_the_relay_goes_on() {
    let f = fixture().await;
    // A stream that takes messages of at most 1 KiB, for the stream's own refusal.
    f.js.create_stream(jetstream::stream::Config {
        name: f.ns.stream_name("small"),
        subjects: vec![format!("{}.small.>", f.ns.as_str())],
        max_message_size: 1024,
        ..Default::default()
    })
    .await
    .unwrap();
    let max_payload = f.js.client().server_info().max_payload;
    let huge = event(&f.ns, &"x".repeat(max_payload + 1));
    let before = event(&f.ns, "before");
    let after = event(&f.ns, "after");
    let mut too_big_for_stream = event(&f.ns, &"y".repeat(2048));
    too_big_for_stream.nats_subject = f.ns.subject("small", None, None, "happened");
    let mut tx = f.pool.begin().await.unwrap();
    for e in [&before, &huge, &too_big_for_stream, &after] {
        outbox::enqueue(&mut tx, e).await.unwrap();
    }
    tx.commit().await.unwrap();

    let relay = OutboxRelay::new(f.pool.clone(), f.js.clone());
    assert_eq!(relay.publish_batch().await.unwrap(), 4);
    // Nothing is left pending: the relay is not stuck on the huge row.
    assert_eq!(
        outbox::pending(&mut f.pool.acquire().await.unwrap())
            .await
            .unwrap(),
        0
    );
    assert_eq!(relay.publish_batch().await.unwrap(), 0);
    // The normal events are published, in order.
    assert_eq!(stream_messages(&f).await, 2);
    let stream = f.js.get_stream(f.ns.stream_name("demo")).await.unwrap();
    for (seq, e) in [(1, &before), (2, &after)] {
        let m = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(m.headers.get("ce-id").unwrap().as_str(), e.id.to_string());
    }
    // The two others are dead letters with their reasons.
    let dlq = DeadLetters::new(f.js.clone(), f.ns.clone());
    let dead = dlq.list().await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let of = |e: &NewEvent| {
        dead.iter()
            .find(|d| d.event_id == e.id.to_string())
            .unwrap_or_else(|| panic!("{} is no dead letter: {dead:?}", e.id))
            .clone()
    };
    let h = of(&huge);
    assert_eq!(h.consumer, rz_eventing::relay::OUTBOX);
    assert_eq!(h.original_subject, huge.nats_subject);
    assert_eq!(h.event_type, huge.event_type);
    assert!(h.reason.contains("exceeded"), "{}", h.reason);
    let s = of(&too_big_for_stream);
    assert!(s.reason.contains("maximum"), "{}", s.reason);
    // It cannot be replayed (its payload is not in the dead-letter stream), and says why.
    let refused = dlq.replay(h.sequence).await.unwrap_err().to_string();
    assert!(refused.contains("cannot be replayed"), "{refused}");
    // A transient failure still retries: with no stream for its subject the row stays pending.
    let mut orphan = event(&f.ns, "nowhere");
    orphan.nats_subject = f.ns.subject("nostream", None, None, "happened");
    let mut tx = f.pool.begin().await.unwrap();
    outbox::enqueue(&mut tx, &orphan).await.unwrap();
    tx.commit().await.unwrap();
    relay.publish_batch().await.unwrap();
    assert_eq!(
        outbox::pending(&mut f.pool.acquire().await.unwrap())
            .await
            .unwrap(),
        1
    );
}
