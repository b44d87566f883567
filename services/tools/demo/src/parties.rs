//! Who the demo calls as. Every call is mutual TLS with a certificate of the demo's PKI
//! (`var/demo/pki`, laid out by `rzctl pki init`), the party the policy table
//! (`rz_platform::authz::policy`) lets make it:
//! - the operator (`operator/`): the register's reads, the imports of existing care, the handover,
//!   the deadline scans, the reports;
//! - a municipality (`municipality-<CBS>/`): its access instance, with the staff token of one of
//!   its consulents (`staff.jwt`, header `authorization: Bearer ...`: the person path), its
//!   answers to providers' requests, its letters and staff alerts;
//! - a provider (`provider-<AGB>/`): its requests for an assignment after a GP referral, its
//!   messages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rz_platform::tls::TlsConfig;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::Result;

/// The operator's folder.
pub const OPERATOR: &str = "operator";

pub fn municipality(cbs: &str) -> String {
    format!("municipality-{cbs}")
}

pub fn provider(agb: &str) -> String {
    format!("provider-{agb}")
}

/// A connected mutual-TLS channel to `url` as the PKI folder `folder`.
pub async fn connect(pki: &Path, folder: &str, url: &str) -> Result<Channel> {
    TlsConfig::from_pki(pki, folder)
        .endpoint(url)
        .map_err(|e| format!("{url} as {folder}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("{url} as {folder}: {e}"))
}

/// Adds a staff member's token to every call: `authorization: Bearer <jwt>`.
#[derive(Debug, Clone)]
pub struct Staff(MetadataValue<Ascii>);

impl Staff {
    /// The consulent's token in `<pki>/municipality-<CBS>/staff.jwt`.
    pub fn of(pki: &Path, cbs: &str) -> Result<Self> {
        let path = pki.join(municipality(cbs)).join("staff.jwt");
        let token =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let value = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| format!("{}: not a token", path.display()))?;
        Ok(Self(value))
    }
}

impl Interceptor for Staff {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A municipality's access instance, called by one of its consulents.
pub type AccessClient = AccessServiceClient<InterceptedService<Channel, Staff>>;

/// The assignment service as each provider, a channel per provider opened on first use.
#[derive(Debug)]
pub struct Providers {
    pki: PathBuf,
    assignment: String,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Providers {
    pub fn new(pki: &Path, assignment: &str) -> Self {
        Self {
            pki: pki.to_owned(),
            assignment: assignment.to_owned(),
            channels: Mutex::default(),
        }
    }

    /// The assignment service as provider `agb`.
    pub fn assignment(&self, agb: &str) -> Result<AssignmentServiceClient<Channel>> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "the provider channels are poisoned".to_owned())?;
        if let Some(c) = channels.get(agb) {
            return Ok(AssignmentServiceClient::new(c.clone()));
        }
        let folder = provider(agb);
        let channel = TlsConfig::from_pki(&self.pki, &folder)
            .endpoint(&self.assignment)
            .map_err(|e| format!("{} as {folder}: {e}", self.assignment))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(agb.to_owned(), channel.clone());
        Ok(AssignmentServiceClient::new(channel))
    }
}
