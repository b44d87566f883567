//! The three durable consumers that feed the read model, and the supervisor that runs them and
//! rebuilds the read model on demand.
//!
//! Each handler writes through the consumer's inbox transaction ([`rz_eventing::EventConsumer`]),
//! so a redelivered event has one effect; the upserts in [`crate::store`] make the model tolerant
//! of events arriving out of order (a replay).
//!
//! Only pseudonymous subjects are read: `<ns>.access.*._.>` and `<ns>.assignment.*._.lifecycle`.
//! The assignment messages addressed to providers (`<ns>.assignment.<m>.<agb>.*`, which carry the
//! BSN) are never delivered to reporting.
//!
//! Rebuild: the running consumers are stopped (each finishes the event in hand), their durable
//! consumers are deleted from JetStream, the read model's tables are truncated and the inbox rows
//! of these consumers deleted (one transaction), and new consumers are started; a new durable
//! consumer starts at the beginning of its stream (deliver policy `all`), so the whole history is
//! replayed. While the replay runs the reports show a partial picture; [`Consumers::lag`] says
//! when it caught up.

use std::time::Duration;

use rz_eventing::nats::jetstream;
use rz_eventing::{
    ConsumerSpec, Event, EventConsumer, EventingError, HandleError, Handler, Namespace,
};
use rz_platform::Shutdown;
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use rz_proto::events;
use rz_proto::registration::v1 as reg;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::facts;
use crate::store;

pub const ACCESS: &str = "reporting-access";
pub const ASSIGNMENT: &str = "reporting-assignment";
pub const REGISTRATION: &str = "reporting-registration";
pub const ALL: &[&str] = &[ACCESS, ASSIGNMENT, REGISTRATION];

pub const CASE_CHANGED: &str = events::access::CASE_CHANGED.ce_type;
pub const DECISION_GRANTED: &str = events::access::DECISION_GRANTED.ce_type;
pub const PRODUCT_AMENDED: &str = events::access::PRODUCT_AMENDED.ce_type;
pub const LIFECYCLE: &str = events::assignment::LIFECYCLE.ce_type;
pub const CONTRACT_CONCLUDED: &str = events::registration::CONTRACT_CONCLUDED.ce_type;
pub const CONTRACT_CHANGED: &str = events::registration::CONTRACT_CHANGED.ce_type;

/// The streams reporting reads (ensured at start).
pub const CONTEXTS: &[&str] = &[
    events::access::CONTEXT,
    events::assignment::CONTEXT,
    events::registration::CONTEXT,
];

fn spec(name: &str, ns: &Namespace, context: &str, filter: String) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(name, ns.stream_name(context), filter);
    spec.max_attempts = 10;
    spec
}

pub fn access_spec(ns: &Namespace) -> ConsumerSpec {
    spec(
        ACCESS,
        ns,
        "access",
        format!("{}.access.*._.>", ns.as_str()),
    )
}

pub fn assignment_spec(ns: &Namespace) -> ConsumerSpec {
    spec(
        ASSIGNMENT,
        ns,
        "assignment",
        format!("{}.assignment.*._.lifecycle", ns.as_str()),
    )
}

pub fn registration_spec(ns: &Namespace) -> ConsumerSpec {
    spec(
        REGISTRATION,
        ns,
        "registration",
        format!("{}.registration.>", ns.as_str()),
    )
}

fn permanent(e: impl std::fmt::Display) -> HandleError {
    HandleError::Permanent(e.to_string())
}

/// The municipality of an access event: the payload's, else the subject's second token.
fn municipality_of(given: &str, event: &Event) -> String {
    if !given.is_empty() {
        return given.to_owned();
    }
    event
        .nats_subject
        .split('.')
        .nth(2)
        .unwrap_or_default()
        .to_owned()
}

pub struct AccessHandler;

/// The case of a case event (changed or decided), with its municipality.
fn case_of(event: &Event) -> Result<Option<(acc::Case, String)>, HandleError> {
    let (case, m) = match event.event_type.as_str() {
        CASE_CHANGED => {
            let e: acc::CaseChanged = event.decode()?;
            (e.case, e.municipality)
        }
        DECISION_GRANTED => {
            let e: acc::DecisionGranted = event.decode()?;
            (e.case, e.municipality)
        }
        _ => return Ok(None),
    };
    Ok(case.map(|c| (c, municipality_of(&m, event))))
}

/// Case events waiting to be written together: the cases and their products.
#[derive(Default)]
struct PendingCases {
    /// Position in the batch of the first event held.
    first: Option<usize>,
    cases: Vec<(facts::CaseFact, chrono::DateTime<chrono::Utc>)>,
    products: Vec<facts::ProductFact>,
}

impl PendingCases {
    fn add(&mut self, k: usize, c: &acc::Case, m: &str, event: &Event) -> Result<(), HandleError> {
        self.cases
            .push((facts::case_fact(c, m).map_err(permanent)?, event.time));
        for p in &c.products {
            self.products
                .push(facts::product_fact(p, Some(c), m).map_err(permanent)?);
        }
        self.first.get_or_insert(k);
        Ok(())
    }

    /// Writes what is held (cases and products are different tables: their order between them
    /// does not matter).
    async fn flush(&mut self, tx: &mut PgConnection) -> Result<(), (usize, HandleError)> {
        let Some(first) = self.first.take() else {
            return Ok(());
        };
        let written = async {
            store::upsert_cases(tx, &self.cases).await?;
            store::upsert_products(tx, &self.products).await
        }
        .await;
        self.cases.clear();
        self.products.clear();
        written.map_err(|e| (first, HandleError::from(e)))
    }
}

impl Handler for AccessHandler {
    /// A decision per care flow: the cases and products of a batch's decisions are written with
    /// a statement per table and round; an amendment is applied on its own, in its place.
    const BATCHES: bool = true;

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        events: &[&Event],
    ) -> Result<(), (usize, HandleError)> {
        let mut pending = PendingCases::default();
        for (k, event) in events.iter().enumerate() {
            if event.event_type == PRODUCT_AMENDED {
                pending.flush(tx).await?;
                self.handle(tx, event).await.map_err(|e| (k, e))?;
                continue;
            }
            match case_of(event) {
                Ok(Some((c, m))) => pending.add(k, &c, &m, event).map_err(|e| (k, e))?,
                Ok(None) => {}
                Err(e) => return Err((k, e)),
            }
        }
        pending.flush(tx).await
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        if let Some((c, m)) = case_of(event)? {
            let mut pending = PendingCases::default();
            pending.add(0, &c, &m, event)?;
            return pending.flush(tx).await.map_err(|(_, e)| e);
        }
        if event.event_type == PRODUCT_AMENDED {
            let e: acc::ProductAmended = event.decode()?;
            let m = municipality_of(&e.municipality, event);
            if let Some(p) = &e.product {
                let fact = facts::product_fact(p, None, &m).map_err(permanent)?;
                store::upsert_products(tx, std::slice::from_ref(&fact)).await?;
                // scaling down: the product ended earlier than before
                if e.amendment == acc::Amendment::End as i32
                    && let Some(end) = fact.period_end
                {
                    store::mark_scaled_down(tx, &fact.product_id, end, fact.version).await?;
                }
            }
        }
        Ok(())
    }
}

pub struct AssignmentHandler;

/// The read model's change for an assignment event; `None` for an event of another type.
fn assignment_change(event: &Event) -> Result<Option<store::AssignmentChange>, HandleError> {
    if event.event_type != LIFECYCLE {
        return Ok(None);
    }
    let e: asg::AssignmentLifecycle = event.decode()?;
    let Some(a) = &e.assignment else {
        return Err(permanent("lifecycle event without its assignment"));
    };
    Ok(Some(store::AssignmentChange {
        fact: facts::assignment_fact(a).map_err(permanent)?,
        change: e.change,
        at: event.time,
    }))
}

impl Handler for AssignmentHandler {
    /// Two lifecycle events per care flow (issued, started): a batch is merged with one statement
    /// per round instead of one per event.
    const BATCHES: bool = true;

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        if let Some(c) = assignment_change(event)? {
            store::upsert_assignments(tx, &[c]).await?;
        }
        Ok(())
    }

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        events: &[&Event],
    ) -> Result<(), (usize, HandleError)> {
        let mut changes = Vec::with_capacity(events.len());
        for (k, event) in events.iter().enumerate() {
            match assignment_change(event) {
                Ok(Some(c)) => changes.push(c),
                Ok(None) => {}
                Err(e) => return Err((k, e)),
            }
        }
        // A database error is not one event's: it is reported at the first, which the consumer
        // settles as failed (retried alone later) while it takes the rest again.
        store::upsert_assignments(tx, &changes)
            .await
            .map_err(|e| (0, HandleError::from(e)))
    }
}

pub struct RegistrationHandler;

impl Handler for RegistrationHandler {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        let contract = match event.event_type.as_str() {
            CONTRACT_CONCLUDED => event.decode::<reg::ContractConcluded>()?.contract,
            CONTRACT_CHANGED => event.decode::<reg::ContractChanged>()?.contract,
            _ => return Ok(()),
        };
        let Some(c) = contract else {
            return Err(permanent("contract event without its contract"));
        };
        let (fact, budgets) = facts::contract_fact(&c).map_err(permanent)?;
        store::upsert_contract(tx, &fact, &budgets, event.time).await?;
        Ok(())
    }
}

/// One generation of running consumers.
struct Generation {
    stop: Shutdown,
    tasks: Vec<JoinHandle<()>>,
}

/// Runs the three consumers; stops and restarts them for a rebuild.
pub struct Consumers {
    js: jetstream::Context,
    pool: PgPool,
    ns: Namespace,
    current: Mutex<Option<Generation>>,
    /// Where the consumers count deliveries, redeliveries and dead letters.
    metrics: rz_platform::metrics::Metrics,
}

/// Lag of one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    pub name: String,
    pub pending: u64,
    pub ack_pending: u64,
}

impl Consumers {
    pub fn new(js: jetstream::Context, pool: PgPool, ns: Namespace) -> Self {
        Self {
            js,
            pool,
            ns,
            current: Mutex::new(None),
            metrics: rz_platform::metrics::Metrics::new(),
        }
    }

    /// Counts into the service's metrics (`rz_consumer_*_total`, per consumer).
    pub fn with_metrics(mut self, metrics: rz_platform::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn specs(&self) -> Vec<ConsumerSpec> {
        vec![
            access_spec(&self.ns),
            assignment_spec(&self.ns),
            registration_spec(&self.ns),
        ]
    }

    /// Creates the durable consumers (so the lag can be read at once) and starts them.
    pub async fn start(&self) -> Result<(), EventingError> {
        let mut current = self.current.lock().await;
        if current.is_some() {
            return Ok(());
        }
        *current = Some(self.spawn().await?);
        Ok(())
    }

    async fn spawn(&self) -> Result<Generation, EventingError> {
        let stop = Shutdown::new();
        let access = self.consumer(access_spec(&self.ns), AccessHandler);
        let assignment = self.consumer(assignment_spec(&self.ns), AssignmentHandler);
        let registration = self.consumer(registration_spec(&self.ns), RegistrationHandler);
        access.ensure().await?;
        assignment.ensure().await?;
        registration.ensure().await?;
        let tasks = vec![
            run(access, stop.clone()),
            run(assignment, stop.clone()),
            run(registration, stop.clone()),
        ];
        Ok(Generation { stop, tasks })
    }

    fn consumer<H: Handler>(&self, spec: ConsumerSpec, handler: H) -> EventConsumer<H> {
        let counters = self.metrics.consumer(&spec.name);
        EventConsumer::new(
            self.js.clone(),
            self.pool.clone(),
            self.ns.clone(),
            spec,
            handler,
        )
        .with_metrics(counters)
    }

    /// Stops the running consumers; each finishes the event in hand.
    pub async fn stop(&self) {
        let mut current = self.current.lock().await;
        if let Some(g) = current.take() {
            g.stop.trigger();
            for t in g.tasks {
                let _ = t.await;
            }
        }
    }

    /// Drops the read model and replays every stream from its start (see the module docs).
    pub async fn rebuild(&self) -> Result<(), EventingError> {
        let mut current = self.current.lock().await;
        if let Some(g) = current.take() {
            g.stop.trigger();
            for t in g.tasks {
                let _ = t.await;
            }
        }
        for spec in self.specs() {
            let stream = self
                .js
                .get_stream(&spec.stream)
                .await
                .map_err(|e| EventingError::Nats(e.to_string()))?;
            // Absent (never created) is fine.
            if let Err(e) = stream.delete_consumer(&spec.name).await {
                tracing::debug!(consumer = %spec.name, error = %e, "durable consumer not deleted");
            }
        }
        let mut tx = self.pool.begin().await?;
        store::reset(&mut tx, ALL).await?;
        tx.commit().await?;
        tracing::info!("read model dropped; replaying the streams");
        *current = Some(self.spawn().await?);
        Ok(())
    }

    /// How many events each consumer has not applied yet.
    pub async fn lag(&self) -> Result<Vec<Lag>, EventingError> {
        // Not while a rebuild deletes and recreates the consumers (that answered "consumer not
        // found" to a status call or a second rebuild's wait).
        let _generation = self.current.lock().await;
        let mut out = Vec::new();
        for spec in self.specs() {
            let stream = self
                .js
                .get_stream(&spec.stream)
                .await
                .map_err(|e| EventingError::Nats(e.to_string()))?;
            let mut consumer: jetstream::consumer::PullConsumer = stream
                .get_consumer(&spec.name)
                .await
                .map_err(|e| EventingError::Nats(e.to_string()))?;
            let info = consumer
                .info()
                .await
                .map_err(|e| EventingError::Nats(e.to_string()))?;
            out.push(Lag {
                name: spec.name.clone(),
                pending: info.num_pending,
                ack_pending: info.num_ack_pending as u64,
            });
        }
        Ok(out)
    }

    /// Waits until every consumer applied everything in its stream, or `timeout` passed.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<bool, EventingError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let lag = self.lag().await?;
            if lag.iter().all(|l| l.pending == 0 && l.ack_pending == 0) {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn run<H: Handler>(consumer: EventConsumer<H>, stop: Shutdown) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = consumer.run(stop).await {
            tracing::error!(error = %e, "reporting consumer failed");
        }
    })
}
