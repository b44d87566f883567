//! The standard's messages (XML) to providers: numbered per municipality and kept with their
//! payload; the provider's reference of a request received as XML.

use chrono::NaiveDate;
use rz_domain::{AgbCode, GemeenteCode};
use sqlx::{PgConnection, Row};
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

/// Records a message to a provider (`kind`: `assignment` or `answer`) with its payload.
pub async fn record_provider_message(
    tx: &mut PgConnection,
    municipality: &GemeenteCode,
    agb_code: &AgbCode,
    kind: &str,
    payload: &[u8],
    date: NaiveDate,
) -> Result<String, sqlx::Error> {
    let seq = next_message_number(tx, municipality.as_str()).await?;
    let id = seq.to_string();
    sqlx::query(
        "INSERT INTO provider_messages (municipality, message_id, seq, agb_code, kind, payload, message_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(municipality.as_str())
    .bind(&id)
    .bind(seq)
    .bind(agb_code.as_str())
    .bind(kind)
    .bind(payload)
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

pub async fn list_provider_messages(
    conn: &mut PgConnection,
    agb_code: &AgbCode,
    municipality: Option<&GemeenteCode>,
    since: Option<NaiveDate>,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT municipality, message_id, kind, payload, message_date, created_at
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
                payload: r.try_get("payload")?,
                message_date: r.try_get("message_date")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
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
