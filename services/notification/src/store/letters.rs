//! Residents' letters: written once per event, decided case or product end, and listed.
//!
//! The text (name and address) is sealed at rest under the current key of
//! `webhooks.secret_keys_file`, associated data `letters/<letter id>`, and opened when read.

use chrono::{DateTime, NaiveDate, Utc};
use rz_domain::GemeenteCode;
use rz_platform::db::InsertRow;
use rz_platform::sealing::{RESEAL_BATCH, reseal_in_batches};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use super::sealing;
use crate::secrets::{Keyring, Sealed};

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

/// A letter row as it is stored: the text still sealed (or in plaintext, before migration 107).
struct RawLetter {
    row: LetterRow,
    plain: Option<String>,
    sealed: Option<Sealed>,
}

impl<'r> FromRow<'r, PgRow> for RawLetter {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            row: LetterRow {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                kind: r.try_get("kind")?,
                municipality: r.try_get("municipality")?,
                client_key: r.try_get("client_key")?,
                assignment_number: r.try_get("assignment_number")?,
                case_id: r.try_get("case_id")?,
                product_id: r.try_get("product_id")?,
                ends_on: r.try_get("ends_on")?,
                text: String::new(),
                created_at: r.try_get("created_at")?,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                channel: r.try_get("channel")?,
                sent_at: r.try_get("sent_at")?,
                failed_at: r.try_get("failed_at")?,
                last_error: r.try_get("last_error")?,
            },
            plain: r.try_get("text")?,
            sealed: sealing::sealed(r, "text_sealed", "text_key_id")?,
        })
    }
}

impl RawLetter {
    /// The row with its text opened; a text that does not open is a decode error naming the key.
    fn open(self, keys: &Keyring) -> Result<LetterRow, sqlx::Error> {
        let mut row = self.row;
        row.text =
            sealing::open_text_or_decode_err(keys, &text_aad(row.id), self.plain, self.sealed)?;
        Ok(row)
    }
}

/// The associated data binding a sealed text to its letter.
pub(super) fn text_aad(id: Uuid) -> Vec<u8> {
    format!("letters/{id}").into_bytes()
}

/// A municipality's letters (of one resident, when `client_key` is given), texts opened; a text
/// that does not open fails the whole list.
pub async fn letters(
    pool: &PgPool,
    keys: &Keyring,
    municipality: &GemeenteCode,
    client_key: Option<&str>,
    limit: i64,
) -> Result<Vec<LetterRow>, sqlx::Error> {
    let rows: Vec<RawLetter> = sqlx::query_as(
        "SELECT * FROM letters WHERE municipality = $1 AND ($2::text IS NULL OR client_key = $2)
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(municipality.as_str())
    .bind(client_key)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|r| r.open(keys)).collect()
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

/// Writes the letter, its text sealed, unless it exists (per event and kind, per decided case, per
/// product and end date). `false`: it existed.
pub async fn insert_letter(
    conn: &mut PgConnection,
    keys: &Keyring,
    l: &NewLetter<'_>,
) -> Result<bool, sqlx::Error> {
    Ok(insert_letters(conn, keys, std::slice::from_ref(l)).await? == 1)
}

/// Letters written per statement by [`insert_letters`].
const LETTERS_PER_STATEMENT: usize = 1_000;

/// Writes many letters as [`insert_letter`] writes one, a statement per
/// [`LETTERS_PER_STATEMENT`]; the number written (those that existed are not).
pub async fn insert_letters(
    conn: &mut PgConnection,
    keys: &Keyring,
    letters: &[NewLetter<'_>],
) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    for chunk in letters.chunks(LETTERS_PER_STATEMENT) {
        let mut insert = InsertRow::new("letters");
        for (i, l) in chunk.iter().enumerate() {
            let id = Uuid::now_v7();
            let text = keys
                .seal(&text_aad(id), l.text.as_bytes())
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            if i > 0 {
                insert = insert.next_row();
            }
            insert = insert
                .value("id", id)
                .value("event_id", l.event_id)
                .value("kind", l.kind)
                .value("municipality", l.municipality)
                .value("client_key", l.client_key)
                .value("assignment_number", l.assignment_number)
                .value("case_id", l.case_id)
                .value("product_id", l.product_id)
                .value("ends_on", l.ends_on)
                .value("text_sealed", text.bytes)
                .value("text_key_id", text.key_id);
        }
        written += insert
            .query("ON CONFLICT DO NOTHING")?
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(written)
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

/// One letter, its text opened (a text that does not open is an error).
pub async fn letter(
    pool: &PgPool,
    keys: &Keyring,
    id: Uuid,
) -> Result<Option<LetterRow>, sqlx::Error> {
    let row: Option<RawLetter> = sqlx::query_as("SELECT * FROM letters WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(|r| r.open(keys)).transpose()
}

/// A letter's id, plaintext (legacy) text, sealed text and key id.
type TextColumns = (Uuid, Option<String>, Option<Vec<u8>>, Option<String>);

/// Run at start: seals the text of every letter still in plaintext (written before migration 107)
/// or under another key than the current one, and clears its plaintext; in batches, rows locked by
/// others skipped. A text whose key is missing fails it with a [`sealing::SealRowError`] naming the
/// letter and the key id (the batches before stay done). Returns the letters sealed.
pub async fn seal_letter_texts(pool: &PgPool, keys: &Keyring) -> Result<u64, sqlx::Error> {
    reseal_in_batches(pool, keys, |tx, keys| Box::pin(seal_texts_batch(tx, keys))).await
}

/// One batch of [`seal_letter_texts`]: the rows it sealed.
async fn seal_texts_batch(tx: &mut PgConnection, keys: &Keyring) -> Result<u64, sqlx::Error> {
    // `<` or `>` rather than `<>`: the index on the key id serves them.
    let rows: Vec<TextColumns> = sqlx::query_as(
        "SELECT id, text, text_sealed, text_key_id FROM letters
         WHERE text IS NOT NULL OR text_key_id < $1 OR text_key_id > $1
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(keys.current())
    .bind(RESEAL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for (id, plain, bytes, key_id) in &rows {
        let sealed = sealing::reseal(keys, ("letter", *id), &text_aad(*id), plain, bytes, key_id)?;
        sqlx::query(
            "UPDATE letters SET text = NULL, text_sealed = $2, text_key_id = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(&sealed.bytes)
        .bind(&sealed.key_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.len() as u64)
}
