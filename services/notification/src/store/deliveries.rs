//! Webhook deliveries: queued per matching subscription, claimed under a lease, marked delivered
//! or failed (with the operator alert), replayed.
//!
//! The body (the CloudEvent as it is POSTed: the client's BSN, name and address) is sealed at rest
//! under the current key of `webhooks.secret_keys_file`, once per event (associated data
//! `deliveries/<event id>`: every subscription's row of the event holds the same sealed bytes),
//! opened when claimed, and removed once delivered.

use chrono::{DateTime, Utc};
use rz_platform::sealing::{RESEAL_BATCH, reseal_in_batches};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use super::queues::{Queue, put_off_unopened};
use super::sealing;
use crate::secrets::{Keyring, Sealed};

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub agb_code: String,
    pub url: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_subject: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str =
    "d.id, d.subscription_id, d.agb_code, s.url, d.event_id, d.event_type,
    d.event_subject, d.status, d.attempts, d.last_error, d.created_at, d.next_attempt_at,
    d.delivered_at, d.failed_at";

/// A delivery claimed by a worker: everything one attempt needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub claim: Uuid,
    pub event_id: Uuid,
    pub agb_code: String,
    pub url: String,
    pub subscription_id: Uuid,
    /// The subscription's sealed secret; `None` for a secret not sealed yet (written by an older
    /// replica during an upgrade: sealed at the next start, the attempt is retried).
    pub secret: Option<Sealed>,
    pub body: String,
    pub attempts: i32,
    pub first_attempt_at: DateTime<Utc>,
}

impl<'r> FromRow<'r, PgRow> for DeliveryRow {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            subscription_id: r.try_get("subscription_id")?,
            agb_code: r.try_get("agb_code")?,
            url: r.try_get("url")?,
            event_id: r.try_get("event_id")?,
            event_type: r.try_get("event_type")?,
            event_subject: r.try_get("event_subject")?,
            status: r.try_get("status")?,
            attempts: r.try_get("attempts")?,
            last_error: r.try_get("last_error")?,
            created_at: r.try_get("created_at")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            delivered_at: r.try_get("delivered_at")?,
            failed_at: r.try_get("failed_at")?,
        })
    }
}

/// A claimed row as it is stored: the body still sealed (or, written by an older replica during
/// an upgrade, in plaintext).
struct RawClaim {
    claimed: Claimed,
    plain: Option<String>,
    sealed: Option<Sealed>,
}

impl<'r> FromRow<'r, PgRow> for RawClaim {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            claimed: Claimed {
                id: r.try_get("id")?,
                claim: r.try_get("claim")?,
                event_id: r.try_get("event_id")?,
                agb_code: r.try_get("agb_code")?,
                url: r.try_get("url")?,
                subscription_id: r.try_get("subscription_id")?,
                secret: sealing::sealed(r, "secret_sealed", "secret_key_id")?,
                body: String::new(),
                attempts: r.try_get("attempts")?,
                first_attempt_at: r.try_get("first_attempt_at")?,
            },
            plain: r.try_get("body")?,
            sealed: sealing::sealed(r, "body_sealed", "body_key_id")?,
        })
    }
}

/// The associated data binding a sealed body to its event.
fn body_aad(event_id: Uuid) -> Vec<u8> {
    format!("deliveries/{event_id}").into_bytes()
}

/// Seals an event's body under the keyring's current key.
fn seal_body(keys: &Keyring, event_id: Uuid, body: &str) -> Result<Sealed, sqlx::Error> {
    keys.seal(&body_aad(event_id), body.as_bytes())
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub struct NewDelivery<'a> {
    pub subscription_id: Uuid,
    pub agb_code: &'a str,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub event_subject: &'a str,
    pub body: &'a str,
}

/// Writes one delivery, its body sealed.
pub async fn insert_delivery(
    tx: &mut PgConnection,
    keys: &Keyring,
    d: &NewDelivery<'_>,
) -> Result<(), sqlx::Error> {
    let body = seal_body(keys, d.event_id, d.body)?;
    sqlx::query(
        "INSERT INTO deliveries (id, subscription_id, agb_code, event_id, event_type, event_subject,
                                 body_sealed, body_key_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id, subscription_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(d.subscription_id)
    .bind(d.agb_code)
    .bind(d.event_id)
    .bind(d.event_type)
    .bind(d.event_subject)
    .bind(&body.bytes)
    .bind(&body.key_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An event to queue for every matching subscription of its provider.
pub struct EventToQueue<'a> {
    pub agb_code: &'a str,
    pub event_id: Uuid,
    /// The full CloudEvents type, e.g. `nl.regiozorg.assignment.issued.v1`.
    pub event_type: &'a str,
    /// The last subject token, e.g. `issued` (a filter may name either).
    pub short_type: &'a str,
    pub event_subject: &'a str,
    pub municipality: &'a str,
    /// The event's segment and subsegment codes (empty ones are ignored).
    pub segments: &'a [String],
    /// The CloudEvent as it is POSTed.
    pub body: &'a str,
}

/// Writes one delivery per (event, subscription of the event's provider whose filters match) for
/// all `events` in one statement (the rules of [`crate::webhook::Filters::matches`]: an empty list
/// matches everything; the type by full or short name; the municipality; any non-empty segment
/// code), and wakes this process's delivery worker if any was written ([`DELIVERIES_WRITTEN`]). An
/// event already queued for a subscription is not queued again. Each body is sealed once, under the
/// keyring's current key; all its event's rows hold those bytes. Returns the deliveries written.
pub async fn queue_deliveries(
    tx: &mut PgConnection,
    keys: &Keyring,
    events: &[EventToQueue<'_>],
) -> Result<u64, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut agbs = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut short_types = Vec::with_capacity(events.len());
    let mut subjects = Vec::with_capacity(events.len());
    let mut municipalities = Vec::with_capacity(events.len());
    // Segment codes are letters and digits: one comma-separated text per event (an array of
    // arrays would have to be rectangular).
    let mut segments = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for e in events {
        agbs.push(e.agb_code);
        ids.push(e.event_id);
        types.push(e.event_type);
        short_types.push(e.short_type);
        subjects.push(e.event_subject);
        municipalities.push(e.municipality);
        segments.push(
            e.segments
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        );
        bodies.push(seal_body(keys, e.event_id, e.body)?.bytes);
    }
    // Delivery ids are UUIDv7 (time ordered, as `Uuid::now_v7` makes them): the millisecond
    // clock in the first 48 bits of a random UUID, version nibble set to 7.
    let written: i64 = sqlx::query_scalar(
        "WITH ev AS (
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::bytea[]) WITH ORDINALITY
                 AS e(agb_code, event_id, event_type, short_type, event_subject, municipality,
                      segments, body_sealed, ord)
         ), ins AS (
             INSERT INTO deliveries (id, subscription_id, agb_code, event_id, event_type,
                                     event_subject, body_sealed, body_key_id)
             SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                        placing substring(int8send(floor(extract(epoch FROM clock_timestamp())
                                                          * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
                    s.id, s.agb_code, e.event_id, e.event_type, e.event_subject, e.body_sealed,
                    $9
             FROM ev e JOIN subscriptions s ON s.agb_code = e.agb_code
             WHERE (cardinality(s.event_types) = 0
                    OR s.event_types && ARRAY[e.event_type, e.short_type])
               AND (cardinality(s.municipalities) = 0 OR e.municipality = ANY (s.municipalities))
               AND (cardinality(s.segments) = 0
                    OR s.segments && string_to_array(e.segments, ','))
             ORDER BY e.ord, s.created_at, s.id
             ON CONFLICT (event_id, subscription_id) DO NOTHING
             RETURNING 1
         )
         SELECT count(*) FROM ins",
    )
    .bind(&agbs)
    .bind(&ids)
    .bind(&types)
    .bind(&short_types)
    .bind(&subjects)
    .bind(&municipalities)
    .bind(&segments)
    .bind(&bodies)
    .bind(keys.current())
    .fetch_one(&mut *tx)
    .await?;
    if written > 0 {
        DELIVERIES_WRITTEN.notify_one();
    }
    Ok(u64::try_from(written).unwrap_or(0))
}

/// Wakes this process's delivery worker: deliveries were written (their transaction may not have
/// committed yet; the worker looks again shortly when it finds nothing). There is deliberately no
/// NOTIFY: inside the matcher's transaction it would take PostgreSQL's server-wide notify lock
/// through the commit's WAL flush and serialise every such commit on the server. Workers of other
/// replicas find the deliveries by their poll.
pub static DELIVERIES_WRITTEN: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Claims up to `limit` due deliveries for `lease_ms`: concurrent claimers skip each other's rows,
/// and a claim whose holder died expires with its lease. Bodies are opened: a delivery whose body
/// does not open (its key is not in this replica's key file) is not returned but its attempt is
/// put off for a minute, the key named in its `last_error`.
pub async fn claim_due(
    pool: &PgPool,
    keys: &Keyring,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows: Vec<RawClaim> = sqlx::query_as(
        "WITH due AS (
             SELECT id FROM deliveries
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE deliveries d
         SET claim = gen_random_uuid(),
             next_attempt_at = now() + make_interval(secs => $2::float8 / 1000),
             first_attempt_at = coalesce(d.first_attempt_at, now())
         FROM due, subscriptions s
         WHERE d.id = due.id AND s.id = d.subscription_id
         RETURNING d.id, d.claim AS claim, d.event_id, d.agb_code, s.url, d.subscription_id,
                   s.secret_key_id, s.secret_sealed, d.body, d.body_sealed, d.body_key_id,
                   d.attempts, d.first_attempt_at AS first_attempt_at",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for RawClaim {
        claimed: mut c,
        plain,
        sealed,
    } in rows
    {
        match sealing::open_text(keys, &body_aad(c.event_id), plain, sealed) {
            Ok(body) => {
                c.body = body;
                claimed.push(c);
            }
            Err(e) => {
                put_off_unopened(pool, Queue::Deliveries, c.id, c.claim, "body", &e).await;
            }
        }
    }
    Ok(claimed)
}

/// Marks the delivery delivered and removes its body (it is never sent again).
pub async fn mark_delivered(pool: &PgPool, id: Uuid, claim: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),
                last_error = NULL, claim = NULL, body = NULL, body_sealed = NULL, body_key_id = NULL
         WHERE id = $1 AND claim = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(claim)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Marks delivered every `(id, claim)` whose claim still holds, in one statement, and removes
/// their bodies; returns the ids it marked. A delivery whose lease expired and that another worker
/// claimed since is left to that worker.
pub async fn mark_delivered_many(
    pool: &PgPool,
    delivered: &[(Uuid, Uuid)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    Ok(mark_delivered_timed(pool, delivered)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// As [`mark_delivered_many`], with the seconds from queueing each marked delivery to its
/// success (for the latency histogram).
pub async fn mark_delivered_timed(
    pool: &PgPool,
    delivered: &[(Uuid, Uuid)],
) -> Result<Vec<(Uuid, f64)>, sqlx::Error> {
    let (ids, claims): (Vec<Uuid>, Vec<Uuid>) = delivered.iter().copied().unzip();
    sqlx::query_as(
        "UPDATE deliveries d SET status = 'delivered', attempts = d.attempts + 1,
                delivered_at = now(), last_error = NULL, claim = NULL, body = NULL,
                body_sealed = NULL, body_key_id = NULL
         FROM unnest($1::uuid[], $2::uuid[]) AS u(id, claim)
         WHERE d.id = u.id AND d.claim = u.claim AND d.status = 'pending'
         RETURNING d.id, EXTRACT(EPOCH FROM now() - d.created_at)::float8",
    )
    .bind(&ids)
    .bind(&claims)
    .fetch_all(pool)
    .await
}

/// Marks the delivery failed for good and raises the operator alert, in one transaction.
pub async fn mark_failed(
    pool: &PgPool,
    id: Uuid,
    claim: Uuid,
    agb: &str,
    error: &str,
    message: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = $3,
                claim = NULL, failed_at = now()
         WHERE id = $1 AND claim = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(claim)
    .bind(error)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if done {
        sqlx::query(
            "INSERT INTO alerts (id, kind, delivery_id, agb_code, message)
             VALUES ($1, 'webhook_delivery_failed', $2, $3, $4)",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(agb)
        .bind(message)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(done)
}

pub async fn delivery<'e, E>(db: E, id: Uuid) -> Result<Option<DeliveryRow>, sqlx::Error>
where
    E: sqlx::PgExecutor<'e>,
{
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn failed_deliveries(
    pool: &PgPool,
    agb: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.status = 'failed' AND ($1::text IS NULL OR d.agb_code = $1)
         ORDER BY d.failed_at, d.id LIMIT $2"
    )))
    .bind(agb)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Puts a failed delivery back in the queue with a fresh retry budget and resolves its alert.
/// `false`: the delivery is not failed (or does not exist). Also the row as replayed (or as it is).
pub async fn replay(pool: &PgPool, id: Uuid) -> Result<(bool, Option<DeliveryRow>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'pending', attempts = 0, first_attempt_at = NULL,
                next_attempt_at = now(), failed_at = NULL, claim = NULL
         WHERE id = $1 AND status = 'failed'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if done {
        sqlx::query(
            "UPDATE alerts SET resolved_at = now() WHERE delivery_id = $1 AND resolved_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    // The row as this transaction left it: once committed, a worker may deliver it at once.
    let row = delivery(&mut *tx, id).await?;
    tx.commit().await?;
    Ok((done, row))
}

/// What [`seal_delivery_bodies`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealedBodies {
    /// Bodies of pending or failed deliveries sealed (plaintext) or resealed (another key).
    pub sealed: u64,
    /// Bodies of delivered deliveries removed.
    pub removed: u64,
}

/// A delivery's id, event id, plaintext (legacy) body, sealed body and key id.
type BodyColumns = (Uuid, Uuid, Option<String>, Option<Vec<u8>>, Option<String>);

/// Run at start: seals the body of every pending or failed delivery still in plaintext (written
/// before migration 107, or by an older replica) or under another key than the current one, and
/// clears its plaintext; removes the body of every delivered delivery that still has one. In
/// batches, rows locked by others skipped. A body whose key is missing fails it with a
/// [`sealing::SealRowError`] naming the delivery and the key id (the batches before stay done).
pub async fn seal_delivery_bodies(
    pool: &PgPool,
    keys: &Keyring,
) -> Result<SealedBodies, sqlx::Error> {
    let mut removed = 0;
    loop {
        let n = sqlx::query(
            "WITH delivered AS (
                 SELECT id FROM deliveries
                 WHERE status = 'delivered' AND (body IS NOT NULL OR body_key_id IS NOT NULL)
                 LIMIT $1 FOR UPDATE SKIP LOCKED
             )
             UPDATE deliveries d SET body = NULL, body_sealed = NULL, body_key_id = NULL
             FROM delivered WHERE d.id = delivered.id",
        )
        .bind(sealing::CLEAR_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        if n == 0 {
            break;
        }
        removed += n;
    }
    let sealed =
        reseal_in_batches(pool, keys, |tx, keys| Box::pin(seal_bodies_batch(tx, keys))).await?;
    Ok(SealedBodies { sealed, removed })
}

/// One batch of [`seal_delivery_bodies`]: the rows it sealed.
async fn seal_bodies_batch(tx: &mut PgConnection, keys: &Keyring) -> Result<u64, sqlx::Error> {
    // `<` or `>` rather than `<>`: the index on the key id serves them.
    let rows: Vec<BodyColumns> = sqlx::query_as(
        "SELECT id, event_id, body, body_sealed, body_key_id FROM deliveries
         WHERE status <> 'delivered'
           AND (body IS NOT NULL OR body_key_id < $1 OR body_key_id > $1)
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(keys.current())
    .bind(RESEAL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for (id, event_id, plain, bytes, key_id) in &rows {
        let aad = body_aad(*event_id);
        let sealed = sealing::reseal(keys, ("delivery", *id), &aad, plain, bytes, key_id)?;
        sqlx::query(
            "UPDATE deliveries SET body = NULL, body_sealed = $2, body_key_id = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(&sealed.bytes)
        .bind(&sealed.key_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.len() as u64)
}
