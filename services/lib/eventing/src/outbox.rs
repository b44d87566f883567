//! Writing events in the transaction of the state change they report.
//!
//! Writing one also wakes this process's relay ([`crate::relay::OutboxRelay`]), which gives the
//! transaction a moment to commit and then publishes it. There is deliberately no NOTIFY: inside the
//! writing transaction it would serialise every commit on the server (see
//! `migrations/outbox_wake.sql`). Relays of other processes find the row by their poll.

use sqlx::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

/// Wakes the relay of this process: a row was written (its transaction may not have committed yet).
pub(crate) static WRITTEN: Notify = Notify::const_new();

use crate::NewEvent;

/// Appends an event to the outbox inside the caller's transaction.
pub async fn enqueue(conn: &mut PgConnection, event: &NewEvent) -> Result<Uuid, sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, nats_subject, event_type, source, subject, occurred_at, traceparent, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event.id)
    .bind(&event.nats_subject)
    .bind(&event.event_type)
    .bind(&event.source)
    .bind(&event.subject)
    .bind(event.time)
    .bind(&event.traceparent)
    .bind(&event.payload)
    .execute(conn)
    .await?;
    WRITTEN.notify_one();
    Ok(event.id)
}

/// Appends many events to the outbox with one statement inside the caller's transaction (a batch
/// of imports writes two per assignment).
pub async fn enqueue_many(conn: &mut PgConnection, events: &[NewEvent]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let subjects: Vec<&str> = events.iter().map(|e| e.nats_subject.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    let aggregates: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = events.iter().map(|e| e.time).collect();
    let traces: Vec<Option<&str>> = events.iter().map(|e| e.traceparent.as_deref()).collect();
    let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    sqlx::query(
        "INSERT INTO outbox (id, nats_subject, event_type, source, subject, occurred_at, traceparent, payload)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::timestamptz[], $7::text[], $8::bytea[])",
    )
    .bind(&ids)
    .bind(&subjects)
    .bind(&types)
    .bind(&sources)
    .bind(&aggregates)
    .bind(&times)
    .bind(&traces)
    .bind(&payloads)
    .execute(conn)
    .await?;
    WRITTEN.notify_one();
    Ok(())
}

/// Events not yet acknowledged by JetStream (for health checks and operators).
pub async fn pending(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(conn)
        .await
}
