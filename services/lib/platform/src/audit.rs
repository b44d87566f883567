//! The NEN 7513 audit trail of a service that holds personal data: every read or change of a
//! resident's personal data is one entry saying who (organisation, and the person and role where a
//! person called), which client (the pseudonymous client key, never the BSN), what (an action such
//! as `read_resident`), when, from which system (the service) and the purpose where the caller gave
//! one (gRPC metadata `x-purpose`).
//!
//! The entries live in the service's own database (`audit_log`, the shared migration
//! [`MIGRATION`]):
//! - **append-only**: triggers refuse UPDATE and TRUNCATE always and DELETE of an entry younger than
//!   the retention (kept in `audit_settings`, written by [`Audit::prune`]);
//! - **tamper-evident**: each entry's hash is SHA-256 of its predecessor's hash and its own fields
//!   (length-prefixed, [`entry_hash`]); [`Audit::verify`] recomputes the chain from the oldest kept
//!   entry. Writers serialise on an advisory lock, so there is one chain per database even with
//!   several replicas;
//! - **retention**: [`pruner`] deletes, daily, the oldest entries past `[audit] retention_days`
//!   (default 1826 days, five years).
//!
//! Handlers take an [`AuditContext`] from the request first (it checks `x-purpose`), do their work,
//! then [`Audit::record`] the entries; a failed write fails the call with UNAVAILABLE: no personal
//! data leaves without a trail. [`AuditApi`] serves `regiozorg.audit.v1.AuditService`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use rz_proto::audit::v1 as pb;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::db::Migration;
use crate::identity::{Caller, caller};
use crate::{ApiError, Shutdown};

/// The shared migration every service gets (see `rz_platform::migrations!`): `audit_log`, its
/// guard triggers and `audit_settings`.
pub const MIGRATION: Migration = Migration {
    version: 4,
    name: "audit_log",
    sql: include_str!("../migrations/audit_log.sql"),
};

/// The advisory lock writers of the chain hold for their transaction.
const LOCK: i64 = 7428913;
/// The predecessor of the very first entry.
const GENESIS: [u8; 32] = [0; 32];
/// The gRPC metadata key of the purpose.
pub const PURPOSE_HEADER: &str = "x-purpose";
/// The longest purpose accepted, in characters.
pub const PURPOSE_MAX: usize = 200;
/// Entries per page when the chain is verified and per statement when it is pruned.
const PAGE: i64 = 5000;

/// `[audit]`: how long entries are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    /// Days an entry is kept before the pruner may delete it (NEN 7513 suggests five years).
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 1826,
        }
    }
}

impl AuditConfig {
    /// The retention; an error naming `audit.retention_days` when it is 0.
    pub fn retention(&self) -> Result<Duration, String> {
        if self.retention_days == 0 {
            return Err("audit.retention_days must be at least 1".to_owned());
        }
        Ok(Duration::from_secs(u64::from(self.retention_days) * 86_400))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("audit entry: {0}")]
    Invalid(String),
    /// The group write that carried the entries failed (its error, as text: shared by all).
    #[error("audit write: {0}")]
    Write(String),
}

impl From<AuditError> for Status {
    fn from(e: AuditError) -> Self {
        tracing::error!(error = %e, "audit trail cannot be written");
        Status::unavailable("the audit trail cannot be written now; nothing was returned")
    }
}

/// Who accessed: the organisation's URN and, where a person called, their subject and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub organisation: String,
    pub person: String,
    pub role: String,
}

impl Actor {
    /// An organisation without a person (a provider's system, a webhook's receiver, a service).
    pub fn organisation(urn: impl Into<String>) -> Self {
        Self {
            organisation: urn.into(),
            person: String::new(),
            role: String::new(),
        }
    }
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Self {
        Self {
            organisation: c.organisation.urn(),
            person: c
                .person
                .as_ref()
                .map(|p| p.subject.clone())
                .unwrap_or_default(),
            role: c
                .person
                .as_ref()
                .map(|p| p.role.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// Who accessed and why, taken from a request before its work is done (so that a bad `x-purpose`
/// is refused before anything is read or changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    pub actor: Actor,
    pub purpose: Option<String>,
}

impl AuditContext {
    /// The caller the authorisation layer found (a call without one, made in-process, is recorded
    /// as `urn:regiozorg:unknown`) and the purpose from `x-purpose`: INVALID_ARGUMENT when it is
    /// longer than 200 characters, not text, or holds control characters.
    pub fn from_request<T>(request: &Request<T>) -> Result<Self, Status> {
        let actor = caller(request)
            .map(Actor::from)
            .unwrap_or_else(|| Actor::organisation("urn:regiozorg:unknown"));
        let purpose = match request.metadata().get(PURPOSE_HEADER) {
            None => None,
            Some(v) => {
                let text = v
                    .to_str()
                    .map_err(|_| purpose_error("must be visible ASCII text"))?;
                Some(check_purpose(text).map_err(purpose_error)?.to_owned())
            }
        }
        .filter(|p| !p.is_empty());
        Ok(Self { actor, purpose })
    }

    pub fn new(actor: Actor, purpose: Option<String>) -> Self {
        Self { actor, purpose }
    }
}

fn purpose_error(why: &str) -> Status {
    ApiError::field(PURPOSE_HEADER, why).into()
}

/// The purpose, trimmed; empty counts as none.
fn check_purpose(text: &str) -> Result<&str, &'static str> {
    let text = text.trim();
    if text.chars().count() > PURPOSE_MAX {
        return Err("must be at most 200 characters");
    }
    if text.chars().any(char::is_control) {
        return Err("must not hold control characters");
    }
    Ok(text)
}

/// One access to one resident's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub client_key: String,
    /// CBS code of the resident's municipality.
    pub municipality: String,
    /// What was done: `read_resident`, `register_resident`, `read_client_block`, ...
    pub action: &'static str,
}

impl AuditEntry {
    pub fn new(
        client_key: impl Into<String>,
        municipality: impl Into<String>,
        action: &'static str,
    ) -> Self {
        Self {
            client_key: client_key.into(),
            municipality: municipality.into(),
            action,
        }
    }
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub organisation: String,
    pub person: String,
    pub role: String,
    pub system: String,
    pub client_key: String,
    pub municipality: String,
    pub action: String,
    pub purpose: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for StoredEntry {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            seq: row.try_get("seq")?,
            at: row.try_get("at")?,
            organisation: row.try_get("organisation")?,
            person: row.try_get("person")?,
            role: row.try_get("role")?,
            system: row.try_get("system")?,
            client_key: row.try_get("client_key")?,
            municipality: row.try_get("municipality")?,
            action: row.try_get("action")?,
            purpose: row.try_get("purpose")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    }
}

impl StoredEntry {
    /// The hash this entry must have after `prev`.
    pub fn expected_hash(&self, prev: &[u8]) -> Vec<u8> {
        entry_hash(
            prev,
            self.seq,
            self.at,
            [
                &self.organisation,
                &self.person,
                &self.role,
                &self.system,
                &self.client_key,
                &self.municipality,
                &self.action,
                &self.purpose,
            ],
        )
    }
}

/// SHA-256 of the predecessor's hash, the sequence number and time (microseconds since the epoch,
/// big-endian), and the text fields, each prefixed with its length in bytes (u32, big-endian), in
/// the order organisation, person, role, system, client key, municipality, action, purpose.
pub fn entry_hash(prev: &[u8], seq: i64, at: DateTime<Utc>, fields: [&str; 8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.timestamp_micros().to_be_bytes());
    for f in fields {
        let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
        h.update(len.to_be_bytes());
        h.update(f.as_bytes());
    }
    h.finalize().to_vec()
}

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked.
    pub entries: u64,
    /// The first entry whose hash, predecessor or sequence number does not follow (None: intact).
    pub first_broken_seq: Option<i64>,
    /// The oldest entry kept (0 when there are none).
    pub oldest_seq: i64,
    pub detail: String,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.first_broken_seq.is_none()
    }
}

/// The service's audit trail.
#[derive(Debug, Clone)]
pub struct Audit {
    pool: PgPool,
    system: &'static str,
    group: Arc<Group>,
}

/// Group commit: concurrent callers queue their rows; one of them at a time (the one holding
/// `writer`) writes everything queued in one transaction and tells each caller the outcome. Under
/// load a transaction carries many calls' entries, so the chain's lock and the commits stop being
/// the bottleneck; alone, a call writes its own rows at once.
#[derive(Debug, Default)]
struct Group {
    queue: std::sync::Mutex<Vec<Queued>>,
    writer: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Queued {
    rows: Vec<Row>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// One entry to write: who, about whom, why.
#[derive(Debug, Clone)]
struct Row {
    actor: Actor,
    entry: AuditEntry,
    purpose: String,
}

const COLUMNS: &str = "seq, at, organisation, person, role, system, client_key, municipality, \
                       action, purpose, prev_hash, hash";

impl Audit {
    /// `system` is the recording service's name (`access`, `assignment`, ...).
    pub fn new(pool: PgPool, system: &'static str) -> Self {
        Self {
            pool,
            system,
            group: Arc::default(),
        }
    }

    pub fn system(&self) -> &'static str {
        self.system
    }

    /// Records `entries` for `caller` in one transaction (nothing for an empty batch).
    pub async fn record_caller(
        &self,
        caller: &Caller,
        purpose: Option<&str>,
        entries: &[AuditEntry],
    ) -> Result<(), AuditError> {
        let purpose = match purpose {
            Some(p) => Some(check_purpose(p).map_err(|e| AuditError::Invalid(e.to_owned()))?),
            None => None,
        };
        self.write(&Actor::from(caller), purpose, entries).await
    }

    /// Records `entries` for the context's actor and purpose in one transaction.
    pub async fn record(
        &self,
        context: &AuditContext,
        entries: &[AuditEntry],
    ) -> Result<(), AuditError> {
        self.write(&context.actor, context.purpose.as_deref(), entries)
            .await
    }

    /// As [`Audit::record`], with the error as the call's status (UNAVAILABLE).
    pub async fn record_or_unavailable(
        &self,
        context: &AuditContext,
        entries: &[AuditEntry],
    ) -> Result<(), Status> {
        self.record(context, entries).await.map_err(Status::from)
    }

    /// Records entries each with its own actor (deliveries of one batch to several receivers) in
    /// one transaction, with one purpose.
    pub async fn record_each(
        &self,
        purpose: Option<&str>,
        entries: &[(Actor, AuditEntry)],
    ) -> Result<(), AuditError> {
        let rows: Vec<(&Actor, &AuditEntry)> = entries.iter().map(|(a, e)| (a, e)).collect();
        self.write_rows(purpose, &rows).await
    }

    async fn write(
        &self,
        actor: &Actor,
        purpose: Option<&str>,
        entries: &[AuditEntry],
    ) -> Result<(), AuditError> {
        let rows: Vec<(&Actor, &AuditEntry)> = entries.iter().map(|e| (actor, e)).collect();
        self.write_rows(purpose, &rows).await
    }

    /// Queues the rows and waits until a group write has committed them (see [`Group`]).
    async fn write_rows(
        &self,
        purpose: Option<&str>,
        entries: &[(&Actor, &AuditEntry)],
    ) -> Result<(), AuditError> {
        if entries.is_empty() {
            return Ok(());
        }
        let purpose = purpose.unwrap_or("");
        let rows = entries
            .iter()
            .map(|(actor, entry)| Row {
                actor: (*actor).clone(),
                entry: (*entry).clone(),
                purpose: purpose.to_owned(),
            })
            .collect();
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        self.group
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Queued { rows, done });
        let _writer = self.group.writer.lock().await;
        // Written meanwhile by the caller that held the writer before us?
        if let Ok(result) = outcome.try_recv() {
            return result.map_err(AuditError::Write);
        }
        let batch: Vec<Queued> =
            std::mem::take(&mut *self.group.queue.lock().unwrap_or_else(|e| e.into_inner()));
        let rows: Vec<&Row> = batch.iter().flat_map(|q| q.rows.iter()).collect();
        let result = self.insert(&rows).await.map_err(|e| e.to_string());
        for q in batch {
            let _ = q.done.send(result.clone());
        }
        match outcome.try_recv() {
            Ok(result) => result.map_err(AuditError::Write),
            Err(_) => Err(AuditError::Write("the entries were not written".into())),
        }
    }

    /// Appends `rows` to the chain in one transaction, under the chain's lock (shared with the
    /// other replicas of the service).
    async fn insert(&self, rows: &[&Row]) -> Result<(), AuditError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK)
            .execute(&mut *tx)
            .await?;
        let (now, last): (DateTime<Utc>, Option<(i64, Vec<u8>)>) = {
            let row: (DateTime<Utc>, Option<i64>, Option<Vec<u8>>) = sqlx::query_as(
                "SELECT clock_timestamp(), l.seq, l.hash
                 FROM (SELECT 1) one
                 LEFT JOIN (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) l ON TRUE",
            )
            .fetch_one(&mut *tx)
            .await?;
            (row.0, row.1.zip(row.2))
        };
        // PostgreSQL keeps microseconds: hash what will be read back.
        let at = now.trunc_subsecs(6);
        let (mut seq, mut prev) = last.unwrap_or((0, GENESIS.to_vec()));
        let n = rows.len();
        let mut seqs = Vec::with_capacity(n);
        let mut prevs = Vec::with_capacity(n);
        let mut hashes = Vec::with_capacity(n);
        for row in rows {
            let (actor, e) = (&row.actor, &row.entry);
            seq += 1;
            let hash = entry_hash(
                &prev,
                seq,
                at,
                [
                    &actor.organisation,
                    &actor.person,
                    &actor.role,
                    self.system,
                    &e.client_key,
                    &e.municipality,
                    e.action,
                    &row.purpose,
                ],
            );
            seqs.push(seq);
            prevs.push(std::mem::replace(&mut prev, hash.clone()));
            hashes.push(hash);
        }
        let column = |f: fn(&Row) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<&str>>();
        let organisations = column(|r| &r.actor.organisation);
        let persons = column(|r| &r.actor.person);
        let roles = column(|r| &r.actor.role);
        let clients = column(|r| &r.entry.client_key);
        let municipalities = column(|r| &r.entry.municipality);
        let actions = column(|r| r.entry.action);
        let purposes = column(|r| &r.purpose);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, organisation, person, role, system, client_key,
                                    municipality, action, purpose, prev_hash, hash)
             SELECT s, $2, o, pe, r, $6, c, m, a, pu, p, h
             FROM UNNEST($1::bigint[], $3::text[], $4::text[], $5::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::bytea[], $12::bytea[])
                  AS u(s, o, pe, r, c, m, a, pu, p, h)",
        )
        .bind(&seqs)
        .bind(at)
        .bind(&organisations)
        .bind(&persons)
        .bind(&roles)
        .bind(self.system)
        .bind(&clients)
        .bind(&municipalities)
        .bind(&actions)
        .bind(&purposes)
        .bind(&prevs)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The entries about one client, newest first; `municipality` None: in any municipality.
    pub async fn list(
        &self,
        municipality: Option<&str>,
        client_key: &str,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, AuditError> {
        let limit = i64::from(limit.clamp(1, 1000));
        let rows = sqlx::query_as::<_, StoredEntry>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log
             WHERE client_key = $1 AND ($2::text IS NULL OR municipality = $2)
             ORDER BY seq DESC LIMIT $3"
        )))
        .bind(client_key)
        .bind(municipality)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Recomputes the chain from the oldest kept entry, page by page: each entry must follow its
    /// predecessor in sequence (no gap), name its predecessor's hash, and carry the hash of its
    /// own fields. The oldest kept entry's predecessor hash is taken as given (older entries were
    /// pruned), unless it is entry 1, whose predecessor is 32 zero bytes.
    pub async fn verify(&self) -> Result<Verification, AuditError> {
        let mut entries = 0_u64;
        let mut oldest = 0_i64;
        let mut expected: Option<(i64, Vec<u8>)> = None;
        let mut after = 0_i64;
        loop {
            let page = sqlx::query_as::<_, StoredEntry>(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            )))
            .bind(after)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                entries += 1;
                let (want_seq, want_prev) = match &expected {
                    Some((s, h)) => (*s + 1, h.clone()),
                    None => {
                        oldest = e.seq;
                        let prev = if e.seq == 1 {
                            GENESIS.to_vec()
                        } else {
                            e.prev_hash.clone()
                        };
                        (e.seq, prev)
                    }
                };
                let broken = if e.seq != want_seq {
                    Some(format!(
                        "entry {} follows entry {}: entries are missing",
                        e.seq,
                        want_seq - 1
                    ))
                } else if e.prev_hash != want_prev {
                    Some(format!(
                        "entry {} does not name its predecessor's hash",
                        e.seq
                    ))
                } else if e.hash != e.expected_hash(&want_prev) {
                    Some(format!("entry {}'s hash does not match its content", e.seq))
                } else {
                    None
                };
                if let Some(detail) = broken {
                    return Ok(Verification {
                        entries,
                        first_broken_seq: Some(e.seq),
                        oldest_seq: oldest,
                        detail,
                    });
                }
                expected = Some((e.seq, e.hash.clone()));
            }
        }
        let detail = match &expected {
            Some((last, _)) => format!("entries {oldest} to {last} intact"),
            None => "no entries".to_owned(),
        };
        Ok(Verification {
            entries,
            first_broken_seq: None,
            oldest_seq: oldest,
            detail,
        })
    }

    /// Sets the retention the database enforces to `retention` and deletes the oldest entries
    /// older than it (a prefix of the chain only, so what is kept stays verifiable; the newest
    /// entry is always kept, so that the chain goes on from it). Returns how many were deleted.
    pub async fn prune(&self, retention: Duration) -> Result<u64, AuditError> {
        let secs = i64::try_from(retention.as_secs())
            .map_err(|_| AuditError::Invalid("retention too long".to_owned()))?;
        if secs < 1 {
            return Err(AuditError::Invalid(
                "retention must be at least a second".to_owned(),
            ));
        }
        sqlx::query("UPDATE audit_settings SET retention_secs = $1")
            .bind(secs)
            .execute(&self.pool)
            .await?;
        // The first entry to keep: the oldest one within the retention, and at most the newest
        // (which stays, so that the chain goes on from it); all before it go.
        let bound: Option<i64> = sqlx::query_scalar(
            "SELECT LEAST(
                 (SELECT min(seq) FROM audit_log WHERE at >= now() - make_interval(secs => $1)),
                 (SELECT max(seq) FROM audit_log))",
        )
        .bind(secs)
        .fetch_one(&self.pool)
        .await?;
        let Some(bound) = bound else { return Ok(0) };
        let mut deleted = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM audit_log WHERE seq IN
                     (SELECT seq FROM audit_log WHERE seq < $1 ORDER BY seq LIMIT $2)",
            )
            .bind(bound)
            .bind(PAGE)
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted += n;
            if n == 0 {
                break;
            }
        }
        Ok(deleted)
    }
}

/// The retention pruner: prunes at once, then daily, until shutdown.
pub async fn pruner(audit: Audit, retention: Duration, shutdown: Shutdown) {
    const DAY: Duration = Duration::from_secs(86_400);
    loop {
        match audit.prune(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "audit entries past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "audit retention: pruning failed"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(DAY) => {}
        }
    }
}

/// Turns a BSN into the client key of `municipality`'s resident (access only: it holds the
/// region's secret). Gets (municipality, bsn); errors are the call's status.
pub type BsnResolver = Arc<dyn Fn(&str, &str) -> Result<String, Status> + Send + Sync>;

/// `regiozorg.audit.v1.AuditService` over a service's [`Audit`].
#[derive(Clone)]
pub struct AuditApi {
    audit: Audit,
    resolver: Option<BsnResolver>,
}

impl AuditApi {
    pub fn new(audit: Audit) -> Self {
        Self {
            audit,
            resolver: None,
        }
    }

    /// Accepts `bsn` instead of `client_key` (access).
    pub fn with_resolver(mut self, resolver: BsnResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn server(self) -> pb::audit_service_server::AuditServiceServer<Self> {
        pb::audit_service_server::AuditServiceServer::new(self)
    }
}

fn to_proto(e: StoredEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: u64::try_from(e.seq).unwrap_or(0),
        at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        organisation: e.organisation,
        person: e.person,
        role: e.role,
        system: e.system,
        client_key: e.client_key,
        municipality: e.municipality,
        action: e.action,
        purpose: e.purpose,
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditApi {
    async fn list_client_entries(
        &self,
        request: Request<pb::ListClientEntriesRequest>,
    ) -> Result<Response<pb::ListClientEntriesResponse>, Status> {
        // A municipality sees its own residents only, whatever the request says (the layer also
        // binds the field); an operator any, or one municipality's.
        // No caller (no layer ran) is refused rather than treated as an operator.
        let own = crate::identity::require_caller(&request)?
            .municipality()
            .map(|m| m.as_str().to_owned());
        let r = request.into_inner();
        let municipality = match own {
            Some(m) => Some(m),
            None if r.municipality.is_empty() => None,
            None => Some(
                rz_domain::GemeenteCode::parse(&r.municipality)
                    .map_err(ApiError::from)?
                    .as_str()
                    .to_owned(),
            ),
        };
        let client_key = match (r.client_key.is_empty(), r.bsn.is_empty()) {
            (false, true) => rz_domain::ClientKey::parse(&r.client_key)
                .map_err(ApiError::from)?
                .as_str()
                .to_owned(),
            (true, false) => match (&self.resolver, &municipality) {
                (Some(resolve), Some(m)) => resolve(m, &r.bsn)?,
                (Some(_), None) => {
                    return Err(
                        ApiError::field("municipality", "is required to look up a bsn").into(),
                    );
                }
                (None, _) => {
                    return Err(ApiError::field(
                        "bsn",
                        "this service cannot resolve a BSN: give the client_key",
                    )
                    .into());
                }
            },
            (true, true) => {
                return Err(ApiError::field("client_key", "give client_key or bsn").into());
            }
            (false, false) => {
                return Err(ApiError::field("bsn", "give client_key or bsn, not both").into());
            }
        };
        let limit = if r.page_size == 0 { 100 } else { r.page_size };
        let entries = self
            .audit
            .list(municipality.as_deref(), &client_key, limit)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "audit trail cannot be read");
                Status::unavailable("the audit trail cannot be read now")
            })?;
        Ok(Response::new(pb::ListClientEntriesResponse {
            entries: entries.into_iter().map(to_proto).collect(),
        }))
    }

    async fn verify_chain(
        &self,
        _request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let v = self.audit.verify().await.map_err(|e| {
            tracing::error!(error = %e, "audit trail cannot be verified");
            Status::unavailable("the audit trail cannot be read now")
        })?;
        if let Some(seq) = v.first_broken_seq {
            tracing::error!(seq, detail = %v.detail, "audit chain broken");
        }
        Ok(Response::new(pb::VerifyChainResponse {
            entries: v.entries,
            intact: v.intact(),
            first_broken_seq: v
                .first_broken_seq
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
            oldest_seq: u64::try_from(v.oldest_seq).unwrap_or(0),
            detail: v.detail,
        }))
    }
}
