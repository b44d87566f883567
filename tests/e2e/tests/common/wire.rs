//! What the descriptor-driven tests over the wire share (`policy_table.rs`, `bad_input.rs`): the
//! parties, a stack with every service, where each API is served, raw calls and setting fields of
//! a dynamic request by path.

#![allow(dead_code)]

use std::collections::BTreeMap;

use http::uri::PathAndQuery;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage, Value};
use rz_stack::{Landscape, Stack};
use tonic::transport::Channel;
use tonic_prost::prost;

pub const OWN_M: &str = "0222";
pub const OTHER_M: &str = "0197";
pub const OWN_P: &str = "03077001";
pub const OTHER_P: &str = "03077002";

/// A request body sent as it is: the tests encode (and break) messages themselves.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Raw(pub Vec<u8>);

impl prost::Message for Raw {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// A stack with every service: access for [`OWN_M`], certificates for both providers and both municipalities.
pub async fn start() -> Stack {
    let landscape = Landscape::new()
        .provider(OWN_P, "Jeugdhulp Oost BV")
        .provider(OTHER_P, "Jeugdhulp West BV")
        .contract_in(OWN_P, "IAJ", &[], &[OWN_M], "2022-07-01");
    Stack::builder()
        .landscape(landscape)
        .providers(&[OWN_P, OTHER_P])
        .access(OWN_M)
        .municipalities(&[OTHER_M])
        .assignment()
        .notification()
        .reporting()
        .start()
        .await
}

/// Where each API is served (the audit trail: at the access instance under test).
pub fn endpoints(stack: &Stack) -> BTreeMap<&'static str, String> {
    [
        (
            "regiozorg.registration.v1.RegistrationService",
            stack.registration_endpoint(),
        ),
        (
            "regiozorg.access.v1.AccessService",
            stack.access_endpoint(OWN_M),
        ),
        (
            "regiozorg.assignment.v1.AssignmentService",
            stack.assignment_endpoint(),
        ),
        (
            "regiozorg.notification.v1.NotificationService",
            stack.notification_endpoint(),
        ),
        (
            "regiozorg.reporting.v1.ReportingService",
            stack.reporting_endpoint(),
        ),
        (
            "regiozorg.audit.v1.AuditService",
            stack.access_endpoint(OWN_M),
        ),
    ]
    .into_iter()
    .collect()
}

/// Sets a bound field (a dotted path of the policy table) to `value`.
pub fn set_path(msg: &mut DynamicMessage, path: &str, value: &str) {
    let mut desc = msg.descriptor();
    let mut chain = Vec::new();
    for part in path.split('.') {
        let field = desc
            .get_field_by_name(part)
            .unwrap_or_else(|| panic!("bound field `{path}` is not in {}", desc.full_name()));
        if let Kind::Message(inner) = field.kind() {
            desc = inner;
        }
        chain.push(field);
    }
    set_chain(msg, &chain, Value::String(value.into()));
}

/// Sets the value at `chain` in `msg`, creating (or reusing the first element of) the messages
/// on the way; a repeated field gets a list of one.
pub fn set_chain(msg: &mut DynamicMessage, chain: &[FieldDescriptor], value: Value) {
    let field = &chain[0];
    if chain.len() == 1 {
        if field.is_list() && matches!(value, Value::List(_)) {
            msg.set_field(field, value);
        } else if field.is_list() {
            msg.set_field(field, Value::List(vec![value]));
        } else {
            msg.set_field(field, value);
        }
        return;
    }
    let Kind::Message(inner_desc) = field.kind() else {
        panic!("{} is not a message", field.full_name());
    };
    let existing = match msg.get_field(field).as_ref() {
        Value::List(items) => items.first().and_then(|v| v.as_message().cloned()),
        Value::Message(m) if msg.has_field(field) => Some(m.clone()),
        _ => None,
    };
    let mut inner = existing.unwrap_or_else(|| DynamicMessage::new(inner_desc));
    set_chain(&mut inner, &chain[1..], value);
    if field.is_list() {
        msg.set_field(field, Value::List(vec![Value::Message(inner)]));
    } else {
        msg.set_field(field, Value::Message(inner));
    }
}

/// Calls `method` with `body` as it is; the answer's status (OK as `Status::ok`).
pub async fn call(channel: Channel, method: &str, body: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(64 * 1024 * 1024);
    if let Err(e) = grpc.ready().await {
        panic!("{method}: not ready: {e}");
    }
    let codec = tonic_prost::ProstCodec::<Raw, Raw>::default();
    match grpc
        .unary(
            tonic::Request::new(Raw(body)),
            PathAndQuery::try_from(method).unwrap(),
            codec,
        )
        .await
    {
        Ok(_) => tonic::Status::ok(""),
        Err(s) => s,
    }
}
