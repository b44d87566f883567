//! Every class of bad input against every RPC of every service, over the wire (issue 14).
//!
//! Driven by the API descriptors (`rz_platform::authz::descriptors()`), as
//! `policy_table.rs` is: for every RPC, as a caller the policy table allows (with the bound
//! fields holding its own code, so the call gets past authorisation), and for every string field
//! of the request (top level and in nested messages, `[0]` for an element of a repeated field):
//! - (a) a NUL byte and (b) a control character (ESC) in the field: INVALID_ARGUMENT with a
//!   `google.rpc.BadRequest` violation naming the field's path;
//! - (c) one character over the field's maximum (`rz_platform::input::limit_of`):
//!   INVALID_ARGUMENT naming the field (and each repeated field one element over its maximum
//!   count, naming the field);
//! - (e) invalid UTF-8 in the field (encoded by hand): INVALID_ARGUMENT;
//!
//! and per RPC (d) bodies that are not protobuf (a truncated field, an invalid wire type, an
//! overlong varint): INVALID_ARGUMENT; per service a body one byte over its transport limit:
//! OUT_OF_RANGE. Never INTERNAL, never UNKNOWN, never OK. Each test prints the cases it sent.
//!
//! And 1,000 concurrent identical RegisterResident calls with one idempotency key register one
//! resident (and publish nothing: residents never leave access); 1,000 identical OpenCase calls
//! open one case and write one event.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::wire::{OWN_M, OWN_P, call, endpoints, set_chain, set_path, start};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use rz_platform::authz::Allow;
use rz_platform::authz::policy::rule_for;
use rz_stack::Stack;
use tonic::Code;
use tonic::transport::Channel;
use tonic_prost::prost;

/// One RPC as the test calls it: over a channel of a caller the policy allows.
struct Target {
    path: String,
    input: MessageDescriptor,
    channel: Channel,
    bindings: &'static [&'static str],
    own: &'static str,
}

/// The first caller the rule allows: its PKI folder, bound fields and own code.
fn caller_for(allow: &[Allow]) -> (String, &'static [&'static str], &'static str) {
    let first = allow.first().expect("a rule allows someone");
    match first {
        Allow::Anyone | Allow::Operator => ("operator".into(), &[], ""),
        Allow::Service(name) => (format!("service-{name}"), &[], ""),
        Allow::Provider(b) => (format!("provider-{OWN_P}"), b, OWN_P),
        Allow::Municipality(b) => (format!("municipality-{OWN_M}"), b, OWN_M),
        Allow::OwnMunicipality => (format!("municipality-{OWN_M}"), &[], ""),
    }
}

/// Every RPC of every regiozorg API, with a channel of a caller its rule allows.
async fn targets(stack: &Stack) -> Vec<Target> {
    let pool = rz_platform::authz::descriptors().unwrap();
    let endpoints = endpoints(stack);
    let mut channels: BTreeMap<(String, String), Channel> = BTreeMap::new();
    let mut out = Vec::new();
    for service in pool.services() {
        let name = service.full_name();
        if !name.starts_with("regiozorg.") {
            continue;
        }
        let url = endpoints
            .get(name)
            .unwrap_or_else(|| panic!("{name} is served nowhere in this test"));
        for method in service.methods() {
            let path = format!("/{name}/{}", method.name());
            let rule = rule_for(&path).unwrap_or_else(|| panic!("{path}: no policy"));
            let (folder, bindings, own) = caller_for(rule.allow);
            let key = (folder.clone(), url.clone());
            if !channels.contains_key(&key) {
                let tls = stack.pki().tls(&folder);
                channels.insert(key.clone(), stack.channel_as(url, &tls).await);
            }
            out.push(Target {
                path,
                input: method.input(),
                channel: channels[&key].clone(),
                bindings,
                own,
            });
        }
    }
    assert!(out.len() > 20, "only {} RPCs found", out.len());
    out
}

/// One string field reachable from a request message: the fields from the top down, and its
/// path as a violation names it (`address.street`, `items[0].name`).
struct StringField {
    chain: Vec<FieldDescriptor>,
    path: String,
    /// The dotted names without indices, as the policy table's bindings are written.
    plain: String,
}

fn string_fields(message: &MessageDescriptor) -> Vec<StringField> {
    let mut out = Vec::new();
    walk(
        message,
        &mut Vec::new(),
        &mut vec![message.full_name().to_owned()],
        &mut out,
    );
    out
}

fn walk(
    message: &MessageDescriptor,
    chain: &mut Vec<FieldDescriptor>,
    seen: &mut Vec<String>,
    out: &mut Vec<StringField>,
) {
    for field in message.fields() {
        if field.is_map() {
            continue;
        }
        match field.kind() {
            Kind::String => {
                chain.push(field.clone());
                out.push(StringField {
                    path: display(chain),
                    plain: chain.iter().map(|f| f.name()).collect::<Vec<_>>().join("."),
                    chain: chain.clone(),
                });
                chain.pop();
            }
            Kind::Message(inner) => {
                // No recursion into a type already on the way down, nor deeper than 5.
                if seen.iter().any(|s| s == inner.full_name()) || chain.len() >= 5 {
                    continue;
                }
                chain.push(field.clone());
                seen.push(inner.full_name().to_owned());
                walk(&inner, chain, seen, out);
                seen.pop();
                chain.pop();
            }
            _ => {}
        }
    }
}

/// Every repeated field (not a map) reachable from a request message: its chain and the path a
/// violation of its count names (`items`, `outer[0].items`).
fn list_fields(message: &MessageDescriptor) -> Vec<(Vec<FieldDescriptor>, String, String)> {
    fn go(
        message: &MessageDescriptor,
        chain: &mut Vec<FieldDescriptor>,
        seen: &mut Vec<String>,
        out: &mut Vec<(Vec<FieldDescriptor>, String, String)>,
    ) {
        for field in message.fields() {
            if field.is_map() {
                continue;
            }
            if field.is_list() {
                let prefix = display(chain);
                let path = if prefix.is_empty() {
                    field.name().to_owned()
                } else {
                    format!("{prefix}.{}", field.name())
                };
                let mut full = chain.clone();
                full.push(field.clone());
                let plain = full.iter().map(|f| f.name()).collect::<Vec<_>>().join(".");
                out.push((full, path, plain));
            }
            if let Kind::Message(inner) = field.kind() {
                if seen.iter().any(|s| s == inner.full_name()) || chain.len() >= 5 {
                    continue;
                }
                chain.push(field.clone());
                seen.push(inner.full_name().to_owned());
                go(&inner, chain, seen, out);
                seen.pop();
                chain.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(
        message,
        &mut Vec::new(),
        &mut vec![message.full_name().to_owned()],
        &mut out,
    );
    out
}

/// One element of a repeated field of `kind`, or None for kinds the test does not fill.
fn element(kind: Kind) -> Option<Value> {
    Some(match kind {
        Kind::String => Value::String("1".into()),
        Kind::Message(m) => Value::Message(DynamicMessage::new(m)),
        Kind::Enum(_) => Value::EnumNumber(0),
        Kind::Int32 => Value::I32(0),
        Kind::Int64 => Value::I64(0),
        Kind::Uint32 => Value::U32(0),
        Kind::Uint64 => Value::U64(0),
        Kind::Bool => Value::Bool(false),
        _ => return None,
    })
}

fn display(chain: &[FieldDescriptor]) -> String {
    let mut s = String::new();
    for (i, f) in chain.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(f.name());
        if f.is_list() {
            s.push_str("[0]");
        }
    }
    s
}

/// An otherwise empty request with the bound fields set to the caller's own code.
fn base(target: &Target) -> DynamicMessage {
    let mut msg = DynamicMessage::new(target.input.clone());
    for path in target.bindings {
        set_path(&mut msg, path, target.own);
    }
    msg
}

// google.rpc.Status read by hand (the test needs its field names, nothing else).

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The length-delimited fields of a message: (field number, bytes); other wire types skipped.
fn fields(mut buf: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let Some(key) = varint(&mut buf) else { break };
        match key & 7 {
            0 => {
                if varint(&mut buf).is_none() {
                    break;
                }
            }
            1 => buf = buf.get(8..).unwrap_or_default(),
            5 => buf = buf.get(4..).unwrap_or_default(),
            2 => {
                let Some(len) = varint(&mut buf) else { break };
                let Ok(len) = usize::try_from(len) else { break };
                if len > buf.len() {
                    break;
                }
                out.push((key >> 3, &buf[..len]));
                buf = &buf[len..];
            }
            _ => break,
        }
    }
    out
}

/// The fields named by the status's `google.rpc.BadRequest` violations.
fn violations(status: &tonic::Status) -> Vec<String> {
    let mut out = Vec::new();
    // Status { code = 1; message = 2; repeated Any details = 3 }, Any { type_url = 1; value = 2 },
    // BadRequest { repeated FieldViolation field_violations = 1 }, FieldViolation { field = 1 }.
    for (n, any) in fields(status.details()) {
        if n != 3 {
            continue;
        }
        let parts = fields(any);
        let is_bad_request = parts
            .iter()
            .any(|(n, v)| *n == 1 && v.ends_with(b"google.rpc.BadRequest"));
        if !is_bad_request {
            continue;
        }
        for (_, value) in parts.iter().filter(|(n, _)| *n == 2) {
            for (n, violation) in fields(value) {
                if n != 1 {
                    continue;
                }
                for (n, field) in fields(violation) {
                    if n == 1 {
                        out.push(String::from_utf8_lossy(field).into_owned());
                    }
                }
            }
        }
    }
    out
}

/// What one case must answer.
enum Expect {
    /// INVALID_ARGUMENT with a violation naming this field path.
    Naming(String),
    /// INVALID_ARGUMENT.
    Invalid,
    /// OUT_OF_RANGE.
    OutOfRange,
}

/// `None` when the answer is the expected one, else what was wrong.
fn judge(status: &tonic::Status, expect: &Expect) -> Option<String> {
    let code = status.code();
    let shown = || {
        let mut m: String = status.message().chars().take(160).collect();
        if status.message().len() > 160 {
            m.push('…');
        }
        format!("{code:?} {m:?}")
    };
    match expect {
        Expect::OutOfRange if code == Code::OutOfRange => None,
        Expect::Invalid if code == Code::InvalidArgument => None,
        Expect::Naming(path) if code == Code::InvalidArgument => {
            let named = violations(status);
            if named.iter().any(|v| v == path) {
                None
            } else {
                Some(format!(
                    "INVALID_ARGUMENT not naming {path} (names {named:?}): {}",
                    shown()
                ))
            }
        }
        _ => Some(shown()),
    }
}

/// Runs the cases, a few at a time; returns (cases sent, failures, how many of them answered
/// INTERNAL, UNKNOWN or OK).
async fn run(
    cases: Vec<(String, Channel, String, Vec<u8>, Expect)>,
) -> (usize, Vec<String>, usize) {
    let sent = cases.len();
    let mut failures = Vec::new();
    let mut grave = 0;
    let mut pending = Vec::new();
    for (what, channel, method, body, expect) in cases {
        pending.push(tokio::spawn(async move {
            let status = call(channel, &method, body).await;
            (what, status.code(), judge(&status, &expect))
        }));
        if pending.len() >= 16 {
            for h in pending.drain(..) {
                let (what, code, verdict) = h.await.unwrap();
                if let Some(v) = verdict {
                    if matches!(code, Code::Internal | Code::Unknown | Code::Ok) {
                        grave += 1;
                    }
                    failures.push(format!("{what}: {v}"));
                }
            }
        }
    }
    for h in pending {
        let (what, code, verdict) = h.await.unwrap();
        if let Some(v) = verdict {
            if matches!(code, Code::Internal | Code::Unknown | Code::Ok) {
                grave += 1;
            }
            failures.push(format!("{what}: {v}"));
        }
    }
    (sent, failures, grave)
}

fn report(class: &str, sent: usize, failures: &[String], grave: usize) {
    eprintln!(
        "bad input, {class}: {sent} cases sent, {} answered otherwise ({grave} INTERNAL, UNKNOWN or OK)",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{class}: {} of {sent} cases answered otherwise than INVALID_ARGUMENT/OUT_OF_RANGE as \
         expected ({grave} INTERNAL, UNKNOWN or OK):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The cases for each string field that is not bound: `make(field)` gives the field's value
/// (or `None` to skip), the expected answer follows from `expect`.
fn per_field_cases(
    targets: &[Target],
    label: &str,
    value: impl Fn(&StringField) -> Value,
    expect: impl Fn(&StringField) -> Expect,
) -> Vec<(String, Channel, String, Vec<u8>, Expect)> {
    let mut cases = Vec::new();
    for t in targets {
        for f in string_fields(&t.input) {
            if t.bindings.contains(&f.plain.as_str()) {
                continue;
            }
            let mut msg = base(t);
            set_chain(&mut msg, &f.chain, value(&f));
            cases.push((
                format!("{} {} ({label})", t.path, f.path),
                t.channel.clone(),
                t.path.clone(),
                prost::Message::encode_to_vec(&msg),
                expect(&f),
            ));
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_or_a_control_character_in_any_string_field_is_invalid_argument_naming_it() {
    let stack = start().await;
    let targets = targets(&stack).await;
    let mut cases = per_field_cases(
        &targets,
        "NUL",
        |_| Value::String("a\0b".into()),
        |f| Expect::Naming(f.path.clone()),
    );
    cases.extend(per_field_cases(
        &targets,
        "ESC",
        |_| Value::String("a\u{1b}b".into()),
        |f| Expect::Naming(f.path.clone()),
    ));
    let (sent, failures, grave) = run(cases).await;
    report("NUL and control characters", sent, &failures, grave);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_or_a_list_one_over_its_maximum_is_invalid_argument_naming_it() {
    let stack = start().await;
    let targets = targets(&stack).await;
    let cases = per_field_cases(
        &targets,
        "too long",
        |f| {
            let name = f.chain.last().map(|f| f.name()).unwrap_or_default();
            let max = rz_platform::input::limit_of(name).max_chars;
            Value::String("7".repeat(max + 1))
        },
        |f| Expect::Naming(f.path.clone()),
    );
    // Each repeated field with one element more than its maximum count.
    let mut cases = cases;
    for t in &targets {
        for (chain, path, plain) in list_fields(&t.input) {
            let last = chain.last().unwrap();
            if t.bindings.contains(&plain.as_str()) {
                continue;
            }
            let Some(item) = element(last.kind()) else {
                continue;
            };
            let max = rz_platform::input::limit_of(last.name())
                .max_items
                .unwrap_or(rz_platform::input::DEFAULT_MAX_ITEMS);
            let mut msg = base(t);
            set_chain(&mut msg, &chain, Value::List(vec![item; max + 1]));
            cases.push((
                format!("{} {path} ({} elements)", t.path, max + 1),
                t.channel.clone(),
                t.path.clone(),
                prost::Message::encode_to_vec(&msg),
                Expect::Naming(path),
            ));
        }
    }
    let (sent, failures, grave) = run(cases).await;
    report("over the maximum", sent, &failures, grave);
}

/// A marker the test puts in a field and then overwrites with invalid UTF-8 of its length.
const MARKER: &[u8] = b"@@utf8-marker@@";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_protobuf_or_holds_invalid_utf8_is_invalid_argument() {
    let stack = start().await;
    let targets = targets(&stack).await;
    let mut cases = Vec::new();
    // (e) Invalid UTF-8 in each string field, encoded by hand: the marker's bytes replaced.
    for t in &targets {
        for f in string_fields(&t.input) {
            if t.bindings.contains(&f.plain.as_str()) {
                continue;
            }
            let mut msg = base(t);
            set_chain(
                &mut msg,
                &f.chain,
                Value::String(String::from_utf8(MARKER.to_vec()).unwrap()),
            );
            let mut body = prost::Message::encode_to_vec(&msg);
            let at = body
                .windows(MARKER.len())
                .position(|w| w == MARKER)
                .expect("the marker is in the encoding");
            // A lone continuation byte, an overlong encoding and a surrogate, then 0xFF.
            let bad = [0x80, 0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xFF];
            for (i, b) in body[at..at + MARKER.len()].iter_mut().enumerate() {
                *b = bad[i % bad.len()];
            }
            cases.push((
                format!("{} {} (invalid UTF-8)", t.path, f.path),
                t.channel.clone(),
                t.path.clone(),
                body,
                Expect::Invalid,
            ));
        }
        // (d) Bodies that are not protobuf, after a valid prefix (the bound fields).
        let prefix = prost::Message::encode_to_vec(&base(t));
        let broken: [(&str, &[u8]); 3] = [
            // field 1, length-delimited, 5 bytes announced, 1 there
            ("truncated field", &[0x0A, 0x05, b'a']),
            // field 1 with wire type 7, which does not exist
            ("invalid wire type", &[0x0F, 0x00]),
            // a varint of 11 bytes
            (
                "overlong varint",
                &[
                    0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
                ],
            ),
        ];
        for (what, tail) in broken {
            let mut body = prefix.clone();
            body.extend_from_slice(tail);
            cases.push((
                format!("{} ({what})", t.path),
                t.channel.clone(),
                t.path.clone(),
                body,
                Expect::Invalid,
            ));
        }
    }
    let (sent, failures, grave) = run(cases).await;
    report("not protobuf, invalid UTF-8", sent, &failures, grave);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_services_transport_limit_is_out_of_range() {
    let stack = start().await;
    let targets = targets(&stack).await;
    let mut cases = Vec::new();
    let mut done = Vec::new();
    for t in &targets {
        // One RPC per API: the body is refused on its size, before anything reads it.
        let api = t.path.split('/').nth(1).unwrap_or_default().to_owned();
        if done.contains(&api) {
            continue;
        }
        done.push(api.clone());
        let limit = if api == "regiozorg.assignment.v1.AssignmentService" {
            // assignment takes XML uploads: the standard's 25 MiB and 64 KiB of envelope
            25 * 1024 * 1024 + 64 * 1024
        } else {
            rz_platform::authz::DEFAULT_MAX_MESSAGE
        };
        // An unknown field 1000 (length-delimited) holding the rest: valid protobuf, too large.
        let mut body = Vec::with_capacity(limit + 16);
        let payload = limit + 1;
        body.extend_from_slice(&[0xC2, 0x3E]);
        let mut n = payload as u64;
        let mut len = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                len.push(b);
                break;
            }
            len.push(b | 0x80);
        }
        body.extend_from_slice(&len);
        body.resize(body.len() + payload, b'x');
        assert!(body.len() > limit);
        cases.push((
            format!("{} ({} bytes, limit {limit})", t.path, body.len()),
            t.channel.clone(),
            t.path.clone(),
            body,
            Expect::OutOfRange,
        ));
    }
    let (sent, failures, grave) = run(cases).await;
    report("over the transport limit", sent, &failures, grave);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_identical_register_resident_calls_register_one_resident() {
    let mut stack = Stack::builder().access(OWN_M).start().await;
    let client = stack.access(OWN_M);
    let bsn = rz_stack::bsn(14_001);
    let request = rz_stack::resident_request(&bsn, "2012-05-04");
    let mut calls = Vec::new();
    for _ in 0..1000 {
        let mut client = client.clone();
        let request = request.clone();
        calls.push(tokio::spawn(async move {
            client.register_resident(request).await
        }));
    }
    let mut keys = std::collections::BTreeSet::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls {
        match c.await.unwrap() {
            Ok(r) => {
                keys.insert(r.into_inner().client_key);
                *codes.entry("Ok".into()).or_default() += 1;
            }
            Err(s) => {
                *codes
                    .entry(format!("{:?} {}", s.code(), s.message()))
                    .or_default() += 1
            }
        }
    }
    eprintln!("bad input, 1000 concurrent identical RegisterResident: 1000 cases sent, {codes:?}");
    assert_eq!(
        codes.get("Ok"),
        Some(&1000),
        "every call answered OK: {codes:?}"
    );
    assert_eq!(keys.len(), 1, "one client key: {keys:?}");
    let pool = stack.access_service(OWN_M).pool.clone();
    assert_eq!(rz_stack::count(&pool, "residents").await, 1, "one resident");
    // Registering a resident publishes nothing (residents never leave access).
    assert_eq!(rz_stack::count(&pool, "outbox").await, 0, "no event");

    // A command that does publish: 1,000 identical OpenCase calls open one case, one event.
    let open = rz_proto::access::v1::OpenCaseRequest {
        idempotency_key: "case-14001".into(),
        bsn: bsn.clone(),
        law: rz_proto::types::v1::Law::Jeugdwet as i32,
        date: "2026-01-05".into(),
    };
    let mut calls = Vec::new();
    for _ in 0..1000 {
        let mut client = client.clone();
        let open = open.clone();
        calls.push(tokio::spawn(async move { client.open_case(open).await }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls {
        match c.await.unwrap() {
            Ok(r) => {
                ids.insert(r.into_inner().id);
                *codes.entry("Ok".into()).or_default() += 1;
            }
            Err(s) => {
                *codes
                    .entry(format!("{:?} {}", s.code(), s.message()))
                    .or_default() += 1
            }
        }
    }
    eprintln!("bad input, 1000 concurrent identical OpenCase: 1000 cases sent, {codes:?}");
    assert_eq!(
        codes.get("Ok"),
        Some(&1000),
        "every call answered OK: {codes:?}"
    );
    assert_eq!(ids.len(), 1, "one case: {ids:?}");
    assert_eq!(rz_stack::count(&pool, "cases").await, 1, "one case");
    assert_eq!(rz_stack::count(&pool, "outbox").await, 1, "one event");
}

// Bounded fuzzing of request decoding: generated bodies for every RPC's request message.

/// SplitMix64: small and seedable (`RZ_FUZZ_SEED`), so a failing case repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SAMPLE_STRINGS: &[&str] = &[
    OWN_M,
    OWN_P,
    "999990019",
    "2026-01-05",
    "0000-01-01",
    "+10000-02-11",
    "x",
    "",
    "Raadhuisstraat",
    "https://example.invalid/hook",
    "a\u{0}b",
    "\u{1b}",
];

/// A message of `desc` with every field filled with generated values (nested to `depth`).
fn filled(desc: &MessageDescriptor, rng: &mut Rng, depth: usize) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    for field in desc.fields() {
        if field.is_map() || rng.below(4) == 0 {
            continue;
        }
        let one = |rng: &mut Rng| -> Option<Value> {
            Some(match field.kind() {
                Kind::String => {
                    Value::String(SAMPLE_STRINGS[rng.below(SAMPLE_STRINGS.len())].into())
                }
                Kind::Bytes => Value::Bytes(vec![b'<'; rng.below(64)].into()),
                Kind::Bool => Value::Bool(rng.below(2) == 0),
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                    Value::I32([0, -1, 1, i32::MAX, i32::MIN][rng.below(5)])
                }
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                    Value::I64([0, -1, 1, i64::MAX, i64::MIN][rng.below(5)])
                }
                Kind::Uint32 | Kind::Fixed32 => Value::U32([0, 1, u32::MAX][rng.below(3)]),
                Kind::Uint64 | Kind::Fixed64 => Value::U64([0, 1, u64::MAX][rng.below(3)]),
                Kind::Float => Value::F32([0.0, f32::NAN, f32::INFINITY][rng.below(3)]),
                Kind::Double => Value::F64([0.0, f64::NAN, -1e308][rng.below(3)]),
                Kind::Enum(_) => Value::EnumNumber([0, 1, 2, 99, -1][rng.below(5)]),
                Kind::Message(inner) => {
                    if depth == 0 {
                        return None;
                    }
                    Value::Message(filled(&inner, rng, depth - 1))
                }
            })
        };
        if field.is_list() {
            let items: Vec<Value> = (0..1 + rng.below(2)).filter_map(|_| one(rng)).collect();
            msg.set_field(&field, Value::List(items));
        } else if let Some(v) = one(rng) {
            msg.set_field(&field, v);
        }
    }
    msg
}

/// A generated request body for `target`: random bytes, or a filled message (bound fields the
/// caller's own) mutated.
fn fuzz_body(
    input: &MessageDescriptor,
    bindings: &[&str],
    own: &str,
    rng: &mut Rng,
) -> (Vec<u8>, &'static str) {
    if rng.below(8) == 0 {
        let len = rng.below(512);
        return ((0..len).map(|_| rng.next() as u8).collect(), "random bytes");
    }
    let mut msg = filled(input, rng, 3);
    for path in bindings {
        set_path(&mut msg, path, own);
    }
    let mut body = prost::Message::encode_to_vec(&msg);
    let what = match rng.below(7) {
        0 => "unmutated",
        1 => {
            for _ in 0..1 + rng.below(4) {
                if !body.is_empty() {
                    let i = rng.below(body.len());
                    body[i] ^= 1 << rng.below(8);
                }
            }
            "flipped bits"
        }
        2 => {
            let at = rng.below(body.len() + 1);
            body.truncate(at);
            "truncated"
        }
        3 => {
            // The whole message again: every field duplicated (the last singular one wins).
            let copy = body.clone();
            body.extend_from_slice(&copy);
            "duplicated fields"
        }
        4 => {
            // An unknown field with a huge varint, or a length prefix far past the end.
            let tail: &[u8] = if rng.below(2) == 0 {
                &[
                    0xF8, 0x3F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
                ]
            } else {
                &[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, b'a']
            };
            let at = rng.below(body.len() + 1);
            body.splice(at..at, tail.iter().copied());
            "huge number"
        }
        5 => {
            let at = rng.below(body.len() + 1);
            let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
            body.splice(at..at, junk);
            "inserted bytes"
        }
        _ => {
            let end = rng.below(body.len() + 1);
            let start = rng.below(end + 1);
            let copy = body[start..end].to_vec();
            body.splice(end..end, copy);
            "duplicated range"
        }
    };
    (body, what)
}

/// In process, the decoders the server layer runs on every request (prost-reflect, then the
/// input rules): no panic, whatever the bytes.
#[test]
fn request_decoding_never_panics_on_generated_bodies() {
    let seed: u64 = env_or("RZ_FUZZ_SEED", 0x1514_2026);
    let max_cases: usize = env_or("RZ_FUZZ_CASES", 20_000);
    let max_time = std::time::Duration::from_secs(env_or("RZ_FUZZ_SECONDS", 20));
    let pool = rz_platform::authz::descriptors().unwrap();
    let mut inputs = Vec::new();
    for service in pool.services() {
        if !service.full_name().starts_with("regiozorg.") {
            continue;
        }
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let rule = rule_for(&path).unwrap();
            let (_, bindings, own) = caller_for(rule.allow);
            inputs.push((path, method.input(), bindings, own));
        }
    }
    let mut rng = Rng(seed);
    let started = std::time::Instant::now();
    let (mut cases, mut decoded, mut refused) = (0usize, 0usize, 0usize);
    while cases < max_cases && started.elapsed() < max_time {
        let (path, input, bindings, own) = &inputs[rng.below(inputs.len())];
        let (body, what) = fuzz_body(input, bindings, own, &mut rng);
        cases += 1;
        let outcome = std::panic::catch_unwind(|| {
            match DynamicMessage::decode(input.clone(), body.as_slice()) {
                Ok(msg) => (true, rz_platform::input::check(&msg).is_err()),
                Err(_) => (false, false),
            }
        });
        match outcome {
            Ok((ok, bad)) => {
                decoded += usize::from(ok);
                refused += usize::from(bad);
            }
            Err(_) => panic!("case {cases} (seed {seed:#x}, {path}, {what}) panicked: {body:?}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz request decoding: {cases} bodies in {secs:.1} s = {:.0}/s; {decoded} decoded \
         ({refused} of them refused by the input rules), {} not protobuf",
        cases as f64 / secs.max(1e-9),
        cases - decoded
    );
    assert!(cases >= 100, "only {cases} bodies in {secs:.1} s");
}

/// Over the wire: generated bodies to random RPCs as an allowed caller. Any answer but INTERNAL
/// or UNKNOWN (a generated body may well be a valid request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_request_bodies_never_answer_internal() {
    let seed: u64 = env_or("RZ_FUZZ_SEED", 0x1514_2026);
    let max_cases: usize = env_or("RZ_FUZZ_WIRE_CASES", 2000);
    let max_time = std::time::Duration::from_secs(env_or("RZ_FUZZ_SECONDS", 20));
    let stack = start().await;
    let targets = targets(&stack).await;
    let mut rng = Rng(seed);
    let started = std::time::Instant::now();
    let mut cases = 0usize;
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    while cases < max_cases && started.elapsed() < max_time {
        let mut batch = Vec::new();
        for _ in 0..16 {
            let t = &targets[rng.below(targets.len())];
            // Rebuild replays every stream (slow); concurrent rebuilds are the test below.
            if t.path.ends_with("/Rebuild") {
                continue;
            }
            let (body, what) = fuzz_body(&t.input, t.bindings, t.own, &mut rng);
            cases += 1;
            let (channel, path, n) = (t.channel.clone(), t.path.clone(), cases);
            batch.push(tokio::spawn(async move {
                let status = call(channel, &path, body.clone()).await;
                (n, path, what, body, status)
            }));
        }
        for h in batch {
            let (n, path, what, body, status) = h.await.unwrap();
            *codes.entry(format!("{:?}", status.code())).or_default() += 1;
            if matches!(status.code(), Code::Internal | Code::Unknown) {
                failures.push(format!(
                    "case {n} (seed {seed:#x}) {path} ({what}): {:?} {:?}\n  body {body:?}",
                    status.code(),
                    status.message()
                ));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz over the wire: {cases} bodies in {secs:.1} s = {:.0}/s; answers {codes:?}",
        cases as f64 / secs.max(1e-9)
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} generated bodies answered INTERNAL or UNKNOWN:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Found by the fuzzing above: two Rebuild calls at once. The second must wait or be refused
/// (ABORTED, FAILED_PRECONDITION), not fail INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rebuilds_never_answer_internal() {
    let stack = start().await;
    let mut calls = Vec::new();
    for _ in 0..4 {
        let mut client = stack.reporting();
        calls.push(tokio::spawn(async move {
            client
                .rebuild(rz_proto::reporting::v1::RebuildRequest::default())
                .await
        }));
    }
    let mut codes = Vec::new();
    for c in calls {
        codes.push(match c.await.unwrap() {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        });
    }
    eprintln!("concurrent Rebuild: {codes:?}");
    assert!(
        !codes
            .iter()
            .any(|c| matches!(c, Code::Internal | Code::Unknown)),
        "{codes:?}"
    );
}
