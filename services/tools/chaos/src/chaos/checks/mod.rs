//! After the run: waiting until everything settled, then the invariants, checked against the
//! services' own databases (read-only SQL: this is an operator's tool), the events the receiver
//! got, the reporting read model and the dead-letter stream.
//!
//! - this module: the [`Checker`], settling ([`Checker::settle`]) and the list of invariants;
//! - `reads`: the queries that settling and several invariants share;
//! - `care`: decisions, assignments, amendments and the handover;
//! - `delivery`: outboxes, events, webhooks and the dead-letter stream;
//! - `reporting`: reporting's figures against direct counts.

mod care;
mod delivery;
mod reads;
mod reporting;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use rz_proto::reporting::v1 as rep;
use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use sqlx::Connection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tonic::transport::Channel;

use super::flows::FlowRecord;
use super::receiver::ReceiverState;
use super::webhooks::{Receipts, WebhookState};

pub const ISSUED: &str = rz_proto::events::assignment::ISSUED.ce_type;

/// One checked invariant.
#[derive(Debug, Clone)]
pub struct Invariant {
    pub name: &'static str,
    pub description: &'static str,
    /// How many things it looked at.
    pub checked: usize,
    /// Each violation with its evidence.
    pub violations: Vec<String>,
    /// Of the violations, how many are something lost (an acknowledged decision, an event).
    pub lost: usize,
}

impl Invariant {
    fn new(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            checked: 0,
            violations: Vec::new(),
            lost: 0,
        }
    }
}

/// The databases and endpoints the checks read.
#[derive(Debug, Clone)]
pub struct Sources {
    /// service name -> database URL (registration, access@<m>..., assignment, reporting, ...).
    pub databases: BTreeMap<String, String>,
    pub reporting: String,
    pub nats_url: String,
    pub namespace: String,
    /// The run's PKI: reporting is read as the operator.
    pub dial: rz_workload::Dial,
}

async fn pool(url: &str) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| format!("{url}: {e}"))
}

fn db_err(what: &str) -> impl Fn(sqlx::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// What settling waits for, as a snapshot (so "stable" = two equal snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    pub unpublished: i64,
    pub issued_events: usize,
    pub issued_not_received: usize,
    pub granted_products: i64,
    pub products_not_handled: i64,
    pub not_started: i64,
    pub provider_events: usize,
    pub webhooks_not_received: usize,
    pub amendments_not_applied: usize,
    pub reporting_caught_up: bool,
}

impl Progress {
    pub fn done(&self) -> bool {
        self.unpublished == 0
            && self.issued_not_received == 0
            && self.products_not_handled == 0
            && self.not_started == 0
            && self.webhooks_not_received == 0
            && self.amendments_not_applied == 0
            && self.reporting_caught_up
    }
}

pub struct Checker {
    sources: Sources,
    pools: BTreeMap<String, PgPool>,
    reporting: ReportingServiceClient<Channel>,
}

impl Checker {
    pub async fn new(sources: Sources) -> Result<Self, String> {
        let mut pools = BTreeMap::new();
        for (service, url) in &sources.databases {
            pools.insert(service.clone(), pool(url).await?);
        }
        let reporting = ReportingServiceClient::new(sources.dial.lazy(
            rz_workload::dial::OPERATOR,
            &sources.reporting,
            Duration::from_secs(30),
        )?);
        Ok(Self {
            sources,
            pools,
            reporting,
        })
    }

    fn db(&self, service: &str) -> Result<&PgPool, String> {
        self.pools
            .get(service)
            .ok_or_else(|| format!("no database for {service}"))
    }

    fn access_dbs(&self) -> impl Iterator<Item = (&String, &PgPool)> {
        self.pools.iter().filter(|(s, _)| s.starts_with("access@"))
    }

    pub async fn progress(
        &mut self,
        receiver: &ReceiverState,
        webhooks: &WebhookState,
    ) -> Result<Progress, String> {
        let mut p = Progress::default();
        for (service, db) in &self.pools {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(db)
                    .await
                    .map_err(db_err(service))?;
            p.unpublished += n;
        }
        let issued = self.issued_events().await?;
        p.issued_events = issued.len();
        p.issued_not_received = issued
            .iter()
            .filter(|(id, _)| !receiver.applied.contains(id))
            .count();
        let products = self.granted_products().await?;
        let (per, unassigned) = self.assignment_of_products().await?;
        p.granted_products = products.len() as i64;
        p.products_not_handled = products
            .iter()
            .filter(|(id, _, _)| !per.contains_key(id) && !unassigned.contains(id))
            .count() as i64;
        p.amendments_not_applied = self.amendments().await?.1.len();
        let provider_events = self.provider_events().await?;
        p.provider_events = provider_events.len();
        p.webhooks_not_received = provider_events
            .iter()
            .filter(|(id, _)| !webhooks.received.contains(id))
            .count();
        p.not_started =
            sqlx::query_scalar("SELECT count(*) FROM assignments WHERE status = 'issued'")
                .fetch_one(self.db("assignment")?)
                .await
                .map_err(db_err("assignments not started"))?;
        p.reporting_caught_up = self
            .reporting
            .get_status(rep::GetStatusRequest {})
            .await
            .map(|r| r.into_inner().caught_up)
            .unwrap_or(false);
        Ok(p)
    }

    /// Polls [`Checker::progress`] until it is done and stable (two equal snapshots in a row), or
    /// `timeout`. Returns the last snapshot and whether it settled.
    pub async fn settle(
        &mut self,
        receiver: &std::sync::Mutex<ReceiverState>,
        webhooks: &Receipts,
        timeout: Duration,
    ) -> (Progress, bool) {
        let deadline = Instant::now() + timeout;
        let mut last: Option<Progress> = None;
        loop {
            let r = receiver.lock().map(|r| ReceiverState {
                applied: r.applied.clone(),
                ..ReceiverState::default()
            });
            let w = webhooks.snapshot();
            let now = match r {
                Ok(r) => self.progress(&r, &w).await.ok(),
                _ => None,
            };
            if let Some(now) = now {
                if now.done() && last.as_ref() == Some(&now) {
                    return (now, true);
                }
                if Instant::now() >= deadline {
                    return (now, false);
                }
                tracing::info!(?now, "settling");
                last = Some(now);
            } else if Instant::now() >= deadline {
                return (last.unwrap_or_default(), false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Every invariant.
    pub async fn check(
        &mut self,
        flows: &[FlowRecord],
        receiver: &ReceiverState,
        webhooks: &WebhookState,
        handover_not_arranged: u32,
        contracted_after: &HashSet<(String, String, String)>,
    ) -> Result<Vec<Invariant>, String> {
        Ok(vec![
            self.acknowledged_decisions_kept(flows).await?,
            self.granted_products_assigned_once().await?,
            self.amendments_applied().await?,
            self.no_two_providers_on_a_day().await?,
            self.handover_leaves_nobody_without_provider(handover_not_arranged, contracted_after)
                .await?,
            self.outboxes_drained().await?,
            self.issued_events_received(receiver).await?,
            delivery::no_duplicated_effects(receiver),
            self.webhooks_delivered(webhooks).await?,
            self.reporting_equals_direct_counts().await?,
            self.nothing_dead_lettered().await?,
        ])
    }
}

/// Read-only check that a database answers (used before the checks start).
pub async fn ping(url: &str) -> bool {
    match sqlx::PgConnection::connect(url).await {
        Ok(c) => {
            let _ = c.close().await;
            true
        }
        Err(_) => false,
    }
}
