//! A provider's webhook receiver, as the benchmarks and the chaos run need one: a local HTTP
//! server (`POST /hook/<agb>`) that checks each delivery's signature against the provider's
//! subscription secret and records every CloudEvent id once, with when it first arrived; a
//! redelivery is answered as a success and counted.
//!
//! The notification service signs a delivery with `X-Regiozorg-Signature: sha256=<hex
//! HMAC-SHA256 of the body under the subscription's secret>` ([`sign`]); [`verify`] checks it,
//! comparing the MACs in constant time.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpListener;

/// The header that carries a delivery's signature.
pub const SIGNATURE_HEADER: &str = "x-regiozorg-signature";

fn mac(secret: &str) -> Option<Hmac<Sha256>> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).ok()
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`, as the notification service signs.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let Some(mut mac) = mac(secret) else {
        return String::new();
    };
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Whether `header` is the signature of `body` under `secret` (see [`sign`]; hex digits in either
/// case). The MACs are compared in constant time.
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(expected) = header.strip_prefix("sha256=").and_then(decode_hex) else {
        return false;
    };
    let Some(mut mac) = mac(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
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
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST),
    };
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
    let signed = receipts
        .secrets
        .read()
        .map(|s| {
            s.get(&agb)
                .is_some_and(|secret| verify(secret, &body, &signature))
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

    #[test]
    fn a_good_signature_is_accepted() {
        let body = br#"{"id":"x"}"#;
        let good = sign("whsec_1", body);
        assert!(good.starts_with("sha256=") && good.len() == 7 + 64);
        assert!(verify("whsec_1", body, &good));
        assert!(verify(
            "whsec_1",
            body,
            &good.to_ascii_uppercase().replace("SHA256=", "sha256=")
        ));
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let body = br#"{"id":"x"}"#;
        let good = sign("whsec_1", body);
        assert!(!verify("whsec_2", body, &good), "another secret");
        assert!(!verify("whsec_1", b"other", &good), "another body");
        assert!(!verify("whsec_1", body, &good[7..]), "no scheme");
        assert!(!verify("whsec_1", body, "md5=00"));
        assert!(!verify("whsec_1", body, "sha256=zz"));
        assert!(!verify("whsec_1", body, "sha256=abc"), "odd length");
        assert!(
            !verify("whsec_1", body, &good[..good.len() - 2]),
            "truncated"
        );
        assert!(!verify("whsec_1", body, ""));
        // An old signature: the one of an earlier body under the same secret.
        let old = sign("whsec_1", br#"{"id":"w"}"#);
        assert!(!verify("whsec_1", body, &old));
    }

    #[test]
    fn the_signature_is_the_notification_services() {
        // RFC 4231, test case 2: the notification service's own test vector.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn the_receiver_records_signed_posts_once() {
        let r = WebhookReceiver::start().await.unwrap();
        r.add_secret("99000001", "whsec_t".to_owned());
        let body = br#"{"specversion":"1.0","id":"e1"}"#.to_vec();
        let post = |path: &'static str, sig: String, body: Vec<u8>| {
            let addr = r.addr();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let req = Request::post(path)
                    .header(SIGNATURE_HEADER, sig)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                s.send_request(req).await.unwrap().status()
            }
        };
        let hook = "/hook/99000001";
        let signed = sign("whsec_t", &body);
        assert_eq!(
            post(hook, signed.clone(), body.clone()).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            post(hook, signed.clone(), body.clone()).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            post(hook, sign("wrong", &body), body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            post("/hook/99000002", signed, body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        let no_id = b"{}".to_vec();
        assert_eq!(
            post(hook, sign("whsec_t", &no_id), no_id).await,
            StatusCode::BAD_REQUEST
        );
        let receipts = r.receipts();
        assert_eq!(
            (receipts.posts(), receipts.fresh(), receipts.redeliveries()),
            (5, 1, 1)
        );
        assert_eq!(receipts.bad_signatures(), 2);
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
