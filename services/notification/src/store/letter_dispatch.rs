//! Letter dispatch: due letters claimed under a lease and their outcome recorded.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};
use uuid::Uuid;

use super::letters::text_aad;
use super::queues::{Queue, put_off_unopened};
use super::sealing;
use crate::secrets::{Keyring, Sealed};

/// A letter claimed by a dispatcher: what a channel needs to send it.
#[derive(Debug, Clone)]
pub struct StoredLetter {
    pub id: Uuid,
    /// Held by this claim until the outcome is written (or the lease expires).
    pub claim: Uuid,
    pub kind: String,
    pub municipality: String,
    pub client_key: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
    /// Attempts before this one.
    pub attempts: i32,
}

/// A claimed letter as it is stored: the text still sealed (or in plaintext, before migration 107).
struct RawStoredLetter {
    letter: StoredLetter,
    plain: Option<String>,
    sealed: Option<Sealed>,
}

impl<'r> FromRow<'r, PgRow> for RawStoredLetter {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            letter: StoredLetter {
                id: r.try_get("id")?,
                claim: r.try_get("claim")?,
                kind: r.try_get("kind")?,
                municipality: r.try_get("municipality")?,
                client_key: r.try_get("client_key")?,
                text: String::new(),
                created_at: r.try_get("created_at")?,
                attempts: r.try_get("attempts")?,
            },
            plain: r.try_get("text")?,
            sealed: sealing::sealed(r, "text_sealed", "text_key_id")?,
        })
    }
}

/// Claims up to `limit` due pending letters for `lease_ms`: concurrent claimers skip each
/// other's rows, and a claim whose holder died expires with its lease. Texts are opened: a letter
/// whose text does not open (its key is not in this replica's key file) is not returned but its
/// attempt is put off for a minute, the key named in its `last_error`.
pub async fn claim_due_letters(
    pool: &PgPool,
    keys: &Keyring,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<StoredLetter>, sqlx::Error> {
    let rows: Vec<RawStoredLetter> = sqlx::query_as(
        "WITH due AS (
             SELECT id FROM letters
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE letters l
         SET claim = gen_random_uuid(),
             next_attempt_at = now() + make_interval(secs => $2::float8 / 1000)
         FROM due
         WHERE l.id = due.id
         RETURNING l.id, l.claim, l.kind, l.municipality, l.client_key, l.text, l.text_sealed,
                   l.text_key_id, l.created_at, l.attempts",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for RawStoredLetter {
        letter: mut l,
        plain,
        sealed,
    } in rows
    {
        match sealing::open_text(keys, &text_aad(l.id), plain, sealed) {
            Ok(text) => {
                l.text = text;
                claimed.push(l);
            }
            Err(e) => {
                put_off_unopened(pool, Queue::Letters, l.id, l.claim, "text", &e).await;
            }
        }
    }
    Ok(claimed)
}

/// `false`: the claim was lost (its lease expired and another dispatcher took the letter over).
pub async fn mark_letter_sent(
    pool: &PgPool,
    id: Uuid,
    claim: Uuid,
    channel: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE letters SET status = 'sent', attempts = attempts + 1, sent_at = now(),
                channel = $3, last_error = NULL, claim = NULL
         WHERE id = $1 AND claim = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(claim)
    .bind(channel)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

pub async fn mark_letter_failed(
    pool: &PgPool,
    id: Uuid,
    claim: Uuid,
    channel: &str,
    error: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE letters SET status = 'failed', attempts = attempts + 1, last_error = $4,
                channel = $3, claim = NULL, failed_at = now()
         WHERE id = $1 AND claim = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(claim)
    .bind(channel)
    .bind(error)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}
