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

mod common;

use std::collections::BTreeMap;

use common::wire::{self, OTHER_M, OTHER_P, OWN_M, OWN_P, set_path};
use prost_reflect::{DynamicMessage, MessageDescriptor};
use rz_platform::authz::Allow;
use rz_platform::authz::policy::{POLICY, Rule};
use rz_platform::tls::TlsConfig;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_prost::prost::Message;

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

async fn call(channel: Channel, method: &str, msg: DynamicMessage) -> Code {
    wire::call(channel, method, msg.encode_to_vec())
        .await
        .code()
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
    let stack = wire::start().await;
    let pool = rz_platform::authz::descriptors().unwrap();

    // Where each API is served; the access instance (and its audit trail) is [`OWN_M`]'s.
    let endpoints: BTreeMap<&str, (String, bool)> = wire::endpoints(&stack)
        .into_iter()
        .map(|(service, url)| {
            let at_access = url == stack.access_endpoint(OWN_M);
            (service, (url, at_access))
        })
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
