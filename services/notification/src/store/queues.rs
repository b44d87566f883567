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

/// How long a claimed delivery or letter whose sealed body or text does not open (its key is not
/// in this replica's key file) waits for its next claim; a replica with the key may take it then.
pub(super) const UNOPENED_DELAY_MS: i64 = 60_000;

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

/// The size of a queue now (for the metrics): rows waiting for their first attempt, rows whose
/// attempt failed and that wait for the next, rows given up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueSize {
    pub pending: i64,
    pub retrying: i64,
    pub failed: i64,
    /// Seconds the oldest pending or retrying row has waited since it was queued (0 when none).
    pub oldest_pending_secs: f64,
}

/// One statement per queue: its pending rows through the partial index on `status = 'pending'`
/// (`deliveries_due`, `letters_due`) and its failed ones through the one on `status = 'failed'`
/// (`deliveries_failed`, `letters_failed`, an index-only count); delivered and sent rows are not
/// read.
async fn queue_size(pool: &PgPool, queue: Queue) -> Result<QueueSize, sqlx::Error> {
    let table = queue.table();
    let (pending, retrying, oldest, failed): (i64, i64, f64, i64) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT p.pending, p.retrying, p.oldest,
                    (SELECT count(*) FROM {table} WHERE status = 'failed')
             FROM (SELECT count(*) FILTER (WHERE attempts = 0) AS pending,
                          count(*) FILTER (WHERE attempts > 0) AS retrying,
                          COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) AS oldest
                   FROM {table} WHERE status = 'pending') p"
        )))
        .fetch_one(pool)
        .await?;
    Ok(QueueSize {
        pending,
        retrying,
        failed,
        oldest_pending_secs: oldest,
    })
}

/// The webhook deliveries' queue now.
pub async fn delivery_queue(pool: &PgPool) -> Result<QueueSize, sqlx::Error> {
    queue_size(pool, Queue::Deliveries).await
}

/// The letters' queue now.
pub async fn letter_queue(pool: &PgPool) -> Result<QueueSize, sqlx::Error> {
    queue_size(pool, Queue::Letters).await
}

/// Puts off a claimed row of `queue` whose sealed `what` (`body`, `text`) does not open, for
/// [`UNOPENED_DELAY_MS`], naming the reason (the key, never the content) in `last_error`. When
/// that cannot be recorded the lease expires and the row is claimed again.
pub(super) async fn put_off_unopened(
    pool: &PgPool,
    queue: Queue,
    id: Uuid,
    claim: Uuid,
    what: &str,
    error: &impl std::fmt::Display,
) {
    let why = format!("the {what} does not open: {error}");
    tracing::warn!(row = %id, queue = queue.table(), %error, "put off: its {what} does not open");
    if let Err(e) = schedule_retry(pool, queue, id, claim, &why, UNOPENED_DELAY_MS).await {
        tracing::warn!(row = %id, error = %e, "cannot put the row off");
    }
}
