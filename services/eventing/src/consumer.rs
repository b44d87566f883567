//! Durable pull consumers with an inbox: exactly one effect per event, bounded retries, dead letters.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use rz_platform::Shutdown;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;

use crate::envelope::{CE_ID, MSG_ID};
use crate::{Event, EventingError, Namespace};

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// May succeed later (a dependency is down): the event is redelivered, up to `max_attempts`.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (a payload that cannot be decoded, a broken invariant): dead-lettered now.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(e.to_string())
    }
}

impl From<prost::DecodeError> for HandleError {
    fn from(e: prost::DecodeError) -> Self {
        Self::Permanent(format!("cannot decode payload: {e}"))
    }
}

/// Applies events. It runs inside the transaction that also records the event in the inbox: write
/// through `tx` only, and the effect and the inbox row commit or roll back together.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a Event,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a;
}

/// What a consumer reads and how hard it tries.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable consumer name, also the inbox key and the DLQ subject suffix (`[a-z0-9_-]`).
    pub name: String,
    /// The stream to read, e.g. `RZ_REGISTRATION`.
    pub stream: String,
    pub filter_subject: String,
    /// Deliveries before an event goes to the dead-letter stream.
    pub max_attempts: u32,
    /// Delay before the first redelivery; doubles each attempt, capped at one minute.
    pub retry_delay: Duration,
}

impl ConsumerSpec {
    pub fn new(name: &str, stream: String, filter_subject: String) -> Self {
        Self {
            name: name.to_owned(),
            stream,
            filter_subject,
            max_attempts: 5,
            retry_delay: Duration::from_millis(500),
        }
    }
}

pub struct EventConsumer<H> {
    js: jetstream::Context,
    pool: PgPool,
    ns: Namespace,
    spec: ConsumerSpec,
    handler: Arc<H>,
}

enum Outcome {
    Applied,
    Duplicate,
    DeadLettered,
    Retry(Duration),
}

impl<H: Handler> EventConsumer<H> {
    pub fn new(
        js: jetstream::Context,
        pool: PgPool,
        ns: Namespace,
        spec: ConsumerSpec,
        handler: H,
    ) -> Self {
        Self {
            js,
            pool,
            ns,
            spec,
            handler: Arc::new(handler),
        }
    }

    /// Creates the durable consumer (and the dead-letter stream) if they do not exist yet.
    pub async fn ensure(&self) -> Result<jetstream::consumer::PullConsumer, EventingError> {
        self.js
            .get_or_create_stream(jetstream::stream::Config {
                name: self.ns.dlq_stream(),
                subjects: vec![format!("{}.dlq.>", self.ns.as_str())],
                storage: jetstream::stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(EventingError::nats)?;
        let stream = self
            .js
            .get_stream(&self.spec.stream)
            .await
            .map_err(EventingError::nats)?;
        stream
            .get_or_create_consumer(
                &self.spec.name,
                jetstream::consumer::pull::Config {
                    durable_name: Some(self.spec.name.clone()),
                    filter_subject: self.spec.filter_subject.clone(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    // Unbounded here: the consumer counts deliveries itself and dead-letters, so an
                    // event is never silently dropped by the server.
                    max_deliver: -1,
                    max_ack_pending: 4096,
                    ..Default::default()
                },
            )
            .await
            .map_err(EventingError::nats)
    }

    /// Consumes until `shutdown`; the message in hand is finished (applied and acked) first.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), EventingError> {
        let consumer = self.ensure().await?;
        let mut messages = consumer.messages().await.map_err(EventingError::nats)?;
        loop {
            let next = tokio::select! {
                _ = shutdown.wait() => break,
                m = messages.next() => m,
            };
            let Some(message) = next else { break };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(consumer = %self.spec.name, error = %e, "consumer stream error");
                    continue;
                }
            };
            self.process(&message).await;
        }
        tracing::info!(consumer = %self.spec.name, "consumer stopped");
        Ok(())
    }

    async fn process(&self, message: &jetstream::Message) {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1) as u32;
        let outcome = match Event::from_parts(
            message.subject.as_str(),
            message.headers.as_ref(),
            message.payload.clone(),
        ) {
            Err(e) => self.dead_letter(message, &e.to_string(), delivered).await,
            Ok(event) => {
                let span = tracing::info_span!(
                    "event.consume",
                    consumer = %self.spec.name,
                    event_id = %event.id,
                    event_type = %event.event_type,
                    attempt = delivered,
                );
                if let Some(tp) = &event.traceparent {
                    rz_telemetry::set_parent_from_traceparent(&span, tp);
                }
                self.apply_or_retry(message, &event, delivered)
                    .instrument(span)
                    .await
            }
        };
        let ack = match outcome {
            Outcome::Applied | Outcome::Duplicate | Outcome::DeadLettered => {
                message.ack_with(AckKind::Ack).await
            }
            Outcome::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
        };
        if let Err(e) = ack {
            // The event will be redelivered; the inbox makes that harmless.
            tracing::warn!(consumer = %self.spec.name, error = %e, "ack failed");
        }
    }

    async fn apply_or_retry(
        &self,
        message: &jetstream::Message,
        event: &Event,
        delivered: u32,
    ) -> Outcome {
        if delivered > self.spec.max_attempts {
            // Redelivered without an ack more often than allowed (e.g. the process died each time).
            let reason = format!("not acknowledged after {} deliveries", delivered - 1);
            return self.dead_letter(message, &reason, delivered).await;
        }
        match self.apply(event).await {
            Ok(true) => Outcome::Applied,
            Ok(false) => {
                tracing::debug!("duplicate event ignored");
                Outcome::Duplicate
            }
            Err(HandleError::Permanent(reason)) => {
                self.dead_letter(message, &reason, delivered).await
            }
            Err(HandleError::Transient(reason)) if delivered >= self.spec.max_attempts => {
                self.dead_letter(
                    message,
                    &format!("gave up after {delivered} attempts: {reason}"),
                    delivered,
                )
                .await
            }
            Err(HandleError::Transient(reason)) => {
                tracing::warn!(%reason, "event failed; will retry");
                let factor = 2u32.saturating_pow(delivered.saturating_sub(1)).min(120);
                Outcome::Retry((self.spec.retry_delay * factor).min(Duration::from_secs(60)))
            }
        }
    }

    /// Applies the event and records it in the inbox in one transaction. `Ok(false)`: seen before.
    async fn apply(&self, event: &Event) -> Result<bool, HandleError> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.spec.name)
        .bind(event.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(false);
        }
        self.handler.handle(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Copies the message to the dead-letter stream with the reason. If that publish fails, the
    /// message is retried instead, so nothing is lost.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        reason: &str,
        attempts: u32,
    ) -> Outcome {
        let mut headers = message.headers.clone().unwrap_or_default();
        let id = headers
            .get(CE_ID)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_else(|| {
                message
                    .info()
                    .map(|i| format!("seq-{}", i.stream_sequence))
                    .unwrap_or_default()
            });
        // Unique per delivered stream message: a redelivery of the same message dedups, while the
        // same event failing again after a replay (a new stream message) is kept.
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        headers.insert(
            MSG_ID,
            format!("dlq-{}-{id}-{seq}", self.spec.name).as_str(),
        );
        headers.insert(crate::dlq::H_REASON, reason);
        headers.insert(crate::dlq::H_CONSUMER, self.spec.name.as_str());
        headers.insert(crate::dlq::H_SUBJECT, message.subject.as_str());
        headers.insert(crate::dlq::H_ATTEMPTS, attempts.to_string().as_str());
        let published = match self
            .js
            .publish_with_headers(
                self.ns.dlq_subject(&self.spec.name),
                headers,
                message.payload.clone(),
            )
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match published {
            Ok(()) => {
                tracing::error!(consumer = %self.spec.name, event_id = %id, %reason, "event dead-lettered");
                Outcome::DeadLettered
            }
            Err(e) => {
                tracing::warn!(error = %e, "dead-letter publish failed; will retry");
                Outcome::Retry(Duration::from_secs(5))
            }
        }
    }
}
