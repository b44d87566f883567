//! A provider system simulator, as a provider's own software would behave: it subscribes to its
//! assignment events (`<ns>.assignment.*.<its AGB>.issued`, or every provider's for the demo) on a
//! durable JetStream consumer and answers each new assignment with a start of care over gRPC.
//!
//! It calls as each provider it answers for: a mutual-TLS channel with the certificate of
//! `provider-<AGB>` in the PKI folder (`--pki`, laid out by `rzctl pki init`), one per provider,
//! opened on its first assignment.
//!
//! It is deliberately a plain client: no database, no shared code with the assignment service
//! beyond the public protos (the consumer and the start of care are rz-workload's, as the
//! benchmarks' and the chaos run's provider systems use them). A redelivered event is harmless: the second start of care is refused
//! as a duplicate, which the simulator counts as done.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use futures::StreamExt;
use rz_eventing::Namespace;
use rz_eventing::nats as async_nats;
use rz_platform::Shutdown;
use rz_platform::tls::TlsConfig;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_workload::provider::{self, Started};
use tonic::transport::Channel;

/// What the simulator did; shared so a demo or test can watch it.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub started: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nats_url: String,
    pub namespace: String,
    pub assignment_endpoint: String,
    /// The PKI folder with a `provider-<AGB>/` certificate per simulated provider.
    pub pki: PathBuf,
    /// Providers to simulate; empty = every provider.
    pub agb_codes: Vec<String>,
    /// Durable consumer name (one per simulated provider system).
    pub name: String,
    /// Every n-th assignment (by number) starts 10 days after its start date instead of on it,
    /// as a busy provider's would: 0 = never. The demo uses it to show missed start deadlines.
    pub late_start_every: u32,
}

/// The start of care the simulator reports for assignment `number` starting on `start`.
pub fn start_date(start: &str, number: u32, late_start_every: u32) -> String {
    if late_start_every == 0 || !number.is_multiple_of(late_start_every) {
        return start.to_owned();
    }
    chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_days(chrono::Days::new(10)))
        .map(|d| d.to_string())
        .unwrap_or_else(|| start.to_owned())
}

/// Runs until `shutdown`.
pub async fn run(config: SimConfig, stats: Arc<Stats>, shutdown: Shutdown) -> Result<(), String> {
    let ns = Namespace::new(&config.namespace)?;
    let (_client, js) = rz_eventing::connect(&config.nats_url, &config.name)
        .await
        .map_err(|e| e.to_string())?;
    // One provider: its own subjects. All providers: every issued assignment.
    let filter = match config.agb_codes.as_slice() {
        [one] => provider::issued_filter(ns.as_str(), Some(one)),
        _ => provider::issued_filter(ns.as_str(), None),
    };
    let consumer = provider::subscribe(&js, &ns, &config.name, filter).await?;
    let channels = Channels::new(&config);
    channels.wait_until_reachable().await?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => break,
            m = messages.next() => m,
        };
        let Some(Ok(message)) = next else {
            if next.is_none() {
                break;
            }
            continue;
        };
        // A provider system that takes part in tracing passes the event's trace context on.
        let traceparent = message
            .headers
            .as_ref()
            .and_then(|h| h.get("traceparent"))
            .map(|v| v.as_str().to_owned());
        let outcome = handle(
            &config,
            &channels,
            &stats,
            &message.payload,
            traceparent.as_deref(),
        )
        .await;
        let ack = if outcome {
            AckKind::Ack
        } else {
            AckKind::Nak(Some(Duration::from_secs(1)))
        };
        if let Err(e) = message.ack_with(ack).await {
            tracing::warn!(error = %e, "provider-sim ack failed");
        }
    }
    Ok(())
}

/// A channel to the assignment service per provider, each with that provider's certificate.
struct Channels {
    pki: PathBuf,
    endpoint: String,
    by_agb: Mutex<HashMap<String, Channel>>,
}

impl Channels {
    fn new(config: &SimConfig) -> Self {
        Self {
            pki: config.pki.clone(),
            endpoint: config.assignment_endpoint.clone(),
            by_agb: Mutex::default(),
        }
    }

    /// Provider `agb`'s channel (connecting lazily; it reconnects after a restart).
    fn of(&self, agb: &str) -> Result<Channel, String> {
        let mut map = self
            .by_agb
            .lock()
            .map_err(|_| "the channel map is poisoned".to_owned())?;
        if let Some(c) = map.get(agb) {
            return Ok(c.clone());
        }
        let folder = format!("provider-{agb}");
        let channel = TlsConfig::from_pki(&self.pki, &folder)
            .endpoint(&self.endpoint)
            .map_err(|e| format!("{folder}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        map.insert(agb.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Waits (up to 30 s) until the assignment service answers a TLS handshake with the CA.
    async fn wait_until_reachable(&self) -> Result<(), String> {
        let tls = TlsConfig {
            ca: Some(self.pki.join("ca.crt")),
            cert: Some(self.pki.join("operator").join("tls.crt")),
            key: Some(self.pki.join("operator").join("tls.key")),
        };
        let ep = tls
            .endpoint(&self.endpoint)
            .map_err(|e| format!("operator: {e}"))?;
        for _ in 0..60 {
            if ep.connect().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!(
            "cannot reach the assignment service at {}",
            self.endpoint
        ))
    }
}

/// Answers one assignment message; false means "try again later".
async fn handle(
    config: &SimConfig,
    channels: &Channels,
    stats: &Stats,
    payload: &[u8],
    traceparent: Option<&str>,
) -> bool {
    let a = match provider::assignment(payload) {
        Ok(Some(a)) => a,
        Ok(None) => return true,
        Err(_) => {
            tracing::warn!("provider-sim: undecodable assignment message ignored");
            return true;
        }
    };
    if !config.agb_codes.is_empty() && !config.agb_codes.contains(&a.agb_code) {
        return true;
    }
    stats.received.fetch_add(1, Ordering::Relaxed);
    let start = start_date(&provider::first_day(&a), a.number, config.late_start_every);
    let channel = match channels.of(&a.agb_code) {
        Ok(c) => c,
        Err(e) => {
            // No certificate for this provider: its system cannot call; counted as refused.
            tracing::warn!(error = %e, number = a.number, "no certificate for the provider");
            stats.refused.fetch_add(1, Ordering::Relaxed);
            return true;
        }
    };
    let mut client = AssignmentServiceClient::new(channel);
    let mut request = tonic::Request::new(provider::start_of_care(&a, start));
    if let Some(tp) = traceparent.and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert("traceparent", tp);
    }
    match provider::report_start(&mut client, request).await {
        Started::Reported => {
            stats.started.fetch_add(1, Ordering::Relaxed);
            true
        }
        Started::AlreadyReported => {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
            true
        }
        Started::Failed(s) if s.code() == tonic::Code::Unavailable => false,
        Started::Failed(s) => {
            // The assignment changed meanwhile (withdrawn, ended): a real provider would call the
            // municipality; the simulator records it.
            tracing::info!(code = ?s.code(), number = a.number, "start of care refused");
            stats.refused.fetch_add(1, Ordering::Relaxed);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::start_date;

    #[test]
    fn every_nth_assignment_starts_ten_days_late() {
        assert_eq!(start_date("2022-09-01", 7, 0), "2022-09-01");
        assert_eq!(start_date("2022-09-01", 7, 5), "2022-09-01");
        assert_eq!(start_date("2022-09-01", 10, 5), "2022-09-11");
        assert_eq!(start_date("not a date", 10, 5), "not a date");
    }
}
