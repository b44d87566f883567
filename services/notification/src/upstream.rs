//! The services notification asks: each municipality's access instance (the resident's name,
//! address and birth date for a letter; the statutory deadlines; the indications about to end)
//! and the assignment service (the chain deadlines).
//!
//! Channels connect lazily, so notification starts even when they are not up yet; a call that
//! cannot reach them fails with [`UpstreamError::Unavailable`] (a retry for the consumer, an entry
//! in the scan's `errors`).

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use rz_platform::tls::{TlsConfig, TlsError};
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::config::NotificationConfig;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Unreachable or failing for now: may work later.
    #[error("{0}: unavailable: {1}")]
    Unavailable(String, String),
    /// Answered with a refusal that will not change by asking again.
    #[error("{0} answered {1:?}: {2}")]
    Refused(String, Code, String),
    /// No endpoint is configured for the municipality.
    #[error(
        "no access endpoint is configured for municipality {0} (set RZ__NOTIFICATION__ACCESS_ENDPOINTS__{0})"
    )]
    NoAccess(String),
    #[error("no assignment endpoint is configured (RZ__NOTIFICATION__ASSIGNMENT_ENDPOINT)")]
    NoAssignment,
}

/// The outcome of asking a municipality's access instance for a resident.
#[derive(Debug, Clone)]
pub enum ClientLookup {
    Found(Box<acc::AssignmentClient>),
    /// Access does not know this client key.
    Unknown,
}

pub struct Upstream {
    access: HashMap<String, AccessServiceClient<Channel>>,
    assignment: Option<AssignmentServiceClient<Channel>>,
}

/// A lazily connecting channel to `url` with mutual TLS (`tls`: the service's own certificate and
/// the region's CA). `key` names the configuration key of `url` in errors.
fn channel(tls: &TlsConfig, key: &str, url: &str, timeout: Duration) -> Result<Channel, String> {
    Ok(tls
        .endpoint(url)
        .map_err(|e| match e {
            TlsError::Endpoint(..) => format!("{key}: {e}"),
            other => other.to_string(),
        })?
        .timeout(timeout)
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}

fn call_error(service: String, s: &tonic::Status) -> UpstreamError {
    match s.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Unknown
        | Code::Internal => UpstreamError::Unavailable(service, s.message().to_owned()),
        code => UpstreamError::Refused(service, code, s.message().to_owned()),
    }
}

fn traced<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    rz_telemetry::inject_grpc(&mut request);
    request
}

impl Upstream {
    /// Channels to each configured access instance and to assignment, dialled with mutual TLS
    /// (`tls`: the service's `[tls]`).
    pub fn new(config: &NotificationConfig, tls: &TlsConfig) -> Result<Self, String> {
        let timeout = Duration::from_secs(config.upstream_timeout_secs.max(1));
        let mut access = HashMap::new();
        for (municipality, url) in &config.access_endpoints {
            rz_domain::GemeenteCode::parse(municipality).map_err(|e| {
                format!("notification.access_endpoints: `{municipality}` is not a CBS code: {e}")
            })?;
            let key = format!("notification.access_endpoints.{municipality}");
            access.insert(
                municipality.clone(),
                AccessServiceClient::new(channel(tls, &key, url, timeout)?),
            );
        }
        let assignment = if config.assignment_endpoint.trim().is_empty() {
            None
        } else {
            Some(AssignmentServiceClient::new(channel(
                tls,
                "notification.assignment_endpoint",
                config.assignment_endpoint.trim(),
                timeout,
            )?))
        };
        Ok(Self { access, assignment })
    }

    /// The municipalities with an access endpoint, sorted.
    pub fn municipalities(&self) -> Vec<String> {
        let mut m: Vec<String> = self.access.keys().cloned().collect();
        m.sort();
        m
    }

    pub fn has_assignment(&self) -> bool {
        self.assignment.is_some()
    }

    fn access(&self, municipality: &str) -> Result<AccessServiceClient<Channel>, UpstreamError> {
        self.access
            .get(municipality)
            .cloned()
            .ok_or_else(|| UpstreamError::NoAccess(municipality.to_owned()))
    }

    /// The resident behind `client_key`, from the municipality's access instance.
    pub async fn client(
        &self,
        municipality: &str,
        client_key: &str,
    ) -> Result<ClientLookup, UpstreamError> {
        match self
            .access(municipality)?
            .get_client_for_assignment(traced(acc::GetClientForAssignmentRequest {
                client_key: client_key.to_owned(),
            }))
            .await
        {
            Ok(r) => Ok(ClientLookup::Found(Box::new(r.into_inner()))),
            Err(s) if s.code() == Code::NotFound => Ok(ClientLookup::Unknown),
            Err(s) => Err(call_error(format!("access {municipality}"), &s)),
        }
    }

    /// Statutory deadlines that are late on `as_of` or due within `within_days`.
    pub async fn deadlines(
        &self,
        municipality: &str,
        as_of: NaiveDate,
        within_days: u32,
    ) -> Result<Vec<acc::Deadline>, UpstreamError> {
        Ok(self
            .access(municipality)?
            .list_deadlines(traced(acc::ListDeadlinesRequest {
                as_of: as_of.to_string(),
                within_days,
            }))
            .await
            .map_err(|s| call_error(format!("access {municipality}"), &s))?
            .into_inner()
            .deadlines)
    }

    /// Granted products that end within 8 weeks of `as_of`.
    pub async fn expiring(
        &self,
        municipality: &str,
        as_of: NaiveDate,
    ) -> Result<Vec<acc::GrantedProduct>, UpstreamError> {
        Ok(self
            .access(municipality)?
            .list_expiring_indications(traced(acc::ListExpiringIndicationsRequest {
                as_of: as_of.to_string(),
            }))
            .await
            .map_err(|s| call_error(format!("access {municipality}"), &s))?
            .into_inner()
            .products)
    }

    /// The chain deadlines of every municipality on `as_of`.
    pub async fn chain_deadlines(
        &self,
        as_of: NaiveDate,
    ) -> Result<Vec<asg::ChainDeadline>, UpstreamError> {
        let mut client = self.assignment.clone().ok_or(UpstreamError::NoAssignment)?;
        Ok(client
            .list_chain_deadlines(traced(asg::ListChainDeadlinesRequest {
                municipality: String::new(),
                as_of: as_of.to_string(),
            }))
            .await
            .map_err(|s| call_error("assignment".to_owned(), &s))?
            .into_inner()
            .deadlines)
    }
}
