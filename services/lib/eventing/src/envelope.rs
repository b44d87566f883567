//! The event envelope, CloudEvents 1.0 in binary content mode over NATS headers.

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::EventingError;

pub const CE_ID: &str = "ce-id";
pub const CE_TYPE: &str = "ce-type";
pub const CE_SOURCE: &str = "ce-source";
pub const CE_SUBJECT: &str = "ce-subject";
pub const CE_TIME: &str = "ce-time";
pub const CE_SPECVERSION: &str = "ce-specversion";
pub const TRACEPARENT: &str = "traceparent";
pub const MSG_ID: &str = "Nats-Msg-Id";

/// An event about to be written to the outbox.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub nats_subject: String,
    /// e.g. `nl.regiozorg.registration.contract_concluded.v1`
    pub event_type: String,
    /// e.g. `regiozorg/registration` or `regiozorg/access/0222`
    pub source: String,
    /// The aggregate the event is about (a contract id, an AGB code...), never personal data.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub traceparent: Option<String>,
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id, the current time and the current span's trace context.
    pub fn new(
        nats_subject: String,
        event_type: impl Into<String>,
        source: impl Into<String>,
        subject: impl Into<String>,
        payload: &impl prost::Message,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            nats_subject,
            event_type: event_type.into(),
            source: source.into(),
            subject: subject.into(),
            time: Utc::now(),
            traceparent: rz_telemetry::current_traceparent(),
            payload: payload.encode_to_vec(),
        }
    }
}

/// An event as a consumer receives it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub event_type: String,
    pub source: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub nats_subject: String,
    pub traceparent: Option<String>,
    pub payload: Bytes,
}

impl Event {
    /// Decodes the protobuf body.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.payload.as_ref())
    }

    pub(crate) fn from_parts(
        nats_subject: &str,
        headers: Option<&HeaderMap>,
        payload: Bytes,
    ) -> Result<Self, EventingError> {
        let headers =
            headers.ok_or_else(|| EventingError::Malformed("message has no headers".into()))?;
        let get = |k: &str| headers.get(k).map(|v| v.as_str().to_owned());
        let need = |k: &str| {
            get(k).ok_or_else(|| EventingError::Malformed(format!("header {k} is missing")))
        };
        let id = Uuid::parse_str(&need(CE_ID)?)
            .map_err(|e| EventingError::Malformed(format!("{CE_ID}: {e}")))?;
        let time = DateTime::parse_from_rfc3339(&need(CE_TIME)?)
            .map_err(|e| EventingError::Malformed(format!("{CE_TIME}: {e}")))?
            .with_timezone(&Utc);
        Ok(Self {
            id,
            event_type: need(CE_TYPE)?,
            source: need(CE_SOURCE)?,
            subject: get(CE_SUBJECT).unwrap_or_default(),
            time,
            nats_subject: nats_subject.to_owned(),
            traceparent: get(TRACEPARENT),
            payload,
        })
    }
}

/// The NATS headers of an event: the CloudEvents attributes, trace context and the dedup id.
pub(crate) fn headers(
    id: &Uuid,
    event_type: &str,
    source: &str,
    subject: &str,
    time: &DateTime<Utc>,
    traceparent: Option<&str>,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    let id = id.to_string();
    h.insert(MSG_ID, id.as_str());
    h.insert(CE_SPECVERSION, "1.0");
    h.insert(CE_ID, id.as_str());
    h.insert(CE_TYPE, event_type);
    h.insert(CE_SOURCE, source);
    h.insert(CE_SUBJECT, subject);
    h.insert(
        CE_TIME,
        time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .as_str(),
    );
    h.insert("content-type", "application/protobuf");
    if let Some(tp) = traceparent {
        h.insert(TRACEPARENT, tp);
    }
    h
}
