//! Publishes outbox rows to JetStream.
//!
//! Rows are claimed in batches (`FOR UPDATE SKIP LOCKED`, so replicas share the work), published with
//! their event id as `Nats-Msg-Id` with all acks in flight at once, and marked sent only for the
//! publishes JetStream acknowledged. A crash between ack and mark republishes the row; JetStream's
//! duplicate window and the consumers' inbox make that harmless. A row written in this process wakes
//! the relay at once ([`crate::outbox::enqueue`]); it looks again a few times in quick succession
//! until the writer's transaction has committed. Rows of other processes (other replicas, or one
//! that died before its relay ran) are found by a short poll.
//!
//! One event that can never be published (larger than the server's `max_payload`, or refused by
//! the stream with an error that retrying will not fix, such as its maximum message size) does
//! not hold up the rest: it goes to the dead-letter stream with its reason (consumer `outbox`,
//! see [`crate::dlq`]; `rzctl dlq list` shows it), its row is marked done, and the relay goes on
//! with the next rows. A payload too large for the dead-letter stream too is left out there
//! ([`crate::dlq::H_PAYLOAD_OMITTED`]); the row keeps it in the service's outbox for the retention
//! period. Transient errors (no connection, a timeout, no stream yet) still leave the row
//! pending for the next batch.

use std::time::Duration;

use crate::Shutdown;
use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{ErrorCode, context::PublishError};
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use sqlx::{PgPool, Row};
use std::future::IntoFuture;

use tracing::Instrument;
use uuid::Uuid;

use crate::envelope::{MSG_ID, headers};
use crate::outbox::WRITTEN;
use crate::wake::Chase;
use crate::{EventingError, Namespace};

/// A woken relay waits this long before it looks (the writer's commit is on its way).
const SETTLE: Duration = Duration::from_millis(1);

pub struct OutboxRelay {
    pool: PgPool,
    js: jetstream::Context,
    batch: i64,
    poll: Duration,
    /// Published rows are kept this long (for operators and audits), then deleted.
    retention: Duration,
    metrics: RelayMetrics,
}

/// The relay's counters (Prometheus counters, shared with the registry that exports them:
/// `rz_platform::metrics`).
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    /// Events JetStream acknowledged.
    pub published: Counter,
    /// Events that could never be published, put in the dead-letter stream.
    pub dead_lettered: Counter,
}

impl OutboxRelay {
    pub fn new(pool: PgPool, js: jetstream::Context) -> Self {
        Self {
            pool,
            js,
            batch: 512,
            poll: Duration::from_millis(100),
            retention: Duration::from_secs(7 * 24 * 3600),
            metrics: RelayMetrics::default(),
        }
    }

    /// Counts into `metrics` (see [`RelayMetrics`]).
    pub fn with_metrics(mut self, metrics: RelayMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// How long the relay sleeps when nothing woke it (rows of other processes wait this long).
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Runs until `shutdown`; then publishes everything still pending before it returns. Trigger
    /// `shutdown` only once nothing writes to the outbox any more (see `rz_platform::runner`).
    pub async fn run(self, shutdown: Shutdown) {
        let mut last_cleanup = tokio::time::Instant::now();
        let mut chase = Chase::default();
        loop {
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                last_cleanup = tokio::time::Instant::now();
                if let Err(e) = self.delete_published().await {
                    tracing::warn!(error = %e, "outbox cleanup failed");
                }
            }
            let claimed = match self.publish_batch().await {
                Ok(n) => n as i64,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay batch failed; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    0
                }
            };
            if shutdown.is_triggered() {
                break;
            }
            if claimed == self.batch {
                continue;
            }
            let wait = chase.wait(claimed == 0, self.poll);
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = WRITTEN.notified() => {
                    chase.woken();
                    tokio::time::sleep(SETTLE).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Everything committed before the shutdown is published before the relay returns.
        loop {
            match self.publish_batch().await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "final outbox flush failed; rows stay pending until the next start");
                    break;
                }
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// Deletes rows published longer ago than the retention period.
    pub async fn delete_published(&self) -> Result<u64, EventingError> {
        let secs = self.retention.as_secs_f64();
        let n = sqlx::query(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n > 0 {
            tracing::info!(deleted = n, "published outbox rows cleaned up");
        }
        Ok(n)
    }

    /// Publishes one batch of pending rows; returns how many were claimed.
    pub async fn publish_batch(&self) -> Result<usize, EventingError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, nats_subject, event_type, source, subject, occurred_at, traceparent, payload
             FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut in_flight = Vec::with_capacity(rows.len());
        // Rows that will never publish, with their reason: dead-lettered below.
        let mut refused = Vec::new();
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            let subject: String = row.try_get("nats_subject")?;
            let time: DateTime<Utc> = row.try_get("occurred_at")?;
            let traceparent: Option<String> = row.try_get("traceparent")?;
            let payload: Vec<u8> = row.try_get("payload")?;
            let event_type: String = row.try_get("event_type")?;
            // The publish span continues the trace of the change that wrote the event, and the
            // event carries the publish span on, so its consumers become its children.
            let span = publish_span(&id, &subject, &event_type, traceparent.as_deref());
            let traceparent = span
                .in_scope(rz_telemetry::current_traceparent)
                .or(traceparent);
            let h = headers(
                &id,
                &event_type,
                &row.try_get::<String, _>("source")?,
                &row.try_get::<String, _>("subject")?,
                &time,
                traceparent.as_deref(),
            );
            let size = payload.len();
            match self
                .js
                .publish_with_headers(subject.clone(), h.clone(), payload.into())
                .instrument(span.clone())
                .await
            {
                Ok(ack) => in_flight.push((id, subject, h, size, ack, span)),
                Err(e) if permanent(&e) => {
                    span.record("otel.status_code", "ERROR");
                    span.in_scope(
                        || tracing::error!(event_id = %id, error = %e, "event cannot be published"),
                    );
                    refused.push((id, subject, h, size, e.to_string()));
                }
                Err(e) => {
                    span.record("otel.status_code", "ERROR");
                    span.in_scope(|| tracing::warn!(event_id = %id, error = %e, "publish failed"));
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(in_flight.len());
        for (id, subject, h, size, ack, span) in in_flight {
            // The span ends with the stream's acknowledgement (dropped at the end of the turn).
            match ack.into_future().instrument(span.clone()).await {
                Ok(_) => acked.push((id, personal_subject(&subject))),
                Err(e) if permanent(&e) => {
                    span.record("otel.status_code", "ERROR");
                    span.in_scope(
                        || tracing::error!(event_id = %id, error = %e, "event refused by the stream"),
                    );
                    refused.push((id, subject, h, size, e.to_string()));
                }
                Err(e) => {
                    span.record("otel.status_code", "ERROR");
                    span.in_scope(
                        || tracing::warn!(event_id = %id, error = %e, "publish not acknowledged"),
                    );
                }
            }
        }
        let mut dead = Vec::with_capacity(refused.len());
        for (id, subject, h, size, reason) in refused {
            match self.dead_letter(&id, &subject, h, size, &reason).await {
                Ok(()) => dead.push(id),
                Err(e) => {
                    tracing::warn!(event_id = %id, error = %e, "dead-letter publish failed; will retry")
                }
            }
        }
        // The payload of a published event with personal data leaves the outbox at once (the
        // stream keeps it for its shorter retention); its row stays as the record of what was
        // sent (ids, subject, type) for the retention, like every other row and dead letter.
        let published = acked.len();
        let (personal, mut kept): (Vec<_>, Vec<_>) = acked.into_iter().partition(|(_, p)| *p);
        let personal: Vec<Uuid> = personal.into_iter().map(|(id, _)| id).collect();
        if !personal.is_empty() {
            sqlx::query(
                "UPDATE outbox SET published_at = now(), payload = ''::bytea WHERE id = ANY($1)",
            )
            .bind(&personal)
            .execute(&mut *tx)
            .await?;
        }
        kept.extend(dead.iter().map(|id| (*id, false)));
        let kept: Vec<Uuid> = kept.into_iter().map(|(id, _)| id).collect();
        if !kept.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&kept)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.metrics.published.inc_by(published as u64);
        self.metrics.dead_lettered.inc_by(dead.len() as u64);
        tracing::debug!(
            claimed = rows.len(),
            published,
            payloads_removed = personal.len(),
            dead_lettered = dead.len(),
            "outbox batch"
        );
        Ok(rows.len())
    }

    /// Puts an event that cannot be published in the dead-letter stream of its namespace (the
    /// first token of its subject), with the reason and without the payload (the row keeps it).
    async fn dead_letter(
        &self,
        id: &Uuid,
        subject: &str,
        h: async_nats::HeaderMap,
        size: usize,
        reason: &str,
    ) -> Result<(), EventingError> {
        let token = subject.split('.').next().unwrap_or_default();
        let ns = Namespace::new(token).map_err(EventingError::Malformed)?;
        crate::dlq::ensure_stream(&self.js, &ns).await?;
        // The envelope's headers, each cut to a bounded length: the dead letter must fit where
        // the event did not.
        let mut h = {
            let mut short = async_nats::HeaderMap::new();
            for (name, values) in h.iter() {
                for v in values {
                    short.append(name.as_ref(), cut(v.as_str(), MAX_HEADER));
                }
            }
            short
        };
        h.insert(MSG_ID, format!("dlq-{OUTBOX}-{id}").as_str());
        h.insert(crate::dlq::H_REASON, cut(reason, MAX_HEADER));
        h.insert(crate::dlq::H_CONSUMER, OUTBOX);
        h.insert(crate::dlq::H_SUBJECT, cut(subject, MAX_HEADER));
        h.insert(crate::dlq::H_ATTEMPTS, "1");
        h.insert(crate::dlq::H_PAYLOAD_OMITTED, size.to_string().as_str());
        self.js
            .publish_with_headers(ns.dlq_subject(OUTBOX), h, bytes::Bytes::new())
            .await
            .map_err(EventingError::nats)?
            .await
            .map_err(EventingError::nats)?;
        tracing::error!(event_id = %id, %reason, "event dead-lettered by the outbox relay");
        Ok(())
    }
}

/// The `producer` span of one event's publish, after OpenTelemetry's messaging conventions
/// (`publish <subject template>`), child of the span that wrote the event (`traceparent` of its
/// outbox row). Only identifiers: the subject names organisations, never a person.
fn publish_span(
    id: &Uuid,
    subject: &str,
    event_type: &str,
    traceparent: Option<&str>,
) -> tracing::Span {
    let template = crate::consumer::subject_template(subject);
    let span = tracing::info_span!(
        "event.publish",
        otel.name = format!("publish {template}"),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = crate::consumer::MESSAGING_SYSTEM,
        messaging.operation.type = "publish",
        messaging.operation.name = "publish",
        messaging.destination.name = subject,
        messaging.destination.template = template.as_str(),
        messaging.message.id = %id,
        event_id = %id,
        event_type = event_type,
    );
    if let Some(tp) = traceparent {
        rz_telemetry::set_parent_from_traceparent(&span, tp);
    }
    span
}

/// The longest header value a dead letter of the relay carries (in bytes).
const MAX_HEADER: usize = 512;

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The name the relay's dead letters carry as their consumer.
pub const OUTBOX: &str = "outbox";

/// Whether publishing again can never succeed: the message is larger than the server takes, or
/// the stream refused it for its size (or another rule of the stream, not a passing condition).
fn permanent(e: &PublishError) -> bool {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => true,
        PublishErrorKind::Other => std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<jetstream::Error>())
            .is_some_and(|js| js.error_code() == ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM),
        _ => false,
    }
}

/// Whether an event on `subject` (`<ns>.<context>.…`) carries personal data
/// ([`crate::PERSONAL_DATA_CONTEXTS`]).
fn personal_subject(subject: &str) -> bool {
    subject
        .split('.')
        .nth(1)
        .is_some_and(crate::carries_personal_data)
}
