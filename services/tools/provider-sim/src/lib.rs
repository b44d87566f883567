//! A provider system simulator, as a provider's own software would behave: it subscribes to its
//! assignment events (`<ns>.assignment.*.<its AGB>.issued`, or every provider's for the demo) on a
//! durable JetStream consumer and answers each new assignment with a start of care over gRPC.
//!
//! It is deliberately a plain client: no database, no shared code with the assignment service
//! beyond the public protos (the consumer and the start of care are rz-workload's, as the
//! benchmarks' and the chaos run's provider systems use them). A redelivered event is harmless: the second start of care is refused
//! as a duplicate, which the simulator counts as done.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use futures::StreamExt;
use rz_eventing::Namespace;
use rz_eventing::nats as async_nats;
use rz_platform::Shutdown;
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
    let channel = connect_with_retry(&config.assignment_endpoint).await?;
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
            &channel,
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

async fn connect_with_retry(endpoint: &str) -> Result<Channel, String> {
    let ep = Channel::from_shared(endpoint.to_owned()).map_err(|e| e.to_string())?;
    for _ in 0..60 {
        if let Ok(c) = ep.connect().await {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("cannot reach the assignment service at {endpoint}"))
}

/// Answers one assignment message; false means "try again later".
async fn handle(
    config: &SimConfig,
    channel: &Channel,
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
    let mut client = AssignmentServiceClient::new(channel.clone());
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
