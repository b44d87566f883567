//! The gRPC API: turns requests into domain values, runs each command in one transaction together
//! with its outbox event, and maps errors to precise status codes.
//!
//! One part per aggregate: [`providers`], [`tenders`], [`contracts`]; [`conversion`] turns rows
//! and domain values into their messages. This module holds what they share and the tonic service,
//! which only hands each call to its part.

mod contracts;
pub mod conversion;
mod providers;
mod tenders;

use std::sync::Arc;

use rz_domain::{AgbCode, FieldError};
use rz_eventing::{Namespace, NewEvent, outbox};
use rz_platform::ApiError;
use rz_platform::clock::Clock;
use rz_platform::idempotency::fingerprint;
use rz_proto::registration::v1 as pb;
use rz_proto::registration::v1::registration_service_server::RegistrationService;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

pub use conversion::{catalogue_pb, contract_pb, provider_pb, tender_pb};

use crate::domain::RegistrationError;
use crate::domain::catalogue::Catalogue;
use crate::domain::tender::Tender;
use crate::store::{self, Claim, ContractRow, ProviderRow};

type ApiResult<T> = Result<T, ApiError>;

pub const CONTEXT: &str = rz_proto::events::registration::CONTEXT;
const SOURCE: &str = "regiozorg/registration";

impl From<RegistrationError> for ApiError {
    fn from(e: RegistrationError) -> Self {
        match e {
            RegistrationError::Invalid(v) => ApiError::InvalidArgument(v),
            RegistrationError::Rule {
                rule,
                subject,
                description,
            } => ApiError::rule(rule, subject, description),
            RegistrationError::NotFound(w) => ApiError::NotFound(w),
            RegistrationError::AlreadyExists(w) => ApiError::AlreadyExists(w),
        }
    }
}

pub struct RegistrationApi {
    pool: PgPool,
    catalogue: Arc<Catalogue>,
    ns: Namespace,
    /// "Today", for a contract's status.
    clock: Arc<dyn Clock>,
}

fn agb(field: &str, v: &str) -> Result<AgbCode, FieldError> {
    AgbCode::parse(v).map_err(|e| e.at(field))
}

/// The years any date field of registration may lie in; outside, INVALID_ARGUMENT naming the
/// field.
pub const DATE_YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// A `YYYY-MM-DD` date of `field` in [`DATE_YEARS`].
fn date(field: &str, v: &str) -> Result<chrono::NaiveDate, FieldError> {
    use chrono::Datelike;
    let d = rz_domain::parse_date(field, v)?;
    if !DATE_YEARS.contains(&d.year()) {
        return Err(FieldError::new(
            field,
            format!(
                "must lie in the years {} to {}",
                DATE_YEARS.start(),
                DATE_YEARS.end()
            ),
        ));
    }
    Ok(d)
}

fn uuid(field: &str, v: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(v).map_err(|_| FieldError::new(field, "must be a UUID"))
}

fn not_registered(agb: &str) -> ApiError {
    ApiError::NotFound(format!("provider {agb} is not registered"))
}

fn key_conflict() -> ApiError {
    ApiError::AlreadyExists("idempotency_key was used before for a different request".into())
}

impl RegistrationApi {
    pub fn new(
        pool: PgPool,
        catalogue: Arc<Catalogue>,
        ns: Namespace,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            pool,
            catalogue,
            ns,
            clock,
        }
    }

    async fn emit(
        &self,
        tx: &mut PgConnection,
        agb: Option<&str>,
        event: rz_proto::events::EventType,
        aggregate: &str,
        payload: &impl prost::Message,
    ) -> ApiResult<()> {
        let e = NewEvent::new(
            self.ns.subject(CONTEXT, None, agb, event.name),
            event.ce_type,
            SOURCE,
            aggregate,
            payload,
        );
        outbox::enqueue(tx, &e).await?;
        Ok(())
    }

    /// Claims a create command's idempotency key for `request` (see
    /// [`rz_platform::idempotency`]).
    async fn claim(
        &self,
        tx: &mut PgConnection,
        key: &str,
        operation: &str,
        request: &impl prost::Message,
        resource_id: &str,
    ) -> ApiResult<Claim> {
        let fingerprint = fingerprint(operation, request);
        Ok(store::claim_key(tx, key, operation, &fingerprint, resource_id).await?)
    }

    fn contract_pb(&self, c: ContractRow) -> pb::Contract {
        contract_pb(c, self.clock.today())
    }

    async fn provider(&self, conn: &mut PgConnection, agb: &str) -> ApiResult<ProviderRow> {
        store::get_provider(conn, agb)
            .await?
            .ok_or_else(|| not_registered(agb))
    }

    async fn contract(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> ApiResult<ContractRow> {
        store::load_contract(conn, id, for_update)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("contract {id} does not exist")))
    }

    async fn tender(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> ApiResult<Tender> {
        store::load_tender(conn, id, for_update)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("tender {id} does not exist")))
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn reply<T>(r: ApiResult<T>) -> Reply<T> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl RegistrationService for RegistrationApi {
    async fn get_catalogue(&self, _: Request<pb::GetCatalogueRequest>) -> Reply<pb::Catalogue> {
        Ok(Response::new(catalogue_pb(&self.catalogue)))
    }
    async fn register_provider(
        &self,
        r: Request<pb::RegisterProviderRequest>,
    ) -> Reply<pb::Provider> {
        reply(self.register_provider(r.into_inner()).await)
    }
    async fn form_consortium(&self, r: Request<pb::FormConsortiumRequest>) -> Reply<pb::Provider> {
        reply(self.form_consortium(r.into_inner()).await)
    }
    async fn add_subcontractor(
        &self,
        r: Request<pb::AddSubcontractorRequest>,
    ) -> Reply<pb::Provider> {
        reply(self.add_subcontractor(r.into_inner()).await)
    }
    async fn get_provider(&self, r: Request<pb::GetProviderRequest>) -> Reply<pb::ProviderDetail> {
        reply(self.get_provider(r.into_inner()).await)
    }
    async fn list_providers(
        &self,
        _: Request<pb::ListProvidersRequest>,
    ) -> Reply<pb::ListProvidersResponse> {
        reply(self.list_providers().await)
    }
    async fn open_tender(&self, r: Request<pb::OpenTenderRequest>) -> Reply<pb::Tender> {
        reply(self.open_tender(r.into_inner()).await)
    }
    async fn submit_registration(
        &self,
        r: Request<pb::SubmitRegistrationRequest>,
    ) -> Reply<pb::Tender> {
        reply(self.submit_registration(r.into_inner()).await)
    }
    async fn select_registrations(
        &self,
        r: Request<pb::SelectRegistrationsRequest>,
    ) -> Reply<pb::Tender> {
        reply(self.select_registrations(r.into_inner()).await)
    }
    async fn score_bid(&self, r: Request<pb::ScoreBidRequest>) -> Reply<pb::Tender> {
        reply(self.score_bid(r.into_inner()).await)
    }
    async fn award_tender(
        &self,
        r: Request<pb::AwardTenderRequest>,
    ) -> Reply<pb::AwardTenderResponse> {
        reply(self.award_tender(r.into_inner()).await)
    }
    async fn get_tender(&self, r: Request<pb::GetTenderRequest>) -> Reply<pb::Tender> {
        reply(self.get_tender(r.into_inner()).await)
    }
    async fn conclude_contract(
        &self,
        r: Request<pb::ConcludeContractRequest>,
    ) -> Reply<pb::Contract> {
        reply(self.conclude_contract(r.into_inner()).await)
    }
    async fn extend_contract(&self, r: Request<pb::ExtendContractRequest>) -> Reply<pb::Contract> {
        reply(self.extend_contract(r.into_inner()).await)
    }
    async fn terminate_contract(
        &self,
        r: Request<pb::TerminateContractRequest>,
    ) -> Reply<pb::Contract> {
        reply(self.terminate_contract(r.into_inner()).await)
    }
    async fn set_lumpsum_budget(
        &self,
        r: Request<pb::SetLumpsumBudgetRequest>,
    ) -> Reply<pb::Contract> {
        reply(self.set_lumpsum_budget(r.into_inner()).await)
    }
    async fn set_tariff(&self, r: Request<pb::SetTariffRequest>) -> Reply<pb::Contract> {
        reply(self.set_tariff(r.into_inner()).await)
    }
    async fn get_contract(&self, r: Request<pb::GetContractRequest>) -> Reply<pb::Contract> {
        reply(self.get_contract(r.into_inner()).await)
    }
    async fn list_contracts(
        &self,
        r: Request<pb::ListContractsRequest>,
    ) -> Reply<pb::ListContractsResponse> {
        reply(self.list_contracts(r.into_inner()).await)
    }
    async fn list_contracted_providers(
        &self,
        r: Request<pb::ListContractedProvidersRequest>,
    ) -> Reply<pb::ListContractedProvidersResponse> {
        reply(self.list_contracted(r.into_inner()).await)
    }
    async fn check_contracted(
        &self,
        r: Request<pb::CheckContractedRequest>,
    ) -> Reply<pb::CheckContractedResponse> {
        reply(self.check_contracted(r.into_inner()).await)
    }
}
