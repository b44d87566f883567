//! A provider's webhook receiver, as the benchmarks and the chaos run need one: a local HTTP
//! server (`POST /hook/<agb>`) that checks each delivery's signature against the provider's
//! subscription secret and records every CloudEvent id once, with when it first arrived; a
//! redelivery is answered as a success and counted.
//!
//! The notification service signs a delivery as Standard Webhooks prescribes: `webhook-id`,
//! `webhook-timestamp` (Unix seconds, fresh on every attempt) and `webhook-signature: v1,<base64
//! HMAC-SHA256 of "id.timestamp.body">` under the key of the subscription's secret
//! (`whsec_<base64 key>`) ([`sign`]). [`verify`] checks them as a receiver's library does: the
//! timestamp within [`TOLERANCE_SECS`] of now (older ones are replays), any `v1` signature in the
//! header, the MACs compared in constant time.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpListener;

/// The headers of a signed delivery.
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far a delivery's timestamp may lie from the receiver's clock, either way (the Standard
/// Webhooks libraries' five minutes).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The HMAC key of a `whsec_<base64>` secret.
fn key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret's key, as the notification
/// service signs.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let Some(mac) = key(secret).and_then(|k| mac(&k, id, &timestamp.to_string(), body)) else {
        return String::new();
    };
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The headers of a delivery, as received.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

/// Whether `body` with `headers` is signed under `secret` (see [`sign`]) at a time within
/// [`TOLERANCE_SECS`] of `now` (Unix seconds). Any of the space-separated `v1,` signatures may
/// match; each is compared in constant time.
pub fn verify(secret: &str, body: &[u8], headers: Signed<'_>, now: i64) -> bool {
    let Ok(ts) = headers.timestamp.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > TOLERANCE_SECS || headers.id.is_empty() {
        return false;
    }
    let Some(key) = key(secret) else {
        return false;
    };
    headers
        .signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|expected| {
            mac(&key, headers.id, headers.timestamp, body)
                .is_some_and(|m| m.verify_slice(&expected).is_ok())
        })
}

/// A line of notification's `webhooks.secret_keys_file`: `<id> <base64 of key>` (the stacks the
/// tools start seal their subscription secrets with a key of their own).
pub fn key_file_line(id: &str, key: &[u8]) -> String {
    format!("{id} {}\n", STANDARD.encode(key))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What the receiver got. Cheap to read while deliveries go on: the counters need no lock.
#[derive(Debug, Default)]
pub struct Receipts {
    /// Subscription secret per provider AGB.
    secrets: RwLock<HashMap<String, String>>,
    /// CloudEvent id -> when it first arrived.
    received: Mutex<HashMap<String, Instant>>,
    /// Deliveries refused for a missing or wrong signature (or an unknown provider): (AGB, id).
    bad_signatures: Mutex<Vec<(String, String)>>,
    posts: AtomicU64,
    fresh: AtomicU64,
    redeliveries: AtomicU64,
}

/// The ids received and the refused deliveries, at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// CloudEvent ids received (each once, however often delivered).
    pub received: HashSet<String>,
    /// Deliveries with a missing or wrong signature: (AGB, event id).
    pub bad_signatures: Vec<(String, String)>,
}

impl Receipts {
    /// POSTs answered, whatever the answer.
    pub fn posts(&self) -> u64 {
        self.posts.load(Ordering::Relaxed)
    }

    /// Distinct event ids received.
    pub fn fresh(&self) -> u64 {
        self.fresh.load(Ordering::Relaxed)
    }

    /// Deliveries of an id received before.
    pub fn redeliveries(&self) -> u64 {
        self.redeliveries.load(Ordering::Relaxed)
    }

    /// Deliveries refused for their signature.
    pub fn bad_signatures(&self) -> usize {
        self.bad_signatures
            .lock()
            .map(|b| b.len())
            .unwrap_or_default()
    }

    /// When each of `ids` first arrived (those received so far).
    pub fn arrivals<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> HashMap<String, Instant> {
        let Ok(r) = self.received.lock() else {
            return HashMap::new();
        };
        ids.into_iter()
            .filter_map(|id| r.get(id).map(|at| (id.clone(), *at)))
            .collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            received: self
                .received
                .lock()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default(),
            bad_signatures: self
                .bad_signatures
                .lock()
                .map(|b| b.clone())
                .unwrap_or_default(),
        }
    }

    fn refuse(&self, agb: String, id: Option<String>) {
        if let Ok(mut b) = self.bad_signatures.lock() {
            b.push((agb, id.unwrap_or_default()));
        }
    }

    /// Records `id`'s arrival at `at`; false when it came before.
    fn record(&self, id: String, at: Instant) -> bool {
        let Ok(mut r) = self.received.lock() else {
            return false;
        };
        match r.entry(id) {
            Entry::Occupied(_) => {
                self.redeliveries.fetch_add(1, Ordering::Relaxed);
                false
            }
            Entry::Vacant(v) => {
                v.insert(at);
                self.fresh.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }
}

/// The receiver the provider systems would run, on 127.0.0.1; it stops when dropped.
pub struct WebhookReceiver {
    addr: SocketAddr,
    receipts: Arc<Receipts>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let receipts = Arc::new(Receipts::default());
        let task = {
            let receipts = receipts.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let receipts = receipts.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let receipts = receipts.clone();
                            async move { Ok::<_, Infallible>(handle(&receipts, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
            })
        };
        Ok(Self {
            addr,
            receipts,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL provider `agb` subscribes with: `http://<addr>/hook/<agb>`.
    pub fn url(&self, agb: &str) -> String {
        format!("http://{}/hook/{agb}", self.addr)
    }

    /// Accepts deliveries for provider `agb` signed with `secret` from now on.
    pub fn add_secret(&self, agb: &str, secret: String) {
        if let Ok(mut s) = self.receipts.secrets.write() {
            s.insert(agb.to_owned(), secret);
        }
    }

    pub fn receipts(&self) -> &Arc<Receipts> {
        &self.receipts
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(receipts: &Receipts, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let at = Instant::now();
    receipts.posts.fetch_add(1, Ordering::Relaxed);
    let agb = req
        .uri()
        .path()
        .strip_prefix("/hook/")
        .unwrap_or_default()
        .to_owned();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (msg_id, timestamp, signature) = (
        header(ID_HEADER),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
    );
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST),
    };
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
    let headers = Signed {
        id: &msg_id,
        timestamp: &timestamp,
        signature: &signature,
    };
    let now = unix_now();
    let signed = receipts
        .secrets
        .read()
        .map(|s| {
            s.get(&agb)
                .is_some_and(|secret| verify(secret, &body, headers, now))
        })
        .unwrap_or(false);
    if !signed {
        // A real receiver refuses it; the sender retries, and it is counted as evidence.
        receipts.refuse(agb, id);
        return reply(StatusCode::UNAUTHORIZED);
    }
    let Some(id) = id else {
        return reply(StatusCode::BAD_REQUEST);
    };
    receipts.record(id, at);
    reply(StatusCode::NO_CONTENT)
}

fn reply(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signed<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> Signed<'a> {
        Signed {
            id,
            timestamp: ts,
            signature: sig,
        }
    }

    #[test]
    fn signs_as_the_standard_webhooks_library() {
        let body = br#"{"id":"x"}"#;
        let lib = standardwebhooks::Webhook::new(SECRET).unwrap();
        assert_eq!(
            sign(SECRET, "msg_1", 1_700_000_000, body),
            lib.sign("msg_1", 1_700_000_000, body).unwrap()
        );
        // And the library accepts what this receiver accepts.
        let now = unix_now();
        let sig = sign(SECRET, "msg_1", now, body);
        let mut h = http::HeaderMap::new();
        h.insert(ID_HEADER, "msg_1".parse().unwrap());
        h.insert(TIMESTAMP_HEADER, now.to_string().parse().unwrap());
        h.insert(SIGNATURE_HEADER, sig.parse().unwrap());
        lib.verify(body, &h).unwrap();
        assert!(verify(
            SECRET,
            body,
            signed("msg_1", &now.to_string(), &sig),
            now
        ));
    }

    #[test]
    fn a_bad_or_stale_signature_is_refused() {
        let body = br#"{"id":"x"}"#;
        let now = 1_700_000_000;
        let ts = now.to_string();
        let good = sign(SECRET, "m", now, body);
        assert!(verify(SECRET, body, signed("m", &ts, &good), now));
        // Several signatures (a receiver during a rotation): any one may match.
        let two = format!("v1,AAAA {good}");
        assert!(verify(SECRET, body, signed("m", &ts, &two), now));
        let other = "whsec_b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmch";
        assert!(
            !verify(other, body, signed("m", &ts, &good), now),
            "another secret"
        );
        assert!(
            !verify(SECRET, b"other", signed("m", &ts, &good), now),
            "another body"
        );
        assert!(
            !verify(SECRET, body, signed("n", &ts, &good), now),
            "another id"
        );
        let later = (now + 1).to_string();
        assert!(
            !verify(SECRET, body, signed("m", &later, &good), now + 1),
            "another time"
        );
        assert!(
            !verify(SECRET, body, signed("m", &ts, &good[3..]), now),
            "no version"
        );
        assert!(!verify(SECRET, body, signed("m", &ts, "v2,abc"), now));
        assert!(!verify(SECRET, body, signed("m", &ts, ""), now));
        assert!(!verify(SECRET, body, signed("", &ts, &good), now), "no id");
        assert!(
            !verify(SECRET, body, signed("m", "x", &good), now),
            "no time"
        );
        // A replay more than five minutes later, or a time from the future.
        assert!(verify(
            SECRET,
            body,
            signed("m", &ts, &good),
            now + TOLERANCE_SECS
        ));
        assert!(!verify(
            SECRET,
            body,
            signed("m", &ts, &good),
            now + TOLERANCE_SECS + 1
        ));
        assert!(!verify(
            SECRET,
            body,
            signed("m", &ts, &good),
            now - TOLERANCE_SECS - 1
        ));
    }

    #[tokio::test]
    async fn the_receiver_records_signed_posts_once() {
        let r = WebhookReceiver::start().await.unwrap();
        r.add_secret("99000001", SECRET.to_owned());
        let body = br#"{"specversion":"1.0","id":"e1"}"#.to_vec();
        let post = |path: &'static str, secret: &'static str, ts: i64, body: Vec<u8>| {
            let addr = r.addr();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let req = Request::post(path)
                    .header(ID_HEADER, "d1")
                    .header(TIMESTAMP_HEADER, ts.to_string())
                    .header(SIGNATURE_HEADER, sign(secret, "d1", ts, &body))
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                s.send_request(req).await.unwrap().status()
            }
        };
        let hook = "/hook/99000001";
        let now = unix_now();
        assert_eq!(
            post(hook, SECRET, now, body.clone()).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            post(hook, SECRET, now, body.clone()).await,
            StatusCode::NO_CONTENT
        );
        let wrong = "whsec_d3Jvbmc=";
        assert_eq!(
            post(hook, wrong, now, body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            post("/hook/99000002", SECRET, now, body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            post(hook, SECRET, now - 3_600, body.clone()).await,
            StatusCode::UNAUTHORIZED,
            "a replay an hour later"
        );
        let no_id = b"{}".to_vec();
        assert_eq!(
            post(hook, SECRET, now, no_id).await,
            StatusCode::BAD_REQUEST
        );
        let receipts = r.receipts();
        assert_eq!(
            (receipts.posts(), receipts.fresh(), receipts.redeliveries()),
            (6, 1, 1)
        );
        assert_eq!(receipts.bad_signatures(), 3);
        let snapshot = receipts.snapshot();
        assert!(snapshot.received.contains("e1") && snapshot.received.len() == 1);
        assert_eq!(
            snapshot.bad_signatures[0],
            ("99000001".to_owned(), "e1".to_owned())
        );
        let ids = ["e1".to_owned(), "e2".to_owned()];
        assert_eq!(receipts.arrivals(&ids).len(), 1);
    }
}
