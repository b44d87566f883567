//! Staff alerts: the deadlines the scans saw, opened, escalated and resolved per scope.

use chrono::{DateTime, NaiveDate, Utc};
use rz_domain::GemeenteCode;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};
use uuid::Uuid;

/// A deadline as a scan saw it.
#[derive(Debug, Clone)]
pub struct SeenDeadline {
    pub key: String,
    pub municipality: String,
    pub kind: String,
    pub due: NaiveDate,
    pub overdue: bool,
    pub client_key: Option<String>,
    pub case_id: Option<Uuid>,
    pub agb_code: Option<String>,
    pub assignment_number: Option<i64>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertCounts {
    pub opened: u32,
    pub overdue: u32,
    pub resolved: u32,
}

/// Applies one source's scan of one scope (`municipality` = None: every municipality) for
/// `as_of`: upserts what it saw, and resolves the open alerts of that scope that it no longer
/// lists although their due date lies within the scanned window (`due <= window_end`). One
/// transaction under an advisory lock per source and scope, so replicas scanning at once apply
/// their scans one after the other.
pub async fn apply_alert_scan(
    pool: &PgPool,
    source: &str,
    municipality: Option<&str>,
    as_of: NaiveDate,
    window_end: NaiveDate,
    seen: &[SeenDeadline],
) -> Result<AlertCounts, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let scope = format!("staff_alerts/{source}/{}", municipality.unwrap_or("*"));
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&scope)
        .execute(&mut *tx)
        .await?;
    let mut counts = AlertCounts::default();
    for d in seen {
        let state = if d.overdue { "overdue" } else { "upcoming" };
        // previous state: NULL for a new row.
        let previous: Option<Option<String>> = sqlx::query_scalar(
            "WITH old AS (SELECT state FROM staff_alerts WHERE key = $2)
             INSERT INTO staff_alerts (id, key, source, municipality, kind, state, due, client_key,
                                       case_id, agb_code, assignment_number, request_id,
                                       overdue_at, last_scanned_on)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                     CASE WHEN $6 = 'overdue' THEN now() END, $13)
             ON CONFLICT (key) DO UPDATE SET
                 state = EXCLUDED.state,
                 due = EXCLUDED.due,
                 last_scanned_on = EXCLUDED.last_scanned_on,
                 opened_at = CASE WHEN staff_alerts.state = 'resolved' THEN now()
                                  ELSE staff_alerts.opened_at END,
                 overdue_at = CASE WHEN EXCLUDED.state = 'overdue'
                                   THEN coalesce(staff_alerts.overdue_at, now()) END,
                 resolved_at = NULL
             RETURNING (SELECT state FROM old)",
        )
        .bind(Uuid::now_v7())
        .bind(&d.key)
        .bind(source)
        .bind(&d.municipality)
        .bind(&d.kind)
        .bind(state)
        .bind(d.due)
        .bind(&d.client_key)
        .bind(d.case_id)
        .bind(&d.agb_code)
        .bind(d.assignment_number)
        .bind(&d.request_id)
        .bind(as_of)
        .fetch_optional(&mut *tx)
        .await?;
        let previous = previous.flatten();
        match (previous.as_deref(), state) {
            (None | Some("resolved"), _) => {
                counts.opened += 1;
                if state == "overdue" {
                    counts.overdue += 1;
                }
            }
            (Some("upcoming"), "overdue") => counts.overdue += 1,
            _ => {}
        }
    }
    let keys: Vec<&str> = seen.iter().map(|d| d.key.as_str()).collect();
    let resolved = sqlx::query(
        "UPDATE staff_alerts SET state = 'resolved', resolved_at = now(), last_scanned_on = $4
         WHERE source = $1 AND ($2::text IS NULL OR municipality = $2) AND state <> 'resolved'
           AND due <= $3 AND NOT (key = ANY($5))",
    )
    .bind(source)
    .bind(municipality)
    .bind(window_end)
    .bind(as_of)
    .bind(&keys)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    counts.resolved = u32::try_from(resolved).unwrap_or(u32::MAX);
    tx.commit().await?;
    Ok(counts)
}

#[derive(Debug, Clone)]
pub struct AlertRow {
    pub id: Uuid,
    pub key: String,
    pub municipality: String,
    pub kind: String,
    pub state: String,
    pub due: NaiveDate,
    pub client_key: Option<String>,
    pub case_id: Option<Uuid>,
    pub agb_code: Option<String>,
    pub assignment_number: Option<i64>,
    pub request_id: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub overdue_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub last_scanned_on: NaiveDate,
}

impl<'r> FromRow<'r, PgRow> for AlertRow {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            key: r.try_get("key")?,
            municipality: r.try_get("municipality")?,
            kind: r.try_get("kind")?,
            state: r.try_get("state")?,
            due: r.try_get("due")?,
            client_key: r.try_get("client_key")?,
            case_id: r.try_get("case_id")?,
            agb_code: r.try_get("agb_code")?,
            assignment_number: r.try_get("assignment_number")?,
            request_id: r.try_get("request_id")?,
            opened_at: r.try_get("opened_at")?,
            overdue_at: r.try_get("overdue_at")?,
            resolved_at: r.try_get("resolved_at")?,
            last_scanned_on: r.try_get("last_scanned_on")?,
        })
    }
}

/// A municipality's alerts, optionally in `states`, soonest due first.
pub async fn staff_alerts(
    pool: &PgPool,
    municipality: &GemeenteCode,
    states: &[&str],
    limit: i64,
) -> Result<Vec<AlertRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM staff_alerts
         WHERE municipality = $1 AND (cardinality($2::text[]) = 0 OR state = ANY($2))
         ORDER BY due, key LIMIT $3",
    )
    .bind(municipality.as_str())
    .bind(states)
    .bind(limit)
    .fetch_all(pool)
    .await
}
