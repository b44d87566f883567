//! Assignments: written, changed, loaded and listed; caseloads and the handover's lists.

use chrono::NaiveDate;
use rz_domain::{AgbCode, ClientKey, GemeenteCode, Law, Period};
use rz_platform::db::InsertRow;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};

use crate::domain::{Assignment, Origin, Status};

use super::extent::{extent_columns, extent_from_row};
use super::{decode_err, number, opt_number, parsed};

/// The columns an assignment is loaded from.
const ASSIGNMENT_COLUMNS: &str = "municipality, number, client_key, agb_code, law, segment_code, subsegment_code,
    product_category, product_code, start_date, end_date, execution_variant, volume, unit, frequency,
    budget_cents, status, assigned_on, change_reason, started_on, stopped_on, end_reason, withdrawn_on,
    valid_until, choice_reason, origin, granted_product_id, granted_version, product_version,
    preferred_agb, request_id, replaces_number, replaced_by_number";

/// An assignment from its row (the columns of `ASSIGNMENT_COLUMNS`, read by name): one reading
/// for every query that loads assignments.
impl<'r> FromRow<'r, PgRow> for Assignment {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let law: String = row.try_get("law")?;
        let status: String = row.try_get("status")?;
        let origin: String = row.try_get("origin")?;
        let start: NaiveDate = row.try_get("start_date")?;
        let end: Option<NaiveDate> = row.try_get("end_date")?;
        let version = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
        Ok(Assignment {
            municipality: parsed(row, "municipality", GemeenteCode::parse)?,
            number: number(row.try_get("number")?)?,
            client_key: parsed(row, "client_key", ClientKey::parse)?,
            agb_code: parsed(row, "agb_code", AgbCode::parse)?,
            law: Law::from_code(&law).map_err(|_| decode_err("law", &law))?,
            segment_code: row.try_get("segment_code")?,
            subsegment_code: row.try_get("subsegment_code")?,
            product_category: row.try_get("product_category")?,
            product_code: row.try_get("product_code")?,
            period: Period::new(start, end)
                .map_err(|_| decode_err("period", &start.to_string()))?,
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
}

pub async fn insert_assignment(tx: &mut PgConnection, a: &Assignment) -> Result<(), sqlx::Error> {
    insert_assignments(tx, &[a]).await
}

/// Stores new assignments with one statement (at most 1,000: 33 values a row).
pub async fn insert_assignments(
    tx: &mut PgConnection,
    list: &[&Assignment],
) -> Result<(), sqlx::Error> {
    let mut insert = InsertRow::new("assignments");
    for (i, a) in list.iter().enumerate() {
        if i > 0 {
            insert = insert.next_row();
        }
        insert = assignment_row(insert, a);
    }
    insert.query("")?.execute(&mut *tx).await?;
    Ok(())
}

/// The values of a new assignment's row.
fn assignment_row(row: InsertRow, a: &Assignment) -> InsertRow {
    let (variant, volume, unit, frequency, budget) = extent_columns(&a.extent);
    row.value("municipality", a.municipality.as_str())
        .value("number", i64::from(a.number))
        .value("client_key", a.client_key.as_str())
        .value("agb_code", a.agb_code.as_str())
        .value("law", a.law.code())
        .value("segment_code", &a.segment_code)
        .value("subsegment_code", &a.subsegment_code)
        .value("product_category", &a.product_category)
        .value("product_code", &a.product_code)
        .value("start_date", a.period.start())
        .value("end_date", a.period.end())
        .value("execution_variant", variant)
        .value("volume", volume)
        .value("unit", unit)
        .value("frequency", frequency)
        .value("budget_cents", budget)
        .value("status", a.status.code())
        .value("assigned_on", a.assigned_on)
        .value("change_reason", &a.change_reason)
        .value("started_on", a.started_on)
        .value("stopped_on", a.stopped_on)
        .value("end_reason", &a.end_reason)
        .value("withdrawn_on", a.withdrawn_on)
        .value("valid_until", a.valid_until)
        .value("choice_reason", &a.choice_reason)
        .value("origin", a.origin.code())
        .value("granted_product_id", &a.granted_product_id)
        .value(
            "granted_version",
            a.granted_version.and_then(|v| i32::try_from(v).ok()),
        )
        .value(
            "product_version",
            i32::try_from(a.product_version).unwrap_or(i32::MAX),
        )
        .value("preferred_agb", &a.preferred_agb)
        .value("request_id", a.request_id)
        .value("replaces_number", a.replaces_number.map(i64::from))
        .value("replaced_by_number", a.replaced_by_number.map(i64::from))
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
    .bind(a.municipality.as_str())
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
    municipality: &GemeenteCode,
    number: u32,
    for_update: bool,
) -> Result<Option<Assignment>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE municipality = $1 AND number = $2{lock}"
    )))
    .bind(municipality.as_str())
    .bind(i64::from(number))
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Default, Clone)]
pub struct AssignmentFilter {
    pub municipality: Option<GemeenteCode>,
    pub agb_code: Option<AgbCode>,
    pub client_key: Option<ClientKey>,
    pub status: Option<Status>,
    pub granted_product_id: Option<String>,
}

pub async fn list_assignments(
    conn: &mut PgConnection,
    f: &AssignmentFilter,
) -> Result<Vec<Assignment>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments
         WHERE ($1::text IS NULL OR municipality = $1)
           AND ($2::text IS NULL OR agb_code = $2)
           AND ($3::text IS NULL OR client_key = $3)
           AND ($4::text IS NULL OR status = $4)
           AND ($5::text IS NULL OR granted_product_id = $5)
         ORDER BY municipality, number"
    )))
    .bind(f.municipality.as_ref().map(GemeenteCode::as_str))
    .bind(f.agb_code.as_ref().map(AgbCode::as_str))
    .bind(f.client_key.as_ref().map(ClientKey::as_str))
    .bind(f.status.map(Status::code))
    .bind(&f.granted_product_id)
    .fetch_all(conn)
    .await
}

/// An assignment of the client for the subsegment whose validity overlaps `start..=end` (stacking),
/// leaving out `except` (the assignment a handover replaces).
pub async fn overlapping(
    conn: &mut PgConnection,
    municipality: &GemeenteCode,
    client_key: &ClientKey,
    subsegment: &str,
    period: &Period,
    except: Option<u32>,
) -> Result<Option<Assignment>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments
         WHERE municipality = $1 AND client_key = $2 AND subsegment_code = $3
           AND (valid_until IS NULL OR valid_until >= start_date)
           AND start_date <= COALESCE($5::date, 'infinity'::date)
           AND COALESCE(valid_until, 'infinity'::date) >= $4
           AND ($6::bigint IS NULL OR number <> $6)
         ORDER BY number LIMIT 1"
    )))
    .bind(municipality.as_str())
    .bind(client_key.as_str())
    .bind(subsegment)
    .bind(period.start())
    .bind(period.end())
    .bind(except.map(i64::from))
    .fetch_optional(conn)
    .await
}

/// Active (issued or started, and still valid on `on`) assignments per provider for a subsegment
/// in a municipality.
pub async fn caseloads(
    conn: &mut PgConnection,
    municipality: &GemeenteCode,
    subsegment: &str,
    on: NaiveDate,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT agb_code, count(*) FROM assignments
         WHERE municipality = $1 AND subsegment_code = $2 AND active
           AND (valid_until IS NULL OR valid_until >= $3)
         GROUP BY agb_code",
    )
    .bind(municipality.as_str())
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
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments
         WHERE granted_product_id = $1 AND status IN ('issued', 'started')
         ORDER BY municipality, number FOR UPDATE"
    )))
    .bind(product_id)
    .fetch_all(&mut *tx)
    .await
}

/// The handover's work list: the next `limit` active assignments whose validity reaches `as_of`,
/// in `(municipality, number)` order after `after` (from the start with `None`). A run reads them
/// page by page, so it never holds every active assignment at once.
pub async fn handover_candidates(
    conn: &mut PgConnection,
    as_of: NaiveDate,
    municipality: Option<&GemeenteCode>,
    after: Option<(&str, i64)>,
    limit: i64,
) -> Result<Vec<Assignment>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments
         WHERE status IN ('issued', 'started')
           AND (valid_until IS NULL OR valid_until >= $1)
           AND ($2::text IS NULL OR municipality = $2)
           AND ($3::text IS NULL OR (municipality, number) > ($3, $4))
         ORDER BY municipality, number
         LIMIT $5"
    )))
    .bind(as_of)
    .bind(municipality.map(GemeenteCode::as_str))
    .bind(after.map(|(m, _)| m))
    .bind(after.map(|(_, n)| n).unwrap_or(0))
    .bind(limit)
    .fetch_all(conn)
    .await
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
