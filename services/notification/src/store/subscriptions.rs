//! Webhook subscriptions: a provider's URLs with their filters and signing secret.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub agb_code: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub municipalities: Vec<String>,
    pub segments: Vec<String>,
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

impl<'r> FromRow<'r, PgRow> for SubscriptionRow {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            agb_code: r.try_get("agb_code")?,
            url: r.try_get("url")?,
            event_types: r.try_get("event_types")?,
            municipalities: r.try_get("municipalities")?,
            segments: r.try_get("segments")?,
            secret: r.try_get("secret")?,
            created_at: r.try_get("created_at")?,
        })
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
    .bind(&s.agb_code)
    .bind(&s.url)
    .bind(&s.event_types)
    .bind(&s.municipalities)
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
    agb: &str,
) -> Result<Vec<SubscriptionRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM subscriptions WHERE agb_code = $1 ORDER BY created_at, id")
        .bind(agb)
        .fetch_all(&mut *conn)
        .await
}

/// Deletes a provider's subscription and its deliveries. `false`: no such subscription of `agb`.
pub async fn delete_subscription(pool: &PgPool, agb: &str, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM subscriptions WHERE id = $1 AND agb_code = $2")
            .bind(id)
            .bind(agb)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}
