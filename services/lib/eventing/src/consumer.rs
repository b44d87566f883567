//! Durable pull consumers with an inbox: exactly one effect per event, bounded retries, dead letters.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::Shutdown;
use async_nats::jetstream::{self, AckKind};
use futures::{FutureExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::envelope::{CE_ID, MSG_ID};
use crate::{Event, EventingError, Namespace};

/// `messaging.system` of the spans that publish and process events (OpenTelemetry's messaging
/// conventions name no value for NATS; this is the one in common use).
pub const MESSAGING_SYSTEM: &str = "nats";

/// A subject's template, as the span names and `messaging.destination.template` give it: the
/// municipality and provider tokens of `<ns>.<context>.<municipality>.<agb>.<event>` replaced by
/// `*` (a low-cardinality name; other subjects are kept as they are).
pub fn subject_template(subject: &str) -> String {
    let tokens: Vec<&str> = subject.split('.').collect();
    if tokens.len() != 5 {
        return subject.to_owned();
    }
    format!("{}.{}.*.*.{}", tokens[0], tokens[1], tokens[4])
}

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

    /// Called with the events about to be applied (a batch, in stream order), before their
    /// transaction begins: a handler that needs answers from other services may fetch them here
    /// concurrently instead of one after another inside the transaction. It is a hint only:
    /// nothing it does may be needed for correctness — `handle` must work (fetching what it needs
    /// itself) when this did nothing, failed, or ran for other events. Duplicates are not filtered
    /// out yet. Default: nothing.
    fn prefetch<'a>(&'a self, events: &'a [&'a Event]) -> impl Future<Output = ()> + Send + 'a {
        let _ = events;
        async {}
    }

    /// `true`: the consumer applies the new events of a batch with one [`Handler::handle_batch`]
    /// call instead of one `handle` call (and one tracing span) per event. Default: `false`.
    const BATCHES: bool = false;

    /// Applies several new events (in stream order, no duplicates) in the one transaction that
    /// also records them in the inbox; used when [`Handler::BATCHES`] is set. On failure it names
    /// the position of the event that failed (any position when it cannot tell, e.g. a statement
    /// for all of them failed): the consumer then applies the events before it again, settles that
    /// one with the error as a lone event, and takes the rest again. Default: `handle` for each.
    fn handle_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        events: &'a [&'a Event],
    ) -> impl Future<Output = Result<(), (usize, HandleError)>> + Send + 'a {
        async move {
            for (k, event) in events.iter().enumerate() {
                self.handle(tx, event).await.map_err(|e| (k, e))?;
            }
            Ok(())
        }
    }
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
    /// At most this many events that have already arrived are applied in one transaction (their
    /// inbox rows in one statement). 1 = a transaction per event. Only events already buffered are
    /// taken, so a lone event is never held back waiting for others.
    pub batch: usize,
    /// Partitioned consumption: `Some(k)` applies the events whose subjects differ in token `k`
    /// (0-based; 2 is the municipality in `<ns>.<context>.<municipality>.<agb>.<event>`) in
    /// separate transactions at the same time, one worker per token value (up to `partitions`;
    /// beyond that, values share workers). Events with the same token value stay in stream order.
    /// Use it only when the handler's effects for different values do not depend on each other.
    /// `None`: one worker, stream order over all events.
    pub partition_token: Option<usize>,
    /// At most this many partition workers (with `partition_token`).
    pub partitions: usize,
}

impl ConsumerSpec {
    pub fn new(name: &str, stream: String, filter_subject: String) -> Self {
        Self {
            name: name.to_owned(),
            stream,
            filter_subject,
            max_attempts: 5,
            retry_delay: Duration::from_millis(500),
            batch: 64,
            partition_token: None,
            partitions: 16,
        }
    }

    /// The partition key of a subject (see [`ConsumerSpec::partition_token`]); empty when the
    /// subject has fewer tokens or the consumer is not partitioned.
    pub fn partition_key<'a>(&self, subject: &'a str) -> &'a str {
        self.partition_token
            .and_then(|k| subject.split('.').nth(k))
            .unwrap_or("")
    }
}

pub struct EventConsumer<H> {
    js: jetstream::Context,
    pool: PgPool,
    ns: Namespace,
    spec: ConsumerSpec,
    handler: Arc<H>,
    metrics: ConsumerMetrics,
}

/// A consumer's counters (Prometheus counters, shared with the registry that exports them:
/// `rz_platform::metrics`). Each is counted whether or not anyone exports it.
#[derive(Debug, Clone, Default)]
pub struct ConsumerMetrics {
    /// Deliveries taken from JetStream.
    pub delivered: Counter,
    /// Of those, deliveries of a message delivered before (JetStream's delivery count above 1).
    pub redelivered: Counter,
    /// Events put in the dead-letter stream.
    pub dead_lettered: Counter,
}

/// Why a batch transaction did not commit.
enum BatchError {
    /// The handler of the `k`-th event failed.
    At(usize, HandleError),
    /// BEGIN, the inbox insert or COMMIT failed.
    Transaction(sqlx::Error),
}

fn delivered(message: &jetstream::Message) -> u32 {
    message.info().map(|i| i.delivered).unwrap_or(1).max(1) as u32
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
            metrics: ConsumerMetrics::default(),
        }
    }

    /// Counts into `metrics` (see [`ConsumerMetrics`]).
    pub fn with_metrics(mut self, metrics: ConsumerMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Creates the durable consumer (and the dead-letter stream) if they do not exist yet.
    pub async fn ensure(&self) -> Result<jetstream::consumer::PullConsumer, EventingError> {
        crate::dlq::ensure_stream(&self.js, &self.ns).await?;
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

    /// Consumes until `shutdown`; the messages in hand are finished (applied and acked) first.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), EventingError> {
        let consumer = self.ensure().await?;
        let messages = consumer.messages().await.map_err(EventingError::nats)?;
        if self.spec.partition_token.is_some() {
            return Arc::new(self).run_partitioned(messages, shutdown).await;
        }
        self.run_sequential(messages, shutdown).await
    }

    async fn run_sequential(
        self,
        mut messages: jetstream::consumer::pull::Stream,
        shutdown: Shutdown,
    ) -> Result<(), EventingError> {
        let max = self.spec.batch.max(1);
        let mut batch: Vec<jetstream::Message> = Vec::with_capacity(max);
        loop {
            let next = tokio::select! {
                _ = shutdown.wait() => break,
                m = messages.next() => m,
            };
            let Some(message) = next else { break };
            let mut ended = false;
            match message {
                Ok(m) => batch.push(m),
                Err(e) => {
                    tracing::warn!(consumer = %self.spec.name, error = %e, "consumer stream error")
                }
            }
            // Take what has already arrived, without waiting for more.
            while batch.len() < max {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => batch.push(m),
                    Some(Some(Err(e))) => {
                        tracing::warn!(consumer = %self.spec.name, error = %e, "consumer stream error");
                        break;
                    }
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            self.process_messages(&batch).await;
            batch.clear();
            if ended {
                break;
            }
        }
        tracing::info!(consumer = %self.spec.name, "consumer stopped");
        Ok(())
    }

    /// One reader hands the messages, in stream order, to a worker per partition key; each worker
    /// applies what has arrived for it in batches, as the sequential consumer does. A full worker
    /// queue holds the reader back (and so the other partitions), which bounds what is delivered
    /// but not yet applied.
    async fn run_partitioned(
        self: Arc<Self>,
        mut messages: jetstream::consumer::pull::Stream,
        shutdown: Shutdown,
    ) -> Result<(), EventingError> {
        let cap = self.spec.partitions.max(1);
        // Small queues: a message waiting in one is delivered but not acknowledged, and must be
        // applied within the ack wait, or JetStream delivers it again (counting towards
        // `max_attempts`).
        let queue = (self.spec.batch.max(1) * 2).max(64);
        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut workers: Vec<(mpsc::Sender<jetstream::Message>, JoinHandle<()>)> = Vec::new();
        loop {
            let next = tokio::select! {
                _ = shutdown.wait() => break,
                m = messages.next() => m,
            };
            let message = match next {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(consumer = %self.spec.name, error = %e, "consumer stream error");
                    continue;
                }
                Some(Ok(m)) => m,
            };
            let key = self.spec.partition_key(message.subject.as_str()).to_owned();
            let slot = match slots.get(&key) {
                Some(&i) => i,
                None => {
                    let i = if workers.len() < cap {
                        let (tx, rx) = mpsc::channel(queue);
                        let worker = tokio::spawn(self.clone().work(rx, shutdown.clone()));
                        workers.push((tx, worker));
                        workers.len() - 1
                    } else {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        key.hash(&mut h);
                        (h.finish() % cap as u64) as usize
                    };
                    slots.insert(key.clone(), i);
                    i
                }
            };
            let Some((tx, _)) = workers.get(slot) else {
                continue;
            };
            if let Err(mpsc::error::SendError(m)) = tx.send(message).await {
                // The worker is gone (it panicked): leave the message to a redelivery.
                tracing::error!(consumer = %self.spec.name, partition = %key, "partition worker gone");
                self.ack(&m, Outcome::Retry(self.spec.retry_delay)).await;
            }
        }
        let handles: Vec<JoinHandle<()>> = workers.into_iter().map(|(_, h)| h).collect();
        for h in handles {
            if let Err(e) = h.await {
                tracing::error!(consumer = %self.spec.name, error = %e, "partition worker failed");
            }
        }
        tracing::info!(consumer = %self.spec.name, "consumer stopped");
        Ok(())
    }

    /// A partition worker: applies its messages in batches until its queue closes. After a
    /// shutdown it finishes the batch in hand and hands the rest back for redelivery at once.
    async fn work(self: Arc<Self>, mut rx: mpsc::Receiver<jetstream::Message>, shutdown: Shutdown) {
        let max = self.spec.batch.max(1);
        let mut batch: Vec<jetstream::Message> = Vec::with_capacity(max);
        while let Some(m) = rx.recv().await {
            batch.push(m);
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            self.process_messages(&batch).await;
            batch.clear();
            if shutdown.is_triggered() {
                rx.close();
                while let Some(m) = rx.recv().await {
                    if let Err(e) = m.ack_with(AckKind::Nak(None)).await {
                        tracing::warn!(consumer = %self.spec.name, error = %e, "nak failed");
                    }
                }
                break;
            }
        }
    }

    async fn process_messages(&self, batch: &[jetstream::Message]) {
        for message in batch {
            self.metrics.delivered.inc();
            if delivered(message) > 1 {
                self.metrics.redelivered.inc();
            }
        }
        match batch.len() {
            0 => {}
            1 => {
                // Prefetch for a lone event too: it may need several answers.
                if let Ok(event) = Event::from_parts(
                    batch[0].subject.as_str(),
                    batch[0].headers.as_ref(),
                    batch[0].payload.clone(),
                ) {
                    self.handler.prefetch(&[&event]).await;
                }
                self.process(&batch[0]).await
            }
            _ => self.process_batch(batch).await,
        }
    }

    /// One message in its own transaction.
    async fn process(&self, message: &jetstream::Message) {
        let delivered = delivered(message);
        let outcome = match Event::from_parts(
            message.subject.as_str(),
            message.headers.as_ref(),
            message.payload.clone(),
        ) {
            Err(e) => self.dead_letter(message, &e.to_string(), delivered).await,
            Ok(event) => {
                let span = self.span(&event, delivered);
                self.apply_or_retry(message, &event, delivered)
                    .instrument(span)
                    .await
            }
        };
        self.ack(message, outcome).await;
    }

    /// Several messages: those that can be applied go through one transaction, in stream order.
    /// If a handler fails, that transaction is rolled back, the events before the failing one are
    /// applied again in a transaction of their own, the failing one is settled with its error as a
    /// lone event would be (redelivered later or dead-lettered), and the events after it are taken
    /// again.
    async fn process_batch(&self, messages: &[jetstream::Message]) {
        let mut ready: Vec<(&jetstream::Message, Event, u32)> = Vec::with_capacity(messages.len());
        for message in messages {
            let delivered = delivered(message);
            match Event::from_parts(
                message.subject.as_str(),
                message.headers.as_ref(),
                message.payload.clone(),
            ) {
                Err(e) => {
                    let outcome = self.dead_letter(message, &e.to_string(), delivered).await;
                    self.ack(message, outcome).await;
                }
                Ok(_) if delivered > self.spec.max_attempts => self.process(message).await,
                Ok(event) => ready.push((message, event, delivered)),
            }
        }
        if !ready.is_empty() {
            let events: Vec<&Event> = ready.iter().map(|(_, e, _)| e).collect();
            self.handler.prefetch(&events).await;
        }
        let mut rest: &[(&jetstream::Message, Event, u32)] = &ready;
        while !rest.is_empty() {
            if rest.len() == 1 {
                let (message, event, delivered) = &rest[0];
                let span = self.span(event, *delivered);
                let outcome = self
                    .apply_or_retry(message, event, *delivered)
                    .instrument(span)
                    .await;
                self.ack(message, outcome).await;
                break;
            }
            let events: Vec<&Event> = rest.iter().map(|(_, e, _)| e).collect();
            let span = self.batch_span(&events);
            match self.apply_all(&events).instrument(span).await {
                Ok(fresh) => {
                    for ((message, _, _), fresh) in rest.iter().zip(fresh) {
                        if !fresh {
                            tracing::debug!("duplicate event ignored");
                        }
                        self.ack(message, Outcome::Applied).await;
                    }
                    break;
                }
                Err(BatchError::At(k, error)) => {
                    // Rolled back. The events before `k` succeeded: apply them again on their own
                    // (an empty prefix is skipped); the failing one is settled with its error as a
                    // lone event would be (retried later or dead-lettered), not run again now.
                    if k > 0 {
                        let prefix: Vec<&Event> = events[..k].to_vec();
                        match self.apply_all(&prefix).await {
                            Ok(_) => {
                                for (message, _, _) in &rest[..k] {
                                    self.ack(message, Outcome::Applied).await;
                                }
                            }
                            Err(_) => {
                                // Something changed in between: one by one.
                                for (message, event, delivered) in &rest[..k] {
                                    let outcome =
                                        self.apply_or_retry(message, event, *delivered).await;
                                    self.ack(message, outcome).await;
                                }
                            }
                        }
                    }
                    let (message, event, delivered) = &rest[k];
                    let span = self.span(event, *delivered);
                    let outcome = self
                        .settle(message, Err(error), *delivered)
                        .instrument(span)
                        .await;
                    self.ack(message, outcome).await;
                    rest = &rest[k + 1..];
                }
                Err(BatchError::Transaction(e)) => {
                    // BEGIN, the inbox insert or COMMIT failed: every event as a lone one.
                    tracing::warn!(consumer = %self.spec.name, error = %e, "batch transaction failed; applying one by one");
                    for (message, event, delivered) in rest {
                        let span = self.span(event, *delivered);
                        let outcome = self
                            .apply_or_retry(message, event, *delivered)
                            .instrument(span)
                            .await;
                        self.ack(message, outcome).await;
                    }
                    break;
                }
            }
        }
    }

    /// Applies `events` in stream order in one transaction, their inbox rows written by one
    /// statement; returns per event whether it was new (false: seen before, or earlier in the
    /// batch). Nothing is committed unless every handler succeeded.
    async fn apply_all(&self, events: &[&Event]) -> Result<Vec<bool>, BatchError> {
        let mut tx = self.pool.begin().await.map_err(BatchError::Transaction)?;
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        let inserted: Vec<uuid::Uuid> = sqlx::query_scalar(
            "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])
             ON CONFLICT DO NOTHING RETURNING event_id",
        )
        .bind(&self.spec.name)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(BatchError::Transaction)?;
        let mut fresh_ids: std::collections::HashSet<uuid::Uuid> = inserted.into_iter().collect();
        // The first occurrence of a new id is applied; a repeat within the batch is a duplicate.
        let fresh: Vec<bool> = events.iter().map(|e| fresh_ids.remove(&e.id)).collect();
        if H::BATCHES {
            // Positions in `events` of the events handed to the handler.
            let (at, new): (Vec<usize>, Vec<&Event>) = events
                .iter()
                .zip(&fresh)
                .enumerate()
                .filter(|(_, (_, f))| **f)
                .map(|(k, (e, _))| (k, *e))
                .unzip();
            if !new.is_empty()
                && let Err((j, e)) = self.handler.handle_batch(&mut tx, &new).await
            {
                let k = at.get(j).or(at.first()).copied().unwrap_or(0);
                return Err(BatchError::At(k, e));
            }
        } else {
            for (k, event) in events.iter().enumerate() {
                if !fresh[k] {
                    continue;
                }
                let span = self.span(event, 0);
                if let Err(e) = self.handler.handle(&mut tx, event).instrument(span).await {
                    return Err(BatchError::At(k, e));
                }
            }
        }
        tx.commit().await.map_err(BatchError::Transaction)?;
        Ok(fresh)
    }

    /// The span one event is applied in: a `consumer` span after OpenTelemetry's messaging
    /// conventions (`process <subject template>`), child of the span that published the event.
    fn span(&self, event: &Event, delivered: u32) -> tracing::Span {
        let template = subject_template(&event.nats_subject);
        let span = tracing::info_span!(
            "event.consume",
            otel.name = format!("process {template}"),
            otel.kind = "consumer",
            messaging.system = MESSAGING_SYSTEM,
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = event.nats_subject.as_str(),
            messaging.destination.template = template.as_str(),
            messaging.consumer.group.name = self.spec.name.as_str(),
            messaging.message.id = %event.id,
            consumer = %self.spec.name,
            event_id = %event.id,
            event_type = %event.event_type,
            attempt = delivered,
        );
        if let Some(tp) = &event.traceparent {
            rz_telemetry::set_parent_from_traceparent(&span, tp);
        }
        span
    }

    /// The span a batch of events is applied in by a batching handler: it continues the trace of
    /// the first event and links every event's publish span (the conventions' batch `process`).
    fn batch_span(&self, events: &[&Event]) -> tracing::Span {
        let template = events
            .first()
            .map(|e| subject_template(&e.nats_subject))
            .unwrap_or_default();
        let span = tracing::info_span!(
            "event.consume_batch",
            otel.name = format!("process {template}"),
            otel.kind = "consumer",
            messaging.system = MESSAGING_SYSTEM,
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.template = template.as_str(),
            messaging.consumer.group.name = self.spec.name.as_str(),
            messaging.batch.message_count = events.len(),
            consumer = %self.spec.name,
            events = events.len(),
        );
        if let Some(tp) = events.first().and_then(|e| e.traceparent.as_deref()) {
            rz_telemetry::set_parent_from_traceparent(&span, tp);
        }
        for tp in events.iter().filter_map(|e| e.traceparent.as_deref()) {
            rz_telemetry::add_link_from_traceparent(&span, tp);
        }
        span
    }

    async fn ack(&self, message: &jetstream::Message, outcome: Outcome) {
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
        let result = self.apply(event).await;
        self.settle(message, result, delivered).await
    }

    /// What to do with a message after its event was applied (`Ok(true)`), found a duplicate
    /// (`Ok(false)`) or failed.
    async fn settle(
        &self,
        message: &jetstream::Message,
        result: Result<bool, HandleError>,
        delivered: u32,
    ) -> Outcome {
        match result {
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
                self.metrics.dead_lettered.inc();
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
