//! The delivery worker: claims due deliveries (bounded in flight, shared between replicas through
//! `FOR UPDATE SKIP LOCKED` and a lease), POSTs each one and records the outcome: 2xx delivered;
//! otherwise retried with exponential backoff until the retry budget is spent, then failed with an
//! operator alert.
//!
//! Throughput: the POSTs go over a small pool of keep-alive HTTP/1.1 connections per origin
//! ([`HttpClient`]), and successes are recorded in batches (one `UPDATE ... FROM unnest(...)`
//! for whatever finished while the previous batch was written), each row still only under the
//! claim that sent it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use rz_eventing::wake::Chase;
use rz_platform::Shutdown;
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, RootCertStore};
use uuid::Uuid;

use crate::config::WebhookConfig;
use crate::egress::{EgressError, Guard};
use crate::metrics::{Outcome, WebhookMetrics};
use crate::secrets::Keyring;
use crate::store::{self, Claimed};
use crate::webhook;

/// Why a POST did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The SSRF guard refused the receiver's address: the delivery fails for good at once.
    #[error("{0}")]
    Refused(#[from] EgressError),
    /// Anything else (connection, TLS, status): retried.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for PostError {
    fn from(s: String) -> Self {
        Self::Failed(s)
    }
}

impl From<&str> for PostError {
    fn from(s: &str) -> Self {
        Self::Failed(s.to_owned())
    }
}

/// The Standard Webhooks headers: the message id (the delivery id, the same on every attempt), the
/// attempt's Unix time in seconds and `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How long a woken worker waits for more deliveries before it claims.
const COALESCE: Duration = Duration::from_millis(5);

/// At most this many successes are recorded by one statement.
const RECORD_BATCH: usize = 1_024;

pub struct DeliveryWorker {
    pool: PgPool,
    config: Arc<WebhookConfig>,
    client: HttpClient,
    /// Opens the subscriptions' sealed secrets and the deliveries' sealed bodies.
    keys: Arc<Keyring>,
    /// The NEN 7513 trail of deliveries that carry a BSN.
    audit: rz_platform::audit::Audit,
    /// Attempts by outcome and the delivery latency (none in tests that build a worker alone).
    metrics: Option<WebhookMetrics>,
}

impl DeliveryWorker {
    /// Fails when `webhooks.ca_file` cannot be read or a configured range does not parse.
    pub fn new(pool: PgPool, config: WebhookConfig, keys: Arc<Keyring>) -> Result<Self, String> {
        Ok(Self {
            client: HttpClient::new(&config)?,
            keys,
            audit: rz_platform::audit::Audit::new(pool.clone(), "notification"),
            pool,
            config: Arc::new(config),
            metrics: None,
        })
    }

    /// Counts the attempts and observes the latency of each delivery in `metrics`.
    pub fn with_metrics(mut self, metrics: WebhookMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Delivers until `shutdown`; attempts in flight are finished and recorded first.
    pub async fn run(self, shutdown: Shutdown) {
        let max = self.config.max_in_flight.max(1);
        let permits = Arc::new(Semaphore::new(max));
        // Claim in batches of at least a quarter of the budget while busy, rather than one
        // delivery per finished attempt (each claim is a statement).
        let low = (max / 4).max(1);
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(1));
        let lease = i64::try_from(self.config.lease_ms).unwrap_or(i64::MAX);
        let (delivered, recorded) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record_delivered(
            self.pool.clone(),
            recorded,
            self.metrics.clone(),
        ));
        // New deliveries written in this process wake the worker at once; the poll stays as the
        // fallback for retries that fall due and for deliveries matched by another replica.
        // A wake that finds nothing yet (the matcher's commit was on its way) is looked at again
        // shortly.
        let mut chase = Chase::default();
        while !shutdown.is_triggered() {
            let free = permits.available_permits();
            if free < low {
                // Wait until enough attempts finished.
                tokio::select! {
                    _ = shutdown.wait() => break,
                    p = permits.clone().acquire_many_owned(low as u32) => drop(p),
                }
                continue;
            }
            let mut claimed =
                match store::claim_due(&self.pool, &self.keys, free as i64, lease).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim deliveries");
                        Vec::new()
                    }
                };
            // No BSN leaves without a trail: the batch's entries first, in one transaction; when
            // they cannot be written nothing is sent and the leases expire (sent again later).
            let entries: Vec<_> = claimed.iter().filter_map(audit_entry).collect();
            if let Err(e) = self
                .audit
                .record_each(Some("webhook delivery"), &entries)
                .await
            {
                tracing::warn!(error = %e, deliveries = claimed.len(), "audit trail cannot be written; deliveries held back");
                claimed.clear();
            }
            // Fewer than asked for: the queue is drained for now.
            let idle = claimed.len() < free;
            let nothing = claimed.is_empty();
            for d in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let pool = self.pool.clone();
                let config = self.config.clone();
                let client = self.client.clone();
                let keys = self.keys.clone();
                let delivered = delivered.clone();
                let metrics = self.metrics.clone();
                tokio::spawn(async move {
                    let outcome = attempt(&pool, &config, &client, &keys, &delivered, d).await;
                    if let Some(m) = metrics {
                        m.attempt(outcome);
                    }
                    drop(permit);
                });
            }
            if idle {
                let wait = chase.wait(nothing, poll);
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(wait) => {
                        if chase.polling() {
                            self.client.sweep();
                        }
                    }
                    _ = store::DELIVERIES_WRITTEN.notified() => {
                        // A few milliseconds for the deliveries committed right after this one,
                        // so a busy stream is claimed in batches rather than one by one.
                        chase.woken();
                        tokio::time::sleep(COALESCE).await;
                    }
                }
            }
        }
        // Let attempts in flight finish, then record their successes.
        let _ = permits.acquire_many(max as u32).await;
        drop(delivered);
        let _ = recorder.await;
        tracing::info!("delivery worker stopped");
    }
}

/// The audit entry of a delivery whose body carries a BSN (`data.client.bsn`): disclosed to the
/// subscribing provider (the entry's organisation), about the client and municipality of its
/// assignment.
fn audit_entry(d: &Claimed) -> Option<(rz_platform::audit::Actor, rz_platform::audit::AuditEntry)> {
    let v: serde_json::Value = serde_json::from_str(&d.body).ok()?;
    let bsn = v.pointer("/data/client/bsn").and_then(|b| b.as_str())?;
    if bsn.is_empty() {
        return None;
    }
    let text = |p: &str| {
        v.pointer(p)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Some((
        rz_platform::audit::Actor::organisation(format!("urn:regiozorg:provider:{}", d.agb_code)),
        rz_platform::audit::AuditEntry::new(
            text("/data/assignment/client_key"),
            text("/data/assignment/municipality"),
            "webhook_delivery",
        ),
    ))
}

/// Records the successes sent on `rx` until every sender is gone: whatever arrived while the
/// previous batch was written goes in the next statement. A batch that cannot be written is
/// tried once more; after that its deliveries are sent again when their lease expires (at least
/// once).
async fn record_delivered(
    pool: PgPool,
    mut rx: mpsc::UnboundedReceiver<(Uuid, Uuid)>,
    metrics: Option<WebhookMetrics>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let mut result = store::mark_delivered_timed(&pool, &batch).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, deliveries = batch.len(), "cannot record deliveries; trying again");
            tokio::time::sleep(Duration::from_millis(100)).await;
            result = store::mark_delivered_timed(&pool, &batch).await;
        }
        if let (Some(m), Ok(marked)) = (&metrics, &result) {
            for (_, seconds) in marked {
                m.delivered_after(*seconds);
            }
        }
        match result {
            Ok(marked) if marked.len() == batch.len() => {}
            Ok(marked) => {
                for (id, _) in batch
                    .iter()
                    .filter(|(id, _)| !marked.iter().any(|(m, _)| m == id))
                {
                    // The lease expired and another worker took the delivery over: its outcome
                    // counts.
                    tracing::warn!(delivery = %id, "claim lost before the outcome was recorded");
                }
            }
            // The leases expire and the deliveries are attempted again (at least once).
            Err(e) => {
                tracing::warn!(error = %e, deliveries = batch.len(), "cannot record deliveries")
            }
        }
        batch.clear();
    }
}

async fn attempt(
    pool: &PgPool,
    config: &WebhookConfig,
    client: &HttpClient,
    keys: &Keyring,
    delivered: &mpsc::UnboundedSender<(Uuid, Uuid)>,
    d: Claimed,
) -> Outcome {
    let attempts = u32::try_from(d.attempts).unwrap_or(0) + 1;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let result = match signing_key(keys, &d) {
        Err(e) => Err(PostError::Failed(e)),
        Ok(key) => match tokio::time::timeout(timeout, client.post(&d, &key)).await {
            Ok(r) => r,
            Err(_) => Err(PostError::Failed(format!(
                "timed out after {} ms",
                config.request_timeout_ms
            ))),
        },
    };
    let outcome = match result {
        Ok(()) => {
            tracing::debug!(delivery = %d.id, event_id = %d.event_id, attempts, "webhook delivered");
            if delivered.send((d.id, d.claim)).is_err() {
                // Only while stopping, after the recorder is gone: the lease expires and the
                // delivery is sent again.
                tracing::warn!(delivery = %d.id, "delivered but not recorded");
            }
            return Outcome::Ok;
        }
        Err(error) => {
            let refused = matches!(error, PostError::Refused(_));
            let error = error.to_string();
            let delay = config.backoff(attempts);
            let elapsed = (chrono::Utc::now() - d.first_attempt_at)
                .to_std()
                .unwrap_or_default();
            let spent = refused
                || elapsed + delay > config.retry_window()
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
                (
                    Outcome::GaveUp,
                    store::mark_failed(pool, d.id, d.claim, &d.agb_code, &error, &message).await,
                )
            } else {
                tracing::warn!(delivery = %d.id, attempts, %error, retry_in_ms = delay.as_millis() as u64, "webhook attempt failed");
                let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                (
                    Outcome::Retry,
                    store::schedule_retry(
                        pool,
                        store::Queue::Deliveries,
                        d.id,
                        d.claim,
                        &error,
                        ms,
                    )
                    .await,
                )
            }
        }
    };
    let (counted, recorded) = outcome;
    match recorded {
        Ok(true) => {}
        // The lease expired and another worker took the delivery over: its outcome counts.
        Ok(false) => tracing::warn!(delivery = %d.id, "claim lost before the outcome was recorded"),
        // The lease expires and the delivery is attempted again (at least once).
        Err(e) => tracing::warn!(delivery = %d.id, error = %e, "cannot record the outcome"),
    }
    counted
}

/// The HMAC key of a claimed delivery's subscription: its sealed secret opened. The error names
/// the subscription and the key id, never the secret.
fn signing_key(keys: &Keyring, d: &Claimed) -> Result<Vec<u8>, String> {
    let sealed = d.secret.as_ref().ok_or_else(|| {
        format!(
            "the secret of subscription {} is not sealed yet (sealed at the next start)",
            d.subscription_id
        )
    })?;
    let secret = keys
        .open(d.subscription_id.as_bytes(), sealed)
        .map_err(|e| format!("subscription {}: {e}", d.subscription_id))?;
    let secret = String::from_utf8(secret)
        .map_err(|_| format!("subscription {}: the secret is no text", d.subscription_id))?;
    webhook::signing_key(&secret).ok_or_else(|| {
        format!(
            "subscription {}: the secret is no whsec_<base64>",
            d.subscription_id
        )
    })
}

/// Where a connection goes: scheme, host and port. Connections are pooled per origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    /// Without the brackets of an IPv6 literal: what is connected to and what the certificate
    /// must name.
    host: String,
    port: u16,
}

/// A keep-alive connection waiting for its next request.
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

struct Pool {
    idle: HashMap<Origin, Vec<Idle>>,
    last_sweep: Instant,
}

/// The HTTP(S) client of the worker: HTTP/1.1 with keep-alive, TLS through rustls with the
/// system's roots plus `webhooks.ca_file`.
///
/// A connection whose exchange completed (response read to its end) goes back to the pool of its
/// origin, at most `webhooks.max_idle_per_origin` of them, and is closed after
/// `webhooks.idle_timeout_ms` unused. A connection that errored, or that its peer closed, is
/// dropped. A request that fails on a reused connection before any response arrived (the peer
/// closed it just then) is sent once more on a fresh connection: the receiver may see it twice,
/// which the delivery id header and at-least-once delivery allow for.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    tls: TlsConnector,
    pool: Mutex<Pool>,
    max_idle: usize,
    idle_timeout: Duration,
    /// Connections opened, for tests and diagnostics.
    connects: AtomicU64,
    /// Where a connection may go.
    guard: Guard,
    /// `webhooks.require_https`: an `http://` URL is refused at delivery too.
    require_https: bool,
}

/// How long a pooled connection may take to become ready for its next request.
const READY_WAIT: Duration = Duration::from_millis(250);

impl HttpClient {
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let guard = Guard::new(&config.allow_cidrs, &config.deny_cidrs)?;
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
            inner: Arc::new(Inner {
                tls: TlsConnector::from(Arc::new(tls)),
                pool: Mutex::new(Pool {
                    idle: HashMap::new(),
                    last_sweep: Instant::now(),
                }),
                max_idle: config.max_idle_per_origin,
                idle_timeout: Duration::from_millis(config.idle_timeout_ms),
                connects: AtomicU64::new(0),
                guard,
                require_https: config.require_https,
            }),
        })
    }

    /// Connections opened so far.
    pub fn connects(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// Idle connections in the pool now.
    pub fn idle(&self) -> usize {
        self.lock().idle.values().map(Vec::len).sum()
    }

    /// One POST of `d` signed with `key` (Standard Webhooks, this moment's timestamp). `Ok` only
    /// for a 2xx answer.
    pub async fn post(&self, d: &Claimed, key: &[u8]) -> Result<(), PostError> {
        let uri: http::Uri = d.url.parse().map_err(|e| format!("bad url: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("unsupported scheme in {}", d.url).into()),
        };
        if !https && self.inner.require_https {
            return Err(EgressError::Insecure.into());
        }
        let host = uri
            .host()
            .ok_or(PostError::Failed("url has no host".into()))?;
        let origin = Origin {
            https,
            // `[::1]` in a URL is `::1` to connect to and to check the certificate against.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        };
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_owned();
        let authority = uri
            .authority()
            .map(|a| a.as_str())
            .unwrap_or(host)
            .to_owned();
        let body = Bytes::from(d.body.clone());
        let delivery = d.id.to_string();
        // A fresh timestamp on every attempt: receivers refuse old ones (replays).
        let timestamp = chrono::Utc::now().timestamp();
        let signature = webhook::signature(key, &delivery, timestamp, &body);
        let timestamp = timestamp.to_string();
        let request = || {
            http::Request::post(path.as_str())
                .header(http::header::HOST, authority.as_str())
                .header(
                    http::header::CONTENT_TYPE,
                    "application/cloudevents+json; charset=utf-8",
                )
                .header(http::header::USER_AGENT, "regiozorg-notification/0.1")
                .header(ID_HEADER, delivery.as_str())
                .header(TIMESTAMP_HEADER, timestamp.as_str())
                .header(SIGNATURE_HEADER, signature.as_str())
                .body(Full::new(body.clone()))
                .map_err(|e| format!("request: {e}"))
        };
        if let Some(mut sender) = self.checkout(&origin).await {
            match sender.send_request(request()?).await {
                Ok(response) => return Ok(self.finish(origin, sender, response).await?),
                // No response on a kept-alive connection: most likely the peer closed it as the
                // request went out. Once more on a fresh one.
                Err(e) => tracing::debug!(error = %e, "reused connection failed; reconnecting"),
            }
        }
        let mut sender = self.connect(&origin).await?;
        let response = sender
            .send_request(request()?)
            .await
            .map_err(|e| format!("send: {e}"))?;
        Ok(self.finish(origin, sender, response).await?)
    }

    /// Reads the answer to its end and returns the connection to the pool if it can carry
    /// another request.
    async fn finish(
        &self,
        origin: Origin,
        sender: SendRequest<Full<Bytes>>,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<(), String> {
        let status = response.status();
        // Read (and drop) the body so the exchange completes and the connection can be reused.
        let complete = response.into_body().collect().await.is_ok();
        if complete {
            self.checkin(origin, sender);
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.inner.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used live connection of `origin`, ready for a request.
    async fn checkout(&self, origin: &Origin) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let idle = {
                let mut pool = self.lock();
                let list = pool.idle.get_mut(origin)?;
                let timeout = self.inner.idle_timeout;
                list.retain(|c| !c.sender.is_closed() && c.since.elapsed() < timeout);
                list.pop()?
            };
            let mut sender = idle.sender;
            if sender.is_ready() {
                return Some(sender);
            }
            // Just returned: the connection task may not have taken note of the response's end
            // yet. A closed connection answers with an error; one that hangs is given up.
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, origin: Origin, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() || self.inner.max_idle == 0 {
            return;
        }
        let mut pool = self.lock();
        if pool.last_sweep.elapsed() >= self.inner.idle_timeout / 2 {
            sweep(&mut pool, self.inner.idle_timeout);
        }
        let list = pool.idle.entry(origin).or_default();
        if list.len() < self.inner.max_idle {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
        // Else dropped: the connection closes.
    }

    /// Drops the connections that were idle too long or that their peer closed.
    pub fn sweep(&self) {
        let mut pool = self.lock();
        sweep(&mut pool, self.inner.idle_timeout);
    }

    /// A new connection to `origin`: its host resolved once and every address checked by the
    /// SSRF guard, then a connection to one of those very addresses (so a DNS answer that changes
    /// after the check cannot redirect it); the host stays the TLS server name.
    async fn connect(&self, origin: &Origin) -> Result<SendRequest<Full<Bytes>>, PostError> {
        let addrs = self.inner.guard.resolve(&origin.host, origin.port).await?;
        let mut last = None;
        let mut stream = None;
        for addr in &addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            format!(
                "connect: {}",
                last.map(|e| e.to_string()).unwrap_or_default()
            )
        })?;
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        if origin.https {
            let name = ServerName::try_from(origin.host.clone())
                .map_err(|e| format!("server name: {e}"))?;
            let tls = self
                .inner
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            Ok(handshake(tls).await?)
        } else {
            Ok(handshake(stream).await?)
        }
    }
}

fn sweep(pool: &mut Pool, timeout: Duration) {
    pool.idle.retain(|_, list| {
        list.retain(|c| !c.sender.is_closed() && c.since.elapsed() < timeout);
        !list.is_empty()
    });
    pool.last_sweep = Instant::now();
}

/// An HTTP/1.1 connection over `io`; its task ends when the connection closes or when its
/// [`SendRequest`] is dropped.
async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "webhook connection ended");
        }
    });
    Ok(sender)
}
