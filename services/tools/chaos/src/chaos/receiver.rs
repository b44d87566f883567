//! A provider system as the chaos run sees it: a durable JetStream consumer on every provider's
//! `<ns>.assignment.*.*.issued`, that applies each event once, as a real receiver must: it
//! dedupes by event id (a redelivery is acknowledged and skipped), and applying means reporting
//! the start of care and recording the assignment as in care. A second, different event for an
//! assignment that is in care already is a duplicated effect: the provider would act twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rz_eventing::Namespace;
use rz_eventing::envelope::{CE_ID, MSG_ID};
use rz_eventing::nats::jetstream::{self, AckKind};
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_workload::Dial;
use rz_workload::provider::{self, Started};
use tonic::transport::Channel;

use super::retry::{RetryStats, is_transient};

/// What the receiver saw and did.
#[derive(Debug, Default, Clone)]
pub struct ReceiverState {
    /// Event ids applied (each once).
    pub applied: HashSet<String>,
    /// (municipality, assignment number) -> the event id that put it in care.
    pub in_care: HashMap<(String, u32), String>,
    /// Evidence of duplicated effects: (municipality, number, first event id, second event id).
    pub duplicated: Vec<(String, u32, String, String)>,
    /// Starts of care the assignment service refused (the assignment changed meanwhile).
    pub start_refused: Vec<(String, u32, String)>,
}

#[derive(Debug, Default)]
pub struct ReceiverStats {
    pub deliveries: AtomicU64,
    /// Deliveries of an event id applied before (skipped).
    pub redeliveries: AtomicU64,
    /// Starts of care answered ALREADY_EXISTS on a first application (the start was reported
    /// before under another event, or before a crash of the receiver's call).
    pub start_already: AtomicU64,
    pub reconnects: AtomicU64,
    pub retries: RetryStats,
}

pub struct Receiver {
    pub state: Arc<Mutex<ReceiverState>>,
    pub stats: Arc<ReceiverStats>,
}

/// The durable consumer's name.
pub const CONSUMER: &str = "chaos-provider-receiver";

impl Receiver {
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(ReceiverState::default())),
            stats: Arc::new(ReceiverStats::default()),
        }
    }

    /// Runs until `stop`; reconnects and recreates its pull subscription whenever NATS goes away.
    pub async fn run(
        &self,
        nats_url: String,
        namespace: String,
        assignment_endpoint: String,
        dial: Dial,
        stop: Arc<AtomicBool>,
    ) -> Result<(), String> {
        let ns = Namespace::new(&namespace)?;
        let client = Providers {
            dial,
            url: assignment_endpoint,
            clients: Mutex::default(),
        };
        let (_nats, js) = rz_eventing::connect(&nats_url, CONSUMER)
            .await
            .map_err(|e| e.to_string())?;
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.consume(&js, &ns, &client, &stop).await {
                tracing::warn!(error = %e, "receiver: subscription lost, reconnecting");
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    async fn consume(
        &self,
        js: &jetstream::Context,
        ns: &Namespace,
        client: &Providers,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        let consumer =
            provider::subscribe(js, ns, CONSUMER, provider::issued_filter(ns.as_str(), None))
                .await?;
        let mut messages = consumer
            .stream()
            .heartbeat(Duration::from_secs(2))
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let next = tokio::time::timeout(Duration::from_millis(500), messages.next()).await;
            let message = match next {
                Err(_) => continue, // nothing for now; look at `stop` again
                Ok(None) => return Err("message stream ended".into()),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(m))) => m,
            };
            self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(CE_ID).or_else(|| h.get(MSG_ID)))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let seen = self
                .state
                .lock()
                .map(|s| s.applied.contains(&id))
                .unwrap_or(false);
            let ack = if seen {
                self.stats.redeliveries.fetch_add(1, Ordering::Relaxed);
                AckKind::Ack
            } else if self.apply(client, &id, &message.payload).await {
                AckKind::Ack
            } else {
                AckKind::Nak(Some(Duration::from_secs(1)))
            };
            if let Err(e) = message.ack_with(ack).await {
                // not acknowledged: it comes again and is deduplicated then
                tracing::debug!(error = %e, "receiver: ack failed");
            }
        }
    }

    /// Applies one event; false = not applied, deliver it again later.
    async fn apply(&self, client: &Providers, id: &str, payload: &[u8]) -> bool {
        let a = match provider::assignment(payload) {
            Ok(Some(a)) => a,
            Ok(None) => return true,
            Err(_) => {
                tracing::warn!(event_id = id, "receiver: undecodable assignment message");
                return true;
            }
        };
        let request = provider::start_of_care(&a, provider::first_day(&a));
        let mut client = match client.of(&a.agb_code) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "receiver: no channel for the provider");
                return false;
            }
        };
        let refused = match provider::report_start(&mut client, request).await {
            Started::Reported => None,
            Started::AlreadyReported => {
                self.stats.start_already.fetch_add(1, Ordering::Relaxed);
                None
            }
            Started::Failed(s) if is_transient(s.code()) => {
                self.stats.retries.record(s.code());
                return false;
            }
            Started::Failed(s) => Some(format!("{:?} {}", s.code(), s.message())),
        };
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        if !st.applied.insert(id.to_owned()) {
            return true; // applied concurrently; cannot happen with one consumer loop
        }
        let key = (a.municipality.clone(), a.number);
        if let Some(first) = st.in_care.get(&key).cloned() {
            st.duplicated
                .push((a.municipality.clone(), a.number, first, id.to_owned()));
        } else {
            st.in_care.insert(key, id.to_owned());
        }
        if let Some(reason) = refused {
            st.start_refused.push((a.municipality, a.number, reason));
        }
        true
    }
}

/// Each provider reports its own starts of care, with its own certificate: one lazily connecting
/// channel per provider.
struct Providers {
    dial: Dial,
    url: String,
    clients: Mutex<HashMap<String, AssignmentServiceClient<Channel>>>,
}

impl Providers {
    fn of(&self, agb: &str) -> Result<AssignmentServiceClient<Channel>, String> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| "the provider clients' lock is poisoned".to_owned())?;
        if let Some(c) = clients.get(agb) {
            return Ok(c.clone());
        }
        let channel = self.dial.lazy(
            &rz_workload::dial::provider(agb),
            &self.url,
            Duration::from_secs(10),
        )?;
        let c = AssignmentServiceClient::new(channel);
        clients.insert(agb.to_owned(), c.clone());
        Ok(c)
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}
