//! The PostgreSQL store. Every function takes the connection or transaction it works in; the
//! callers decide the transaction boundaries (state change + outbox events together).

use chrono::NaiveDate;
use rz_domain::{Cents, ExecutionVariant, Frequency, Law, Period, Unit};
use rz_platform::db::Migration;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::{
    Assignment, Extent, Origin, ProviderRequest, ReferrerInfo, RequestKind, RequestStatus, Status,
};

/// The shared eventing migrations under their one version, then the service's own (versions
/// above `rz_eventing::SHARED_VERSIONS_END`, each file named after its version).
pub const MIGRATIONS: &[Migration] = &[
    Migration::shared(rz_eventing::OUTBOX_INBOX),
    Migration::shared(rz_eventing::OUTBOX_WAKE),
    Migration::shared(rz_eventing::OUTBOX_VACUUM),
    Migration {
        version: 101,
        name: "assignment",
        sql: include_str!("../migrations/0101_assignment.sql"),
    },
    Migration {
        version: 102,
        name: "provider_messages",
        sql: include_str!("../migrations/0102_provider_messages.sql"),
    },
    Migration {
        version: 103,
        name: "provider_messages_backfill",
        sql: include_str!("../migrations/0103_provider_messages_backfill.sql"),
    },
    Migration {
        version: 104,
        name: "number_sequences",
        sql: include_str!("../migrations/0104_number_sequences.sql"),
    },
    Migration {
        version: 105,
        name: "caseload_index",
        sql: include_str!("../migrations/0105_caseload_index.sql"),
    },
    Migration {
        version: 106,
        name: "hot_start",
        sql: include_str!("../migrations/0106_hot_start.sql"),
    },
];

fn decode_err(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} `{value}` in the database").into())
}

fn number(v: i64) -> Result<u32, sqlx::Error> {
    u32::try_from(v).map_err(|_| decode_err("assignment number", &v.to_string()))
}

fn opt_number(v: Option<i64>) -> Result<Option<u32>, sqlx::Error> {
    v.map(number).transpose()
}

// --- idempotency keys ---

pub use rz_platform::idempotency::{Claim, claim_key};

// --- numbers and locks ---

/// The next assignment number of a municipality, from its sequence: no lock is held until the
/// transaction ends, so concurrent transactions of one municipality do not wait for each other;
/// a number of a transaction that rolls back stays unused (a gap).
pub async fn next_number(tx: &mut PgConnection, municipality: &str) -> Result<u32, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT next_municipality_number('assignment', $1)")
        .bind(municipality)
        .fetch_one(&mut *tx)
        .await?;
    number(n)
}

/// A transaction-scoped advisory lock on a text key (released at commit or rollback).
pub async fn lock(tx: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

// --- assignments ---

const ASSIGNMENT_COLUMNS: &str = "municipality, number, client_key, agb_code, law, segment_code, subsegment_code,
    product_category, product_code, start_date, end_date, execution_variant, volume, unit, frequency,
    budget_cents, status, assigned_on, change_reason, started_on, stopped_on, end_reason, withdrawn_on,
    valid_until, choice_reason, origin, granted_product_id, granted_version, product_version,
    preferred_agb, request_id, replaces_number, replaced_by_number";

fn extent_from_row(row: &PgRow) -> Result<Extent, sqlx::Error> {
    let variant: String = row.try_get("execution_variant")?;
    let variant = ExecutionVariant::from_code(&variant)
        .map_err(|_| decode_err("execution variant", &variant))?;
    extent_from_parts(
        variant,
        row.try_get("volume")?,
        row.try_get("unit")?,
        row.try_get("frequency")?,
        row.try_get("budget_cents")?,
    )
}

fn extent_from_parts(
    variant: ExecutionVariant,
    volume: Option<i32>,
    unit: Option<String>,
    frequency: Option<String>,
    budget: Option<i64>,
) -> Result<Extent, sqlx::Error> {
    Ok(match variant {
        ExecutionVariant::Taakgericht => Extent::Task,
        ExecutionVariant::Inspanningsgericht => {
            let unit = unit.unwrap_or_default();
            let frequency = frequency.unwrap_or_default();
            Extent::Effort {
                volume: volume
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| decode_err("volume", "NULL"))?,
                unit: Unit::from_code(&unit).map_err(|_| decode_err("unit", &unit))?,
                frequency: Frequency::from_code(&frequency)
                    .map_err(|_| decode_err("frequency", &frequency))?,
            }
        }
        ExecutionVariant::Outputgericht => Extent::Output {
            budget: budget
                .and_then(|b| Cents::new(b).ok())
                .ok_or_else(|| decode_err("budget", "NULL"))?,
        },
    })
}

/// (variant, volume, unit, frequency, budget) columns of an extent.
type ExtentColumns = (
    &'static str,
    Option<i32>,
    Option<&'static str>,
    Option<&'static str>,
    Option<i64>,
);

fn extent_columns(e: &Extent) -> ExtentColumns {
    match *e {
        Extent::Task => (e.variant().code(), None, None, None, None),
        Extent::Effort {
            volume,
            unit,
            frequency,
        } => (
            e.variant().code(),
            i32::try_from(volume).ok(),
            Some(unit.code()),
            Some(frequency.code()),
            None,
        ),
        Extent::Output { budget } => (e.variant().code(), None, None, None, Some(budget.as_i64())),
    }
}

fn assignment_from_row(row: &PgRow) -> Result<Assignment, sqlx::Error> {
    let law: String = row.try_get("law")?;
    let status: String = row.try_get("status")?;
    let origin: String = row.try_get("origin")?;
    let start: NaiveDate = row.try_get("start_date")?;
    let end: Option<NaiveDate> = row.try_get("end_date")?;
    let version = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
    Ok(Assignment {
        municipality: row.try_get("municipality")?,
        number: number(row.try_get("number")?)?,
        client_key: row.try_get("client_key")?,
        agb_code: row.try_get("agb_code")?,
        law: Law::from_code(&law).map_err(|_| decode_err("law", &law))?,
        segment_code: row.try_get("segment_code")?,
        subsegment_code: row.try_get("subsegment_code")?,
        product_category: row.try_get("product_category")?,
        product_code: row.try_get("product_code")?,
        period: Period::new(start, end).map_err(|_| decode_err("period", &start.to_string()))?,
        extent: extent_from_row(row)?,
        status: Status::from_code(&status).ok_or_else(|| decode_err("status", &status))?,
        assigned_on: row.try_get("assigned_on")?,
        change_reason: row.try_get("change_reason")?,
        started_on: row.try_get("started_on")?,
        stopped_on: row.try_get("stopped_on")?,
        end_reason: row.try_get("end_reason")?,
        withdrawn_on: row.try_get("withdrawn_on")?,
        valid_until: row.try_get("valid_until")?,
        choice_reason: row.try_get("choice_reason")?,
        origin: Origin::from_code(&origin).ok_or_else(|| decode_err("origin", &origin))?,
        granted_product_id: row.try_get("granted_product_id")?,
        granted_version: version(row.try_get("granted_version")?),
        product_version: version(Some(row.try_get("product_version")?)).unwrap_or(0),
        preferred_agb: row.try_get("preferred_agb")?,
        request_id: row.try_get("request_id")?,
        replaces_number: opt_number(row.try_get("replaces_number")?)?,
        replaced_by_number: opt_number(row.try_get("replaced_by_number")?)?,
    })
}

pub async fn insert_assignment(tx: &mut PgConnection, a: &Assignment) -> Result<(), sqlx::Error> {
    let (variant, volume, unit, frequency, budget) = extent_columns(&a.extent);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO assignments ({ASSIGNMENT_COLUMNS}) VALUES
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
          $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33)"
    )))
    .bind(&a.municipality)
    .bind(i64::from(a.number))
    .bind(&a.client_key)
    .bind(&a.agb_code)
    .bind(a.law.code())
    .bind(&a.segment_code)
    .bind(&a.subsegment_code)
    .bind(&a.product_category)
    .bind(&a.product_code)
    .bind(a.period.start())
    .bind(a.period.end())
    .bind(variant)
    .bind(volume)
    .bind(unit)
    .bind(frequency)
    .bind(budget)
    .bind(a.status.code())
    .bind(a.assigned_on)
    .bind(&a.change_reason)
    .bind(a.started_on)
    .bind(a.stopped_on)
    .bind(&a.end_reason)
    .bind(a.withdrawn_on)
    .bind(a.valid_until)
    .bind(&a.choice_reason)
    .bind(a.origin.code())
    .bind(&a.granted_product_id)
    .bind(a.granted_version.and_then(|v| i32::try_from(v).ok()))
    .bind(i32::try_from(a.product_version).unwrap_or(i32::MAX))
    .bind(&a.preferred_agb)
    .bind(a.request_id)
    .bind(a.replaces_number.map(i64::from))
    .bind(a.replaced_by_number.map(i64::from))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores what the transitions of an assignment may change.
pub async fn update_assignment(tx: &mut PgConnection, a: &Assignment) -> Result<(), sqlx::Error> {
    let (variant, volume, unit, frequency, budget) = extent_columns(&a.extent);
    sqlx::query(
        "UPDATE assignments SET end_date = $3, execution_variant = $4, volume = $5, unit = $6,
            frequency = $7, budget_cents = $8, status = $9, change_reason = $10, started_on = $11,
            stopped_on = $12, end_reason = $13, withdrawn_on = $14, valid_until = $15,
            product_version = $16, replaced_by_number = $17, updated_at = now()
         WHERE municipality = $1 AND number = $2",
    )
    .bind(&a.municipality)
    .bind(i64::from(a.number))
    .bind(a.period.end())
    .bind(variant)
    .bind(volume)
    .bind(unit)
    .bind(frequency)
    .bind(budget)
    .bind(a.status.code())
    .bind(&a.change_reason)
    .bind(a.started_on)
    .bind(a.stopped_on)
    .bind(&a.end_reason)
    .bind(a.withdrawn_on)
    .bind(a.valid_until)
    .bind(i32::try_from(a.product_version).unwrap_or(i32::MAX))
    .bind(a.replaced_by_number.map(i64::from))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Loads an assignment; `for_update` locks it for the rest of the transaction.
pub async fn load_assignment(
    conn: &mut PgConnection,
    municipality: &str,
    number: u32,
    for_update: bool,
) -> Result<Option<Assignment>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE municipality = $1 AND number = $2{lock}"
    )))
    .bind(municipality)
    .bind(i64::from(number))
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(assignment_from_row).transpose()
}

#[derive(Debug, Default, Clone)]
pub struct AssignmentFilter {
    pub municipality: Option<String>,
    pub agb_code: Option<String>,
    pub client_key: Option<String>,
    pub status: Option<Status>,
    pub granted_product_id: Option<String>,
}

pub async fn list_assignments(
    conn: &mut PgConnection,
    f: &AssignmentFilter,
) -> Result<Vec<Assignment>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments
         WHERE ($1::text IS NULL OR municipality = $1)
           AND ($2::text IS NULL OR agb_code = $2)
           AND ($3::text IS NULL OR client_key = $3)
           AND ($4::text IS NULL OR status = $4)
           AND ($5::text IS NULL OR granted_product_id = $5)
         ORDER BY municipality, number"
    )))
    .bind(&f.municipality)
    .bind(&f.agb_code)
    .bind(&f.client_key)
    .bind(f.status.map(Status::code))
    .bind(&f.granted_product_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

/// An assignment of the client for the subsegment whose validity overlaps `start..=end` (stacking),
/// leaving out `except` (the assignment a handover replaces).
pub async fn overlapping(
    conn: &mut PgConnection,
    municipality: &str,
    client_key: &str,
    subsegment: &str,
    period: &Period,
    except: Option<u32>,
) -> Result<Option<Assignment>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments
         WHERE municipality = $1 AND client_key = $2 AND subsegment_code = $3
           AND (valid_until IS NULL OR valid_until >= start_date)
           AND start_date <= COALESCE($5::date, 'infinity'::date)
           AND COALESCE(valid_until, 'infinity'::date) >= $4
           AND ($6::bigint IS NULL OR number <> $6)
         ORDER BY number LIMIT 1"
    )))
    .bind(municipality)
    .bind(client_key)
    .bind(subsegment)
    .bind(period.start())
    .bind(period.end())
    .bind(except.map(i64::from))
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(assignment_from_row).transpose()
}

/// Active (issued or started, and still valid on `on`) assignments per provider for a subsegment
/// in a municipality.
pub async fn caseloads(
    conn: &mut PgConnection,
    municipality: &str,
    subsegment: &str,
    on: NaiveDate,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT agb_code, count(*) FROM assignments
         WHERE municipality = $1 AND subsegment_code = $2 AND active
           AND (valid_until IS NULL OR valid_until >= $3)
         GROUP BY agb_code",
    )
    .bind(municipality)
    .bind(subsegment)
    .bind(on)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Whether the granted product (in this version) was assigned or recorded as not assigned.
pub async fn decision_handled(
    conn: &mut PgConnection,
    product_id: &str,
    version: u32,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM assignments WHERE origin = 'decision' AND granted_product_id = $1 AND granted_version = $2)
             OR EXISTS (SELECT 1 FROM unassigned_products WHERE granted_product_id = $1 AND granted_version = $2)",
    )
    .bind(product_id)
    .bind(i32::try_from(version).unwrap_or(i32::MAX))
    .fetch_one(conn)
    .await
}

/// Whether anything was recorded for a granted product (any version).
pub async fn product_known(conn: &mut PgConnection, product_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM assignments WHERE granted_product_id = $1)
             OR EXISTS (SELECT 1 FROM unassigned_products WHERE granted_product_id = $1)",
    )
    .bind(product_id)
    .fetch_one(conn)
    .await
}

/// The active assignments of a granted product, locked, oldest first.
pub async fn active_for_product(
    tx: &mut PgConnection,
    product_id: &str,
) -> Result<Vec<Assignment>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments
         WHERE granted_product_id = $1 AND status IN ('issued', 'started')
         ORDER BY municipality, number FOR UPDATE"
    )))
    .bind(product_id)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

/// The handover's work list: the next `limit` active assignments whose validity reaches `as_of`,
/// in `(municipality, number)` order after `after` (from the start with `None`). A run reads them
/// page by page, so it never holds every active assignment at once.
pub async fn handover_candidates(
    conn: &mut PgConnection,
    as_of: NaiveDate,
    municipality: Option<&str>,
    after: Option<(&str, i64)>,
    limit: i64,
) -> Result<Vec<Assignment>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments
         WHERE status IN ('issued', 'started')
           AND (valid_until IS NULL OR valid_until >= $1)
           AND ($2::text IS NULL OR municipality = $2)
           AND ($3::text IS NULL OR (municipality, number) > ($3, $4))
         ORDER BY municipality, number
         LIMIT $5"
    )))
    .bind(as_of)
    .bind(municipality)
    .bind(after.map(|(m, _)| m))
    .bind(after.map(|(_, n)| n).unwrap_or(0))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

/// Handed-over assignments: (municipality, segment, status of the replacement, whether the
/// replacement's care started).
pub async fn replacements(
    conn: &mut PgConnection,
) -> Result<Vec<(String, String, Status, bool)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.municipality, o.segment_code, n.status, n.started_on IS NOT NULL FROM assignments o
         JOIN assignments n ON n.municipality = o.municipality AND n.number = o.replaced_by_number
         ORDER BY 1, 2",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get(2)?;
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                Status::from_code(&status).ok_or_else(|| decode_err("status", &status))?,
                r.try_get(3)?,
            ))
        })
        .collect()
}

/// Active assignments still valid on `today` without a replacement, counted per (municipality,
/// segment, subsegment, provider).
pub async fn unreplaced_active(
    conn: &mut PgConnection,
    today: NaiveDate,
) -> Result<Vec<(String, String, String, String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT municipality, segment_code, subsegment_code, agb_code, count(*) FROM assignments
         WHERE status IN ('issued', 'started') AND replaced_by_number IS NULL
           AND (valid_until IS NULL OR valid_until >= $1)
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    )
    .bind(today)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}

// --- not assigned ---

/// A granted product that could not be assigned, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unassigned {
    pub granted_product_id: String,
    pub granted_version: u32,
    pub municipality: String,
    pub client_key: String,
    pub law: Law,
    pub segment_code: String,
    pub subsegment_code: String,
    pub period: Period,
    /// `no_contracted_provider` | `stacking`
    pub reason_code: String,
    pub reason: String,
    pub decided_on: NaiveDate,
}

pub async fn insert_unassigned(tx: &mut PgConnection, u: &Unassigned) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO unassigned_products (granted_product_id, granted_version, municipality, client_key,
            law, segment_code, subsegment_code, start_date, end_date, reason_code, reason, decided_on)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING",
    )
    .bind(&u.granted_product_id)
    .bind(i32::try_from(u.granted_version).unwrap_or(i32::MAX))
    .bind(&u.municipality)
    .bind(&u.client_key)
    .bind(u.law.code())
    .bind(&u.segment_code)
    .bind(&u.subsegment_code)
    .bind(u.period.start())
    .bind(u.period.end())
    .bind(&u.reason_code)
    .bind(&u.reason)
    .bind(u.decided_on)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn list_unassigned(
    conn: &mut PgConnection,
    municipality: Option<&str>,
) -> Result<Vec<Unassigned>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT granted_product_id, granted_version, municipality, client_key, law, segment_code,
                subsegment_code, start_date, end_date, reason_code, reason, decided_on
         FROM unassigned_products WHERE ($1::text IS NULL OR municipality = $1)
         ORDER BY municipality, decided_on, granted_product_id",
    )
    .bind(municipality)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let law: String = r.try_get("law")?;
            let start: NaiveDate = r.try_get("start_date")?;
            Ok(Unassigned {
                granted_product_id: r.try_get("granted_product_id")?,
                granted_version: u32::try_from(r.try_get::<i32, _>("granted_version")?)
                    .unwrap_or(0),
                municipality: r.try_get("municipality")?,
                client_key: r.try_get("client_key")?,
                law: Law::from_code(&law).map_err(|_| decode_err("law", &law))?,
                segment_code: r.try_get("segment_code")?,
                subsegment_code: r.try_get("subsegment_code")?,
                period: Period::new(start, r.try_get("end_date")?)
                    .map_err(|_| decode_err("period", &start.to_string()))?,
                reason_code: r.try_get("reason_code")?,
                reason: r.try_get("reason")?,
                decided_on: r.try_get("decided_on")?,
            })
        })
        .collect()
}

// --- provider requests ---

const REQUEST_COLUMNS: &str = "id, kind, municipality, agb_code, client_key, subsegment_code,
    assignment_number, product_code, start_date, end_date, execution_variant, volume, unit, frequency,
    budget_cents, request_reason, referrer_type, referrer_name, referrer_agb, status, received_on,
    answer_due, answered_on, refusal_reason, resulting_assignment_number";

fn request_from_row(row: &PgRow) -> Result<ProviderRequest, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let kind = RequestKind::from_code(&kind).ok_or_else(|| decode_err("kind", &kind))?;
    let status: String = row.try_get("status")?;
    let start: Option<NaiveDate> = row.try_get("start_date")?;
    let end: Option<NaiveDate> = row.try_get("end_date")?;
    let variant: Option<String> = row.try_get("execution_variant")?;
    let extent = match variant {
        None => None,
        Some(v) => Some(extent_from_parts(
            ExecutionVariant::from_code(&v).map_err(|_| decode_err("execution variant", &v))?,
            row.try_get("volume")?,
            row.try_get("unit")?,
            row.try_get("frequency")?,
            row.try_get("budget_cents")?,
        )?),
    };
    let referrer_type: Option<String> = row.try_get("referrer_type")?;
    let (period, new_end) = match (kind, start) {
        (RequestKind::Assignment, Some(s)) => (
            Some(Period::new(s, end).map_err(|_| decode_err("period", &s.to_string()))?),
            None,
        ),
        _ => (None, end),
    };
    Ok(ProviderRequest {
        id: row.try_get("id")?,
        kind,
        municipality: row.try_get("municipality")?,
        agb_code: row.try_get("agb_code")?,
        client_key: row.try_get("client_key")?,
        subsegment_code: row.try_get("subsegment_code")?,
        assignment_number: opt_number(row.try_get("assignment_number")?)?,
        product_code: row.try_get("product_code")?,
        period,
        new_end,
        extent,
        request_reason: row.try_get("request_reason")?,
        referrer: match referrer_type {
            Some(kind) => Some(ReferrerInfo {
                kind,
                name: row.try_get("referrer_name")?,
                agb_code: row.try_get("referrer_agb")?,
            }),
            None => None,
        },
        status: RequestStatus::from_code(&status).ok_or_else(|| decode_err("status", &status))?,
        received_on: row.try_get("received_on")?,
        answer_due: row.try_get("answer_due")?,
        answered_on: row.try_get("answered_on")?,
        refusal_reason: row.try_get("refusal_reason")?,
        resulting_assignment_number: opt_number(row.try_get("resulting_assignment_number")?)?,
    })
}

/// Inserts a request; `Ok(false)` when another request is open for the same client and subsegment
/// (315) or the same assignment (317).
pub async fn insert_request(
    tx: &mut PgConnection,
    r: &ProviderRequest,
) -> Result<bool, sqlx::Error> {
    let (variant, volume, unit, frequency, budget) = match &r.extent {
        Some(e) => {
            let (v, vol, u, f, b) = extent_columns(e);
            (Some(v), vol, u, f, b)
        }
        None => (None, None, None, None, None),
    };
    let (start, end) = match (&r.period, r.new_end) {
        (Some(p), _) => (Some(p.start()), p.end()),
        (None, end) => (None, end),
    };
    let referrer = r.referrer.clone().unwrap_or_default();
    let result = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO provider_requests ({REQUEST_COLUMNS}) VALUES
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
          $21, $22, $23, $24, $25)"
    )))
    .bind(r.id)
    .bind(r.kind.code())
    .bind(&r.municipality)
    .bind(&r.agb_code)
    .bind(&r.client_key)
    .bind(&r.subsegment_code)
    .bind(r.assignment_number.map(i64::from))
    .bind(&r.product_code)
    .bind(start)
    .bind(end)
    .bind(variant)
    .bind(volume)
    .bind(unit)
    .bind(frequency)
    .bind(budget)
    .bind(&r.request_reason)
    .bind(r.referrer.as_ref().map(|x| x.kind.clone()))
    .bind(&referrer.name)
    .bind(&referrer.agb_code)
    .bind(r.status.code())
    .bind(r.received_on)
    .bind(r.answer_due)
    .bind(r.answered_on)
    .bind(&r.refusal_reason)
    .bind(r.resulting_assignment_number.map(i64::from))
    .execute(&mut *tx)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_database_error().is_some_and(|d| {
                d.code().is_some_and(|c| c == "23505")
                    && d.constraint().is_some_and(|c| c.contains("one_open"))
            }) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

pub async fn update_request(tx: &mut PgConnection, r: &ProviderRequest) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provider_requests SET status = $2, answered_on = $3, refusal_reason = $4,
            resulting_assignment_number = $5 WHERE id = $1",
    )
    .bind(r.id)
    .bind(r.status.code())
    .bind(r.answered_on)
    .bind(&r.refusal_reason)
    .bind(r.resulting_assignment_number.map(i64::from))
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn load_request(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<ProviderRequest>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM provider_requests WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(request_from_row).transpose()
}

/// The open request for the same client and subsegment (315) or the same assignment (317).
pub async fn open_request_like(
    conn: &mut PgConnection,
    r: &ProviderRequest,
) -> Result<Option<ProviderRequest>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM provider_requests
         WHERE status = 'open' AND kind = $1 AND municipality = $2
           AND (($1 = 'assignment' AND client_key = $3 AND subsegment_code = $4)
             OR ($1 = 'change' AND assignment_number = $5))
         LIMIT 1"
    )))
    .bind(r.kind.code())
    .bind(&r.municipality)
    .bind(&r.client_key)
    .bind(&r.subsegment_code)
    .bind(r.assignment_number.map(i64::from))
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(request_from_row).transpose()
}

pub async fn open_requests(
    conn: &mut PgConnection,
    municipality: Option<&str>,
) -> Result<Vec<ProviderRequest>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM provider_requests
         WHERE status = 'open' AND ($1::text IS NULL OR municipality = $1)
         ORDER BY answer_due, municipality, id"
    )))
    .bind(municipality)
    .fetch_all(conn)
    .await?;
    rows.iter().map(request_from_row).collect()
}

// --- client identities ---

pub async fn save_identity(
    tx: &mut PgConnection,
    municipality: &str,
    client_key: &str,
    bsn: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_identities (municipality, client_key, bsn) VALUES ($1, $2, $3)
         ON CONFLICT (municipality, client_key) DO UPDATE SET bsn = EXCLUDED.bsn",
    )
    .bind(municipality)
    .bind(client_key)
    .bind(bsn)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn identity(
    conn: &mut PgConnection,
    municipality: &str,
    client_key: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT bsn FROM client_identities WHERE municipality = $1 AND client_key = $2",
    )
    .bind(municipality)
    .bind(client_key)
    .fetch_optional(conn)
    .await
}

// --- the standard's messages (XML) ---

/// The next message number of `municipality` (BerichtIdentificatie: the number in decimal), from
/// its sequence (no lock held; gaps where a transaction rolled back).
pub async fn next_message_number(
    tx: &mut PgConnection,
    municipality: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT next_municipality_number('message', $1)")
        .bind(municipality)
        .fetch_one(&mut *tx)
        .await
}

/// Records a message to a provider (`kind`: `assignment` or `answer`) with its payload.
pub async fn record_provider_message(
    tx: &mut PgConnection,
    municipality: &str,
    agb_code: &str,
    kind: &str,
    payload: &[u8],
    date: NaiveDate,
) -> Result<String, sqlx::Error> {
    let seq = next_message_number(tx, municipality).await?;
    let id = seq.to_string();
    sqlx::query(
        "INSERT INTO provider_messages (municipality, message_id, seq, agb_code, kind, payload, message_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(municipality)
    .bind(&id)
    .bind(seq)
    .bind(agb_code)
    .bind(kind)
    .bind(payload)
    .bind(date)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// A recorded message to a provider.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub municipality: String,
    pub message_id: String,
    pub kind: String,
    pub payload: Vec<u8>,
    pub message_date: NaiveDate,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn list_provider_messages(
    conn: &mut PgConnection,
    agb_code: &str,
    municipality: Option<&str>,
    since: Option<NaiveDate>,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT municipality, message_id, kind, payload, message_date, created_at
         FROM provider_messages
         WHERE agb_code = $1 AND ($2::text IS NULL OR municipality = $2)
           AND ($3::date IS NULL OR message_date >= $3)
         ORDER BY municipality, seq",
    )
    .bind(agb_code)
    .bind(municipality)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredMessage {
                municipality: r.try_get("municipality")?,
                message_id: r.try_get("message_id")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                message_date: r.try_get("message_date")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Keeps the ReferentieAanbieder of a request received as XML.
pub async fn save_request_reference(
    conn: &mut PgConnection,
    request_id: Uuid,
    reference: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO request_references (request_id, reference) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(request_id)
    .bind(reference)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn request_reference(
    conn: &mut PgConnection,
    request_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT reference FROM request_references WHERE request_id = $1")
        .bind(request_id)
        .fetch_optional(&mut *conn)
        .await
}
