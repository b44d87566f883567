//! Residents' letters: written once per event, decided case or product end, and listed.

use chrono::{DateTime, NaiveDate, Utc};
use rz_domain::GemeenteCode;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct LetterRow {
    pub id: Uuid,
    pub event_id: Option<Uuid>,
    pub kind: String,
    pub municipality: String,
    pub client_key: String,
    pub assignment_number: Option<i64>,
    pub case_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
    pub ends_on: Option<NaiveDate>,
    pub text: String,
    pub created_at: DateTime<Utc>,
    /// Dispatch: `pending`, `sent` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub channel: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl<'r> FromRow<'r, PgRow> for LetterRow {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            event_id: r.try_get("event_id")?,
            kind: r.try_get("kind")?,
            municipality: r.try_get("municipality")?,
            client_key: r.try_get("client_key")?,
            assignment_number: r.try_get("assignment_number")?,
            case_id: r.try_get("case_id")?,
            product_id: r.try_get("product_id")?,
            ends_on: r.try_get("ends_on")?,
            text: r.try_get("text")?,
            created_at: r.try_get("created_at")?,
            status: r.try_get("status")?,
            attempts: r.try_get("attempts")?,
            channel: r.try_get("channel")?,
            sent_at: r.try_get("sent_at")?,
            failed_at: r.try_get("failed_at")?,
            last_error: r.try_get("last_error")?,
        })
    }
}

pub async fn letters(
    pool: &PgPool,
    municipality: &GemeenteCode,
    client_key: Option<&str>,
    limit: i64,
) -> Result<Vec<LetterRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM letters WHERE municipality = $1 AND ($2::text IS NULL OR client_key = $2)
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(municipality.as_str())
    .bind(client_key)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A letter to write; which of the optional ids are set follows the kind.
pub struct NewLetter<'a> {
    pub event_id: Option<Uuid>,
    pub kind: &'a str,
    pub municipality: &'a str,
    pub client_key: &'a str,
    pub assignment_number: Option<i64>,
    pub case_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
    pub ends_on: Option<NaiveDate>,
    pub text: &'a str,
}

/// Writes the letter unless it exists (per event, per decided case, per product and end date).
/// `false`: it existed.
pub async fn insert_letter(
    conn: &mut PgConnection,
    l: &NewLetter<'_>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO letters (id, event_id, kind, municipality, client_key, assignment_number,
                              case_id, product_id, ends_on, text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(l.event_id)
    .bind(l.kind)
    .bind(l.municipality)
    .bind(l.client_key)
    .bind(l.assignment_number)
    .bind(l.case_id)
    .bind(l.product_id)
    .bind(l.ends_on)
    .bind(l.text)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

pub async fn decision_letter_exists(
    conn: &mut PgConnection,
    case_id: Uuid,
    kind: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM letters WHERE case_id = $1 AND kind = $2)")
        .bind(case_id)
        .bind(kind)
        .fetch_one(&mut *conn)
        .await
}

pub async fn ending_letter_exists(
    conn: &mut PgConnection,
    product_id: Uuid,
    ends_on: NaiveDate,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM letters
                        WHERE kind = 'indication_ending' AND product_id = $1 AND ends_on = $2)",
    )
    .bind(product_id)
    .bind(ends_on)
    .fetch_one(&mut *conn)
    .await
}

pub async fn letter(pool: &PgPool, id: Uuid) -> Result<Option<LetterRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM letters WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}
