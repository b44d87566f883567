//! Webhook delivery: a local HTTP receiver (hyper) that checks each POST's signature and records
//! when each CloudEvent id arrived; subscriptions made through the notification gRPC API; assignment
//! events addressed to the subscribed providers published on the assignment stream as the outbox
//! relay publishes them (CloudEvents headers, `Nats-Msg-Id`, protobuf `AssignmentMessage`). The
//! event's commit is the instant its publish was acknowledged by JetStream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prost::Message;
use rz_proto::assignment::v1 as apb;
use rz_proto::notification::v1 as npb;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
use serde_json::json;
use sha2::Sha256;
use tokio::sync::Mutex;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::BenchError;
use crate::report::Report;
use crate::stats::{percentile_ms, rate};

#[derive(Default)]
struct State {
    /// Secret per subscribed provider AGB (the path is `/hook/<agb>`).
    secrets: HashMap<String, String>,
    received: Mutex<HashMap<String, Instant>>,
    posts: AtomicU64,
    /// Ids received for the first time (the size of `received`), read without its lock.
    fresh: AtomicU64,
    bad_signature: AtomicU64,
    duplicates: AtomicU64,
}

/// The receiver the provider systems would run.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    #[cfg(test)]
    async fn start(secrets: HashMap<String, String>) -> Result<Self, BenchError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::serve(listener, secrets)
    }

    fn serve(
        listener: tokio::net::TcpListener,
        secrets: HashMap<String, String>,
    ) -> Result<Self, BenchError> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            secrets,
            ..Default::default()
        });
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let _ = tcp.set_nodelay(true);
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(&state, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
            })
        };
        Ok(Self { addr, state, task })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let at = Instant::now();
    state.posts.fetch_add(1, Ordering::Relaxed);
    let agb = req
        .uri()
        .path()
        .strip_prefix("/hook/")
        .unwrap_or_default()
        .to_owned();
    let signature = req
        .headers()
        .get("x-regiozorg-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST),
    };
    let Some(secret) = state.secrets.get(&agb) else {
        return reply(StatusCode::NOT_FOUND);
    };
    if !signature_ok(secret, &body, &signature) {
        state.bad_signature.fetch_add(1, Ordering::Relaxed);
        return reply(StatusCode::UNAUTHORIZED);
    }
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
    let Some(id) = id else {
        return reply(StatusCode::BAD_REQUEST);
    };
    match state.received.lock().await.entry(id) {
        std::collections::hash_map::Entry::Occupied(_) => {
            state.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(at);
            state.fresh.fetch_add(1, Ordering::Relaxed);
        }
    }
    reply(StatusCode::NO_CONTENT)
}

fn reply(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

/// `sha256=<hex HMAC-SHA256 of the body under the subscription secret>`.
fn signature_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
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

pub struct WebhookSpec {
    pub nats_namespace: String,
    /// Events of the throughput phase.
    pub events: u64,
    pub providers: usize,
    /// Seconds of the paced latency phase.
    pub latency_secs: u64,
}

pub async fn run(
    notification: Channel,
    js: &async_nats::jetstream::Context,
    spec: &WebhookSpec,
    report: &mut Report,
) -> Result<(), BenchError> {
    // Bind first: the subscriptions need the URL, the receiver needs their secrets.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let mut api = NotificationServiceClient::new(notification);
    let mut secrets = HashMap::new();
    let agbs: Vec<String> = (0..spec.providers.max(1))
        .map(|i| format!("{:08}", 99_000_001 + i))
        .collect();
    for agb in &agbs {
        let s = api
            .create_subscription(npb::CreateSubscriptionRequest {
                idempotency_key: format!("bench-{agb}"),
                agb_code: agb.clone(),
                url: format!("http://127.0.0.1:{port}/hook/{agb}"),
                ..Default::default()
            })
            .await
            .map_err(|s| {
                BenchError::Failed(format!(
                    "CreateSubscription: {:?} {}",
                    s.code(),
                    s.message()
                ))
            })?
            .into_inner();
        secrets.insert(agb.clone(), s.secret);
    }
    let receiver = Receiver::serve(listener, secrets)?;
    eprintln!("bench: webhook receiver on http://{}", receiver.addr);
    let publisher = Publisher {
        js: js.clone(),
        ns: spec.nats_namespace.clone(),
        agbs,
    };

    // Throughput: every event published at once (async acks), deliveries counted as they arrive.
    eprintln!("bench: webhooks: {} events at once", spec.events);
    let before = receiver.state.fresh.load(Ordering::Relaxed);
    let commits = publisher.burst(0, spec.events).await?;
    let got = wait_for(&receiver.state, &commits, before, Duration::from_secs(15)).await;
    let first = commits.values().min().copied();
    let last = got.values().max().copied();
    let delivered = got.len() as u64;
    let per_s = match (first, last) {
        (Some(f), Some(l)) if delivered > 0 => rate(delivered, l.saturating_duration_since(f)),
        _ => None,
    };
    match per_s {
        Some(r) => report.measured("webhook_per_s", r),
        None => report.not_measured("webhook_per_s", "no webhook was delivered"),
    }
    // How fast the events themselves went in: the delivery rate cannot show more than this.
    let published_per_s = match (first, commits.values().max().copied()) {
        (Some(f), Some(l)) => rate(commits.len() as u64, l.saturating_duration_since(f)),
        _ => None,
    };
    let mut burst_lat = latencies(&commits, &got);
    report.detail(
        "webhook_throughput",
        json!({
            "events": commits.len(),
            "delivered": delivered,
            "providers_subscribed": publisher.agbs.len(),
            "published_per_s": published_per_s,
            "latency_p50_ms_in_burst": percentile_ms(&mut burst_lat, 50.0),
            "latency_p99_ms_in_burst": percentile_ms(&mut burst_lat, 99.0),
        }),
    );

    // Latency: events paced at half the measured delivery rate.
    let Some(per_s) = per_s else {
        return Err(BenchError::Failed(
            "no delivery rate, so no latency phase".into(),
        ));
    };
    let paced = (per_s / 2.0).max(1.0);
    let n = ((paced * spec.latency_secs as f64) as u64).clamp(100, 50_000);
    eprintln!("bench: webhooks: {n} events at {paced:.0}/s");
    let before = receiver.state.fresh.load(Ordering::Relaxed);
    let commits = publisher.paced(spec.events, n, paced).await?;
    let got = wait_for(&receiver.state, &commits, before, Duration::from_secs(15)).await;
    let mut lat = latencies(&commits, &got);
    let none = "no webhook of the paced phase was delivered";
    report.maybe("webhook_p50_ms", percentile_ms(&mut lat, 50.0), none);
    report.maybe("webhook_p99_ms", percentile_ms(&mut lat, 99.0), none);
    report.detail(
        "webhook_latency",
        json!({
            "rate_per_s": paced,
            "events": commits.len(),
            "delivered": got.len(),
            "p95_ms": percentile_ms(&mut lat, 95.0),
            "max_ms": lat.iter().max().map(|d| d.as_secs_f64() * 1000.0),
            "commit_instant": "the JetStream ack of the event's publish (the relay marks the outbox row sent then)",
        }),
    );
    report.detail(
        "webhook_receiver",
        json!({
            "posts": receiver.state.posts.load(Ordering::Relaxed),
            "bad_signatures": receiver.state.bad_signature.load(Ordering::Relaxed),
            "duplicates": receiver.state.duplicates.load(Ordering::Relaxed),
        }),
    );
    Ok(())
}

fn latencies(commits: &HashMap<String, Instant>, got: &HashMap<String, Instant>) -> Vec<Duration> {
    commits
        .iter()
        .filter_map(|(id, c)| got.get(id).map(|r| r.saturating_duration_since(*c)))
        .collect()
}

/// Waits until every id of `commits` was received or nothing new arrived for `stall`. `before` is
/// the receiver's count of fresh ids before these events were published: the ids are matched
/// (under the receiver's lock, which the deliveries being measured also take) only once that
/// count says they may all be in, so the wait costs the machine next to nothing meanwhile.
async fn wait_for(
    state: &State,
    commits: &HashMap<String, Instant>,
    before: u64,
    stall: Duration,
) -> HashMap<String, Instant> {
    let collect = || async {
        let r = state.received.lock().await;
        commits
            .keys()
            .filter_map(|id| r.get(id).map(|at| (id.clone(), *at)))
            .collect::<HashMap<String, Instant>>()
    };
    let mut last_count = 0;
    let mut progress = Instant::now();
    loop {
        let count = state.fresh.load(Ordering::Relaxed).saturating_sub(before);
        if count >= commits.len() as u64 {
            let got = collect().await;
            if got.len() == commits.len() {
                return got;
            }
        }
        if progress.elapsed() > stall {
            return collect().await;
        }
        if count > last_count {
            last_count = count;
            progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Publisher {
    js: async_nats::jetstream::Context,
    ns: String,
    agbs: Vec<String>,
}

impl Publisher {
    /// One assignment event addressed to provider `i % agbs`; returns its subject, headers, body, id.
    fn event(&self, i: u64) -> (String, async_nats::HeaderMap, Bytes, String) {
        let agb = &self.agbs[(i as usize) % self.agbs.len()];
        let m = "0222";
        let id = Uuid::now_v7().to_string();
        let number = (i % 900_000_000) as u32 + 1;
        let msg = apb::AssignmentMessage {
            assignment: Some(apb::Assignment {
                number,
                municipality: m.into(),
                client_key: "bench".into(),
                agb_code: agb.clone(),
                segment_code: "JGB".into(),
                subsegment_code: "JGB01".into(),
                period: Some(rz_proto::types::v1::Period {
                    start: "2022-09-01".into(),
                    end: "2023-08-31".into(),
                }),
                assigned_on: "2022-08-15".into(),
                ..Default::default()
            }),
            client: None,
        };
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", id.as_str());
        h.insert("ce-specversion", "1.0");
        h.insert("ce-id", id.as_str());
        h.insert("ce-type", "nl.regiozorg.assignment.issued.v1");
        h.insert("ce-source", "regiozorg/assignment");
        h.insert("ce-subject", format!("assignment/{m}/{number}").as_str());
        h.insert(
            "ce-time",
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_str(),
        );
        h.insert("content-type", "application/protobuf");
        let subject = format!("{}.assignment.{m}.{agb}.issued", self.ns);
        (subject, h, Bytes::from(msg.encode_to_vec()), id)
    }

    /// Publishes events `first..first + n` with up to 512 acks in flight; returns each event's ack
    /// instant.
    async fn burst(&self, first: u64, n: u64) -> Result<HashMap<String, Instant>, BenchError> {
        let mut pending = FuturesUnordered::new();
        let mut commits = HashMap::with_capacity(n as usize);
        for i in first..first + n {
            let (subject, h, body, id) = self.event(i);
            let ack = self
                .js
                .publish_with_headers(subject, h, body)
                .await
                .map_err(|e| BenchError::Nats(e.to_string()))?;
            pending.push(async move { (id, ack.into_future().await) });
            while pending.len() >= 512 {
                if let Some((id, r)) = pending.next().await {
                    r.map_err(|e| BenchError::Nats(e.to_string()))?;
                    commits.insert(id, Instant::now());
                }
            }
        }
        while let Some((id, r)) = pending.next().await {
            r.map_err(|e| BenchError::Nats(e.to_string()))?;
            commits.insert(id, Instant::now());
        }
        Ok(commits)
    }

    /// Publishes `n` events at `per_s`, each awaited (so its ack instant is exact).
    async fn paced(
        &self,
        first: u64,
        n: u64,
        per_s: f64,
    ) -> Result<HashMap<String, Instant>, BenchError> {
        let gap = Duration::from_secs_f64(1.0 / per_s);
        let t0 = Instant::now();
        let mut tasks = FuturesUnordered::new();
        let mut commits = HashMap::with_capacity(n as usize);
        for k in 0..n {
            tokio::time::sleep_until((t0 + gap.mul_f64(k as f64)).into()).await;
            let (subject, h, body, id) = self.event(first + k);
            let ack = self
                .js
                .publish_with_headers(subject, h, body)
                .await
                .map_err(|e| BenchError::Nats(e.to_string()))?;
            tasks.push(async move {
                let r = ack.into_future().await;
                (id, r.map(|_| Instant::now()))
            });
            // Collect finished acks without blocking the pace.
            while let Some(Some((id, r))) = futures::FutureExt::now_or_never(tasks.next()) {
                commits.insert(id, r.map_err(|e| BenchError::Nats(e.to_string()))?);
            }
        }
        while let Some((id, r)) = tasks.next().await {
            commits.insert(id, r.map_err(|e| BenchError::Nats(e.to_string()))?);
        }
        Ok(commits)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    #[test]
    fn signatures_are_checked() {
        let body = br#"{"id":"x"}"#;
        let good = sign("whsec_1", body);
        assert!(signature_ok("whsec_1", body, &good));
        assert!(!signature_ok("whsec_2", body, &good));
        assert!(!signature_ok("whsec_1", b"other", &good));
        assert!(!signature_ok("whsec_1", body, "md5=00"));
        assert!(!signature_ok("whsec_1", body, "sha256=zz"));
    }

    #[tokio::test]
    async fn the_receiver_records_signed_posts_once() {
        let mut secrets = HashMap::new();
        secrets.insert("99000001".to_owned(), "whsec_t".to_owned());
        let r = Receiver::start(secrets).await.unwrap();
        let body = br#"{"specversion":"1.0","id":"e1"}"#.to_vec();
        let post = |sig: String, body: Vec<u8>| {
            let addr = r.addr;
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let req = Request::post("/hook/99000001")
                    .header("x-regiozorg-signature", sig)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                s.send_request(req).await.unwrap().status()
            }
        };
        assert_eq!(
            post(sign("whsec_t", &body), body.clone()).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            post(sign("whsec_t", &body), body.clone()).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            post(sign("wrong", &body), body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(r.state.received.lock().await.len(), 1);
        assert_eq!(r.state.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(r.state.bad_signature.load(Ordering::Relaxed), 1);
    }
}
