//! The SQL: subscriptions, deliveries (claimed with `FOR UPDATE SKIP LOCKED` under a lease so
//! replicas share the work), operator alerts, residents' letters and staff alerts.

use chrono::{DateTime, NaiveDate, Utc};
use rz_platform::db::Migration;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "outbox_inbox",
        sql: rz_eventing::MIGRATION_SQL,
    },
    Migration {
        version: 2,
        name: "webhooks",
        sql: include_str!("../migrations/0002_webhooks.sql"),
    },
    Migration {
        version: 3,
        name: "letters",
        sql: include_str!("../migrations/0003_letters.sql"),
    },
    Migration {
        version: 4,
        name: "decisions_alerts",
        sql: include_str!("../migrations/0004_decisions_alerts.sql"),
    },
    Migration {
        version: 5,
        name: "letter_dispatch",
        sql: include_str!("../migrations/0005_letter_dispatch.sql"),
    },
    Migration {
        version: 6,
        name: "outbox_wake",
        sql: rz_eventing::OUTBOX_WAKE_SQL,
    },
    Migration {
        version: 7,
        name: "outbox_vacuum",
        sql: rz_eventing::OUTBOX_VACUUM_SQL,
    },
    Migration {
        version: 8,
        name: "queue_vacuum",
        sql: include_str!("../migrations/0008_queue_vacuum.sql"),
    },
];

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
    municipality: &str,
    client_key: Option<&str>,
    limit: i64,
) -> Result<Vec<LetterRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM letters WHERE municipality = $1 AND ($2::text IS NULL OR client_key = $2)
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(municipality)
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

// ---- letter dispatch ----

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

impl<'r> FromRow<'r, PgRow> for StoredLetter {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            claim: r.try_get("claim")?,
            kind: r.try_get("kind")?,
            municipality: r.try_get("municipality")?,
            client_key: r.try_get("client_key")?,
            text: r.try_get("text")?,
            created_at: r.try_get("created_at")?,
            attempts: r.try_get("attempts")?,
        })
    }
}

/// Claims up to `limit` due pending letters for `lease_ms`: concurrent claimers skip each
/// other's rows, and a claim whose holder died expires with its lease.
pub async fn claim_due_letters(
    pool: &PgPool,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<StoredLetter>, sqlx::Error> {
    sqlx::query_as(
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
         RETURNING l.id, l.claim, l.kind, l.municipality, l.client_key, l.text, l.created_at,
                   l.attempts",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(pool)
    .await
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

pub async fn letter(pool: &PgPool, id: Uuid) -> Result<Option<LetterRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM letters WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

// ---- staff alerts ----

/// A deadline as a scan saw it.
#[derive(Debug, Clone)]
pub struct SeenDeadline {
    pub key: String,
    pub municipality: String,
    pub kind: String,
    pub due: NaiveDate,
    pub overdue: bool,
    pub client_key: Option<String>,
    pub case_id: Option<Uuid>,
    pub agb_code: Option<String>,
    pub assignment_number: Option<i64>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertCounts {
    pub opened: u32,
    pub overdue: u32,
    pub resolved: u32,
}

/// Applies one source's scan of one scope (`municipality` = None: every municipality) for
/// `as_of`: upserts what it saw, and resolves the open alerts of that scope that it no longer
/// lists although their due date lies within the scanned window (`due <= window_end`). One
/// transaction under an advisory lock per source and scope, so replicas scanning at once apply
/// their scans one after the other.
pub async fn apply_alert_scan(
    pool: &PgPool,
    source: &str,
    municipality: Option<&str>,
    as_of: NaiveDate,
    window_end: NaiveDate,
    seen: &[SeenDeadline],
) -> Result<AlertCounts, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let scope = format!("staff_alerts/{source}/{}", municipality.unwrap_or("*"));
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&scope)
        .execute(&mut *tx)
        .await?;
    let mut counts = AlertCounts::default();
    for d in seen {
        let state = if d.overdue { "overdue" } else { "upcoming" };
        // previous state: NULL for a new row.
        let previous: Option<Option<String>> = sqlx::query_scalar(
            "WITH old AS (SELECT state FROM staff_alerts WHERE key = $2)
             INSERT INTO staff_alerts (id, key, source, municipality, kind, state, due, client_key,
                                       case_id, agb_code, assignment_number, request_id,
                                       overdue_at, last_scanned_on)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                     CASE WHEN $6 = 'overdue' THEN now() END, $13)
             ON CONFLICT (key) DO UPDATE SET
                 state = EXCLUDED.state,
                 due = EXCLUDED.due,
                 last_scanned_on = EXCLUDED.last_scanned_on,
                 opened_at = CASE WHEN staff_alerts.state = 'resolved' THEN now()
                                  ELSE staff_alerts.opened_at END,
                 overdue_at = CASE WHEN EXCLUDED.state = 'overdue'
                                   THEN coalesce(staff_alerts.overdue_at, now()) END,
                 resolved_at = NULL
             RETURNING (SELECT state FROM old)",
        )
        .bind(Uuid::now_v7())
        .bind(&d.key)
        .bind(source)
        .bind(&d.municipality)
        .bind(&d.kind)
        .bind(state)
        .bind(d.due)
        .bind(&d.client_key)
        .bind(d.case_id)
        .bind(&d.agb_code)
        .bind(d.assignment_number)
        .bind(&d.request_id)
        .bind(as_of)
        .fetch_optional(&mut *tx)
        .await?;
        let previous = previous.flatten();
        match (previous.as_deref(), state) {
            (None | Some("resolved"), _) => {
                counts.opened += 1;
                if state == "overdue" {
                    counts.overdue += 1;
                }
            }
            (Some("upcoming"), "overdue") => counts.overdue += 1,
            _ => {}
        }
    }
    let keys: Vec<&str> = seen.iter().map(|d| d.key.as_str()).collect();
    let resolved = sqlx::query(
        "UPDATE staff_alerts SET state = 'resolved', resolved_at = now(), last_scanned_on = $4
         WHERE source = $1 AND ($2::text IS NULL OR municipality = $2) AND state <> 'resolved'
           AND due <= $3 AND NOT (key = ANY($5))",
    )
    .bind(source)
    .bind(municipality)
    .bind(window_end)
    .bind(as_of)
    .bind(&keys)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    counts.resolved = u32::try_from(resolved).unwrap_or(u32::MAX);
    tx.commit().await?;
    Ok(counts)
}

#[derive(Debug, Clone)]
pub struct AlertRow {
    pub id: Uuid,
    pub key: String,
    pub municipality: String,
    pub kind: String,
    pub state: String,
    pub due: NaiveDate,
    pub client_key: Option<String>,
    pub case_id: Option<Uuid>,
    pub agb_code: Option<String>,
    pub assignment_number: Option<i64>,
    pub request_id: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub overdue_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub last_scanned_on: NaiveDate,
}

impl<'r> FromRow<'r, PgRow> for AlertRow {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            key: r.try_get("key")?,
            municipality: r.try_get("municipality")?,
            kind: r.try_get("kind")?,
            state: r.try_get("state")?,
            due: r.try_get("due")?,
            client_key: r.try_get("client_key")?,
            case_id: r.try_get("case_id")?,
            agb_code: r.try_get("agb_code")?,
            assignment_number: r.try_get("assignment_number")?,
            request_id: r.try_get("request_id")?,
            opened_at: r.try_get("opened_at")?,
            overdue_at: r.try_get("overdue_at")?,
            resolved_at: r.try_get("resolved_at")?,
            last_scanned_on: r.try_get("last_scanned_on")?,
        })
    }
}

/// A municipality's alerts, optionally in `states`, soonest due first.
pub async fn staff_alerts(
    pool: &PgPool,
    municipality: &str,
    states: &[&str],
    limit: i64,
) -> Result<Vec<AlertRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM staff_alerts
         WHERE municipality = $1 AND (cardinality($2::text[]) = 0 OR state = ANY($2))
         ORDER BY due, key LIMIT $3",
    )
    .bind(municipality)
    .bind(states)
    .bind(limit)
    .fetch_all(pool)
    .await
}

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
    pub secret: String,
    pub body: String,
    pub attempts: i32,
    pub first_attempt_at: DateTime<Utc>,
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

impl<'r> FromRow<'r, PgRow> for Claimed {
    fn from_row(r: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            claim: r.try_get("claim")?,
            event_id: r.try_get("event_id")?,
            agb_code: r.try_get("agb_code")?,
            url: r.try_get("url")?,
            secret: r.try_get("secret")?,
            body: r.try_get("body")?,
            attempts: r.try_get("attempts")?,
            first_attempt_at: r.try_get("first_attempt_at")?,
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

pub struct NewDelivery<'a> {
    pub subscription_id: Uuid,
    pub agb_code: &'a str,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub event_subject: &'a str,
    pub body: &'a str,
}

pub async fn insert_delivery(
    tx: &mut PgConnection,
    d: &NewDelivery<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deliveries (id, subscription_id, agb_code, event_id, event_type, event_subject, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id, subscription_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(d.subscription_id)
    .bind(d.agb_code)
    .bind(d.event_id)
    .bind(d.event_type)
    .bind(d.event_subject)
    .bind(d.body)
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
/// event already queued for a subscription is not queued again. Returns the deliveries written.
pub async fn queue_deliveries(
    tx: &mut PgConnection,
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
        bodies.push(e.body);
    }
    // Delivery ids are UUIDv7 (time ordered, as `Uuid::now_v7` makes them): the millisecond
    // clock in the first 48 bits of a random UUID, version nibble set to 7.
    let written: i64 = sqlx::query_scalar(
        "WITH ev AS (
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
                 AS e(agb_code, event_id, event_type, short_type, event_subject, municipality,
                      segments, body, ord)
         ), ins AS (
             INSERT INTO deliveries (id, subscription_id, agb_code, event_id, event_type,
                                     event_subject, body)
             SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                        placing substring(int8send(floor(extract(epoch FROM clock_timestamp())
                                                          * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
                    s.id, s.agb_code, e.event_id, e.event_type, e.event_subject, e.body
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
/// and a claim whose holder died expires with its lease.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
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
         RETURNING d.id, d.claim AS claim, d.event_id, d.agb_code, s.url, s.secret, d.body,
                   d.attempts, d.first_attempt_at AS first_attempt_at",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(pool)
    .await
}

pub async fn mark_delivered(pool: &PgPool, id: Uuid, claim: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),
                last_error = NULL, claim = NULL
         WHERE id = $1 AND claim = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(claim)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Marks delivered every `(id, claim)` whose claim still holds, in one statement; returns the ids
/// it marked. A delivery whose lease expired and that another worker claimed since is left to
/// that worker.
pub async fn mark_delivered_many(
    pool: &PgPool,
    delivered: &[(Uuid, Uuid)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let (ids, claims): (Vec<Uuid>, Vec<Uuid>) = delivered.iter().copied().unzip();
    sqlx::query_scalar(
        "UPDATE deliveries d SET status = 'delivered', attempts = d.attempts + 1,
                delivered_at = now(), last_error = NULL, claim = NULL
         FROM unnest($1::uuid[], $2::uuid[]) AS u(id, claim)
         WHERE d.id = u.id AND d.claim = u.claim AND d.status = 'pending'
         RETURNING d.id",
    )
    .bind(&ids)
    .bind(&claims)
    .fetch_all(pool)
    .await
}

/// The two queues a worker claims from, sends and retries: webhook deliveries and letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Deliveries,
    Letters,
}

impl Queue {
    fn table(self) -> &'static str {
        match self {
            Self::Deliveries => "deliveries",
            Self::Letters => "letters",
        }
    }
}

/// Records a failed attempt of a claimed row and schedules the next one `delay_ms` from now.
/// `false`: the claim was lost (its lease expired and another worker took the row over).
pub async fn schedule_retry(
    pool: &PgPool,
    queue: Queue,
    id: Uuid,
    claim: Uuid,
    error: &str,
    delay_ms: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET attempts = attempts + 1, last_error = $3, claim = NULL,
                next_attempt_at = now() + make_interval(secs => $4::float8 / 1000)
         WHERE id = $1 AND claim = $2 AND status = 'pending'",
        queue.table()
    )))
    .bind(id)
    .bind(claim)
    .bind(error)
    .bind(delay_ms)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
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
