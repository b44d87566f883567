//! The services assignment asks: registration (the catalogue, who is contracted where and when)
//! and each municipality's access instance (the client block of the standard's message).
//!
//! Channels connect lazily, so assignment starts even when they are not up yet; a call that cannot
//! reach them fails with [`Error::Unavailable`] (UNAVAILABLE for callers, a retry for the consumer).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use rz_domain::{AgbCode, ExecutionVariant, Law, ProductCode};
use rz_platform::tls::{TlsConfig, TlsError};
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as pb;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::types::v1 as types;
use tokio::sync::RwLock;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::config::AssignmentConfig;
use crate::error::{Error, Result};

/// What assignment needs to know of a subsegment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsegmentInfo {
    pub code: String,
    pub segment_code: String,
    pub law: Law,
    pub variant: ExecutionVariant,
    /// JZ020 / WMO020 codes; the first is used when a request names none.
    pub product_categories: Vec<String>,
    /// The region's product codes of the subsegment (see [`ExecutionVariant::product_code`]).
    pub product_codes: Vec<ProductCode>,
}

/// The region's catalogue, as registration serves it.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub subsegments: HashMap<String, SubsegmentInfo>,
    pub municipalities: BTreeSet<String>,
}

impl Catalogue {
    pub fn from_pb(c: reg::Catalogue) -> Self {
        let mut subsegments = HashMap::new();
        for segment in c.lots.into_iter().flat_map(|l| l.segments) {
            let law = match segment.law() {
                types::Law::Wmo => Law::Wmo,
                _ => Law::Jeugdwet,
            };
            for ss in segment.subsegments {
                let variant = match ss.execution_variant() {
                    types::ExecutionVariant::Inspanningsgericht => {
                        ExecutionVariant::Inspanningsgericht
                    }
                    types::ExecutionVariant::Outputgericht => ExecutionVariant::Outputgericht,
                    _ => ExecutionVariant::Taakgericht,
                };
                subsegments.insert(
                    ss.code.clone(),
                    SubsegmentInfo {
                        code: ss.code,
                        segment_code: segment.code.clone(),
                        law,
                        variant,
                        product_categories: ss.product_categories,
                        // Registration checked them; a malformed one is dropped, not invented.
                        product_codes: ss
                            .product_codes
                            .iter()
                            .filter_map(|p| ProductCode::parse(p).ok())
                            .collect(),
                    },
                );
            }
        }
        Self {
            subsegments,
            municipalities: c.municipalities.into_iter().map(|m| m.code).collect(),
        }
    }

    pub fn subsegment(&self, code: &str) -> Option<&SubsegmentInfo> {
        self.subsegments.get(code)
    }
}

/// The outcome of asking a municipality's access instance for a client.
#[derive(Debug, Clone)]
pub enum ClientLookup {
    Found(Box<pb::Client>),
    /// Access does not know this client key.
    Unknown,
    /// No access instance is configured for the municipality.
    NoAccess,
}

pub struct Upstream {
    registration: RegistrationServiceClient<Channel>,
    access: HashMap<String, AccessServiceClient<Channel>>,
    catalogue: RwLock<Option<Arc<Catalogue>>>,
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

/// A failed call: unreachable or failing upstream is transient, a refusal is not.
fn call_error(service: &str, s: &tonic::Status) -> Error {
    match s.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Unknown
        | Code::Internal => Error::Unavailable(format!("{service}: {}", s.message())),
        code => Error::Upstream(format!("{service} answered {code:?}: {}", s.message())),
    }
}

fn traced<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    rz_telemetry::inject_grpc(&mut request);
    request
}

impl Upstream {
    /// Channels to registration and each configured access instance, dialled with mutual TLS
    /// (`tls`: the service's `[tls]`).
    pub fn new(config: &AssignmentConfig, tls: &TlsConfig) -> Result<Self, String> {
        let timeout = Duration::from_secs(config.upstream_timeout_secs.max(1));
        let registration = RegistrationServiceClient::new(channel(
            tls,
            "assignment.registration_endpoint",
            &config.registration_endpoint,
            timeout,
        )?);
        let mut access = HashMap::new();
        for (municipality, url) in &config.access_endpoints {
            let key = format!("assignment.access_endpoints.{municipality}");
            access.insert(
                municipality.clone(),
                AccessServiceClient::new(channel(tls, &key, url, timeout)?),
            );
        }
        Ok(Self {
            registration,
            access,
            catalogue: RwLock::new(None),
        })
    }

    pub fn has_access(&self, municipality: &str) -> bool {
        self.access.contains_key(municipality)
    }

    /// The catalogue, fetched from registration on first use and kept.
    pub async fn catalogue(&self) -> Result<Arc<Catalogue>> {
        if let Some(c) = self.catalogue.read().await.as_ref() {
            return Ok(c.clone());
        }
        let mut slot = self.catalogue.write().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .registration
            .clone()
            .get_catalogue(traced(reg::GetCatalogueRequest {}))
            .await
            .map_err(|s| call_error("registration", &s))?
            .into_inner();
        let c = Arc::new(Catalogue::from_pb(c));
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The contract id when `agb` is contracted for `subsegment` in `municipality` on `date`.
    pub async fn check_contracted(
        &self,
        agb: &str,
        subsegment: &str,
        municipality: &str,
        date: NaiveDate,
    ) -> Result<Option<String>> {
        let r = self
            .registration
            .clone()
            .check_contracted(traced(reg::CheckContractedRequest {
                agb_code: agb.to_owned(),
                subsegment_code: subsegment.to_owned(),
                municipality: municipality.to_owned(),
                date: date.to_string(),
            }))
            .await
            .map_err(|s| call_error("registration", &s))?
            .into_inner();
        Ok(r.contracted.then_some(r.contract_id))
    }

    /// The tariffs of contract `contract_id` (registration's GetContract): (product code, WJ756
    /// unit, price in cents). Registration keeps one tariff per product and unit for the
    /// contract's whole term (no dated tariffs).
    pub async fn contract_tariffs(&self, contract_id: &str) -> Result<Vec<(String, String, i64)>> {
        let c = self
            .registration
            .clone()
            .get_contract(traced(reg::GetContractRequest {
                contract_id: contract_id.to_owned(),
            }))
            .await
            .map_err(|s| call_error("registration", &s))?
            .into_inner();
        Ok(c.tariffs
            .into_iter()
            .map(|t| (t.product_code, t.unit, t.price_cents))
            .collect())
    }

    /// (AGB code, lumpsum budget in cents) of every provider contracted for `subsegment` in
    /// `municipality` on `date`; an AGB code that does not parse is an upstream error.
    pub async fn contracted_providers(
        &self,
        subsegment: &str,
        municipality: &str,
        date: NaiveDate,
    ) -> Result<Vec<(AgbCode, i64)>> {
        let r = self
            .registration
            .clone()
            .list_contracted_providers(traced(reg::ListContractedProvidersRequest {
                subsegment_code: subsegment.to_owned(),
                municipality: municipality.to_owned(),
                date: date.to_string(),
            }))
            .await
            .map_err(|s| call_error("registration", &s))?
            .into_inner();
        r.providers
            .into_iter()
            .filter_map(|p| {
                p.provider.map(|provider| {
                    AgbCode::parse(&provider.agb_code)
                        .map(|agb| (agb, p.lumpsum_budget_cents))
                        .map_err(|e| Error::Upstream(format!("registration: {e}")))
                })
            })
            .collect()
    }

    /// The client block (BSN, name, birth date) from the municipality's access instance.
    pub async fn client(&self, municipality: &str, client_key: &str) -> Result<ClientLookup> {
        let Some(access) = self.access.get(municipality) else {
            return Ok(ClientLookup::NoAccess);
        };
        match access
            .clone()
            .get_client_for_assignment(traced(acc::GetClientForAssignmentRequest {
                client_key: client_key.to_owned(),
            }))
            .await
        {
            Ok(r) => Ok(ClientLookup::Found(Box::new(client_block(r.into_inner())))),
            Err(s) if s.code() == Code::NotFound => Ok(ClientLookup::Unknown),
            Err(s) => Err(call_error(&format!("access {municipality}"), &s)),
        }
    }

    /// The client blocks of many clients of one municipality, by client key, with one call per
    /// [`CLIENTS_PER_CALL`] keys. A key access does not know is missing from the answer; a
    /// municipality without an access instance gives an empty answer.
    pub async fn clients(
        &self,
        municipality: &str,
        keys: &[String],
    ) -> Result<Vec<(String, pb::Client)>> {
        let Some(access) = self.access.get(municipality) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CLIENTS_PER_CALL) {
            let r = access
                .clone()
                .get_clients_for_assignment(traced(acc::GetClientsForAssignmentRequest {
                    client_keys: chunk.to_vec(),
                }))
                .await
                .map_err(|s| call_error(&format!("access {municipality}"), &s))?;
            out.extend(
                r.into_inner()
                    .clients
                    .into_iter()
                    .map(|c| (c.client_key.clone(), client_block(c))),
            );
        }
        Ok(out)
    }
}

/// Keys per `GetClientsForAssignment` call (access takes at most 500).
pub const CLIENTS_PER_CALL: usize = 500;

/// The client block of the standard's message from access' answer.
fn client_block(c: acc::AssignmentClient) -> pb::Client {
    pb::Client {
        bsn: c.bsn,
        birth_date: c.birth_date,
        family_name: c.family_name,
        given_names: c.given_names,
        gender: if c.gender.is_empty() {
            "0".to_owned()
        } else {
            c.gender
        },
        address: c.address.map(|a| pb::ClientAddress {
            street: a.street,
            house_number: a.house_number,
            postal_code: a.postal_code,
            city: a.city,
        }),
    }
}

/// Answers from registration within one operation (a handover run asks the same questions for
/// many assignments; a batch of decisions shares the answers fetched for it just before).
#[derive(Debug, Default, Clone)]
pub struct ContractCache {
    checks: HashMap<(String, String, String, NaiveDate), Option<String>>,
    lists: HashMap<(String, String, NaiveDate), Vec<(AgbCode, i64)>>,
}

impl ContractCache {
    /// Records an answer fetched elsewhere (a prefetch), as [`ContractCache::check`] would.
    pub fn put_check(
        &mut self,
        agb: &str,
        subsegment: &str,
        municipality: &str,
        date: NaiveDate,
        contract: Option<String>,
    ) {
        let key = (
            agb.to_owned(),
            subsegment.to_owned(),
            municipality.to_owned(),
            date,
        );
        self.checks.insert(key, contract);
    }

    /// Records an answer fetched elsewhere (a prefetch), as [`ContractCache::list`] would.
    pub fn put_list(
        &mut self,
        subsegment: &str,
        municipality: &str,
        date: NaiveDate,
        providers: Vec<(AgbCode, i64)>,
    ) {
        let key = (subsegment.to_owned(), municipality.to_owned(), date);
        self.lists.insert(key, providers);
    }

    pub async fn check(
        &mut self,
        upstream: &Upstream,
        agb: &str,
        subsegment: &str,
        municipality: &str,
        date: NaiveDate,
    ) -> Result<Option<String>> {
        let key = (
            agb.to_owned(),
            subsegment.to_owned(),
            municipality.to_owned(),
            date,
        );
        if let Some(v) = self.checks.get(&key) {
            return Ok(v.clone());
        }
        let v = upstream
            .check_contracted(agb, subsegment, municipality, date)
            .await?;
        self.checks.insert(key, v.clone());
        Ok(v)
    }

    pub async fn list(
        &mut self,
        upstream: &Upstream,
        subsegment: &str,
        municipality: &str,
        date: NaiveDate,
    ) -> Result<Vec<(AgbCode, i64)>> {
        let key = (subsegment.to_owned(), municipality.to_owned(), date);
        if let Some(v) = self.lists.get(&key) {
            return Ok(v.clone());
        }
        let v = upstream
            .contracted_providers(subsegment, municipality, date)
            .await?;
        self.lists.insert(key, v.clone());
        Ok(v)
    }
}
