//! The whole authorisation table, walked over the wire: every RPC of every service (enumerated
//! from the API descriptors, so a new RPC without a policy fails here), called by every kind of
//! caller with its own mutual-TLS certificate, and without one.
//!
//! What each call must answer is derived from the table's data (who is allowed, which fields
//! must hold the caller's own code) by the small matcher in this file:
//! - a caller the rule does not allow: PERMISSION_DENIED;
//! - an allowed caller whose request names itself in the bound fields: anything but
//!   PERMISSION_DENIED or UNAUTHENTICATED (the handler then judges the otherwise empty request);
//! - an allowed caller whose request names another provider or municipality: PERMISSION_DENIED;
//! - no certificate at all: UNAUTHENTICATED.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use http::uri::PathAndQuery;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use rz_platform::authz::Allow;
use rz_platform::authz::policy::{POLICY, Rule};
use rz_platform::tls::TlsConfig;
use rz_stack::{Landscape, Stack};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

const OWN_M: &str = "0222";
const OTHER_M: &str = "0197";
const OWN_P: &str = "03077001";
const OTHER_P: &str = "03077002";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Party {
    Provider,
    OwnMunicipality,
    OtherMunicipality,
    Operator,
    AssignmentService,
    NotificationService,
    RegistrationService,
}

const PARTIES: [Party; 7] = [
    Party::Provider,
    Party::OwnMunicipality,
    Party::OtherMunicipality,
    Party::Operator,
    Party::AssignmentService,
    Party::NotificationService,
    Party::RegistrationService,
];

impl Party {
    fn folder(self) -> String {
        match self {
            Party::Provider => format!("provider-{OWN_P}"),
            Party::OwnMunicipality => format!("municipality-{OWN_M}"),
            Party::OtherMunicipality => format!("municipality-{OTHER_M}"),
            Party::Operator => "operator".into(),
            Party::AssignmentService => "service-assignment".into(),
            Party::NotificationService => "service-notification".into(),
            Party::RegistrationService => "service-registration".into(),
        }
    }

    /// The caller's own code for bound fields, and another party's.
    fn own_and_other(self) -> Option<(&'static str, &'static str)> {
        match self {
            Party::Provider => Some((OWN_P, OTHER_P)),
            Party::OwnMunicipality => Some((OWN_M, OTHER_M)),
            Party::OtherMunicipality => Some((OTHER_M, OWN_M)),
            _ => None,
        }
    }
}

/// The rule's verdict for `party`, read from the table's data: the bindings if allowed.
/// The access instance under test serves [`OWN_M`].
fn allowed(rule: &Rule, party: Party, at_access: bool) -> Option<&'static [&'static str]> {
    rule.allow.iter().find_map(|a| {
        let ok = match (a, party) {
            (Allow::Anyone, _) => true,
            (Allow::Operator, Party::Operator) => true,
            (Allow::Service(n), Party::AssignmentService) => *n == "assignment",
            (Allow::Service(n), Party::NotificationService) => *n == "notification",
            (Allow::Service(n), Party::RegistrationService) => *n == "registration",
            (Allow::Provider(_), Party::Provider) => true,
            (Allow::Municipality(_), Party::OwnMunicipality | Party::OtherMunicipality) => true,
            (Allow::OwnMunicipality, Party::OwnMunicipality) => at_access,
            _ => false,
        };
        ok.then(|| a.bindings())
    })
}

/// An otherwise empty request of `input` with every bound field set to `value`.
fn request(input: &MessageDescriptor, bindings: &[&str], value: &str) -> DynamicMessage {
    let mut msg = DynamicMessage::new(input.clone());
    for path in bindings {
        set_path(&mut msg, path, value);
    }
    msg
}

fn set_path(msg: &mut DynamicMessage, path: &str, value: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let field = msg.descriptor().get_field_by_name(head).unwrap_or_else(|| {
        panic!(
            "bound field `{path}` is not in {}",
            msg.descriptor().full_name()
        )
    });
    match rest {
        None if field.is_list() => {
            msg.set_field(&field, Value::List(vec![Value::String(value.into())]))
        }
        None => msg.set_field(&field, Value::String(value.into())),
        Some(rest) => {
            let mut inner = msg.get_field(&field).as_message().cloned().unwrap();
            set_path(&mut inner, rest, value);
            msg.set_field(&field, Value::Message(inner));
        }
    }
}

async fn call(channel: Channel, method: &str, msg: DynamicMessage) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        panic!("{method}: not ready: {e}");
    }
    let codec = tonic_prost::ProstCodec::<DynamicMessage, ()>::default();
    match grpc
        .unary(
            tonic::Request::new(msg),
            PathAndQuery::try_from(method).unwrap(),
            codec,
        )
        .await
    {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// A TLS channel that trusts the region's CA but presents no certificate of its own.
fn anonymous(url: &str, tls: &TlsConfig) -> Channel {
    let ca = std::fs::read(tls.ca.as_ref().unwrap()).unwrap();
    Endpoint::from_shared(url.replace("http://", "https://"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .unwrap()
        .connect_lazy()
}

#[tokio::test]
async fn every_rpc_answers_every_kind_of_caller_as_the_policy_table_says() {
    let landscape = Landscape::new()
        .provider(OWN_P, "Jeugdhulp Oost BV")
        .provider(OTHER_P, "Jeugdhulp West BV")
        .contract_in(OWN_P, "IAJ", &[], &[OWN_M], "2022-07-01");
    let stack = Stack::builder()
        .landscape(landscape)
        .providers(&[OWN_P, OTHER_P])
        .access(OWN_M)
        .municipalities(&[OTHER_M])
        .assignment()
        .notification()
        .reporting()
        .start()
        .await;
    let pool = rz_platform::authz::descriptors().unwrap();

    // Where each API is served. The audit trail is served by each service with personal data;
    // the access instance's is the one under test.
    let endpoints: BTreeMap<&str, (String, bool)> = [
        (
            "regiozorg.registration.v1.RegistrationService",
            (stack.registration_endpoint(), false),
        ),
        (
            "regiozorg.access.v1.AccessService",
            (stack.access_endpoint(OWN_M), true),
        ),
        (
            "regiozorg.assignment.v1.AssignmentService",
            (stack.assignment_endpoint(), false),
        ),
        (
            "regiozorg.notification.v1.NotificationService",
            (stack.notification_endpoint(), false),
        ),
        (
            "regiozorg.reporting.v1.ReportingService",
            (stack.reporting_endpoint(), false),
        ),
        (
            "regiozorg.audit.v1.AuditService",
            (stack.access_endpoint(OWN_M), true),
        ),
    ]
    .into_iter()
    .collect();

    let mut channels = BTreeMap::new();
    for party in PARTIES {
        for (service, (url, _)) in &endpoints {
            let tls = stack.pki().tls(&party.folder());
            channels.insert(
                (party.folder(), *service),
                stack.channel_as(url, &tls).await,
            );
        }
    }

    let mut failures = Vec::new();
    let mut calls = 0;
    for service in pool.services() {
        let name = service.full_name();
        if !name.starts_with("regiozorg.") {
            continue;
        }
        let (url, at_access) = endpoints
            .get(name)
            .unwrap_or_else(|| panic!("{name} is served nowhere in this test"));
        for method in service.methods() {
            let path = format!("/{name}/{}", method.name());
            let Some(rule) = rz_platform::authz::policy::rule_for(&path) else {
                failures.push(format!("{path}: no policy"));
                continue;
            };
            let input = method.input();

            // Without a certificate (TLS, trusting the CA, presenting nothing).
            let code = call(
                anonymous(url, &stack.pki().tls("operator")),
                &path,
                DynamicMessage::new(input.clone()),
            )
            .await;
            calls += 1;
            if code != Code::Unauthenticated {
                failures.push(format!("{path} without a certificate: {code:?}"));
            }

            for party in PARTIES {
                let channel = channels[&(party.folder(), name)].clone();
                match allowed(rule, party, *at_access) {
                    None => {
                        let code = call(channel, &path, DynamicMessage::new(input.clone())).await;
                        calls += 1;
                        if code != Code::PermissionDenied {
                            failures.push(format!("{path} as {party:?} (not allowed): {code:?}"));
                        }
                    }
                    Some(bindings) => {
                        let (own, other) = party.own_and_other().unwrap_or(("", ""));
                        let code =
                            call(channel.clone(), &path, request(&input, bindings, own)).await;
                        calls += 1;
                        if matches!(code, Code::PermissionDenied | Code::Unauthenticated) {
                            failures.push(format!("{path} as {party:?} (allowed): {code:?}"));
                        }
                        if !bindings.is_empty() {
                            let code = call(channel, &path, request(&input, bindings, other)).await;
                            calls += 1;
                            if code != Code::PermissionDenied {
                                failures.push(format!(
                                    "{path} as {party:?} naming another ({other}): {code:?}"
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        POLICY.len(),
        pool.services()
            .filter(|s| s.full_name().starts_with("regiozorg."))
            .map(|s| s.methods().len())
            .sum::<usize>(),
        "the table has a row for a method no API has, or misses one"
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} calls answered otherwise than the table says:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("policy table: {calls} calls, {} rules", POLICY.len());
}
