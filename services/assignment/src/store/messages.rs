//! The standard's messages (XML) to providers: numbered per municipality and kept with their
//! payload; the provider's reference of a request received as XML.

use chrono::NaiveDate;
use rz_domain::{AgbCode, GemeenteCode};
use rz_platform::sealing::{Keyring, RESEAL_BATCH, Sealed, reseal_in_batches};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::parsed;

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

/// The associated data binding a message's sealed payload to its row.
fn aad(municipality: &str, message_id: &str) -> Vec<u8> {
    format!("provider_messages/{municipality}/{message_id}").into_bytes()
}

/// A message's payload sealed for its row.
pub(super) fn seal_payload(
    keys: &Keyring,
    municipality: &str,
    message_id: &str,
    payload: &[u8],
) -> Result<Sealed, sqlx::Error> {
    keys.seal(&aad(municipality, message_id), payload)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Records a message to a provider (`kind`: `assignment` or `answer`) with its payload, sealed
/// (it carries the client's BSN, name and address).
pub async fn record_provider_message(
    tx: &mut PgConnection,
    keys: &Keyring,
    municipality: &GemeenteCode,
    agb_code: &AgbCode,
    kind: &str,
    payload: &[u8],
    date: NaiveDate,
) -> Result<String, sqlx::Error> {
    let seq = next_message_number(tx, municipality.as_str()).await?;
    let id = seq.to_string();
    let sealed = seal_payload(keys, municipality.as_str(), &id, payload)?;
    sqlx::query(
        "INSERT INTO provider_messages (municipality, message_id, seq, agb_code, kind, payload, key_id, message_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(municipality.as_str())
    .bind(&id)
    .bind(seq)
    .bind(agb_code.as_str())
    .bind(kind)
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .bind(date)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// A recorded message to a provider.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub municipality: GemeenteCode,
    pub message_id: String,
    pub kind: String,
    pub payload: Vec<u8>,
    pub message_date: NaiveDate,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The payload of a row: opened when sealed (`key_id` set), else as written before migration 113.
fn payload_of(keys: &Keyring, r: &sqlx::postgres::PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let bytes: Vec<u8> = r.try_get("payload")?;
    match r.try_get::<Option<String>, _>("key_id")? {
        None => Ok(bytes),
        Some(key_id) => {
            let m: String = r.try_get("municipality")?;
            let id: String = r.try_get("message_id")?;
            keys.open(&aad(&m, &id), &Sealed { key_id, bytes })
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        }
    }
}

pub async fn list_provider_messages(
    conn: &mut PgConnection,
    keys: &Keyring,
    agb_code: &AgbCode,
    municipality: Option<&GemeenteCode>,
    since: Option<NaiveDate>,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT municipality, message_id, kind, payload, key_id, message_date, created_at
         FROM provider_messages
         WHERE agb_code = $1 AND ($2::text IS NULL OR municipality = $2)
           AND ($3::date IS NULL OR message_date >= $3)
         ORDER BY municipality, seq",
    )
    .bind(agb_code.as_str())
    .bind(municipality.map(GemeenteCode::as_str))
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredMessage {
                municipality: parsed(r, "municipality", GemeenteCode::parse)?,
                message_id: r.try_get("message_id")?,
                kind: r.try_get("kind")?,
                payload: payload_of(keys, r)?,
                message_date: r.try_get("message_date")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Seals every message payload stored in plaintext (before migration 113) or under another key
/// than the current one; run at start. The number of rows sealed.
pub async fn seal_provider_messages(pool: &PgPool, keys: &Keyring) -> Result<u64, sqlx::Error> {
    reseal_in_batches(pool, keys, |tx, keys| {
        Box::pin(seal_messages_batch(tx, keys))
    })
    .await
}

async fn seal_messages_batch(tx: &mut PgConnection, keys: &Keyring) -> Result<u64, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT municipality, message_id, payload, key_id FROM provider_messages
         WHERE key_id IS NULL OR key_id <> $1
         ORDER BY municipality, seq LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(keys.current())
    .bind(RESEAL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for r in &rows {
        let m: String = r.try_get("municipality")?;
        let id: String = r.try_get("message_id")?;
        let s = seal_payload(keys, &m, &id, &payload_of(keys, r)?)?;
        sqlx::query(
            "UPDATE provider_messages SET payload = $3, key_id = $4
             WHERE municipality = $1 AND message_id = $2",
        )
        .bind(&m)
        .bind(&id)
        .bind(&s.bytes)
        .bind(&s.key_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.len() as u64)
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
