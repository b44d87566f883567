//! A webhook receiver: a real HTTP/1.1 (or https) server on 127.0.0.1:0 that records every request
//! and fails on demand, and the check a receiver makes of the Standard Webhooks headers, with the
//! off-the-shelf `standardwebhooks` library (not the service's code).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::fixtures::fixture;

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// `webhook-signature`.
    pub signature: String,
    /// `webhook-id`: the delivery id, the same on every attempt.
    pub delivery: String,
    /// `webhook-timestamp` (Unix seconds), fresh on every attempt.
    pub timestamp: String,
    pub content_type: String,
    pub headers: hyper::HeaderMap,
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
                            let (path, signature, delivery, timestamp, content_type) = (
                                req.uri().path().to_owned(),
                                header("webhook-signature"),
                                header("webhook-id"),
                                header("webhook-timestamp"),
                                header("content-type"),
                            );
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            l.lock().unwrap().push(Received {
                                path,
                                signature,
                                delivery,
                                timestamp,
                                content_type,
                                headers,
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

/// Whether `r` verifies under `secret` (`whsec_<base64>`) as a receiver using the
/// `standardwebhooks` library checks it: `webhook-id`, a `webhook-timestamp` within five minutes
/// and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn verify_signature(secret: &str, r: &Received) -> bool {
    verify_error(secret, r).is_none()
}

/// Why `standardwebhooks` refuses `r` under `secret`, if it does.
pub fn verify_error(secret: &str, r: &Received) -> Option<String> {
    let hook = match standardwebhooks::Webhook::new(secret) {
        Ok(h) => h,
        Err(e) => return Some(e.to_string()),
    };
    hook.verify(&r.body, &r.headers)
        .err()
        .map(|e| e.to_string())
}
