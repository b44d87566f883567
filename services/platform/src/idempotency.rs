//! Client-chosen idempotency keys for create commands: the first request with a key claims it in
//! the command's transaction; the same request again gets what it created; a different request
//! under a used key is refused. Each service keeps the `idempotency_keys` table in its own
//! database (see registration's migration).

use sqlx::{PgConnection, Row};

pub enum Claim {
    /// The key is new and now belongs to this request.
    New,
    /// The same request was made before; this is what it created.
    Replay(String),
    /// The key was used for a different request.
    Conflict,
}

/// Claims an idempotency key for a create command, in the command's transaction.
pub async fn claim_key(
    tx: &mut PgConnection,
    key: &str,
    operation: &str,
    fingerprint: &str,
    resource_id: &str,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (key, operation, fingerprint, resource_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(operation)
    .bind(fingerprint)
    .bind(resource_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let row = sqlx::query(
        "SELECT operation, fingerprint, resource_id FROM idempotency_keys WHERE key = $1",
    )
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    let same = row.try_get::<String, _>("operation")? == operation
        && row.try_get::<String, _>("fingerprint")? == fingerprint;
    Ok(if same {
        Claim::Replay(row.try_get("resource_id")?)
    } else {
        Claim::Conflict
    })
}
