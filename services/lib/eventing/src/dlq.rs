//! The dead-letter stream, for operators: what failed, why, and a replay.

use async_nats::HeaderMap;
use async_nats::jetstream;

use crate::envelope::{CE_ID, CE_TYPE, MSG_ID};
use crate::{EventingError, Namespace, StreamSettings};

pub const H_REASON: &str = "rz-dlq-reason";
pub const H_CONSUMER: &str = "rz-dlq-consumer";
pub const H_SUBJECT: &str = "rz-dlq-subject";
pub const H_ATTEMPTS: &str = "rz-dlq-attempts";
/// Set by the outbox relay on an event it could not publish: the payload's size in bytes. The
/// dead letter has no payload (the outbox row keeps it for its retention period) and cannot be
/// replayed.
pub const H_PAYLOAD_OMITTED: &str = "rz-dlq-payload-omitted";

/// Finds the dead-letter stream of `ns`, or creates it with the default settings (a service's
/// start has made it with its own settings already, see [`ensure_stream_with`]).
pub async fn ensure_stream(
    js: &jetstream::Context,
    ns: &Namespace,
) -> Result<jetstream::stream::Stream, EventingError> {
    match js.get_stream(ns.dlq_stream()).await {
        Ok(stream) => Ok(stream),
        Err(_) => ensure_stream_with(js, ns, &StreamSettings::default()).await,
    }
}

/// Creates the dead-letter stream of `ns` (`<NS>_DLQ` over `<ns>.dlq.>`) or brings it to
/// `settings`: their replicas and [`StreamSettings::dead_letter_max_age`].
pub async fn ensure_stream_with(
    js: &jetstream::Context,
    ns: &Namespace,
    settings: &StreamSettings,
) -> Result<jetstream::stream::Stream, EventingError> {
    let mut config = jetstream::stream::Config {
        name: ns.dlq_stream(),
        subjects: vec![format!("{}.dlq.>", ns.as_str())],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: std::time::Duration::from_secs(120),
        ..Default::default()
    };
    config.num_replicas = settings.replicas.max(1);
    config.max_age = settings.dead_letter_max_age;
    config.max_bytes = settings.max_bytes.unwrap_or(-1);
    config.discard = jetstream::stream::DiscardPolicy::New;
    crate::converge(js, config).await
}

/// How many messages the dead-letter stream of `ns` holds (0 when it does not exist yet).
pub async fn count(js: &jetstream::Context, ns: &Namespace) -> Result<u64, EventingError> {
    match js.get_stream(ns.dlq_stream()).await {
        Ok(stream) => Ok(stream.cached_info().state.messages),
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(_)
            ) =>
        {
            Ok(0)
        }
        Err(e) => Err(EventingError::nats(e)),
    }
}

/// One dead-lettered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Sequence in the dead-letter stream: the handle for [`DeadLetters::replay`].
    pub sequence: u64,
    pub event_id: String,
    pub event_type: String,
    pub consumer: String,
    pub original_subject: String,
    pub reason: String,
    pub attempts: u32,
}

pub struct DeadLetters {
    js: jetstream::Context,
    ns: Namespace,
}

fn header(h: &HeaderMap, k: &str) -> String {
    h.get(k).map(|v| v.as_str().to_owned()).unwrap_or_default()
}

impl DeadLetters {
    pub fn new(js: jetstream::Context, ns: Namespace) -> Self {
        Self { js, ns }
    }

    /// Every event in the dead-letter stream, oldest first.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, EventingError> {
        let mut stream = match self.js.get_stream(self.ns.dlq_stream()).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(_)
                ) =>
            {
                return Ok(Vec::new());
            }
            Err(e) => return Err(EventingError::nats(e)),
        };
        let state = stream
            .info()
            .await
            .map_err(EventingError::nats)?
            .state
            .clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Ok(out);
        }
        for seq in state.first_sequence..=state.last_sequence {
            let Ok(msg) = stream.get_raw_message(seq).await else {
                continue;
            }; // deleted (replayed)
            let h = msg.headers;
            out.push(DeadLetter {
                sequence: seq,
                event_id: header(&h, CE_ID),
                event_type: header(&h, CE_TYPE),
                consumer: header(&h, H_CONSUMER),
                original_subject: header(&h, H_SUBJECT),
                reason: header(&h, H_REASON),
                attempts: header(&h, H_ATTEMPTS).parse().unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Publishes a dead-lettered event again on its original subject and removes it from the
    /// dead-letter stream. Consumers that had applied it already skip it through their inbox.
    pub async fn replay(&self, sequence: u64) -> Result<DeadLetter, EventingError> {
        let stream = self
            .js
            .get_stream(self.ns.dlq_stream())
            .await
            .map_err(EventingError::nats)?;
        let msg = stream
            .get_raw_message(sequence)
            .await
            .map_err(EventingError::nats)?;
        let dead = DeadLetter {
            sequence,
            event_id: header(&msg.headers, CE_ID),
            event_type: header(&msg.headers, CE_TYPE),
            consumer: header(&msg.headers, H_CONSUMER),
            original_subject: header(&msg.headers, H_SUBJECT),
            reason: header(&msg.headers, H_REASON),
            attempts: header(&msg.headers, H_ATTEMPTS).parse().unwrap_or(0),
        };
        if let Some(size) = msg.headers.get(H_PAYLOAD_OMITTED) {
            return Err(EventingError::Malformed(format!(
                "event {} could not be published ({}); its payload ({} bytes) is not in the \
                 dead-letter stream and it cannot be replayed",
                dead.event_id,
                dead.reason,
                size.as_str()
            )));
        }
        let mut headers = HeaderMap::new();
        for (name, values) in msg.headers.iter() {
            let n = name.to_string();
            if n.starts_with("rz-dlq-") || n == MSG_ID {
                continue;
            }
            for v in values {
                headers.append(n.as_str(), v.as_str());
            }
        }
        headers.insert(
            MSG_ID,
            format!("{}-replay-{sequence}", dead.event_id).as_str(),
        );
        self.js
            .publish_with_headers(dead.original_subject.clone(), headers, msg.payload)
            .await
            .map_err(EventingError::nats)?
            .await
            .map_err(EventingError::nats)?;
        stream
            .delete_message(sequence)
            .await
            .map_err(EventingError::nats)?;
        tracing::info!(event_id = %dead.event_id, consumer = %dead.consumer, "dead letter replayed");
        Ok(dead)
    }
}
