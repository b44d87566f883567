//! Keep-alive connections and batched outcomes of the delivery worker: many deliveries go over few
//! connections, a receiver that closes its connection after every answer (politely or abruptly)
//! still gets every delivery in one attempt each, idle connections are closed, and a batch of
//! successes is recorded only under the claims that sent them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::spawn_app_with;
use notification::config::WebhookConfig;
use notification::delivery::HttpClient;
use notification::store::{self, Claimed, NewDelivery, SubscriptionRow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const AGB: &str = "12345678";

/// How the test receiver treats a connection after its answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Keep-alive, as HTTP/1.1 receivers do.
    Never,
    /// `Connection: close` in the answer, then closed.
    Announced,
    /// Closed right after the answer, without saying so (as a receiver whose idle timeout strikes
    /// just then).
    Abrupt,
    /// Kept alive after the first answer, but the second request on the connection is read and
    /// the connection closed without an answer (the close crossed the request).
    DropsSecond,
}

/// One POST as the receiver saw it.
#[derive(Clone, Debug)]
struct Post {
    signature: String,
    delivery: String,
    timestamp: String,
    body: Vec<u8>,
}

impl Post {
    /// Whether it verifies under `secret` as the `standardwebhooks` library checks it.
    fn verifies(&self, secret: &str) -> bool {
        let mut h = http::HeaderMap::new();
        for (k, v) in [
            ("webhook-id", &self.delivery),
            ("webhook-timestamp", &self.timestamp),
            ("webhook-signature", &self.signature),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&self.body, &h)
            .is_ok()
    }
}

/// A configuration that lets the client reach the test's loopback receivers.
fn loopback() -> WebhookConfig {
    WebhookConfig {
        allow_cidrs: vec!["127.0.0.0/8".into()],
        require_https: false,
        ..WebhookConfig::default()
    }
}

/// The HMAC key the unit-level posts are signed with.
const KEY: &[u8] = b"test-key";

/// A bare HTTP/1.1 receiver on 127.0.0.1 that counts the TCP connections it accepted.
#[derive(Clone)]
struct CountingReceiver {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl CountingReceiver {
    async fn start(close: Close) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Self {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::new(AtomicUsize::new(0)),
            posts: Arc::new(Mutex::new(Vec::new())),
        };
        let (accepted, posts) = (r.accepted.clone(), r.posts.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, close, posts.clone()));
            }
        });
        r
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }
}

/// Serves requests on one connection until the peer closes it (or `close` says to).
async fn serve(mut stream: tokio::net::TcpStream, close: Close, posts: Arc<Mutex<Vec<Post>>>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut served = 0;
    loop {
        // The head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let length: usize = header("content-length").parse().unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        served += 1;
        if close == Close::DropsSecond && served == 2 {
            return;
        }
        posts.lock().unwrap().push(Post {
            signature: header("webhook-signature"),
            delivery: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            body: buf[head_end..head_end + length].to_vec(),
        });
        buf.drain(..head_end + length);
        let answer: &[u8] = match close {
            Close::Announced => b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            _ => b"HTTP/1.1 204 No Content\r\n\r\n",
        };
        if stream.write_all(answer).await.is_err() {
            return;
        }
        if matches!(close, Close::Announced | Close::Abrupt) {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

#[tokio::test]
async fn many_deliveries_go_over_few_connections() {
    const EVENTS: u32 = 200;
    const IN_FLIGHT: usize = 8;
    let mut app = spawn_app_with(|c| c.webhooks.max_in_flight = IN_FLIGHT).await;
    let receiver = CountingReceiver::start(Close::Never).await;
    let sub = app
        .subscribe(AGB, &receiver.url("/hook"), &[], &[], &[])
        .await;
    for n in 1..=EVENTS {
        app.publish_assignment("0222", AGB, "issued", n, "IAJ")
            .await;
    }
    app.wait_count(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        i64::from(EVENTS),
    )
    .await;
    let posts = receiver.posts();
    assert_eq!(posts.len(), EVENTS as usize);
    for p in &posts {
        assert!(p.verifies(&sub.secret), "{p:?}");
    }
    // Never more connections than attempts in flight at once: each is kept for the next one.
    let accepted = receiver.accepted();
    assert!(
        (1..=IN_FLIGHT).contains(&accepted),
        "{accepted} connections for {EVENTS} deliveries"
    );
    // Every delivery once, recorded with its one attempt; the ids are UUIDv7 (time ordered).
    let rows: Vec<(Uuid, i32)> = sqlx::query_as("SELECT id, attempts FROM deliveries")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), EVENTS as usize);
    assert!(rows.iter().all(|(_, a)| *a == 1), "{rows:?}");
    assert!(
        rows.iter().all(|(id, _)| id.get_version_num() == 7),
        "{rows:?}"
    );
    let mut sent: Vec<String> = posts.iter().map(|p| p.delivery.clone()).collect();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), EVENTS as usize);
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_closes_after_every_answer_gets_every_delivery_in_one_attempt() {
    const EVENTS: u32 = 60;
    for close in [Close::Announced, Close::Abrupt] {
        let mut app = spawn_app_with(|c| c.webhooks.max_in_flight = 4).await;
        let receiver = CountingReceiver::start(close).await;
        let sub = app
            .subscribe(AGB, &receiver.url("/hook"), &[], &[], &[])
            .await;
        for n in 1..=EVENTS {
            app.publish_assignment("0222", AGB, "issued", n, "IAJ")
                .await;
        }
        app.wait_count(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
            i64::from(EVENTS),
        )
        .await;
        // A connection the receiver closed is never used again (or, when the close crossed the
        // next request, that request goes once more on a fresh connection in the same attempt).
        let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM deliveries")
            .fetch_all(&app.pool)
            .await
            .unwrap();
        assert!(attempts.iter().all(|a| *a == 1), "{attempts:?}");
        let posts = receiver.posts();
        assert!(posts.len() >= EVENTS as usize);
        assert!(posts.iter().all(|p| p.verifies(&sub.secret)));
        let mut ids: Vec<String> = posts.iter().map(|p| p.delivery.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), EVENTS as usize);
        assert!(receiver.accepted() >= EVENTS as usize);
        app.stop().await;
    }
}

fn claimed(url: &str) -> Claimed {
    Claimed {
        id: Uuid::now_v7(),
        claim: Uuid::now_v7(),
        event_id: Uuid::now_v7(),
        agb_code: AGB.into(),
        url: url.into(),
        subscription_id: Uuid::now_v7(),
        secret: None,
        body: r#"{"specversion":"1.0","id":"x"}"#.into(),
        attempts: 0,
        first_attempt_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn the_client_keeps_connections_per_origin_and_closes_idle_ones() {
    let config = WebhookConfig {
        idle_timeout_ms: 300,
        ..loopback()
    };
    let client = HttpClient::new(&config).unwrap();
    let a = CountingReceiver::start(Close::Never).await;
    let b = CountingReceiver::start(Close::Never).await;
    for _ in 0..10 {
        client.post(&claimed(&a.url("/one")), KEY).await.unwrap();
        // Another path on the same origin shares the connection.
        client.post(&claimed(&a.url("/two")), KEY).await.unwrap();
        client.post(&claimed(&b.url("/")), KEY).await.unwrap();
    }
    assert_eq!(a.accepted(), 1);
    assert_eq!(b.accepted(), 1);
    assert_eq!(a.posts().len(), 20);
    assert_eq!(client.connects(), 2);
    assert_eq!(client.idle(), 2);
    // Unused past the idle timeout: closed, and the next POST connects anew.
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.sweep();
    assert_eq!(client.idle(), 0);
    client.post(&claimed(&a.url("/one")), KEY).await.unwrap();
    assert_eq!(a.accepted(), 2);

    // Without pooling: a connection per POST.
    let config = WebhookConfig {
        max_idle_per_origin: 0,
        ..loopback()
    };
    let fresh = HttpClient::new(&config).unwrap();
    let c = CountingReceiver::start(Close::Never).await;
    for _ in 0..5 {
        fresh.post(&claimed(&c.url("/")), KEY).await.unwrap();
    }
    assert_eq!(c.accepted(), 5);

    // A receiver that went away: the pooled connection is dropped and the error is the
    // connect's.
    let gone = CountingReceiver::start(Close::Abrupt).await;
    client.post(&claimed(&gone.url("/")), KEY).await.unwrap();
    client.post(&claimed(&gone.url("/")), KEY).await.unwrap();
    assert_eq!(gone.accepted(), 2);
    let closed = client
        .post(&claimed("http://127.0.0.1:9/"), KEY)
        .await
        .unwrap_err()
        .to_string();
    assert!(closed.starts_with("connect:"), "{closed}");
}

#[tokio::test]
async fn a_request_that_crosses_the_close_of_a_kept_connection_goes_again_on_a_fresh_one() {
    let client = HttpClient::new(&loopback()).unwrap();
    let r = CountingReceiver::start(Close::DropsSecond).await;
    for n in 1..=10 {
        client
            .post(&claimed(&r.url("/")), KEY)
            .await
            .unwrap_or_else(|e| panic!("post {n}: {e}"));
    }
    // Each POST after the first: sent on the kept connection, no answer, sent again on a new one.
    assert_eq!(r.posts().len(), 10);
    assert_eq!(r.accepted(), 10);
    assert_eq!(client.connects(), 10);
}

async fn pool() -> sqlx::PgPool {
    rz_stack::migrated_pool(store::MIGRATIONS).await
}

#[tokio::test]
async fn a_batch_of_successes_is_recorded_only_under_the_claims_that_sent_them() {
    let pool = pool().await;
    let sub = SubscriptionRow {
        id: Uuid::now_v7(),
        agb_code: AGB.parse().unwrap(),
        url: "http://127.0.0.1:9/".into(),
        event_types: vec![],
        municipalities: vec![],
        segments: vec![],
        created_at: chrono::Utc::now(),
    };
    // Never opened here: the queue does not look into secrets.
    let sealed = notification::secrets::Sealed {
        key_id: "test".into(),
        bytes: vec![0; 28],
    };
    // The deliveries' bodies are sealed with it (and opened when claimed).
    let keys =
        notification::secrets::Keyring::from_keys("k1", &[("k1".into(), [7u8; 32])]).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    store::insert_subscription(&mut conn, &sub, &sealed)
        .await
        .unwrap();
    for _ in 0..4 {
        store::insert_delivery(
            &mut conn,
            &keys,
            &NewDelivery {
                subscription_id: sub.id,
                agb_code: AGB,
                event_id: Uuid::now_v7(),
                event_type: "t",
                event_subject: "s",
                body: "{}",
            },
        )
        .await
        .unwrap();
    }
    drop(conn);
    // The first worker claims all four with a short lease; it expires, and a second worker
    // takes two of them over.
    let first = store::claim_due(&pool, &keys, 4, 30).await.unwrap();
    assert_eq!(first.len(), 4);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let second = store::claim_due(&pool, &keys, 2, 60_000).await.unwrap();
    assert_eq!(second.len(), 2);
    // The first worker's batch: only the two it still holds are marked.
    let batch: Vec<(Uuid, Uuid)> = first.iter().map(|d| (d.id, d.claim)).collect();
    let mut marked = store::mark_delivered_many(&pool, &batch).await.unwrap();
    marked.sort();
    let mut kept: Vec<Uuid> = first
        .iter()
        .filter(|d| second.iter().all(|s| s.id != d.id))
        .map(|d| d.id)
        .collect();
    kept.sort();
    assert_eq!(marked, kept);
    for s in &second {
        let row = store::delivery(&pool, s.id).await.unwrap().unwrap();
        assert_eq!(
            row.status, "pending",
            "taken over: the old claim must not mark it"
        );
        assert_eq!(row.attempts, 0);
    }
    // Recording the same batch again changes nothing; the second worker's batch marks its two.
    assert!(
        store::mark_delivered_many(&pool, &batch)
            .await
            .unwrap()
            .is_empty()
    );
    let batch: Vec<(Uuid, Uuid)> = second.iter().map(|d| (d.id, d.claim)).collect();
    assert_eq!(
        store::mark_delivered_many(&pool, &batch)
            .await
            .unwrap()
            .len(),
        2
    );
    let delivered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered' AND attempts = 1
                AND claim IS NULL AND delivered_at IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(delivered, 4);
    assert!(
        store::mark_delivered_many(&pool, &[])
            .await
            .unwrap()
            .is_empty()
    );
}
