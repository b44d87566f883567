//! Existing care imported from before the platform (at go-live of a region): one assignment per
//! call (`ImportAssignment`) or up to [`MAX_BATCH`] per call (`ImportAssignments`, for a migration
//! of a whole region). Both check an item the same way ([`Assigner::prepare_import`]) and store it
//! the same way ([`Assigner::store_import`]); the batch stores its accepted items in one transaction
//! and answers every refused item with what the single call would have answered.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use futures::{StreamExt, stream};
use rz_domain::{AgbCode, Bsn, ClientKey, GemeenteCode, Period};
use rz_platform::ApiError;
use rz_proto::assignment::v1 as pb;
use sqlx::{Acquire, PgConnection};
use tokio::sync::{Mutex, OnceCell};

use rz_platform::idempotency::fingerprint;

use crate::assigner::{Assigner, ProductFields, key_conflict};
use crate::convert::assignment_pb;
use crate::domain::{Assignment, Extent, Origin, Status};
use crate::error::{Error, Result};
use crate::fields::{self, Fields};
use crate::store::{self, Claim};
use crate::upstream::SubsegmentInfo;

/// The most items one `ImportAssignments` call may carry.
pub const MAX_BATCH: usize = 1_000;

/// Items of one batch checked at once (their contract checks and client lookups are calls to
/// registration and access).
const UPSTREAM_IN_FLIGHT: usize = 32;

/// Times a batch transaction is re-run after losing a deadlock (nothing of it was stored).
const CONFLICT_RETRIES: usize = 3;

/// The contract checks of one call, each asked of registration once however many items share it
/// (concurrent items wait for the first one's answer): (AGB, subsegment, municipality, date) ->
/// the contract id, if contracted.
type ContractMemo =
    Mutex<HashMap<(String, String, String, NaiveDate), Arc<OnceCell<Option<String>>>>>;

/// One import, checked and ready to store.
pub(crate) struct PreparedImport {
    idempotency_key: String,
    fingerprint: String,
    municipality: GemeenteCode,
    agb_code: AgbCode,
    bsn: Option<Bsn>,
    client_key: ClientKey,
    sub: SubsegmentInfo,
    extent: Extent,
    product_code: String,
    period: Period,
    started: bool,
    contract: String,
    /// The client block of the message to the provider, once [`Assigner::resolve`] found it.
    client: Option<pb::Client>,
}

impl PreparedImport {
    /// The client block [`Assigner::resolve`] found for the provider's message.
    fn client(&self) -> Result<&pb::Client> {
        self.client
            .as_ref()
            .ok_or_else(|| Error::from(ApiError::internal("the import's client was not resolved")))
    }
}

/// What storing one import did.
pub(crate) enum Stored {
    New(Box<Assignment>),
    Replayed(Box<Assignment>),
}

impl Stored {
    fn assignment(&self) -> &Assignment {
        match self {
            Self::New(a) | Self::Replayed(a) => a,
        }
    }
}

/// True for an answer about the item itself (bad field, broken rule, key reused): the item is
/// refused and the rest of a batch goes on. Anything else (a dependency down, a database error)
/// fails the whole call, which the caller repeats.
fn refuses_item(e: &Error) -> bool {
    matches!(
        e,
        Error::Api(
            ApiError::InvalidArgument(_)
                | ApiError::FailedPrecondition { .. }
                | ApiError::AlreadyExists(_)
                | ApiError::NotFound(_)
        )
    )
}

fn refusal(e: &Error) -> pb::ImportRefusal {
    let mut r = pb::ImportRefusal {
        code: "INTERNAL".into(),
        message: e.to_string(),
        ..Default::default()
    };
    match e {
        Error::Api(ApiError::InvalidArgument(errors)) => {
            r.code = "INVALID_ARGUMENT".into();
            r.fields = errors
                .iter()
                .map(|f| pb::ImportFieldViolation {
                    field: f.field.clone(),
                    rule: f.rule.clone(),
                })
                .collect();
        }
        Error::Api(ApiError::FailedPrecondition { rule, .. }) => {
            r.code = "FAILED_PRECONDITION".into();
            r.rule = rule.clone();
        }
        Error::Api(ApiError::AlreadyExists(_)) => r.code = "ALREADY_EXISTS".into(),
        Error::Api(ApiError::NotFound(_)) => r.code = "NOT_FOUND".into(),
        _ => {}
    }
    r
}

impl Assigner {
    /// Existing care from before the platform. The provider must have been contracted on the
    /// assignment's start; otherwise it is stored like any assignment (and the provider told).
    pub async fn import_assignment(
        &self,
        r: pb::ImportAssignmentRequest,
    ) -> Result<pb::Assignment> {
        let mut p = self.prepare_import(&r, &ContractMemo::default()).await?;
        if let Some((_, e)) = self.resolve(&mut [&mut p]).await?.pop() {
            return Err(e);
        }
        let mut tx = self.pool.begin().await?;
        let stored = self.store_import(&mut tx, &p).await?;
        tx.commit().await?;
        Ok(assignment_pb(stored.assignment()))
    }

    /// Up to [`MAX_BATCH`] imports: every item is checked on its own, the accepted ones are stored
    /// in one transaction; one outcome per item, in request order.
    pub async fn import_assignments(
        &self,
        r: pb::ImportAssignmentsRequest,
    ) -> Result<pb::ImportAssignmentsResponse> {
        if r.assignments.is_empty() {
            return Err(Error::field(
                "assignments",
                "must hold at least one assignment",
            ));
        }
        if r.assignments.len() > MAX_BATCH {
            return Err(Error::field(
                "assignments",
                format!("at most {MAX_BATCH} per call"),
            ));
        }
        let mut outcomes: Vec<pb::ImportOutcome> = r
            .assignments
            .iter()
            .enumerate()
            .map(|(i, item)| pb::ImportOutcome {
                index: i as u32,
                idempotency_key: item.idempotency_key.clone(),
                ..Default::default()
            })
            .collect();
        let memo = ContractMemo::default();
        let memo = &memo;
        let prepared: Vec<(usize, Result<PreparedImport>)> =
            stream::iter(r.assignments.into_iter().enumerate())
                .map(|(i, item)| async move { (i, self.prepare_import(&item, memo).await) })
                .buffered(UPSTREAM_IN_FLIGHT)
                .collect()
                .await;
        let mut ready = Vec::new();
        for (i, p) in prepared {
            match p {
                Ok(p) => ready.push((i, p)),
                Err(e) if refuses_item(&e) => {
                    if let Some(o) = outcomes.get_mut(i) {
                        o.refused = Some(refusal(&e));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let refused = {
            let mut items: Vec<&mut PreparedImport> = ready.iter_mut().map(|(_, p)| p).collect();
            self.resolve(&mut items).await?
        };
        for (at, e) in refused.into_iter().rev() {
            let (i, _) = ready.remove(at);
            if let Some(o) = outcomes.get_mut(i) {
                o.refused = Some(refusal(&e));
            }
        }
        // One order of the municipalities' number counters for every batch, so two batches at
        // once do not deadlock on them; within a municipality the request order stays (the first
        // of two items with one idempotency key wins, as in two single calls).
        ready.sort_by(|(_, a), (_, b)| a.municipality.cmp(&b.municipality));
        let mut attempt = 0;
        let results = loop {
            attempt += 1;
            let stored = match self.store_bulk(&ready).await {
                Ok(Some(results)) => Ok(results),
                Ok(None) => self.store_batch(&ready).await,
                Err(e) => Err(e),
            };
            match stored {
                Err(e) if e.is_conflict() && attempt <= CONFLICT_RETRIES => {
                    tracing::info!(attempt, "import batch lost a deadlock; running it again");
                }
                other => break other?,
            }
        };
        for (i, result) in results {
            let Some(o) = outcomes.get_mut(i) else {
                continue;
            };
            match result {
                Ok(stored) => {
                    let a = stored.assignment();
                    o.municipality = a.municipality.to_string();
                    o.number = a.number;
                    o.replayed = matches!(stored, Stored::Replayed(_));
                }
                Err(e) => o.refused = Some(refusal(&e)),
            }
        }
        let refused = outcomes.iter().filter(|o| o.refused.is_some()).count() as u32;
        let replayed = outcomes.iter().filter(|o| o.replayed).count() as u32;
        tracing::info!(
            items = outcomes.len(),
            refused,
            replayed,
            "import batch stored"
        );
        Ok(pb::ImportAssignmentsResponse {
            imported: outcomes.len() as u32 - refused - replayed,
            replayed,
            refused,
            outcomes,
        })
    }

    /// Stores the accepted items with set-based statements ([`store::bulk`]: about ten statements
    /// a batch where [`Assigner::store_batch`] makes about fourteen an item), in one transaction.
    /// `None` when an item needs the answer of the item-by-item path: its idempotency key was used
    /// before (a replay or a conflict), or it would stack on a stored assignment or on another item
    /// of the batch; nothing is stored then.
    async fn store_bulk(
        &self,
        ready: &[(usize, PreparedImport)],
    ) -> Result<Option<Vec<(usize, Result<Stored>)>>> {
        if ready.is_empty() {
            return Ok(Some(Vec::new()));
        }
        if stacks_within(ready) {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        let locks: Vec<String> = ready
            .iter()
            .map(|(_, p)| format!("client|{}|{}|{}", p.municipality, p.client_key, p.sub.code))
            .collect();
        store::bulk::lock_all(&mut tx, &locks).await?;
        let slots: Vec<store::bulk::Slot<'_>> = ready
            .iter()
            .map(|(_, p)| store::bulk::Slot {
                municipality: p.municipality.as_str(),
                client_key: p.client_key.as_str(),
                subsegment: &p.sub.code,
                start: p.period.start(),
                end: p.period.end(),
            })
            .collect();
        if store::bulk::any_overlapping(&mut tx, &slots).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let ms: Vec<&str> = ready.iter().map(|(_, p)| p.municipality.as_str()).collect();
        let numbers = store::bulk::assignment_numbers(&mut tx, &ms).await?;
        let claims: Vec<(&str, &str, String)> = ready
            .iter()
            .zip(&numbers)
            .map(|((_, p), n)| {
                (
                    p.idempotency_key.as_str(),
                    p.fingerprint.as_str(),
                    format!("{}/{n}", p.municipality),
                )
            })
            .collect();
        let claimed = store::bulk::claim_new_keys(&mut tx, "import_assignment", &claims).await?;
        if claimed != claims.len() as u64 {
            tx.rollback().await?;
            return Ok(None);
        }
        let identities: Vec<(&str, &str, &str)> = ready
            .iter()
            .filter_map(|(_, p)| {
                let b = p.bsn.as_ref()?;
                Some((p.municipality.as_str(), p.client_key.as_str(), b.as_str()))
            })
            .collect();
        store::bulk::save_identities(&mut tx, &self.keys, &identities).await?;
        let assignments: Vec<Assignment> = ready
            .iter()
            .zip(&numbers)
            .map(|((_, p), n)| imported(p, *n))
            .collect();
        let refs: Vec<&Assignment> = assignments.iter().collect();
        store::insert_assignments(&mut tx, &refs).await?;
        let mut events = Vec::with_capacity(2 * ready.len());
        let mut messages = Vec::with_capacity(ready.len());
        for ((_, p), a) in ready.iter().zip(&assignments) {
            let client = p.client()?;
            let [to_provider, lifecycle] = self.issued_events(a, client);
            messages.push(store::bulk::NewMessage {
                municipality: p.municipality.as_str(),
                agb_code: p.agb_code.as_str(),
                kind: "assignment",
                payload: to_provider.payload.clone(),
            });
            events.push(to_provider);
            events.push(lifecycle);
        }
        store::bulk::record_provider_messages(&mut tx, &self.keys, &messages, self.today()).await?;
        rz_eventing::outbox::enqueue_many(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(Some(
            ready
                .iter()
                .zip(assignments)
                .map(|((i, _), a)| (*i, Ok(Stored::New(Box::new(a)))))
                .collect(),
        ))
    }

    /// Stores the accepted items in one transaction; an item refused by a rule is rolled back to
    /// its savepoint and the rest goes on.
    async fn store_batch(
        &self,
        ready: &[(usize, PreparedImport)],
    ) -> Result<Vec<(usize, Result<Stored>)>> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(ready.len());
        for (i, p) in ready {
            let mut item = tx.begin().await?;
            match self.store_import(&mut item, p).await {
                Ok(stored) => {
                    item.commit().await?;
                    results.push((*i, Ok(stored)));
                }
                Err(e) if refuses_item(&e) => {
                    item.rollback().await?;
                    results.push((*i, Err(e)));
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(results)
    }

    /// Checks one import: its fields, the catalogue, that the provider was contracted on the start,
    /// and the client block for the provider's message (from access, else the BSN given).
    pub(crate) async fn prepare_import(
        &self,
        r: &pb::ImportAssignmentRequest,
        memo: &ContractMemo,
    ) -> Result<PreparedImport> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let m = f.check(fields::municipality("municipality", &r.municipality));
        let agb = f.check(fields::agb("agb_code", &r.agb_code));
        let bsn = if r.bsn.is_empty() {
            None
        } else {
            f.check(Bsn::parse(&r.bsn).map_err(|e| e.at("bsn")))
        };
        let given_key = if r.client_key.is_empty() {
            None
        } else {
            f.check(ClientKey::parse(&r.client_key))
        };
        if r.bsn.is_empty() && r.client_key.is_empty() {
            f.push("bsn", "give the BSN or the client key");
        }
        f.non_empty("subsegment_code", &r.subsegment_code);
        let period = f.check_all(fields::period(r.period.as_ref()));
        let ProductFields {
            sub,
            extent,
            product_code,
        } = self.product_fields(&mut f, m.as_ref(), r).await?;
        let key = match (&bsn, &given_key) {
            (Some(b), Some(k)) => {
                let derived = ClientKey::derive(&self.secret, b);
                if &derived != k {
                    f.push("client_key", "does not belong to the given BSN");
                }
                Some(derived)
            }
            (Some(b), None) => Some(ClientKey::derive(&self.secret, b)),
            (None, k) => k.clone(),
        };
        f.finish()?;
        let (Some(m), Some(agb), Some(period), Some(sub), Some(extent), Some(key)) =
            (m, agb, period, sub, extent, key)
        else {
            return Err(Error::field("request", "incomplete"));
        };
        let cell = memo
            .lock()
            .await
            .entry((
                agb.to_string(),
                sub.code.clone(),
                m.to_string(),
                period.start(),
            ))
            .or_default()
            .clone();
        let contract = cell
            .get_or_try_init(|| {
                self.upstream
                    .check_contracted(agb.as_str(), &sub.code, m.as_str(), period.start())
            })
            .await?
            .clone();
        let Some(contract) = contract else {
            return Err(Error::rule(
                "import.provider_contracted",
                "agb_code",
                format!(
                    "provider {agb} was not contracted for {} in {m} on {}",
                    sub.code,
                    period.start()
                ),
            ));
        };
        let fingerprint = fingerprint(
            "import_assignment",
            &pb::ImportAssignmentRequest {
                bsn: key.to_string(),
                ..r.clone()
            },
        );
        Ok(PreparedImport {
            idempotency_key: format!("import/{}", r.idempotency_key),
            fingerprint,
            municipality: m,
            agb_code: agb,
            bsn,
            client_key: key,
            sub,
            extent,
            product_code,
            period,
            started: r.started,
            contract,
            client: None,
        })
    }

    /// The client block of each item's message to its provider: from access (one
    /// `GetClientsForAssignment` call per municipality and [`crate::upstream::CLIENTS_PER_CALL`]
    /// keys, not one call per item), else the BSN the import gave, else the BSN this service
    /// received earlier ([`Assigner::known_client`]). The items refused (no BSN known anywhere),
    /// by their position in `items`, ascending.
    async fn resolve(&self, items: &mut [&mut PreparedImport]) -> Result<Vec<(usize, Error)>> {
        let mut by_municipality: HashMap<GemeenteCode, Vec<String>> = HashMap::new();
        for p in items.iter() {
            by_municipality
                .entry(p.municipality.clone())
                .or_default()
                .push(p.client_key.to_string());
        }
        let mut found: HashMap<(GemeenteCode, String), pb::Client> = HashMap::new();
        for (m, mut keys) in by_municipality {
            keys.sort_unstable();
            keys.dedup();
            for (key, client) in self.upstream.clients(m.as_str(), &keys).await? {
                found.insert((m.clone(), key), client);
            }
        }
        let mut refused = Vec::new();
        for (at, p) in items.iter_mut().enumerate() {
            let known = found.remove(&(p.municipality.clone(), p.client_key.to_string()));
            p.client = match (known, &p.bsn) {
                (Some(c), _) => Some(c),
                (None, Some(b)) => Some(pb::Client {
                    bsn: b.as_str().to_owned(),
                    ..Default::default()
                }),
                (None, None) => match self.known_client(&p.municipality, &p.client_key).await {
                    Ok(c) => Some(c),
                    Err(e) if refuses_item(&e) => {
                        refused.push((at, e));
                        None
                    }
                    Err(e) => return Err(e),
                },
            };
        }
        Ok(refused)
    }

    /// Stores one checked import in `tx`: a replay of its idempotency key answers what it stored
    /// before; a key used for another request, or an assignment that would stack on another, is
    /// refused.
    pub(crate) async fn store_import(
        &self,
        tx: &mut PgConnection,
        p: &PreparedImport,
    ) -> Result<Stored> {
        match store::claim_key(
            tx,
            &p.idempotency_key,
            "import_assignment",
            &p.fingerprint,
            "",
        )
        .await?
        {
            Claim::Replay(resource) => {
                let (rm, rn) = resource.split_once('/').unwrap_or_default();
                let n: u32 = rn.parse().unwrap_or(0);
                let stored = match GemeenteCode::parse(rm) {
                    Ok(rm) => store::load_assignment(tx, &rm, n, false).await?,
                    Err(_) => None,
                };
                return stored
                    .map(|a| Stored::Replayed(Box::new(a)))
                    .ok_or_else(|| Error::not_found(format!("assignment {resource}")));
            }
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        let m = &p.municipality;
        if let Some(b) = &p.bsn {
            store::save_identity(tx, &self.keys, m, &p.client_key, b).await?;
        }
        if let Some(other) = self
            .stacked(tx, m, &p.client_key, &p.sub.code, &p.period, None)
            .await?
        {
            return Err(Self::stacking_rule(&other));
        }
        let mut a = imported(p, 0);
        let client = p.client()?;
        self.insert_new(tx, &mut a, client).await?;
        sqlx::query("UPDATE idempotency_keys SET resource_id = $2 WHERE key = $1")
            .bind(&p.idempotency_key)
            .bind(format!("{m}/{}", a.number))
            .execute(&mut *tx)
            .await?;
        Ok(Stored::New(Box::new(a)))
    }
}

/// The assignment an import stores, numbered `number`.
fn imported(p: &PreparedImport, number: u32) -> Assignment {
    let start = p.period.start();
    Assignment {
        municipality: p.municipality.clone(),
        number,
        client_key: p.client_key.clone(),
        agb_code: p.agb_code.clone(),
        law: p.sub.law,
        segment_code: p.sub.segment_code.clone(),
        subsegment_code: p.sub.code.clone(),
        product_category: p
            .sub
            .product_categories
            .first()
            .cloned()
            .unwrap_or_default(),
        product_code: p.product_code.clone(),
        period: p.period,
        extent: p.extent,
        status: if p.started {
            Status::Started
        } else {
            Status::Issued
        },
        assigned_on: start,
        change_reason: String::new(),
        started_on: p.started.then_some(start),
        stopped_on: None,
        end_reason: String::new(),
        withdrawn_on: None,
        valid_until: p.period.end(),
        choice_reason: format!(
            "imported existing care: provider {} was contracted for {} in {} on {start} (contract {})",
            p.agb_code, p.sub.code, p.municipality, p.contract
        ),
        origin: Origin::Import,
        granted_product_id: None,
        granted_version: None,
        product_version: 0,
        preferred_agb: None,
        request_id: None,
        replaces_number: None,
        replaced_by_number: None,
    }
}

/// Whether two items of a batch are for one client and subsegment with overlapping periods (the
/// second would stack on the first).
fn stacks_within(ready: &[(usize, PreparedImport)]) -> bool {
    let mut seen: HashMap<(&str, &str, &str), Vec<&Period>> = HashMap::new();
    for (_, p) in ready {
        let periods = seen
            .entry((
                p.municipality.as_str(),
                p.client_key.as_str(),
                p.sub.code.as_str(),
            ))
            .or_default();
        if periods.iter().any(|q| q.overlaps(&p.period)) {
            return true;
        }
        periods.push(&p.period);
    }
    false
}
