//! Webhook subscriptions: a provider's URLs with their filters and signing secret (sealed, see
//! [`crate::secrets`]; a row read back never carries it).

use chrono::{DateTime, Utc};
use rz_domain::{AgbCode, GemeenteCode};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::secrets::{Keyring, Sealed, SecretError};

#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub agb_code: AgbCode,
    pub url: String,
    pub event_types: Vec<String>,
    pub municipalities: Vec<GemeenteCode>,
    pub segments: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A code column that does not parse is a decode error naming the column.
fn decode_err(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {column} `{value}` in the database").into())
}

impl<'r> FromRow<'r, PgRow> for SubscriptionRow {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        let agb: String = r.try_get("agb_code")?;
        let municipalities: Vec<String> = r.try_get("municipalities")?;
        Ok(Self {
            id: r.try_get("id")?,
            agb_code: AgbCode::parse(&agb).map_err(|_| decode_err("agb_code", &agb))?,
            url: r.try_get("url")?,
            event_types: r.try_get("event_types")?,
            municipalities: municipalities
                .iter()
                .map(|m| GemeenteCode::parse(m).map_err(|_| decode_err("municipalities", m)))
                .collect::<Result<_, _>>()?,
            segments: r.try_get("segments")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

impl SubscriptionRow {
    /// The municipality filter as text, as stored and shown.
    pub fn municipality_codes(&self) -> Vec<String> {
        self.municipalities
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// Stores a subscription with its sealed secret.
pub async fn insert_subscription(
    tx: &mut PgConnection,
    s: &SubscriptionRow,
    secret: &Sealed,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscriptions (id, agb_code, url, event_types, municipalities, segments,
                                    secret_sealed, secret_key_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(s.id)
    .bind(s.agb_code.as_str())
    .bind(&s.url)
    .bind(&s.event_types)
    .bind(s.municipality_codes())
    .bind(&s.segments)
    .bind(&secret.bytes)
    .bind(&secret.key_id)
    .bind(s.created_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn subscription(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<SubscriptionRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM subscriptions WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

pub async fn subscriptions_of(
    conn: &mut PgConnection,
    agb: &AgbCode,
) -> Result<Vec<SubscriptionRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM subscriptions WHERE agb_code = $1 ORDER BY created_at, id")
        .bind(agb.as_str())
        .fetch_all(&mut *conn)
        .await
}

/// Deletes a provider's subscription and its deliveries. `false`: no such subscription of `agb`.
pub async fn delete_subscription(
    pool: &PgPool,
    agb: &AgbCode,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM subscriptions WHERE id = $1 AND agb_code = $2")
            .bind(id)
            .bind(agb.as_str())
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Replaces the secret of a provider's subscription. `false`: no such subscription of `agb`.
pub async fn set_secret(
    pool: &PgPool,
    agb: &AgbCode,
    id: Uuid,
    secret: &Sealed,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE subscriptions SET secret = NULL, secret_sealed = $3, secret_key_id = $4
         WHERE id = $1 AND agb_code = $2",
    )
    .bind(id)
    .bind(agb.as_str())
    .bind(&secret.bytes)
    .bind(&secret.key_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("subscription {id}: {source}")]
    Secret { id: Uuid, source: SecretError },
}

/// A row's id, plaintext (legacy) secret, sealed secret and key id.
type SecretColumns = (Uuid, Option<String>, Option<Vec<u8>>, Option<String>);

/// Seals every plaintext secret left from before sealing, and reseals every secret sealed under
/// another key than the keyring's current one, in one transaction (rows locked, so replicas
/// starting together do not race). Returns the rows rewritten. A secret whose key is missing
/// from the keyring fails it, naming the subscription and the key id, and nothing changes.
pub async fn reseal_secrets(pool: &PgPool, keys: &Keyring) -> Result<u64, ResealError> {
    let mut tx = pool.begin().await?;
    let rows: Vec<SecretColumns> = sqlx::query_as(
        "SELECT id, secret, secret_sealed, secret_key_id FROM subscriptions
         WHERE secret IS NOT NULL OR secret_key_id IS DISTINCT FROM $1
         ORDER BY id FOR UPDATE",
    )
    .bind(keys.current())
    .fetch_all(&mut *tx)
    .await?;
    let n = rows.len() as u64;
    for (id, plain, sealed, key_id) in rows {
        let aad = id.as_bytes();
        let plain = match (plain, sealed, key_id) {
            (Some(p), _, _) => p.into_bytes(),
            (None, Some(bytes), Some(key_id)) => keys
                .open(aad, &Sealed { key_id, bytes })
                .map_err(|source| ResealError::Secret { id, source })?,
            // Excluded by the table's check.
            _ => continue,
        };
        let sealed = keys
            .seal(aad, &plain)
            .map_err(|source| ResealError::Secret { id, source })?;
        sqlx::query(
            "UPDATE subscriptions SET secret = NULL, secret_sealed = $2, secret_key_id = $3
             WHERE id = $1",
        )
        .bind(id)
        .bind(&sealed.bytes)
        .bind(&sealed.key_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(n)
}
