//! The webhook rules, without I/O: which subscriptions an event goes to, the CloudEvents 1.0
//! structured JSON document that is POSTed, its signature and the subscription secret.
//!
//! `data` is the event's protobuf payload mapped by hand to JSON (prost types do not derive serde)
//! for the types a provider receives: `nl.regiozorg.assignment.issued.v1` / `changed.v1`
//! (`AssignmentMessage`: the assignment and the client block of the standard's 301, BSN included, as
//! the 301 itself carries it to that provider) and `request_answered.v1` (`RequestAnswered`). Field
//! names are the proto's (snake_case), enums are their proto names without prefix, lower case
//! (`jeugdwet`, `inspanningsgericht`), empty strings and zeros are left out. Any other type is sent
//! with `data_base64` holding the protobuf bytes, so nothing is ever dropped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rz_proto::assignment::v1 as apb;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use uuid::Uuid;

/// The routing facts of an event on `<ns>.assignment.<municipality>.<agb|_>.<event>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub municipality: String,
    /// `None` for events not addressed to one provider (`_`): those are never sent to a webhook.
    pub agb: Option<String>,
    /// The last subject token, e.g. `issued`.
    pub event: String,
}

impl Route {
    pub fn from_subject(subject: &str) -> Option<Self> {
        let t: Vec<&str> = subject.split('.').collect();
        let [_, _, municipality, agb, event] = t.as_slice() else {
            return None;
        };
        Some(Self {
            municipality: (*municipality).to_owned(),
            agb: (*agb != "_").then(|| (*agb).to_owned()),
            event: (*event).to_owned(),
        })
    }
}

/// A subscription's filters; an empty list matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub event_types: Vec<String>,
    pub municipalities: Vec<String>,
    pub segments: Vec<String>,
}

impl Filters {
    /// `event_type` is the full CloudEvents type; a filter may also name the short event
    /// (`issued`). `segments` are the event's segment and subsegment codes (either may match).
    pub fn matches(&self, event_type: &str, route: &Route, segments: &[String]) -> bool {
        let type_ok = self.event_types.is_empty()
            || self
                .event_types
                .iter()
                .any(|t| t == event_type || *t == route.event);
        let muni_ok =
            self.municipalities.is_empty() || self.municipalities.contains(&route.municipality);
        let seg_ok = self.segments.is_empty()
            || segments
                .iter()
                .any(|s| !s.is_empty() && self.segments.contains(s));
        type_ok && muni_ok && seg_ok
    }
}

/// What the webhook needs from an event's payload: its JSON `data` (or `None`: send base64) and the
/// segment codes the segment filter compares.
#[derive(Default)]
pub struct Payload {
    pub data: Option<Value>,
    pub segments: Vec<String>,
}

impl Payload {
    fn object(o: Map<String, Value>, segments: Vec<String>) -> Self {
        Self {
            data: Some(Value::Object(o)),
            segments,
        }
    }
}

/// Decodes the payload of the types providers receive. A payload that does not decode is sent as
/// base64 rather than dropped.
pub fn payload(event_type: &str, bytes: &[u8]) -> Payload {
    use prost::Message;
    use rz_proto::events::assignment::{CHANGED, ISSUED, REQUEST_ANSWERED};
    match event_type {
        t if ISSUED.is(t) || CHANGED.is(t) => apb::AssignmentMessage::decode(bytes).ok().map(|m| {
            let segments = m
                .assignment
                .as_ref()
                .map(|a| vec![a.segment_code.clone(), a.subsegment_code.clone()])
                .unwrap_or_default();
            let mut o = Map::new();
            if let Some(a) = &m.assignment {
                o.insert("assignment".into(), assignment_json(a));
            }
            if let Some(c) = &m.client {
                o.insert(
                    "client".into(),
                    compact(json!({
                        "bsn": c.bsn,
                        "birth_date": c.birth_date,
                        "family_name": c.family_name,
                        "given_names": c.given_names,
                        "gender": c.gender,
                        "address": c.address.as_ref().map(|a| json!({
                            "street": a.street,
                            "house_number": a.house_number,
                            "postal_code": a.postal_code,
                            "city": a.city,
                        })),
                    })),
                );
            }
            Payload::object(o, segments)
        }),
        t if REQUEST_ANSWERED.is(t) => apb::RequestAnswered::decode(bytes).ok().map(|m| {
            let segments = m
                .request
                .as_ref()
                .map(|r| vec![r.subsegment_code.clone()])
                .unwrap_or_default();
            let mut o = Map::new();
            if let Some(r) = &m.request {
                o.insert("request".into(), request_json(r));
            }
            Payload::object(o, segments)
        }),
        _ => None,
    }
    .unwrap_or_default()
}

fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .unwrap_or(full)
        .to_ascii_lowercase()
}

fn assignment_json(a: &apb::Assignment) -> Value {
    use rz_proto::types::v1::{ExecutionVariant, Law};
    let law = Law::try_from(a.law)
        .map(|l| enum_name(l.as_str_name(), "LAW_"))
        .unwrap_or_default();
    let variant = ExecutionVariant::try_from(a.execution_variant)
        .map(|v| enum_name(v.as_str_name(), "EXECUTION_VARIANT_"))
        .unwrap_or_default();
    let status = apb::AssignmentStatus::try_from(a.status)
        .map(|s| enum_name(s.as_str_name(), "ASSIGNMENT_STATUS_"))
        .unwrap_or_default();
    compact(json!({
        "number": a.number,
        "municipality": a.municipality,
        "client_key": a.client_key,
        "agb_code": a.agb_code,
        "law": law,
        "segment_code": a.segment_code,
        "subsegment_code": a.subsegment_code,
        "product_category": a.product_category,
        "product_code": a.product_code,
        "period": a.period.as_ref().map(|p| compact(json!({"start": p.start, "end": p.end}))),
        "execution_variant": variant,
        "size": a.size.as_ref().map(|s| compact(json!({"volume": s.volume, "unit": s.unit, "frequency": s.frequency}))),
        "budget_cents": a.budget_cents,
        "status": status,
        "assigned_on": a.assigned_on,
        "change_reason": a.change_reason,
        "started_on": a.started_on,
        "stopped_on": a.stopped_on,
        "end_reason": a.end_reason,
        "choice_reason": a.choice_reason,
        "replaces_number": a.replaces_number,
        "replaced_by_number": a.replaced_by_number,
    }))
}

fn request_json(r: &apb::ProviderRequest) -> Value {
    let status = apb::RequestStatus::try_from(r.status)
        .map(|s| enum_name(s.as_str_name(), "REQUEST_STATUS_"))
        .unwrap_or_default();
    compact(json!({
        "id": r.id,
        "kind": r.kind,
        "agb_code": r.agb_code,
        "municipality": r.municipality,
        "client_key": r.client_key,
        "subsegment_code": r.subsegment_code,
        "assignment_number": r.assignment_number,
        "status": status,
        "received_on": r.received_on,
        "answer_due": r.answer_due,
        "answered_on": r.answered_on,
        "refusal_reason": r.refusal_reason,
        "resulting_assignment_number": r.resulting_assignment_number,
    }))
}

/// Leaves out nulls, empty strings and zeros (proto3 defaults), recursively.
fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, compact(v)))
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::String(s) => !s.is_empty(),
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        other => other,
    }
}

/// The CloudEvents 1.0 attributes of one event.
pub struct CloudEvent<'a> {
    pub id: Uuid,
    pub event_type: &'a str,
    pub source: &'a str,
    pub subject: &'a str,
    pub time: chrono::DateTime<chrono::Utc>,
}

/// The structured-mode JSON document (`application/cloudevents+json`).
pub fn render(ce: &CloudEvent<'_>, data: Option<Value>, payload: &[u8]) -> String {
    let mut o = Map::new();
    o.insert("specversion".into(), "1.0".into());
    o.insert("id".into(), ce.id.to_string().into());
    o.insert("type".into(), ce.event_type.into());
    o.insert("source".into(), ce.source.into());
    if !ce.subject.is_empty() {
        o.insert("subject".into(), ce.subject.into());
    }
    o.insert(
        "time".into(),
        ce.time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .into(),
    );
    match data {
        Some(d) => {
            o.insert("datacontenttype".into(), "application/json".into());
            o.insert("data".into(), d);
        }
        None => {
            o.insert("datacontenttype".into(), "application/protobuf".into());
            o.insert("data_base64".into(), STANDARD.encode(payload).into());
        }
    }
    Value::Object(o).to_string()
}

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The HMAC key of a Standard Webhooks secret: `whsec_<base64>` decoded (the prefix is optional,
/// as receivers' libraries take it). `None` for text that is no base64 or decodes to nothing.
///
/// The secrets made before this scheme (`whsec_` and 64 hex digits) are valid base64 too: the key
/// is what those 64 characters decode to, exactly as a receiver's library computes it from the
/// secret it was given, so they keep working unchanged.
pub fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(b64).ok().filter(|k| !k.is_empty())
}

/// The Standard Webhooks `webhook-signature` value: `v1,<base64 HMAC-SHA256 of
/// "<msg_id>.<timestamp>.<body>">`.
pub fn signature(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// A secret from 32 random bytes: `whsec_<base64>`.
pub fn new_secret(random: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_from_subjects() {
        let r = Route::from_subject("rz.assignment.0222.12345678.issued").unwrap();
        assert_eq!(r.municipality, "0222");
        assert_eq!(r.agb.as_deref(), Some("12345678"));
        assert_eq!(r.event, "issued");
        let r = Route::from_subject("rz.assignment.0222._.lifecycle").unwrap();
        assert_eq!(r.agb, None);
        assert!(Route::from_subject("rz.assignment.0222").is_none());
    }

    #[test]
    fn filters_match() {
        let route = Route::from_subject("rz.assignment.0222.12345678.issued").unwrap();
        let t = "nl.regiozorg.assignment.issued.v1";
        let segs = vec!["IAJ".to_owned(), "IAJ-OND".to_owned()];
        assert!(Filters::default().matches(t, &route, &segs));
        let f = Filters {
            event_types: vec!["issued".into()],
            municipalities: vec!["0222".into()],
            segments: vec!["IAJ-OND".into()],
        };
        assert!(f.matches(t, &route, &segs));
        let f = Filters {
            event_types: vec!["nl.regiozorg.assignment.changed.v1".into()],
            ..Filters::default()
        };
        assert!(!f.matches(t, &route, &segs));
        let f = Filters {
            municipalities: vec!["0197".into()],
            ..Filters::default()
        };
        assert!(!f.matches(t, &route, &segs));
        let f = Filters {
            segments: vec!["WMO".into()],
            ..Filters::default()
        };
        assert!(!f.matches(t, &route, &segs));
    }

    #[test]
    fn signs_as_the_standard_webhooks_library() {
        let secret = new_secret(&[42u8; 32]);
        let body = br#"{"specversion":"1.0","id":"x"}"#;
        let key = signing_key(&secret).unwrap();
        let lib = standardwebhooks::Webhook::new(&secret).unwrap();
        assert_eq!(
            signature(&key, "msg_1", 1_614_265_330, body),
            lib.sign("msg_1", 1_614_265_330, body).unwrap()
        );
        // A legacy hex secret, as the library reads it.
        let hex = format!("whsec_{}", "0123456789abcdef".repeat(4));
        let lib = standardwebhooks::Webhook::new(&hex).unwrap();
        assert_eq!(
            signature(&signing_key(&hex).unwrap(), "m", 7, body),
            lib.sign("m", 7, body).unwrap()
        );
        // Changing any of id, time or body changes the signature.
        let s = signature(&key, "msg_1", 1, body);
        assert_ne!(s, signature(&key, "msg_2", 1, body));
        assert_ne!(s, signature(&key, "msg_1", 2, body));
        assert_ne!(s, signature(&key, "msg_1", 1, b"{}"));
    }

    #[test]
    fn legacy_hex_secrets_are_base64_keys() {
        let hex = format!("whsec_{}", "0123456789abcdef".repeat(4));
        assert_eq!(signing_key(&hex).map(|k| k.len()), Some(48));
        assert_eq!(signing_key("whsec_!!"), None);
        assert_eq!(signing_key("whsec_"), None);
    }

    #[test]
    fn secrets_are_base64_of_their_bytes() {
        let a = new_secret(&[7u8; 32]);
        assert!(a.starts_with("whsec_"));
        assert_eq!(signing_key(&a), Some(vec![7u8; 32]));
    }

    #[test]
    fn renders_a_structured_cloudevent() {
        let m = apb::AssignmentMessage {
            assignment: Some(apb::Assignment {
                number: 7,
                municipality: "0222".into(),
                agb_code: "12345678".into(),
                segment_code: "IAJ".into(),
                law: 1,
                ..Default::default()
            }),
            client: None,
        };
        let bytes = prost::Message::encode_to_vec(&m);
        let p = payload("nl.regiozorg.assignment.issued.v1", &bytes);
        assert_eq!(p.segments[0], "IAJ");
        let id = Uuid::now_v7();
        let body = render(
            &CloudEvent {
                id,
                event_type: "nl.regiozorg.assignment.issued.v1",
                source: "regiozorg/assignment/0222",
                subject: "0222/7",
                time: chrono::Utc::now(),
            },
            p.data,
            &bytes,
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], id.to_string());
        assert_eq!(v["datacontenttype"], "application/json");
        assert_eq!(v["data"]["assignment"]["number"], 7);
        assert_eq!(v["data"]["assignment"]["law"], "jeugdwet");
        assert!(v["data"]["assignment"].get("product_code").is_none());
        let other = render(
            &CloudEvent {
                id,
                event_type: "x",
                source: "s",
                subject: "",
                time: chrono::Utc::now(),
            },
            None,
            b"foo",
        );
        let v: Value = serde_json::from_str(&other).unwrap();
        assert_eq!(v["data_base64"], "Zm9v");
    }
}
