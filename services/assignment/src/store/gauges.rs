//! What the metrics sample (see [`crate::metrics`]): one statement per gauge, each through a
//! partial index, grouped by municipality.

use chrono::NaiveDate;
use sqlx::PgPool;

/// Per municipality: (municipality, open, of those overdue).
pub type OpenOverdue = Vec<(String, i64, i64)>;

/// Issued assignments (their start of care not reported yet) per municipality, and of those the
/// ones that started on or before `overdue_if_started_by` (whose 5 working days have passed).
/// Through the partial index `assignments_caseload_active` (`WHERE active`): no index names
/// `status = 'issued'`, so that reporting a start stays a HOT update.
pub async fn start_of_care_deadlines(
    pool: &PgPool,
    overdue_if_started_by: NaiveDate,
) -> Result<OpenOverdue, sqlx::Error> {
    sqlx::query_as(
        "SELECT municipality, count(*), count(*) FILTER (WHERE start_date <= $1)
         FROM assignments WHERE active AND status = 'issued'
         GROUP BY municipality",
    )
    .bind(overdue_if_started_by)
    .fetch_all(pool)
    .await
}

/// Open provider requests (315/317) per municipality, and of those the ones whose answer was due
/// before `today`. An index-only scan of `provider_requests_open`.
pub async fn request_answer_deadlines(
    pool: &PgPool,
    today: NaiveDate,
) -> Result<OpenOverdue, sqlx::Error> {
    sqlx::query_as(
        "SELECT municipality, count(*), count(*) FILTER (WHERE answer_due < $1)
         FROM provider_requests WHERE status = 'open'
         GROUP BY municipality",
    )
    .bind(today)
    .fetch_all(pool)
    .await
}

/// The handover's replacements (not withdrawn) per municipality: (municipality, care not
/// started yet, care started). Through the partial index `assignments_handover`.
pub async fn handover_replacements(pool: &PgPool) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT municipality, count(*) FILTER (WHERE started_on IS NULL),
                count(*) FILTER (WHERE started_on IS NOT NULL)
         FROM assignments WHERE origin = 'handover' AND status <> 'withdrawn'
         GROUP BY municipality",
    )
    .fetch_all(pool)
    .await
}
