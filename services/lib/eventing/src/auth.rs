//! NATS credentials and the region's NATS authorisation.
//!
//! Design: server-configured accounts with nkey users (nats-server 2.9 reads them from its config
//! file; `nats-server --signal reload=<pid>` or SIGHUP re-reads it without a restart). One account
//! per region (its namespace, JetStream enabled) holds:
//!
//! - a user per service that may publish (and subscribe to) exactly its own context's subjects
//!   (`<ns>.<context>.>`), publish dead letters (`<ns>.dlq.>`), and make the JetStream API calls
//!   its streams and consumers need, each scoped to the streams it owns or reads;
//! - a user per provider that can only read its own events through the durable consumer the
//!   platform made for it ([`provider_consumer`], filter `<ns>.assignment.*.<AGB>.>`): it may
//!   fetch from and ack on that consumer and read that consumer's info, nothing else: no consumer
//!   creation, no other consumer, no publish to event subjects, no core subscription to `<ns>.>`;
//! - an operator user (rzctl, the platform's provisioning) without restrictions.
//!
//! Every user gets its own reply-inbox prefix ([`inbox_prefix`]) and may subscribe only to it:
//! JetStream delivers a fetched batch to the fetching client's inbox, so a shared `_INBOX.>`
//! would let one provider read another's deliveries.
//!
//! Adding or ending a provider is: regenerate the config ([`render_config`], `rzctl nats config`)
//! and reload the server.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;

use crate::{EventingError, Namespace};

/// How a client authenticates to NATS and whether it uses TLS. The default is none of it (the
/// local stack's unauthenticated NATS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// A file holding the user's nkey seed (`SU...`), as `rzctl nats config` writes it.
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file (a user JWT and its seed: decentralised JWT auth).
    pub creds_file: Option<PathBuf>,
    /// The CA that signed the server's certificate; set, the connection requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and its key, for a server that verifies clients (mutual TLS).
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
    /// The reply-inbox prefix the user's permissions allow ([`inbox_prefix`]); the client's
    /// default `_INBOX` when unset.
    pub inbox_prefix: Option<String>,
}

impl NatsAuth {
    /// An nkey user: its seed file and its inbox prefix.
    pub fn nkey(seed_file: impl Into<PathBuf>, inbox_prefix: String) -> Self {
        Self {
            nkey_seed_file: Some(seed_file.into()),
            inbox_prefix: Some(inbox_prefix),
            ..Self::default()
        }
    }

    /// Whether any credentials are set.
    pub fn has_credentials(&self) -> bool {
        self.nkey_seed_file.is_some() || self.creds_file.is_some()
    }
}

/// The connect options of `auth` (credentials read from their files), named `name`, without
/// retrying the first connection: a wrong credential fails the connect.
pub async fn connect_options(
    name: &str,
    auth: &NatsAuth,
) -> Result<async_nats::ConnectOptions, EventingError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5));
    match (&auth.nkey_seed_file, &auth.creds_file) {
        (Some(_), Some(_)) => {
            return Err(EventingError::Credentials(
                "set either an nkey seed file or a creds file, not both".into(),
            ));
        }
        (Some(path), None) => {
            let seed = std::fs::read_to_string(path).map_err(|e| {
                EventingError::Credentials(format!("nkey seed file {}: {e}", path.display()))
            })?;
            let seed = seed.trim().to_owned();
            nkeys::KeyPair::from_seed(&seed).map_err(|e| {
                EventingError::Credentials(format!("nkey seed file {}: {e}", path.display()))
            })?;
            options = options.nkey(seed);
        }
        (None, Some(path)) => {
            options = options.credentials_file(path).await.map_err(|e| {
                EventingError::Credentials(format!("creds file {}: {e}", path.display()))
            })?;
        }
        (None, None) => {}
    }
    if let Some(ca) = &auth.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &auth.tls_client_cert {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if let Some(prefix) = &auth.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    Ok(options)
}

/// The reply-inbox prefix of `user` (`service-<name>`, `provider-<AGB>`, `operator`) in `ns`:
/// `_INBOX.<ns>.<user>`.
pub fn inbox_prefix(ns: &Namespace, user: &str) -> String {
    format!("_INBOX.{}.{user}", ns.as_str())
}

/// The durable consumer the platform makes for provider `agb`: `provider-<AGB>`.
pub fn provider_consumer(agb: &str) -> String {
    format!("provider-{agb}")
}

/// The stream a provider reads its events from (assignment's, the only one addressed to
/// providers).
pub fn provider_stream(ns: &Namespace) -> String {
    ns.stream_name(PROVIDER_CONTEXT)
}

/// The context whose events are addressed to providers.
pub const PROVIDER_CONTEXT: &str = "assignment";

/// The filter of provider `agb`'s consumer: `<ns>.assignment.*.<AGB>.>`.
pub fn provider_filter(ns: &Namespace, agb: &str) -> String {
    format!("{}.{PROVIDER_CONTEXT}.*.{agb}.>", ns.as_str())
}

/// Creates provider `agb`'s durable pull consumer on the assignment stream (explicit acks, from
/// the first event), or returns the existing one. Needs a user allowed to create consumers (the
/// operator, or a service that reads the assignment stream).
pub async fn ensure_provider_consumer(
    js: &jetstream::Context,
    ns: &Namespace,
    agb: &str,
) -> Result<(), EventingError> {
    let stream = js
        .get_stream(provider_stream(ns))
        .await
        .map_err(EventingError::nats)?;
    stream
        .get_or_create_consumer(
            &provider_consumer(agb),
            jetstream::consumer::pull::Config {
                durable_name: Some(provider_consumer(agb)),
                filter_subject: provider_filter(ns, agb),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(EventingError::nats)?;
    Ok(())
}

/// Deletes provider `agb`'s consumer (its contract ended); `Ok` when there was none.
pub async fn remove_provider_consumer(
    js: &jetstream::Context,
    ns: &Namespace,
    agb: &str,
) -> Result<(), EventingError> {
    let stream = js
        .get_stream(provider_stream(ns))
        .await
        .map_err(EventingError::nats)?;
    use jetstream::ErrorCode;
    use jetstream::stream::ConsumerErrorKind;
    match stream.delete_consumer(&provider_consumer(agb)).await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
                if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND) =>
        {
            Ok(())
        }
        Err(e) => Err(EventingError::nats(e)),
    }
}

/// What a service publishes and reads on NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceAccess {
    pub name: &'static str,
    /// The contexts whose events it publishes (`<ns>.<context>.>`).
    pub publishes: &'static [&'static str],
    /// The contexts whose streams it reads (and ensures at start).
    pub reads: &'static [&'static str],
}

/// The platform's services and their contexts (each service's `Foundation::start` contexts and
/// its outbox's context; change both together).
pub const SERVICES: &[ServiceAccess] = &[
    ServiceAccess {
        name: "registration",
        publishes: &["registration"],
        reads: &[],
    },
    ServiceAccess {
        name: "access",
        publishes: &["access"],
        reads: &[],
    },
    ServiceAccess {
        name: "assignment",
        publishes: &["assignment"],
        reads: &["access"],
    },
    ServiceAccess {
        name: "notification",
        publishes: &[],
        reads: &["assignment", "access"],
    },
    ServiceAccess {
        name: "reporting",
        publishes: &[],
        reads: &["access", "assignment", "registration"],
    },
];

/// A user in the generated config: its public nkey (`U...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub public_key: String,
}

/// The region's users, by public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionUsers {
    pub operator: User,
    /// Service name and its user (names from [`SERVICES`]).
    pub services: Vec<(String, User)>,
    /// Provider AGB code and its user.
    pub providers: Vec<(String, User)>,
}

/// A user's permissions: publish and subscribe allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
    pub subscribe_deny: Vec<String>,
}

/// The permissions of `service`'s user.
pub fn service_permissions(ns: &Namespace, service: &ServiceAccess) -> Permissions {
    let n = ns.as_str();
    let mut p = Permissions::default();
    for context in service.publishes {
        p.publish_allow.push(format!("{n}.{context}.>"));
        p.subscribe_allow.push(format!("{n}.{context}.>"));
    }
    p.publish_allow.push(format!("{n}.dlq.>"));
    p.publish_allow.push("$JS.API.INFO".into());
    let mut streams: Vec<String> = service
        .publishes
        .iter()
        .chain(service.reads)
        .map(|c| ns.stream_name(c))
        .collect();
    streams.push(ns.dlq_stream());
    streams.sort();
    streams.dedup();
    for s in &streams {
        for call in ["INFO", "CREATE", "UPDATE"] {
            p.publish_allow.push(format!("$JS.API.STREAM.{call}.{s}"));
        }
        for call in ["CREATE", "DURABLE.CREATE", "INFO", "MSG.NEXT"] {
            p.publish_allow
                .push(format!("$JS.API.CONSUMER.{call}.{s}.>"));
        }
        p.publish_allow.push(format!("$JS.ACK.{s}.>"));
    }
    p.subscribe_allow.push(format!(
        "{}.>",
        inbox_prefix(ns, &format!("service-{}", service.name))
    ));
    p
}

/// The permissions of provider `agb`'s user: fetch from, ack on and read the info of its own
/// consumer; everything else refused.
pub fn provider_permissions(ns: &Namespace, agb: &str) -> Permissions {
    let n = ns.as_str();
    let stream = provider_stream(ns);
    let consumer = provider_consumer(agb);
    Permissions {
        publish_allow: vec![
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
            format!("$JS.ACK.{stream}.{consumer}.>"),
        ],
        publish_deny: vec![
            format!("{n}.>"),
            "$JS.API.CONSUMER.CREATE.>".into(),
            "$JS.API.CONSUMER.DURABLE.CREATE.>".into(),
        ],
        subscribe_allow: vec![format!(
            "{}.>",
            inbox_prefix(ns, &format!("provider-{agb}"))
        )],
        subscribe_deny: vec![format!("{n}.>")],
    }
}

fn quoted_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", items.join(", "))
}

fn user_block(out: &mut String, comment: &str, user: &User, permissions: Option<&Permissions>) {
    out.push_str(&format!("      # {comment}\n"));
    out.push_str(&format!("      {{ nkey: \"{}\"", user.public_key));
    if let Some(p) = permissions {
        out.push_str(", permissions: {\n");
        out.push_str(&format!(
            "          publish: {{ allow: {}, deny: {} }}\n",
            quoted_list(&p.publish_allow),
            quoted_list(&p.publish_deny)
        ));
        out.push_str(&format!(
            "          subscribe: {{ allow: {}, deny: {} }}\n",
            quoted_list(&p.subscribe_allow),
            quoted_list(&p.subscribe_deny)
        ));
        out.push_str("        }");
    }
    out.push_str(" }\n");
}

/// The nats-server configuration (2.9 syntax) of the region's account: an `accounts` block for the
/// server's main config to `include` (the main config holds the listener, `jetstream {}` and TLS;
/// a reload re-reads both files. JetStream enabled on the command line (`-js`) instead would be
/// switched off by the reload). Public keys only: no secret is in it.
pub fn render_config(ns: &Namespace, users: &RegionUsers) -> String {
    let account = ns.as_str().to_ascii_uppercase();
    let mut out = String::new();
    out.push_str(&format!(
        "# NATS authorisation of namespace `{}`, written by `rzctl nats config`; regenerate it and\n\
         # reload (`nats-server --signal reload=<pid>`) to add or end a provider.\n",
        ns.as_str()
    ));
    out.push_str(&format!(
        "accounts {{\n  {account}: {{\n    jetstream: enabled\n    users: [\n"
    ));
    user_block(
        &mut out,
        "operator (rzctl, provisioning)",
        &users.operator,
        None,
    );
    for (name, user) in &users.services {
        let Some(service) = SERVICES.iter().find(|s| s.name == name) else {
            continue;
        };
        user_block(
            &mut out,
            &format!("service {name}"),
            user,
            Some(&service_permissions(ns, service)),
        );
    }
    for (agb, user) in &users.providers {
        user_block(
            &mut out,
            &format!("provider {agb}"),
            user,
            Some(&provider_permissions(ns, agb)),
        );
    }
    out.push_str("    ]\n  }\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_may_only_fetch_and_ack_on_its_own_consumer() {
        let ns = Namespace::new("rz").unwrap_or_else(|e| panic!("{e}"));
        let p = provider_permissions(&ns, "12345678");
        assert_eq!(
            p.publish_allow,
            [
                "$JS.API.CONSUMER.MSG.NEXT.RZ_ASSIGNMENT.provider-12345678",
                "$JS.API.CONSUMER.INFO.RZ_ASSIGNMENT.provider-12345678",
                "$JS.ACK.RZ_ASSIGNMENT.provider-12345678.>"
            ]
        );
        assert_eq!(p.subscribe_allow, ["_INBOX.rz.provider-12345678.>"]);
        assert_eq!(p.subscribe_deny, ["rz.>"]);
        assert_eq!(
            provider_filter(&ns, "12345678"),
            "rz.assignment.*.12345678.>"
        );
    }

    #[test]
    fn a_service_publishes_only_its_own_context() {
        let ns = Namespace::new("rz").unwrap_or_else(|e| panic!("{e}"));
        let assignment = SERVICES
            .iter()
            .find(|s| s.name == "assignment")
            .unwrap_or_else(|| panic!("assignment"));
        let p = service_permissions(&ns, assignment);
        assert!(p.publish_allow.contains(&"rz.assignment.>".to_owned()));
        assert!(!p.publish_allow.iter().any(|s| s.starts_with("rz.access")));
        assert!(
            p.publish_allow
                .contains(&"$JS.API.CONSUMER.MSG.NEXT.RZ_ACCESS.>".to_owned())
        );
        assert!(
            !p.publish_allow
                .iter()
                .any(|s| s.contains("RZ_REGISTRATION"))
        );
    }
}
