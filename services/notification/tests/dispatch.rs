//! Sending residents' letters: the dispatcher against the real PostgreSQL (a fresh database per
//! test), the post channel against a real spool directory, and channels that fail for a while or
//! for good.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestApp, spawn_app, spawn_app_with};
use notification::config::{LetterChannelKind, LettersConfig};
use notification::dispatch::{
    ChannelError, LetterChannel, LetterDispatcher, PostChannel, SendFuture,
};
use notification::store::{self, NewLetter, StoredLetter};
use rz_platform::Shutdown;
use rz_proto::notification::v1 as pb;
use sqlx::PgPool;
use uuid::Uuid;

const BSN: &str = "999990019";
const NAME: &str = "Sanne Jansen";
const STREET: &str = "Raadhuisstraat 12a";

fn fast() -> LettersConfig {
    LettersConfig {
        channel: LetterChannelKind::Post,
        max_attempts: 4,
        initial_backoff_ms: 10,
        max_backoff_ms: 40,
        max_in_flight: 8,
        send_timeout_ms: 2_000,
        lease_ms: 5_000,
        poll_interval_ms: 10,
        ..LettersConfig::default()
    }
}

fn spool() -> PathBuf {
    std::env::temp_dir().join(format!("rz-spool-{}", Uuid::now_v7()))
}

/// Writes `n` letters for municipality 0222 (names and an address in the text, as real ones have).
async fn write_letters(app: &TestApp, n: usize) -> Vec<Uuid> {
    let mut conn = app.pool.acquire().await.unwrap();
    for i in 0..n {
        let text = format!(
            "Gemeente Doetinchem\n\nAan {NAME}\n{STREET}\n7001EW  Doetinchem\n\nBSN {BSN}\nBrief {i}\n"
        );
        let written = store::insert_letter(
            &mut conn,
            &app.keys,
            &NewLetter {
                event_id: Some(Uuid::now_v7()),
                kind: "provider_assigned",
                municipality: "0222",
                client_key: &format!("key-{i}"),
                assignment_number: Some(i as i64 + 1),
                case_id: None,
                product_id: None,
                ends_on: None,
                text: &text,
            },
        )
        .await
        .unwrap();
        assert!(written);
    }
    sqlx::query_scalar("SELECT id FROM letters ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
}

async fn row(app: &TestApp, id: Uuid) -> store::LetterRow {
    store::letter(&app.pool, &app.keys, id)
        .await
        .unwrap()
        .expect("letter exists")
}

/// Runs `dispatch_once` until no letter is pending (retries are due within the fast backoff).
async fn drain(d: &LetterDispatcher, pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        d.dispatch_once().await.unwrap();
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM letters WHERE status = 'pending'")
                .fetch_one(pool)
                .await
                .unwrap();
        if pending == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{pending} pending");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Counts every send per letter and passes it on to the real post channel.
struct CountingPost {
    post: PostChannel,
    sends: Mutex<HashMap<Uuid, usize>>,
}

impl LetterChannel for CountingPost {
    fn name(&self) -> &'static str {
        "post"
    }
    fn send<'a>(&'a self, letter: &'a StoredLetter) -> SendFuture<'a> {
        *self.sends.lock().unwrap().entry(letter.id).or_default() += 1;
        Box::pin(async move {
            // Keep the send in flight long enough that the two dispatchers overlap.
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.post.send(letter).await
        })
    }
}

/// Fails the first `failures` sends of each letter (transiently or permanently), then succeeds.
struct Failing {
    failures: usize,
    permanent: bool,
    calls: Mutex<HashMap<Uuid, usize>>,
    sent: Mutex<HashMap<Uuid, usize>>,
}

impl Failing {
    fn new(failures: usize, permanent: bool) -> Arc<Self> {
        Arc::new(Self {
            failures,
            permanent,
            calls: Mutex::default(),
            sent: Mutex::default(),
        })
    }
    fn calls(&self, id: Uuid) -> usize {
        self.calls.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
    fn sent(&self, id: Uuid) -> usize {
        self.sent.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

impl LetterChannel for Failing {
    fn name(&self) -> &'static str {
        "test"
    }
    fn send<'a>(&'a self, letter: &'a StoredLetter) -> SendFuture<'a> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            let c = calls.entry(letter.id).or_default();
            *c += 1;
            *c
        };
        let result = if call <= self.failures {
            let reason = format!("relay refused (try {call})");
            Err(if self.permanent {
                ChannelError::Permanent(reason)
            } else {
                ChannelError::Transient(reason)
            })
        } else {
            *self.sent.lock().unwrap().entry(letter.id).or_default() += 1;
            Ok(())
        };
        Box::pin(async move { result })
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn post_channel_writes_each_letter_once_with_two_dispatchers_at_once() {
    let app = spawn_app().await;
    let ids = write_letters(&app, 40).await;
    let dir = spool();
    let channel = Arc::new(CountingPost {
        post: PostChannel::new(&dir).unwrap(),
        sends: Mutex::default(),
    });
    // Two replicas on the same database, running at the same time.
    let a = LetterDispatcher::new(app.pool.clone(), app.keys.clone(), channel.clone(), fast());
    let b = LetterDispatcher::new(app.pool.clone(), app.keys.clone(), channel.clone(), fast());
    let shutdown = Shutdown::new();
    let ra = tokio::spawn(a.clone().run(shutdown.clone()));
    let rb = tokio::spawn(b.run(shutdown.clone()));
    app.wait_count("SELECT count(*) FROM letters WHERE status = 'sent'", 40)
        .await;
    shutdown.trigger();
    ra.await.unwrap();
    rb.await.unwrap();
    // Once more after everything was sent: nothing is claimed, nothing sent again.
    assert_eq!(a.dispatch_once().await.unwrap(), 0);

    let sends = channel.sends.lock().unwrap().clone();
    assert_eq!(sends.len(), 40);
    assert!(sends.values().all(|&n| n == 1), "{sends:?}");
    let files = files_under(&dir);
    assert_eq!(files.len(), 40, "{files:?}"); // no temp file left behind
    for id in &ids {
        let path = dir.join("0222").join(format!("{id}.txt"));
        let l = row(&app, *id).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), l.text);
        assert_eq!(l.status, "sent");
        assert_eq!(l.attempts, 1);
        assert_eq!(l.channel.as_deref(), Some("post"));
        assert!(l.sent_at.is_some());
    }
    std::fs::remove_dir_all(&dir).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_channel_that_fails_for_a_while_then_recovers_sends_the_letter_once() {
    let app = spawn_app().await;
    let id = write_letters(&app, 1).await[0];
    let channel = Failing::new(2, false);
    // Slow enough that the letter is surely not due again right after a failure.
    let config = LettersConfig {
        initial_backoff_ms: 200,
        max_backoff_ms: 400,
        ..fast()
    };
    let d = LetterDispatcher::new(app.pool.clone(), app.keys.clone(), channel.clone(), config);
    assert_eq!(d.dispatch_once().await.unwrap(), 1);
    // Pending, with the reason, and not due again before the backoff.
    let l = row(&app, id).await;
    assert_eq!(l.status, "pending");
    assert_eq!(l.attempts, 1);
    assert_eq!(l.last_error.as_deref(), Some("test: relay refused (try 1)"));
    assert_eq!(d.dispatch_once().await.unwrap(), 0);
    drain(&d, &app.pool).await;
    let l = row(&app, id).await;
    assert_eq!(l.status, "sent");
    assert_eq!(l.attempts, 3);
    assert_eq!(l.last_error, None);
    assert_eq!(channel.calls(id), 3);
    assert_eq!(channel.sent(id), 1);
    // Sent is final.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(d.dispatch_once().await.unwrap(), 0);
    assert_eq!(channel.sent(id), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_channel_that_never_recovers_fails_the_letter_with_the_reason_after_max_attempts() {
    let app = spawn_app().await;
    let id = write_letters(&app, 1).await[0];
    let channel = Failing::new(usize::MAX, false);
    let d = LetterDispatcher::new(app.pool.clone(), app.keys.clone(), channel.clone(), fast());
    drain(&d, &app.pool).await;
    let l = row(&app, id).await;
    assert_eq!(l.status, "failed");
    assert_eq!(l.attempts, 4);
    assert_eq!(channel.calls(id), 4);
    assert_eq!(l.last_error.as_deref(), Some("test: relay refused (try 4)"));
    assert!(l.failed_at.is_some());
    // Never attempted again.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(d.dispatch_once().await.unwrap(), 0);
    assert_eq!(channel.calls(id), 4);
    // The municipality sees it in its letter list.
    let listed = app
        .municipality("0222")
        .list_letters(pb::ListLettersRequest {
            municipality: "0222".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .letters;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, "failed");
    assert_eq!(listed[0].attempts, 4);
    assert_eq!(listed[0].channel, "test");
    assert_eq!(listed[0].last_error, "test: relay refused (try 4)");
    assert!(!listed[0].failed_at.is_empty());
    assert!(listed[0].sent_at.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_permanent_error_fails_the_letter_at_once() {
    let app = spawn_app().await;
    let id = write_letters(&app, 1).await[0];
    let channel = Failing::new(usize::MAX, true);
    let d = LetterDispatcher::new(app.pool.clone(), app.keys.clone(), channel.clone(), fast());
    assert_eq!(d.dispatch_once().await.unwrap(), 1);
    let l = row(&app, id).await;
    assert_eq!(l.status, "failed");
    assert_eq!(l.attempts, 1);
    assert_eq!(channel.calls(id), 1);
    app.stop().await;
}

/// Records every event and span field as `name=value` text.
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut Fields(&mut self.0.lock().unwrap()));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().unwrap();
        let _ = write!(out, "{} ", event.metadata().level());
        event.record(&mut Fields(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn logs_of_sending_carry_no_personal_data() {
    let app = spawn_app().await;
    write_letters(&app, 1).await;
    let logs = Arc::new(Mutex::new(String::new()));
    // The test runtime has one thread: the dispatcher's tasks log into this subscriber.
    let guard = tracing::dispatcher::set_default(&tracing::Dispatch::new(Capture(logs.clone())));
    // The first letter: retried, then failed for good.
    let failing = LetterDispatcher::new(
        app.pool.clone(),
        app.keys.clone(),
        Failing::new(usize::MAX, false),
        fast(),
    );
    drain(&failing, &app.pool).await;
    // The second letter: sent through the post spool.
    let ids = write_letters(&app, 1).await;
    assert_eq!(ids.len(), 2);
    let dir = spool();
    let post = LetterDispatcher::new(
        app.pool.clone(),
        app.keys.clone(),
        Arc::new(PostChannel::new(&dir).unwrap()),
        fast(),
    );
    drain(&post, &app.pool).await;
    drop(guard);
    let logs = logs.lock().unwrap().clone();
    // The capture works: every outcome was logged, with the letter ids.
    assert!(logs.contains("letter send failed"), "{logs}");
    assert!(logs.contains("letter failed for good"), "{logs}");
    assert!(logs.contains("letter sent"), "{logs}");
    for id in &ids {
        assert!(logs.contains(&id.to_string()), "{logs}");
    }
    for personal in [BSN, NAME, STREET, "Jansen", "7001EW", "key-0", "key-1"] {
        assert!(!logs.contains(personal), "{personal} in the logs: {logs}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn the_service_sends_a_written_letter_through_the_post_spool() {
    let dir = spool();
    let spool_dir = dir.clone();
    let mut app = spawn_app_with(|c| {
        c.notification.letters = LettersConfig {
            spool_dir: Some(spool_dir),
            ..fast()
        };
    })
    .await;
    app.publish_assignment("0222", "12345678", "issued", 11, "IAJ")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let letter = loop {
        let letters = app.letters("0222", "provider_assigned", 1).await;
        if letters[0].status == "sent" {
            break letters[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", letters[0]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(letter.channel, "post");
    assert_eq!(letter.attempts, 1);
    assert!(!letter.sent_at.is_empty());
    let path = dir.join("0222").join(format!("{}.txt", letter.id));
    assert_eq!(std::fs::read_to_string(path).unwrap(), letter.text);
    app.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn by_default_letters_are_stored_and_stay_pending() {
    let mut app = spawn_app().await;
    app.publish_assignment("0222", "12345678", "issued", 11, "IAJ")
        .await;
    let letters = app.letters("0222", "provider_assigned", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let l = row(&app, letters[0].id.parse().unwrap()).await;
    assert_eq!(l.status, "pending");
    assert_eq!(l.attempts, 0);
    app.stop().await;
}
