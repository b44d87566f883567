//! Webhook subscriptions: a provider's URLs with their filters and signing secret.

use chrono::{DateTime, Utc};
use rz_domain::{AgbCode, GemeenteCode};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub agb_code: AgbCode,
    pub url: String,
    pub event_types: Vec<String>,
    pub municipalities: Vec<GemeenteCode>,
    pub segments: Vec<String>,
    pub secret: String,
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
            secret: r.try_get("secret")?,
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

pub async fn insert_subscription(
    tx: &mut PgConnection,
    s: &SubscriptionRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscriptions (id, agb_code, url, event_types, municipalities, segments, secret, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(s.id)
    .bind(s.agb_code.as_str())
    .bind(&s.url)
    .bind(&s.event_types)
    .bind(s.municipality_codes())
    .bind(&s.segments)
    .bind(&s.secret)
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
