//! What the two work queues share: a failed attempt scheduled for a retry.

use sqlx::PgPool;
use uuid::Uuid;

/// The two queues a worker claims from, sends and retries: webhook deliveries and letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Deliveries,
    Letters,
}

impl Queue {
    fn table(self) -> &'static str {
        match self {
            Self::Deliveries => "deliveries",
            Self::Letters => "letters",
        }
    }
}

/// Records a failed attempt of a claimed row and schedules the next one `delay_ms` from now.
/// `false`: the claim was lost (its lease expired and another worker took the row over).
pub async fn schedule_retry(
    pool: &PgPool,
    queue: Queue,
    id: Uuid,
    claim: Uuid,
    error: &str,
    delay_ms: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET attempts = attempts + 1, last_error = $3, claim = NULL,
                next_attempt_at = now() + make_interval(secs => $4::float8 / 1000)
         WHERE id = $1 AND claim = $2 AND status = 'pending'",
        queue.table()
    )))
    .bind(id)
    .bind(claim)
    .bind(error)
    .bind(delay_ms)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}
