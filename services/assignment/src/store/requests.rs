//! Providers' requests (315 for an assignment, 317 for a change) and their answers.

use chrono::NaiveDate;
use rz_domain::{AgbCode, ClientKey, ExecutionVariant, GemeenteCode, Period};
use rz_platform::db::InsertRow;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

use crate::domain::{ProviderRequest, ReferrerInfo, RequestKind, RequestStatus};

use super::extent::{extent_columns, extent_from_parts};
use super::{decode_err, opt_number, parsed};

/// The columns a request is loaded from.
const REQUEST_COLUMNS: &str = "id, kind, municipality, agb_code, client_key, subsegment_code,
    assignment_number, product_code, start_date, end_date, execution_variant, volume, unit, frequency,
    budget_cents, request_reason, referrer_type, referrer_name, referrer_agb, status, received_on,
    answer_due, answered_on, refusal_reason, resulting_assignment_number";

/// A request from its row (the columns of `REQUEST_COLUMNS`, read by name): one reading for
/// every query that loads requests.
impl<'r> FromRow<'r, PgRow> for ProviderRequest {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
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
            municipality: parsed(row, "municipality", GemeenteCode::parse)?,
            agb_code: parsed(row, "agb_code", AgbCode::parse)?,
            client_key: parsed(row, "client_key", ClientKey::parse)?,
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
                    agb_code: referrer_agb(row)?,
                }),
                None => None,
            },
            status: RequestStatus::from_code(&status)
                .ok_or_else(|| decode_err("status", &status))?,
            received_on: row.try_get("received_on")?,
            answer_due: row.try_get("answer_due")?,
            answered_on: row.try_get("answered_on")?,
            refusal_reason: row.try_get("refusal_reason")?,
            resulting_assignment_number: opt_number(row.try_get("resulting_assignment_number")?)?,
        })
    }
}

/// The referrer's AGB code: empty (or NULL) when none was given.
fn referrer_agb(row: &PgRow) -> Result<Option<AgbCode>, sqlx::Error> {
    match row.try_get::<Option<String>, _>("referrer_agb")? {
        Some(v) if !v.is_empty() => AgbCode::parse(&v)
            .map(Some)
            .map_err(|_| decode_err("referrer_agb", &v)),
        _ => Ok(None),
    }
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
    let result = InsertRow::new("provider_requests")
        .value("id", r.id)
        .value("kind", r.kind.code())
        .value("municipality", r.municipality.as_str())
        .value("agb_code", r.agb_code.as_str())
        .value("client_key", r.client_key.as_str())
        .value("subsegment_code", &r.subsegment_code)
        .value("assignment_number", r.assignment_number.map(i64::from))
        .value("product_code", &r.product_code)
        .value("start_date", start)
        .value("end_date", end)
        .value("execution_variant", variant)
        .value("volume", volume)
        .value("unit", unit)
        .value("frequency", frequency)
        .value("budget_cents", budget)
        .value("request_reason", &r.request_reason)
        .value("referrer_type", r.referrer.as_ref().map(|x| x.kind.clone()))
        .value("referrer_name", &referrer.name)
        .value(
            "referrer_agb",
            referrer.agb_code.as_ref().map_or("", AgbCode::as_str),
        )
        .value("status", r.status.code())
        .value("received_on", r.received_on)
        .value("answer_due", r.answer_due)
        .value("answered_on", r.answered_on)
        .value("refusal_reason", &r.refusal_reason)
        .value(
            "resulting_assignment_number",
            r.resulting_assignment_number.map(i64::from),
        )
        .query("")?
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
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM provider_requests WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The open request for the same client and subsegment (315) or the same assignment (317).
pub async fn open_request_like(
    conn: &mut PgConnection,
    r: &ProviderRequest,
) -> Result<Option<ProviderRequest>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM provider_requests
         WHERE status = 'open' AND kind = $1 AND municipality = $2
           AND (($1 = 'assignment' AND client_key = $3 AND subsegment_code = $4)
             OR ($1 = 'change' AND assignment_number = $5))
         LIMIT 1"
    )))
    .bind(r.kind.code())
    .bind(r.municipality.as_str())
    .bind(r.client_key.as_str())
    .bind(&r.subsegment_code)
    .bind(r.assignment_number.map(i64::from))
    .fetch_optional(conn)
    .await
}

pub async fn open_requests(
    conn: &mut PgConnection,
    municipality: Option<&GemeenteCode>,
) -> Result<Vec<ProviderRequest>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REQUEST_COLUMNS} FROM provider_requests
         WHERE status = 'open' AND ($1::text IS NULL OR municipality = $1)
         ORDER BY answer_due, municipality, id"
    )))
    .bind(municipality.map(GemeenteCode::as_str))
    .fetch_all(conn)
    .await
}
