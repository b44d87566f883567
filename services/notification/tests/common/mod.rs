//! `spawn_app`: the notification service on port 0 with a fresh database and its own NATS
//! namespace; a real HTTP receiver on 127.0.0.1:0 that records every request and fails on demand;
//! and a publisher writing envelope-correct assignment events straight to JetStream.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod stack;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use notification::{App, Config};
use rz_eventing::nats::jetstream;
use rz_platform::Shutdown;
use rz_proto::assignment::v1 as apb;
use rz_proto::notification::v1 as pb;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
use rz_testkit::TestEnv;
use sqlx::PgPool;
use tonic::transport::Channel;
use uuid::Uuid;

pub struct TestApp {
    pub db_url: String,
    pub client: NotificationServiceClient<Channel>,
    pub pool: PgPool,
    pub namespace: String,
    pub js: jetstream::Context,
    pub shutdown: Shutdown,
    pub server: tokio::task::JoinHandle<Result<(), notification::StartError>>,
}

/// The service with a fast retry schedule: 10 ms doubling, capped at 40 ms, 4 attempts.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with the configuration changed by `tune`.
pub async fn spawn_app_with(tune: impl FnOnce(&mut Config)) -> TestApp {
    let env = TestEnv::load();
    let db = env.fresh_database().await;
    spawn_inner(&db, &env.namespace(), tune).await
}

/// The service with a fresh database in the NATS namespace `namespace` (shared with other
/// services the test spawns), with the configuration changed by `tune`.
pub async fn spawn_in(namespace: &str, tune: impl FnOnce(&mut Config)) -> TestApp {
    let env = TestEnv::load();
    let db = env.fresh_database().await;
    spawn_inner(&db, namespace, tune).await
}

/// Another replica on the same database and NATS namespace.
pub async fn spawn_replica(db: &str, namespace: &str) -> TestApp {
    spawn_inner(db, namespace, |_| {}).await
}

async fn spawn_inner(db: &str, namespace: &str, tune: impl FnOnce(&mut Config)) -> TestApp {
    let env = TestEnv::load();
    let mut config = Config::default();
    config.database.url = db.to_owned();
    config.database.max_connections = 8;
    config.nats.url = env.nats_url.clone();
    config.nats.namespace = namespace.to_owned();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 5;
    config.webhooks.initial_backoff_ms = 10;
    config.webhooks.max_backoff_ms = 40;
    config.webhooks.max_attempts = 4;
    config.webhooks.poll_interval_ms = 10;
    config.webhooks.request_timeout_ms = 2_000;
    config.webhooks.lease_ms = 5_000;
    config.webhooks.ca_file = Some(fixture("ca.pem"));
    // Scans run when a test asks (ScanDeadlines), not on a timer.
    config.notification.scan_interval_secs = 0;
    tune(&mut config);
    let namespace = config.nats.namespace.clone();
    let app = App::build(config).await.expect("notification builds");
    let addr = app.local_addr();
    let pool = app.pool().clone();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    let (_, js) = rz_eventing::connect(&env.nats_url, "notification-test")
        .await
        .expect("nats");
    TestApp {
        db_url: db.to_owned(),
        client: NotificationServiceClient::new(channel),
        pool,
        namespace,
        js,
        shutdown,
        server,
    }
}

impl TestApp {
    /// Waits until the municipality has `n` letters of `kind` and returns them.
    pub async fn letters(&mut self, municipality: &str, kind: &str, n: usize) -> Vec<pb::Letter> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got: Vec<pb::Letter> = self
                .client
                .list_letters(pb::ListLettersRequest {
                    municipality: municipality.into(),
                    client_key: String::new(),
                    limit: 1000,
                })
                .await
                .unwrap()
                .into_inner()
                .letters
                .into_iter()
                .filter(|l| l.kind == kind)
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind}: {} letters, expected {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn scan(&mut self, as_of: &str) -> pb::ScanDeadlinesResponse {
        self.client
            .scan_deadlines(pb::ScanDeadlinesRequest {
                as_of: as_of.into(),
            })
            .await
            .expect("scan")
            .into_inner()
    }

    pub async fn alerts(
        &mut self,
        municipality: &str,
        states: &[pb::AlertState],
    ) -> Vec<pb::StaffAlert> {
        self.client
            .list_staff_alerts(pb::ListStaffAlertsRequest {
                municipality: municipality.into(),
                states: states.iter().map(|s| *s as i32).collect(),
                limit: 0,
            })
            .await
            .expect("alerts")
            .into_inner()
            .alerts
    }

    pub async fn subscribe(
        &mut self,
        agb: &str,
        url: &str,
        event_types: &[&str],
        municipalities: &[&str],
        segments: &[&str],
    ) -> pb::Subscription {
        self.client
            .create_subscription(pb::CreateSubscriptionRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                agb_code: agb.into(),
                url: url.into(),
                event_types: event_types.iter().map(|s| s.to_string()).collect(),
                municipalities: municipalities.iter().map(|s| s.to_string()).collect(),
                segments: segments.iter().map(|s| s.to_string()).collect(),
            })
            .await
            .expect("subscription created")
            .into_inner()
    }

    /// Publishes an envelope-correct `AssignmentMessage` on
    /// `<ns>.assignment.<municipality>.<agb>.<event>` and returns the event id.
    pub async fn publish_assignment(
        &self,
        municipality: &str,
        agb: &str,
        event: &str,
        number: u32,
        segment: &str,
    ) -> Uuid {
        let payload = apb::AssignmentMessage {
            assignment: Some(apb::Assignment {
                number,
                municipality: municipality.into(),
                agb_code: agb.into(),
                segment_code: segment.into(),
                subsegment_code: format!("{segment}-1"),
                product_code: "45A01".into(),
                law: 1,
                ..Default::default()
            }),
            client: Some(apb::Client {
                bsn: "999990019".into(),
                birth_date: "2012-03-04".into(),
                family_name: "Jansen".into(),
                given_names: "Sanne".into(),
                ..Default::default()
            }),
        };
        self.publish(
            &format!("{}.assignment.{municipality}.{agb}.{event}", self.namespace),
            &format!("nl.regiozorg.assignment.{event}.v1"),
            &format!("regiozorg/assignment/{municipality}"),
            &format!("{municipality}/{number}"),
            prost::Message::encode_to_vec(&payload),
        )
        .await
    }

    pub async fn publish(
        &self,
        subject: &str,
        event_type: &str,
        source: &str,
        aggregate: &str,
        payload: Vec<u8>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        self.publish_as(
            id,
            &id.to_string(),
            subject,
            event_type,
            source,
            aggregate,
            payload,
        )
        .await;
        id
    }

    /// Publishes with a given event id and `Nats-Msg-Id` (a different one defeats JetStream's
    /// duplicate window, as a republish after the window would).
    #[allow(clippy::too_many_arguments)]
    pub async fn publish_as(
        &self,
        id: Uuid,
        msg_id: &str,
        subject: &str,
        event_type: &str,
        source: &str,
        aggregate: &str,
        payload: Vec<u8>,
    ) {
        let mut h = rz_eventing::nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", msg_id);
        h.insert("ce-specversion", "1.0");
        h.insert("ce-id", id.to_string().as_str());
        h.insert("ce-type", event_type);
        h.insert("ce-source", source);
        h.insert("ce-subject", aggregate);
        h.insert(
            "ce-time",
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_str(),
        );
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        h.insert("content-type", "application/protobuf");
        self.js
            .publish_with_headers(subject.to_owned(), h, payload.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    /// Waits until `sql` (a scalar count) returns `want`.
    pub async fn wait_count(&self, sql: &str, want: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_one(&self.pool)
                .await
                .unwrap();
            if n == want {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("`{sql}` is {n}, expected {want}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.server.await;
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub signature: String,
    pub delivery: String,
    pub content_type: String,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A real HTTP/1.1 server on 127.0.0.1:0 that answers 503 while `failures` > 0 (counting down),
/// and 204 after. `usize::MAX` failures = never recovers until [`Receiver::recover`].
#[derive(Clone)]
pub struct Receiver {
    scheme: &'static str,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    /// The most requests that were in flight at once.
    pub max_in_flight: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(failures: usize) -> Self {
        Self::start_with(failures, Duration::ZERO).await
    }

    /// As [`Receiver::start`], taking `delay` to answer each request.
    pub async fn start_with(failures: usize, delay: Duration) -> Self {
        Self::start_inner(failures, delay, None).await
    }

    /// An https receiver with the test certificate for `localhost` and `127.0.0.1`.
    pub async fn start_tls(failures: usize) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls;
        let certs = CertificateDer::pem_slice_iter(&std::fs::read(fixture("server.pem")).unwrap())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            PrivateKeyDer::from_pem_slice(&std::fs::read(fixture("server.key")).unwrap()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_inner(failures, Duration::ZERO, Some(acceptor)).await
    }

    async fn start_inner(
        failures: usize,
        delay: Duration,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicUsize::new(failures));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (l, f) = (log.clone(), failures.clone());
        let (fl, mx) = (in_flight.clone(), max_in_flight.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (l, f) = (l.clone(), f.clone());
                let (fl, mx) = (fl.clone(), mx.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (l, f) = (l.clone(), f.clone());
                        let (fl, mx) = (fl.clone(), mx.clone());
                        async move {
                            let now = fl.fetch_add(1, Ordering::SeqCst) + 1;
                            mx.fetch_max(now, Ordering::SeqCst);
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let header = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let (path, signature, delivery, content_type) = (
                                req.uri().path().to_owned(),
                                header("x-regiozorg-signature"),
                                header("x-regiozorg-delivery"),
                                header("content-type"),
                            );
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            l.lock().unwrap().push(Received {
                                path,
                                signature,
                                delivery,
                                content_type,
                                body,
                            });
                            let fail = f
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                                    0 => None,
                                    usize::MAX => Some(usize::MAX),
                                    n => Some(n - 1),
                                })
                                .is_ok();
                            let status = if fail { 503 } else { 204 };
                            fl.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Self {
            scheme,
            addr,
            log,
            failures,
            in_flight,
            max_in_flight,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    pub fn recover(&self) {
        self.failures.store(0, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    pub fn at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// Checks `sha256=<hex HMAC-SHA256(body, secret)>` independently of the service's code.
pub fn verify_signature(secret: &str, body: &[u8], header: &str) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
