//! Who the tests call as: the stack's PKI (one CA, a certificate per organisation and service, the
//! key that signs staff tokens), a cached mutual-TLS channel per identity and endpoint, the
//! [`Party`] a test calls as and the [`Staff`] token a person of a municipality passes along.
//!
//! Stacks alive at the same time in one test process share one PKI (a stack using another's
//! registration or access must be trusted by it); it is removed when the last of them is dropped.
//! A certificate an accessor needs and the PKI lacks (a provider no landscape names) is issued on
//! first use.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rz_pki::{Issue, Pki, PkiSpec};
use rz_platform::identity::Role;
use rz_platform::tls::TlsConfig;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::audit::v1::audit_service_client::AuditServiceClient;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

use crate::Stack;

/// The operator's folder in the PKI (`urn:regiozorg:operator:ops`).
pub const OPERATOR: &str = "operator";

/// How long the standard certificates are valid.
const VALID_DAYS: u32 = 30;

/// A PKI on disk, shared by the stacks alive at the same time; removed when the last one drops.
pub(crate) struct StackPki {
    pki: Pki,
    /// Folders issued so far (under the lock: two stacks may ask for the same one).
    issued: Mutex<HashSet<String>>,
}

impl Drop for StackPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.pki.dir());
    }
}

static SHARED: Mutex<Weak<StackPki>> = Mutex::new(Weak::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

impl StackPki {
    /// The PKI of the stacks alive in this process (a new one when there are none), holding
    /// certificates for `providers`, `municipalities`, the operator and the five services.
    pub(crate) fn shared(providers: &[String], municipalities: &[String]) -> Arc<Self> {
        let mut shared = SHARED.lock().unwrap();
        let pki = match shared.upgrade() {
            Some(pki) => pki,
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "rz-stack-pki-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                let spec = PkiSpec::region(&[], &[]);
                let generated = rz_pki::generate(&dir, &spec).expect("the test PKI generates");
                let issued = std::iter::once(OPERATOR.to_owned())
                    .chain(spec.services.iter().map(|s| format!("service-{s}")))
                    .collect();
                let pki = Arc::new(Self {
                    pki: generated,
                    issued: Mutex::new(issued),
                });
                *shared = Arc::downgrade(&pki);
                pki
            }
        };
        drop(shared);
        for agb in providers {
            pki.ensure(&format!("provider-{agb}"));
        }
        for cbs in municipalities {
            pki.ensure(&format!("municipality-{cbs}"));
        }
        pki
    }

    pub(crate) fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Issues the standard certificate of `folder` (`provider-<AGB>`, `municipality-<CBS>`,
    /// `operator`, `service-<name>`) unless the PKI has it.
    pub(crate) fn ensure(&self, folder: &str) {
        let mut issued = self.issued.lock().unwrap();
        if issued.contains(folder) || self.pki.dir().join(folder).join("tls.crt").is_file() {
            issued.insert(folder.to_owned());
            return;
        }
        let standard = |urn: String| Issue {
            urn: Some(urn),
            serial_number: None,
            valid_from_days: -1,
            valid_days: i64::from(VALID_DAYS) + 1,
        };
        let result = if let Some(agb) = folder.strip_prefix("provider-") {
            self.pki
                .issue(folder, &standard(format!("urn:regiozorg:provider:{agb}")))
        } else if let Some(cbs) = folder.strip_prefix("municipality-") {
            self.pki.issue(
                folder,
                &standard(format!("urn:regiozorg:municipality:{cbs}")),
            )
        } else if let Some(name) = folder.strip_prefix("service-") {
            self.pki.issue_server(
                folder,
                &standard(format!("urn:regiozorg:service:{name}")),
                name,
                &[],
            )
        } else {
            panic!("no standard certificate for the folder {folder:?}: issue it with stack.pki()")
        };
        result.unwrap_or_else(|e| panic!("issuing {folder}: {e}"));
        issued.insert(folder.to_owned());
    }

    /// The CA and the certificate of `folder` (issued first when missing).
    pub(crate) fn tls(&self, folder: &str) -> TlsConfig {
        self.ensure(folder);
        self.pki.tls(folder)
    }

    pub(crate) fn token_key(&self) -> PathBuf {
        self.pki.token_key_pub()
    }
}

/// Channels of a stack by (identity folder, endpoint); created lazily (they connect on the first
/// call), kept for the stack's life.
#[derive(Default)]
pub(crate) struct Channels(Mutex<HashMap<(String, String), Channel>>);

impl Channels {
    pub(crate) fn get(&self, pki: &StackPki, folder: &str, endpoint: &str) -> Channel {
        let mut channels = self.0.lock().unwrap();
        let key = (folder.to_owned(), endpoint.to_owned());
        if let Some(c) = channels.get(&key) {
            return c.clone();
        }
        let channel = lazy(endpoint, &pki.tls(folder));
        channels.insert(key, channel.clone());
        channel
    }
}

/// A mutual-TLS channel to `url` as `tls` that connects on its first call (so a refused handshake
/// shows as that call's error).
pub(crate) fn lazy(url: &str, tls: &TlsConfig) -> Channel {
    tls.endpoint(url)
        .unwrap_or_else(|e| panic!("a TLS endpoint for {url}: {e}"))
        .connect_lazy()
}

/// A connected mutual-TLS gRPC channel to `url` (an `http://` URL is dialled as `https://`) as
/// the party whose certificate `tls` names; panics (the test fails) when it cannot connect.
pub async fn connect(url: &str, tls: &TlsConfig) -> Channel {
    tls.endpoint(url)
        .unwrap_or_else(|e| panic!("a TLS endpoint for {url}: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connects to {url}: {e:?}"))
}

/// An organisation (or service) of the region the test calls as: clients of every service over
/// mutual TLS with its certificate. From [`Stack::as_provider`], [`Stack::as_municipality`],
/// [`Stack::as_operator`], [`Stack::as_service`].
pub struct Party<'a> {
    stack: &'a Stack,
    folder: String,
}

impl<'a> Party<'a> {
    pub(crate) fn new(stack: &'a Stack, folder: String) -> Self {
        stack.pki.ensure(&folder);
        Self { stack, folder }
    }

    /// Its folder in the PKI (`provider-<AGB>`, `municipality-<CBS>`, `operator`,
    /// `service-<name>`).
    pub fn folder(&self) -> &str {
        &self.folder
    }

    /// Its CA, certificate and key.
    pub fn tls(&self) -> TlsConfig {
        self.stack.pki.tls(&self.folder)
    }

    /// A (cached, lazily connected) channel to `endpoint` as this party.
    pub fn channel(&self, endpoint: &str) -> Channel {
        self.stack
            .channels
            .get(&self.stack.pki, &self.folder, endpoint)
    }

    pub fn registration(&self) -> RegistrationServiceClient<Channel> {
        RegistrationServiceClient::new(self.channel(&self.stack.registration_endpoint()))
    }

    /// Access of `municipality` (its first instance).
    pub fn access(&self, municipality: &str) -> AccessServiceClient<Channel> {
        AccessServiceClient::new(self.channel(&self.stack.access_endpoint(municipality)))
    }

    pub fn assignment(&self) -> AssignmentServiceClient<Channel> {
        AssignmentServiceClient::new(self.channel(&self.stack.assignment_endpoint()))
    }

    pub fn notification(&self) -> NotificationServiceClient<Channel> {
        NotificationServiceClient::new(self.channel(&self.stack.notification_endpoint()))
    }

    pub fn reporting(&self) -> ReportingServiceClient<Channel> {
        ReportingServiceClient::new(self.channel(&self.stack.reporting_endpoint()))
    }

    /// The audit trail of `service`: `"access:<CBS>"`, `"assignment"` or `"notification"`.
    pub fn audit(&self, service: &str) -> AuditServiceClient<Channel> {
        let endpoint = match service {
            "assignment" => self.stack.assignment_endpoint(),
            "notification" => self.stack.notification_endpoint(),
            other => match other.strip_prefix("access:") {
                Some(m) => self.stack.access_endpoint(m),
                None => panic!(
                    "no audit trail at {other:?}: name \"access:<CBS>\", \"assignment\" or \"notification\""
                ),
            },
        };
        AuditServiceClient::new(self.channel(&endpoint))
    }
}

/// A person of a municipality (a staff token, `authorization: Bearer <jwt>`), to pass along with
/// the municipality's calls: `client.get_resident(staff.request(msg))`, or as an interceptor
/// (`AccessServiceClient::with_interceptor(channel, staff)`).
#[derive(Clone)]
pub struct Staff {
    token: String,
    header: AsciiMetadataValue,
}

impl std::fmt::Debug for Staff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staff").finish_non_exhaustive()
    }
}

impl Staff {
    /// A token as it is (for tests of refused tokens: expired, signed by another key, ...).
    pub fn from_token(token: String) -> Self {
        let header = MetadataValue::try_from(format!("Bearer {token}"))
            .expect("a token is a valid header value");
        Self { token, header }
    }

    /// A token of `role` at `municipality` signed by the stack's token key, valid `valid_secs`
    /// from now (negative: expired).
    pub(crate) fn issue(pki: &Pki, municipality: &str, role: Role, valid_secs: i64) -> Self {
        let role = role.as_str();
        let token = pki
            .staff_token(
                municipality,
                &format!("{role}-{municipality}"),
                &format!("Test {role}"),
                role,
                valid_secs,
            )
            .unwrap_or_else(|e| panic!("a staff token: {e}"));
        Self::from_token(token)
    }

    /// The JWT.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `message` as a request carrying the token.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        request
    }
}

impl tonic::service::Interceptor for Staff {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}
