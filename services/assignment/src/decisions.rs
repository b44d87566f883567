//! From decision to assignment: the consumer of access' events. A granted product gets a
//! contracted provider (the resident's preference when contracted, else the caseload rule) and an
//! assignment; an amended product changes the active assignment(s) of that product.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rz_domain::{AgbCode, ClientKey, GemeenteCode, Period, parse_date};
use rz_eventing::{ConsumerSpec, Event, HandleError, Handler, Namespace};
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as pb;
use sqlx::PgConnection;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::assigner::{Assigner, Choice, ChoiceInput, stacking_text};
use crate::convert::{law_from_pb, variant_from_pb};
use crate::domain::{Assignment, ChangeReason, Extent, Origin, SizeFields, Status};
use crate::error::{Error, Result};
use crate::store::{self, Unassigned};
use crate::upstream::{ClientLookup, ContractCache};

pub const DECISION_GRANTED: &str = rz_proto::events::access::DECISION_GRANTED.ce_type;
pub const PRODUCT_AMENDED: &str = rz_proto::events::access::PRODUCT_AMENDED.ce_type;
/// The durable consumer's name (also its inbox key).
pub const CONSUMER: &str = "assignment-decisions";

/// Every event of every municipality's access instance; other event types are ignored.
///
/// Partitioned by municipality (the subject's third token): the decisions of different
/// municipalities are applied at the same time, in transactions of their own; within a
/// municipality they stay in stream order (an amendment after its decision). What one
/// municipality's decisions write (its numbers, its caseloads, its clients' locks) is disjoint from
/// another's, so the partitions do not wait for each other.
pub fn consumer_spec(ns: &Namespace) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        CONSUMER,
        ns.stream_name("access"),
        format!("{}.access.>", ns.as_str()),
    );
    // Access or registration down for a few minutes must not dead-letter decisions:
    // 0.5 + 1 + 2 + ... s, capped at a minute, about 3 minutes in all.
    spec.max_attempts = 10;
    spec.partition_token = Some(2);
    spec
}

/// How long a prefetch may take before the batch is applied without (the normal path asks again).
const PREFETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Calls of one prefetch in flight at once.
const PREFETCH_CONCURRENCY: usize = 16;
/// A prefetched answer not used within this time is dropped.
const PREFETCH_KEEP: Duration = Duration::from_secs(60);

/// What was fetched for a batch of decisions just before it is applied: the client blocks from
/// access and registration's answers, shared by the batch's events.
#[derive(Debug, Default)]
pub struct Prefetched {
    clients: HashMap<(String, String), pb::Client>,
    contracts: ContractCache,
}

impl Prefetched {
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

/// The upstream questions the decisions of a batch will ask.
#[derive(Debug, Default)]
pub struct Wanted {
    clients: HashSet<(String, String)>,
    checks: HashSet<(String, String, String, NaiveDate)>,
    lists: HashSet<(String, String, NaiveDate)>,
}

impl Wanted {
    /// The questions of the granted decisions among `events` (what cannot be parsed is left to
    /// the normal path, which reports it).
    pub fn of(events: &[&Event]) -> Self {
        let mut w = Self::default();
        for event in events {
            if event.event_type != DECISION_GRANTED {
                continue;
            }
            let Ok(e) = event.decode::<acc::DecisionGranted>() else {
                continue;
            };
            let Ok(m) = GemeenteCode::parse(&e.municipality).map(|m| m.to_string()) else {
                continue;
            };
            let Some(case) = &e.case else { continue };
            for p in &case.products {
                let key = if p.client_key.is_empty() {
                    &case.client_key
                } else {
                    &p.client_key
                };
                if let Ok(key) = ClientKey::parse(key) {
                    w.clients.insert((m.clone(), key.to_string()));
                }
                let Ok(period) = product_period(p) else {
                    continue;
                };
                let d = period.start();
                if !p.preferred_provider_agb.is_empty() {
                    w.checks.insert((
                        p.preferred_provider_agb.clone(),
                        p.subsegment_code.clone(),
                        m.clone(),
                        d,
                    ));
                }
                w.lists.insert((p.subsegment_code.clone(), m.clone(), d));
            }
        }
        w
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.checks.is_empty() && self.lists.is_empty()
    }
}

enum Answer {
    /// A municipality's client blocks by client key.
    Clients(String, Vec<(String, pb::Client)>),
    Check(String, String, String, NaiveDate, Option<String>),
    List(String, String, NaiveDate, Vec<(AgbCode, i64)>),
    Failed,
}

pub struct DecisionHandler {
    assigner: Assigner,
    /// Per event id: what the prefetch of its batch fetched (and when).
    prefetched: Mutex<HashMap<Uuid, (Instant, Arc<Prefetched>)>>,
}

impl DecisionHandler {
    pub fn new(assigner: Assigner) -> Self {
        Self {
            assigner,
            prefetched: Mutex::new(HashMap::new()),
        }
    }

    fn prefetched_for(&self, id: Uuid) -> Option<Arc<Prefetched>> {
        self.prefetched
            .lock()
            .ok()
            .and_then(|m| m.get(&id).map(|(_, p)| p.clone()))
    }

    /// Events with a prefetched answer waiting (for tests).
    pub fn prefetched_events(&self) -> usize {
        self.prefetched.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Handler for DecisionHandler {
    async fn prefetch(&self, events: &[&Event]) {
        let wanted = Wanted::of(events);
        if wanted.is_empty() {
            return;
        }
        let fetched =
            match tokio::time::timeout(PREFETCH_TIMEOUT, self.assigner.prefetch(wanted)).await {
                Ok(p) => Arc::new(p),
                Err(_) => {
                    tracing::warn!("prefetch for decisions timed out; applying without");
                    return;
                }
            };
        if let Ok(mut m) = self.prefetched.lock() {
            m.retain(|_, (at, _)| at.elapsed() < PREFETCH_KEEP);
            let now = Instant::now();
            for e in events.iter().filter(|e| e.event_type == DECISION_GRANTED) {
                m.insert(e.id, (now, fetched.clone()));
            }
        }
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        match event.event_type.as_str() {
            DECISION_GRANTED => {
                let e: acc::DecisionGranted = event.decode()?;
                let pre = self.prefetched_for(event.id).unwrap_or_default();
                self.assigner.apply_decision_with(tx, e, &pre).await?;
            }
            PRODUCT_AMENDED => {
                let e: acc::ProductAmended = event.decode()?;
                self.assigner.apply_amendment(tx, e).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::Malformed(what.to_string())
}

fn product_period(p: &acc::GrantedProduct) -> Result<Period> {
    let period = p
        .period
        .as_ref()
        .ok_or_else(|| malformed(format!("granted product {} has no period", p.id)))?;
    let start = parse_date("period.start", &period.start).map_err(malformed)?;
    let end = if period.end.is_empty() {
        None
    } else {
        Some(parse_date("period.end", &period.end).map_err(malformed)?)
    };
    Period::new(start, end).map_err(malformed)
}

impl Assigner {
    /// Asks access and registration what `wanted` names, [`PREFETCH_CONCURRENCY`] calls at a time.
    /// An answer that fails is left out (the normal path asks again and handles the failure).
    pub async fn prefetch(&self, wanted: Wanted) -> Prefetched {
        let permits = Arc::new(Semaphore::new(PREFETCH_CONCURRENCY));
        let mut calls: JoinSet<Answer> = JoinSet::new();
        // The clients: one call per municipality for all its keys.
        let mut keys: HashMap<String, Vec<String>> = HashMap::new();
        for (m, key) in wanted.clients {
            keys.entry(m).or_default().push(key);
        }
        for (m, keys) in keys {
            let (up, permits) = (self.upstream.clone(), permits.clone());
            calls.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return Answer::Failed;
                };
                match up.clients(&m, &keys).await {
                    Ok(found) => Answer::Clients(m, found),
                    Err(_) => Answer::Failed,
                }
            });
        }
        for (agb, s, m, d) in wanted.checks {
            let (up, permits) = (self.upstream.clone(), permits.clone());
            calls.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return Answer::Failed;
                };
                match up.check_contracted(&agb, &s, &m, d).await {
                    Ok(c) => Answer::Check(agb, s, m, d, c),
                    Err(_) => Answer::Failed,
                }
            });
        }
        for (s, m, d) in wanted.lists {
            let (up, permits) = (self.upstream.clone(), permits.clone());
            calls.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return Answer::Failed;
                };
                match up.contracted_providers(&s, &m, d).await {
                    Ok(l) => Answer::List(s, m, d, l),
                    Err(_) => Answer::Failed,
                }
            });
        }
        let mut p = Prefetched::default();
        while let Some(answer) = calls.join_next().await {
            match answer {
                Ok(Answer::Clients(m, found)) => {
                    for (key, c) in found {
                        p.clients.insert((m.clone(), key), c);
                    }
                }
                Ok(Answer::Check(agb, s, m, d, c)) => p.contracts.put_check(&agb, &s, &m, d, c),
                Ok(Answer::List(s, m, d, l)) => p.contracts.put_list(&s, &m, d, l),
                Ok(Answer::Failed) | Err(_) => {}
            }
        }
        p
    }

    /// Assigns every product of a granted decision (in the consumer's inbox transaction).
    pub async fn apply_decision(
        &self,
        tx: &mut PgConnection,
        e: acc::DecisionGranted,
    ) -> Result<()> {
        self.apply_decision_with(tx, e, &Prefetched::default())
            .await
    }

    /// As [`Assigner::apply_decision`], using the answers `pre` fetched for it where they are
    /// there and asking upstream for the rest.
    pub async fn apply_decision_with(
        &self,
        tx: &mut PgConnection,
        e: acc::DecisionGranted,
        pre: &Prefetched,
    ) -> Result<()> {
        let m = GemeenteCode::parse(&e.municipality)
            .map_err(|_| malformed(format!("municipality `{}`", e.municipality)))?;
        if !self.upstream.has_access(m.as_str()) {
            return Err(Error::rule(
                "decision.access_configured",
                "municipality",
                format!("no access endpoint is configured for municipality {m}"),
            ));
        }
        let case = e
            .case
            .ok_or_else(|| malformed("decision without its case"))?;
        let decided_on = if case.decided_on.is_empty() {
            self.today()
        } else {
            parse_date("decided_on", &case.decided_on).map_err(malformed)?
        };
        let mut cache = pre.contracts.clone();
        for p in &case.products {
            self.assign_product(tx, &m, &case, p, decided_on, &mut cache, pre)
                .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn assign_product(
        &self,
        tx: &mut PgConnection,
        m: &GemeenteCode,
        case: &acc::Case,
        p: &acc::GrantedProduct,
        decided_on: NaiveDate,
        cache: &mut ContractCache,
        pre: &Prefetched,
    ) -> Result<()> {
        if store::decision_handled(tx, &p.id, p.version).await? {
            tracing::debug!(product = %p.id, version = p.version, "granted product handled before");
            return Ok(());
        }
        let key = if p.client_key.is_empty() {
            &case.client_key
        } else {
            &p.client_key
        };
        let key = ClientKey::parse(key).map_err(malformed)?;
        let law = law_from_pb(p.law)
            .or_else(|| law_from_pb(case.law))
            .ok_or_else(|| malformed(format!("granted product {} has no law", p.id)))?;
        let period = product_period(p)?;
        let (mut segment, mut category) = (p.segment_code.clone(), p.product_category.clone());
        let variant = match variant_from_pb(p.execution_variant) {
            Some(v) if !segment.is_empty() && !category.is_empty() => v,
            given => {
                let catalogue = self.upstream.catalogue().await?;
                let info = catalogue.subsegment(&p.subsegment_code).ok_or_else(|| {
                    malformed(format!("unknown subsegment `{}`", p.subsegment_code))
                })?;
                if segment.is_empty() {
                    segment = info.segment_code.clone();
                }
                if category.is_empty() {
                    category = info.product_categories.first().cloned().unwrap_or_default();
                }
                given.unwrap_or(info.variant)
            }
        };
        let extent = Extent::parse(
            variant,
            p.volume,
            &p.unit,
            &p.frequency,
            p.budget_cents,
            SizeFields::PRODUCT,
        )
        .map_err(|e| malformed(format!("granted product {}: {e:?}", p.id)))?;
        let lookup = match pre.clients.get(&(m.to_string(), key.to_string())) {
            Some(c) => ClientLookup::Found(Box::new(c.clone())),
            None => self.upstream.client(m.as_str(), key.as_str()).await?,
        };
        let client = match lookup {
            ClientLookup::Found(c) => *c,
            ClientLookup::Unknown => {
                return Err(Error::Upstream(format!(
                    "access of {m} does not know client {key} of granted product {}",
                    p.id
                )));
            }
            ClientLookup::NoAccess => {
                return Err(Error::Upstream(format!("no access instance for {m}")));
            }
        };
        let not_assigned = |code: &str, reason: String| Unassigned {
            granted_product_id: p.id.clone(),
            granted_version: p.version,
            municipality: m.clone(),
            client_key: key.clone(),
            law,
            segment_code: segment.clone(),
            subsegment_code: p.subsegment_code.clone(),
            period,
            reason_code: code.to_owned(),
            reason,
            decided_on,
        };
        if let Some(other) = self
            .stacked(tx, m, &key, &p.subsegment_code, &period, None)
            .await?
        {
            let u = not_assigned("stacking", stacking_text(&other));
            tracing::warn!(municipality = %m, product = %p.id, client_key = %key, reason = %u.reason, "granted product not assigned");
            store::insert_unassigned(tx, &u).await?;
            return Ok(());
        }
        let choice = self
            .choose(
                tx,
                ChoiceInput {
                    municipality: m,
                    subsegment: &p.subsegment_code,
                    date: period.start(),
                    preferred: Some(p.preferred_provider_agb.as_str()),
                },
                cache,
            )
            .await?;
        let (agb_code, choice_reason) = match choice {
            Choice::Chosen { agb_code, reason } => (agb_code, reason),
            Choice::NoneContracted { reason } => {
                let u = not_assigned("no_contracted_provider", reason);
                tracing::warn!(municipality = %m, product = %p.id, client_key = %key, reason = %u.reason, "granted product not assigned");
                store::insert_unassigned(tx, &u).await?;
                return Ok(());
            }
        };
        let mut a = Assignment {
            municipality: m.clone(),
            number: 0,
            client_key: key,
            agb_code,
            law,
            segment_code: segment,
            subsegment_code: p.subsegment_code.clone(),
            product_category: category,
            product_code: p.product_code.clone(),
            period,
            extent,
            status: Status::Issued,
            assigned_on: decided_on,
            change_reason: String::new(),
            started_on: None,
            stopped_on: None,
            end_reason: String::new(),
            withdrawn_on: None,
            valid_until: period.end(),
            choice_reason,
            origin: Origin::Decision,
            granted_product_id: Some(p.id.clone()),
            granted_version: Some(p.version),
            product_version: p.version,
            preferred_agb: Some(p.preferred_provider_agb.clone()).filter(|s| !s.is_empty()),
            request_id: None,
            replaces_number: None,
            replaced_by_number: None,
        };
        self.insert_new(tx, &mut a, &client).await
    }

    /// Applies a changed, extended or ended granted product to its active assignment(s) (the
    /// replacement of a handover too).
    pub async fn apply_amendment(
        &self,
        tx: &mut PgConnection,
        e: acc::ProductAmended,
    ) -> Result<()> {
        let p = e
            .product
            .ok_or_else(|| malformed("amendment without its product"))?;
        let amendment =
            acc::Amendment::try_from(e.amendment).unwrap_or(acc::Amendment::Unspecified);
        let active = store::active_for_product(tx, &p.id).await?;
        if active.is_empty() {
            if store::product_known(tx, &p.id).await? {
                tracing::info!(product = %p.id, "amendment of a product without an active assignment");
                return Ok(());
            }
            // The decision itself may still be on its way (retried after a failure): try later.
            return Err(Error::Unavailable(format!(
                "no assignment for granted product {} yet",
                p.id
            )));
        }
        let new_end = || -> Result<Option<NaiveDate>> {
            let end = p.period.as_ref().map(|x| x.end.as_str()).unwrap_or("");
            if end.is_empty() {
                Ok(None)
            } else {
                parse_date("period.end", end).map(Some).map_err(malformed)
            }
        };
        for mut a in active {
            if p.version <= a.product_version {
                tracing::debug!(product = %p.id, version = p.version, "amendment applied before");
                continue;
            }
            match amendment {
                acc::Amendment::Change => {
                    let extent = Extent::parse(
                        a.extent.variant(),
                        p.volume,
                        &p.unit,
                        &p.frequency,
                        p.budget_cents,
                        SizeFields::PRODUCT,
                    )
                    .map_err(|e| malformed(format!("amended product {}: {e:?}", p.id)))?;
                    a.change(None, Some(extent), ChangeReason::ReassessmentShortening);
                }
                acc::Amendment::Extend => {
                    a.change(Some(new_end()?), None, ChangeReason::ReassessmentExtension);
                }
                acc::Amendment::End => {
                    let end = new_end()?
                        .ok_or_else(|| malformed(format!("ended product {} has no end", p.id)))?;
                    a.change(Some(Some(end)), None, ChangeReason::ReassessmentShortening);
                }
                acc::Amendment::Unspecified => {
                    return Err(malformed(format!("amendment of {} has no kind", p.id)));
                }
            }
            a.product_version = p.version;
            let client = self.client_block(&a.municipality, &a.client_key).await?;
            self.save_changed(tx, &a, &client, "changed").await?;
        }
        Ok(())
    }
}
