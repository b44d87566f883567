//! The delivery worker: claims due deliveries (bounded in flight, shared between replicas through
//! `FOR UPDATE SKIP LOCKED` and a lease), POSTs each one and records the outcome: 2xx delivered;
//! otherwise retried with exponential backoff until the retry budget is spent, then failed with an
//! operator alert.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use rz_platform::Shutdown;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, RootCertStore};

use crate::config::WebhookConfig;
use crate::store::{self, Claimed};
use crate::webhook;

pub const SIGNATURE_HEADER: &str = "x-regiozorg-signature";
pub const DELIVERY_HEADER: &str = "x-regiozorg-delivery";

/// How long a woken worker waits for more deliveries before it claims.
const COALESCE: Duration = Duration::from_millis(5);

pub struct DeliveryWorker {
    pool: PgPool,
    config: Arc<WebhookConfig>,
    client: HttpClient,
}

impl DeliveryWorker {
    /// Fails when `webhooks.ca_file` cannot be read.
    pub fn new(pool: PgPool, config: WebhookConfig) -> Result<Self, String> {
        Ok(Self {
            client: HttpClient::new(&config)?,
            pool,
            config: Arc::new(config),
        })
    }

    /// Delivers until `shutdown`; attempts in flight are finished first.
    pub async fn run(self, shutdown: Shutdown) {
        let max = self.config.max_in_flight.max(1);
        let permits = Arc::new(Semaphore::new(max));
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(1));
        let lease = i64::try_from(self.config.lease_ms).unwrap_or(i64::MAX);
        // New deliveries wake the worker at once (NOTIFY at the matcher's commit); the poll stays
        // as the fallback for retries that fall due and for a lost listener connection.
        let mut listener = listen(&self.pool).await;
        while !shutdown.is_triggered() {
            let free = permits.available_permits();
            if free == 0 {
                // Wait for one attempt to finish.
                tokio::select! {
                    _ = shutdown.wait() => break,
                    p = permits.clone().acquire_owned() => drop(p),
                }
                continue;
            }
            let claimed = match store::claim_due(&self.pool, free as i64, lease).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim deliveries");
                    Vec::new()
                }
            };
            let idle = claimed.is_empty();
            for d in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let pool = self.pool.clone();
                let config = self.config.clone();
                let client = self.client.clone();
                tokio::spawn(async move {
                    attempt(&pool, &config, &client, d).await;
                    drop(permit);
                });
            }
            if idle {
                let woken = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(poll) => {}
                    r = woken => match r {
                        // A few milliseconds for the deliveries committed right after this one,
                        // so a busy stream is claimed in batches rather than one by one.
                        Ok(()) => tokio::time::sleep(COALESCE).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "delivery listener lost; polling only");
                            listener = None;
                        }
                    }
                }
            }
        }
        // Let attempts in flight record their outcome.
        let _ = permits.acquire_many(max as u32).await;
        tracing::info!("delivery worker stopped");
    }
}

/// A listener on [`store::DELIVERIES_CHANNEL`], or `None` (polling only) when it cannot connect.
async fn listen(pool: &PgPool) -> Option<sqlx::postgres::PgListener> {
    let mut l = match sqlx::postgres::PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "no delivery listener; polling only");
            return None;
        }
    };
    match l.listen(store::DELIVERIES_CHANNEL).await {
        Ok(()) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "no delivery listener; polling only");
            None
        }
    }
}

async fn attempt(pool: &PgPool, config: &WebhookConfig, client: &HttpClient, d: Claimed) {
    let attempts = u32::try_from(d.attempts).unwrap_or(0) + 1;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let result = match tokio::time::timeout(timeout, client.post(&d)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {} ms", config.request_timeout_ms)),
    };
    let outcome = match result {
        Ok(()) => {
            tracing::info!(delivery = %d.id, event_id = %d.event_id, attempts, "webhook delivered");
            store::mark_delivered(pool, d.id, d.claim).await
        }
        Err(error) => {
            let delay = config.backoff(attempts);
            let elapsed = (chrono::Utc::now() - d.first_attempt_at)
                .to_std()
                .unwrap_or_default();
            let spent = elapsed + delay > config.retry_window()
                || (config.max_attempts > 0 && attempts >= config.max_attempts);
            if spent {
                tracing::error!(
                    delivery = %d.id, event_id = %d.event_id, agb = %d.agb_code, url = %d.url,
                    attempts, %error, "webhook delivery failed for good; operator alert raised"
                );
                let message = format!(
                    "delivery {} of event {} to {} failed after {attempts} attempts: {error}",
                    d.id, d.event_id, d.url
                );
                store::mark_failed(pool, d.id, d.claim, &d.agb_code, &error, &message).await
            } else {
                tracing::warn!(delivery = %d.id, attempts, %error, retry_in_ms = delay.as_millis() as u64, "webhook attempt failed");
                let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                store::schedule_retry(pool, store::Queue::Deliveries, d.id, d.claim, &error, ms)
                    .await
            }
        }
    };
    match outcome {
        Ok(true) => {}
        // The lease expired and another worker took the delivery over: its outcome counts.
        Ok(false) => tracing::warn!(delivery = %d.id, "claim lost before the outcome was recorded"),
        // The lease expires and the delivery is attempted again (at least once).
        Err(e) => tracing::warn!(delivery = %d.id, error = %e, "cannot record the outcome"),
    }
}

/// The HTTP(S) client of the worker: a fresh HTTP/1.1 connection per attempt (deliveries to one
/// receiver are spread over time by the backoff, so pooling buys little), TLS through rustls with
/// the system's roots plus `webhooks.ca_file`.
#[derive(Clone)]
pub struct HttpClient {
    tls: TlsConnector,
}

impl HttpClient {
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        if !native.errors.is_empty() {
            tracing::warn!(errors = ?native.errors, "some system CA certificates could not be loaded");
        }
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        tracing::debug!(
            system_roots = added,
            total = roots.len(),
            "webhook TLS roots loaded"
        );
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(tls)),
        })
    }

    /// One POST. `Ok` only for a 2xx answer.
    pub async fn post(&self, d: &Claimed) -> Result<(), String> {
        let uri: http::Uri = d.url.parse().map_err(|e| format!("bad url: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("unsupported scheme in {}", d.url)),
        };
        let host = uri.host().ok_or("url has no host")?;
        // `[::1]` in a URL is `::1` to connect to and to check the certificate against.
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let stream = tokio::net::TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let body = Bytes::from(d.body.clone());
        let request = http::Request::post(
            uri.path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into()),
        )
        .header(
            http::header::HOST,
            uri.authority().map(|a| a.as_str()).unwrap_or(host),
        )
        .header(
            http::header::CONTENT_TYPE,
            "application/cloudevents+json; charset=utf-8",
        )
        .header(http::header::USER_AGENT, "regiozorg-notification/0.1")
        .header(SIGNATURE_HEADER, webhook::signature(&d.secret, &body))
        .header(DELIVERY_HEADER, d.id.to_string())
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
        if https {
            let name = ServerName::try_from(bare).map_err(|e| format!("server name: {e}"))?;
            let tls = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            exchange(tls, request).await
        } else {
            exchange(stream, request).await
        }
    }
}

async fn exchange<S>(io: S, request: http::Request<Full<Bytes>>) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let connection = tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"));
    let result = match response {
        Ok(response) => {
            let status = response.status();
            // Read (and drop) the body so the exchange completes.
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        }
        Err(e) => Err(e),
    };
    connection.abort();
    result
}
