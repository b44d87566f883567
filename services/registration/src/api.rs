//! The gRPC API: turns requests into domain values, runs each command in one transaction together
//! with its outbox event, and maps errors to precise status codes.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Utc};
use rz_domain::{AgbCode, Cents, FieldError, Financing, KvkNumber, ProductCode, Unit, parse_date};
use rz_eventing::{Namespace, NewEvent, outbox};
use rz_platform::ApiError;
use rz_proto::registration::v1 as pb;
use rz_proto::registration::v1::registration_service_server::RegistrationService;
use rz_proto::types::v1 as types;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::RegistrationError;
use crate::domain::catalogue::Catalogue;
use crate::domain::contract::{ContractStatus, ContractTerm};
use crate::domain::tender::{BidScore, Registration, RegistrationStatus, Tender, TenderStatus};
use crate::store::{self, Claim, ContractFilter, ContractRow, ProviderRow};

type ApiResult<T> = Result<T, ApiError>;

pub const CONTEXT: &str = "registration";
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
}

/// Collects field errors so one reply names every malformed field.
#[derive(Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }
    fn non_empty(&mut self, field: &str, v: &str) {
        if v.trim().is_empty() {
            self.0.push(FieldError::new(field, "must not be empty"));
        }
    }
    fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArgument(self.0))
        }
    }
}

fn agb(field: &str, v: &str) -> Result<AgbCode, FieldError> {
    AgbCode::parse(v).map_err(|e| e.at(field))
}

fn uuid(field: &str, v: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(v).map_err(|_| FieldError::new(field, "must be a UUID"))
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn is_overlap_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23P01")
}

fn overlap_rule(agb: &str, contract: Uuid, subsegment: &str, municipality: &str) -> ApiError {
    ApiError::rule(
        "contract.no_overlap",
        format!("{agb}/{subsegment}/{municipality}"),
        format!(
            "provider {agb} already has contract {contract} for subsegment {subsegment} in municipality {municipality} in an overlapping period"
        ),
    )
}

impl RegistrationApi {
    pub fn new(pool: PgPool, catalogue: Arc<Catalogue>, ns: Namespace) -> Self {
        Self {
            pool,
            catalogue,
            ns,
        }
    }

    async fn emit(
        &self,
        tx: &mut PgConnection,
        agb: Option<&str>,
        event: &str,
        aggregate: &str,
        payload: &impl prost::Message,
    ) -> ApiResult<()> {
        let e = NewEvent::new(
            self.ns.subject(CONTEXT, None, agb, event),
            format!("nl.regiozorg.registration.{event}.v1"),
            SOURCE,
            aggregate,
            payload,
        );
        outbox::enqueue(tx, &e).await?;
        Ok(())
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

    async fn register_provider(&self, r: pb::RegisterProviderRequest) -> ApiResult<pb::Provider> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let code = f.check(agb("agb_code", &r.agb_code));
        f.non_empty("name", &r.name);
        f.non_empty("legal_form", &r.legal_form);
        f.check(KvkNumber::parse(&r.kvk_number).map_err(|e| e.at("kvk_number")));
        f.finish()?;
        let code = code.map(|c| c.to_string()).unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        match store::claim_key(
            &mut tx,
            &r.idempotency_key,
            "register_provider",
            &format!("{r:?}"),
            &code,
        )
        .await?
        {
            Claim::Replay(id) => return Ok(provider_pb(self.provider(&mut tx, &id).await?)),
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        let row = ProviderRow {
            agb_code: code.clone(),
            name: r.name.trim().to_owned(),
            legal_form: r.legal_form.trim().to_owned(),
            kvk_number: r.kvk_number,
            kind: "organisation".into(),
            lead_agb_code: None,
            members: vec![],
            subcontractors: vec![],
        };
        self.insert_provider(tx, row).await
    }

    /// Stores a new provider (organisation or consortium) with its `provider_registered` event.
    async fn insert_provider(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        row: ProviderRow,
    ) -> ApiResult<pb::Provider> {
        let code = row.agb_code.clone();
        if !store::insert_provider(&mut tx, &row).await? {
            return Err(ApiError::AlreadyExists(format!(
                "provider {code} is registered already"
            )));
        }
        let p = provider_pb(row);
        let event = pb::ProviderRegistered {
            provider: Some(p.clone()),
        };
        self.emit(&mut tx, Some(&code), "provider_registered", &code, &event)
            .await?;
        tx.commit().await?;
        tracing::info!(agb_code = %code, kind = %p.kind().as_str_name(), "provider registered");
        Ok(p)
    }

    async fn form_consortium(&self, r: pb::FormConsortiumRequest) -> ApiResult<pb::Provider> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let code = f.check(agb("agb_code", &r.agb_code));
        f.non_empty("name", &r.name);
        f.check(KvkNumber::parse(&r.kvk_number).map_err(|e| e.at("kvk_number")));
        let lead = f.check(agb("lead_agb_code", &r.lead_agb_code));
        let mut members: Vec<String> = Vec::new();
        for (i, m) in r.member_agb_codes.iter().enumerate() {
            if let Some(m) = f.check(agb(&format!("member_agb_codes[{i}]"), m)) {
                members.push(m.to_string());
            }
        }
        f.finish()?;
        let (code, lead) = (
            code.map(|c| c.to_string()).unwrap_or_default(),
            lead.map(|c| c.to_string()).unwrap_or_default(),
        );
        if !members.contains(&lead) {
            members.insert(0, lead.clone());
        }
        members.sort();
        members.dedup();
        if members.len() < 2 {
            return Err(ApiError::rule(
                "consortium.members",
                "member_agb_codes",
                "a consortium has a lead and at least one other member",
            ));
        }
        if members.contains(&code) {
            return Err(ApiError::field(
                "agb_code",
                "a consortium has its own AGB code, not one of its members'",
            ));
        }
        let mut tx = self.pool.begin().await?;
        match store::claim_key(
            &mut tx,
            &r.idempotency_key,
            "form_consortium",
            &format!("{r:?}"),
            &code,
        )
        .await?
        {
            Claim::Replay(id) => return Ok(provider_pb(self.provider(&mut tx, &id).await?)),
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        for m in &members {
            match store::get_provider(&mut tx, m).await? {
                None => {
                    return Err(ApiError::rule(
                        "consortium.members_registered",
                        "member_agb_codes",
                        format!("member {m} must be registered as a provider first"),
                    ));
                }
                Some(p) if p.kind == "consortium" => {
                    return Err(ApiError::rule(
                        "consortium.members_are_organisations",
                        "member_agb_codes",
                        format!("member {m} is a consortium itself; consortia are not nested"),
                    ));
                }
                Some(_) => {}
            }
        }
        let row = ProviderRow {
            agb_code: code.clone(),
            name: r.name.trim().to_owned(),
            legal_form: "samenwerkingsverband".into(),
            kvk_number: r.kvk_number,
            kind: "consortium".into(),
            lead_agb_code: Some(lead),
            members,
            subcontractors: vec![],
        };
        self.insert_provider(tx, row).await
    }

    async fn add_subcontractor(&self, r: pb::AddSubcontractorRequest) -> ApiResult<pb::Provider> {
        let mut f = Fields::default();
        let main = f.check(agb("main_agb_code", &r.main_agb_code));
        let sub = f.check(agb("subcontractor_agb_code", &r.subcontractor_agb_code));
        f.finish()?;
        let (main, sub) = (
            main.map(|c| c.to_string()).unwrap_or_default(),
            sub.map(|c| c.to_string()).unwrap_or_default(),
        );
        if main == sub {
            return Err(ApiError::field(
                "subcontractor_agb_code",
                "must differ from the main contractor",
            ));
        }
        if !r.meets_minimum_demands {
            return Err(ApiError::rule(
                "subcontractor.minimum_demands",
                "meets_minimum_demands",
                "every subcontractor must meet the same minimum quality demands as the main contractor",
            ));
        }
        let mut tx = self.pool.begin().await?;
        self.provider(&mut tx, &main).await?;
        self.provider(&mut tx, &sub).await?;
        store::add_subcontractor(&mut tx, &main, &sub).await?;
        let p = provider_pb(self.provider(&mut tx, &main).await?);
        self.emit(
            &mut tx,
            Some(&main),
            "provider_changed",
            &main,
            &pb::ProviderChanged {
                provider: Some(p.clone()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(p)
    }

    async fn get_provider(&self, r: pb::GetProviderRequest) -> ApiResult<pb::ProviderDetail> {
        let code = agb("agb_code", &r.agb_code)?.to_string();
        let mut conn = self.pool.acquire().await?;
        let p = self.provider(&mut conn, &code).await?;
        let contracts = store::list_contracts(
            &mut conn,
            &ContractFilter {
                agb_code: Some(code.clone()),
                ..Default::default()
            },
        )
        .await?;
        let consortia = store::consortia_of(&mut conn, &code).await?;
        Ok(pb::ProviderDetail {
            provider: Some(provider_pb(p)),
            contracts: contracts.into_iter().map(contract_pb).collect(),
            consortium_agb_codes: consortia,
        })
    }

    async fn open_tender(&self, r: pb::OpenTenderRequest) -> ApiResult<pb::Tender> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let start = f.check(parse_date("contract_start", &r.contract_start));
        f.finish()?;
        self.catalogue.segment("segment_code", &r.segment_code)?;
        let start = start.unwrap_or_default();
        let tender = Tender::open(
            Uuid::now_v7(),
            r.name.clone(),
            r.segment_code.clone(),
            r.selection_quota,
            r.award_quota,
            start,
        )?;
        let mut tx = self.pool.begin().await?;
        match store::claim_key(
            &mut tx,
            &r.idempotency_key,
            "open_tender",
            &format!("{r:?}"),
            &tender.id.to_string(),
        )
        .await?
        {
            Claim::Replay(id) => {
                return Ok(tender_pb(
                    &self.tender(&mut tx, uuid("tender_id", &id)?, false).await?,
                ));
            }
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        store::save_tender(&mut tx, &tender).await?;
        let t = tender_pb(&tender);
        self.emit(
            &mut tx,
            None,
            "tender_changed",
            &tender.id.to_string(),
            &pb::TenderChanged {
                tender: Some(t.clone()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(t)
    }

    /// Loads a tender for update, applies `change`, stores it with its event.
    async fn change_tender(
        &self,
        id: &str,
        change: impl FnOnce(&mut Tender, &mut PgConnection) -> ApiResult<()>,
    ) -> ApiResult<pb::Tender> {
        let id = uuid("tender_id", id)?;
        let mut tx = self.pool.begin().await?;
        let mut tender = self.tender(&mut tx, id, true).await?;
        change(&mut tender, &mut tx)?;
        store::save_tender(&mut tx, &tender).await?;
        let t = tender_pb(&tender);
        self.emit(
            &mut tx,
            None,
            "tender_changed",
            &id.to_string(),
            &pb::TenderChanged {
                tender: Some(t.clone()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn submit_registration(&self, r: pb::SubmitRegistrationRequest) -> ApiResult<pb::Tender> {
        let code = agb("agb_code", &r.agb_code)?;
        let tender_id = uuid("tender_id", &r.tender_id)?;
        let mut conn = self.pool.acquire().await?;
        let party = self.provider(&mut conn, code.as_str()).await?;
        let tender = self.tender(&mut conn, tender_id, false).await?;
        // A party bids once: alone or within a consortium, not both.
        let mut related = store::consortia_of(&mut conn, code.as_str()).await?;
        related.extend(party.members.iter().cloned());
        drop(conn);
        if let Some(other) = tender
            .registrations
            .iter()
            .find(|x| related.contains(&x.agb_code.to_string()))
        {
            return Err(ApiError::rule(
                "tender.one_bid_per_party",
                "agb_code",
                format!(
                    "{} and {} cannot both register: one is a member of the other",
                    code, other.agb_code
                ),
            ));
        }
        let segment = self
            .catalogue
            .segment("segment_code", &tender.segment_code)?;
        let subsegments = segment.resolve_subsegments("subsegment_codes", &r.subsegment_codes)?;
        let municipalities =
            segment.resolve_municipalities(&self.catalogue, "municipalities", &r.municipalities)?;
        let registration = Registration {
            agb_code: code,
            subsegments,
            municipalities,
            selection_score: r.selection_score,
            status: RegistrationStatus::Submitted,
            score: None,
            rank: None,
        };
        self.change_tender(&r.tender_id, |t, _| Ok(t.submit(registration)?))
            .await
    }

    async fn award_tender(&self, r: pb::AwardTenderRequest) -> ApiResult<pb::AwardTenderResponse> {
        let id = uuid("tender_id", &r.tender_id)?;
        let mut tx = self.pool.begin().await?;
        let mut tender = self.tender(&mut tx, id, true).await?;
        let awarded = tender.award()?;
        let mut contracts = Vec::new();
        for reg in awarded {
            let row = ContractRow {
                id: Uuid::now_v7(),
                agb_code: reg.agb_code.to_string(),
                segment_code: tender.segment_code.clone(),
                subsegments: reg.subsegments.clone(),
                municipalities: reg.municipalities.iter().map(ToString::to_string).collect(),
                term: ContractTerm::new(tender.contract_start),
                termination_reason: String::new(),
                tender_id: Some(tender.id),
                budgets: vec![],
                tariffs: vec![],
            };
            self.insert_contract(&mut tx, &row).await?;
            contracts.push(row);
        }
        store::save_tender(&mut tx, &tender).await?;
        let t = tender_pb(&tender);
        self.emit(
            &mut tx,
            None,
            "tender_changed",
            &id.to_string(),
            &pb::TenderChanged {
                tender: Some(t.clone()),
            },
        )
        .await?;
        let contracts: Vec<pb::Contract> = contracts.into_iter().map(contract_pb).collect();
        for c in &contracts {
            self.emit(
                &mut tx,
                Some(&c.agb_code),
                "contract_concluded",
                &c.id,
                &pb::ContractConcluded {
                    contract: Some(c.clone()),
                },
            )
            .await?;
        }
        tx.commit().await?;
        tracing::info!(tender_id = %id, contracts = contracts.len(), "tender awarded");
        Ok(pb::AwardTenderResponse {
            tender: Some(t),
            contracts,
        })
    }

    async fn insert_contract(&self, tx: &mut PgConnection, row: &ContractRow) -> ApiResult<()> {
        if let Some((other, s, m)) = store::overlapping_coverage(
            tx,
            &row.agb_code,
            &row.subsegments,
            &row.municipalities,
            &row.term,
            None,
        )
        .await?
        {
            return Err(overlap_rule(&row.agb_code, other, &s, &m));
        }
        match store::insert_contract(tx, row).await {
            Err(e) if is_overlap_violation(&e) => Err(ApiError::rule(
                "contract.no_overlap",
                row.agb_code.clone(),
                "the provider already has an overlapping contract for one of these subsegments and municipalities",
            )),
            other => Ok(other?),
        }
    }

    /// Stores a changed term; a longer term must not run into another contract of the provider.
    async fn update_term(&self, tx: &mut PgConnection, row: &ContractRow) -> ApiResult<()> {
        if let Some((other, s, m)) = store::overlapping_coverage(
            tx,
            &row.agb_code,
            &row.subsegments,
            &row.municipalities,
            &row.term,
            Some(row.id),
        )
        .await?
        {
            return Err(overlap_rule(&row.agb_code, other, &s, &m));
        }
        match store::update_term(tx, row).await {
            Err(e) if is_overlap_violation(&e) => Err(ApiError::rule(
                "contract.no_overlap",
                row.agb_code.clone(),
                "the longer term would overlap another contract of the provider",
            )),
            other => Ok(other?),
        }
    }

    async fn conclude_contract(&self, r: pb::ConcludeContractRequest) -> ApiResult<pb::Contract> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let code = f.check(agb("agb_code", &r.agb_code));
        let start = f.check(parse_date("start", &r.start));
        f.finish()?;
        let (code, start) = (
            code.map(|c| c.to_string()).unwrap_or_default(),
            start.unwrap_or_default(),
        );
        let segment = self.catalogue.segment("segment_code", &r.segment_code)?;
        let subsegments = segment.resolve_subsegments("subsegment_codes", &r.subsegment_codes)?;
        let municipalities =
            segment.resolve_municipalities(&self.catalogue, "municipalities", &r.municipalities)?;
        let row = ContractRow {
            id: Uuid::now_v7(),
            agb_code: code.clone(),
            segment_code: segment.code.clone(),
            subsegments,
            municipalities: municipalities.iter().map(ToString::to_string).collect(),
            term: ContractTerm::new(start),
            termination_reason: String::new(),
            tender_id: None,
            budgets: vec![],
            tariffs: vec![],
        };
        let mut tx = self.pool.begin().await?;
        match store::claim_key(
            &mut tx,
            &r.idempotency_key,
            "conclude_contract",
            &format!("{r:?}"),
            &row.id.to_string(),
        )
        .await?
        {
            Claim::Replay(id) => {
                return Ok(contract_pb(
                    self.contract(&mut tx, uuid("contract_id", &id)?, false)
                        .await?,
                ));
            }
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        self.provider(&mut tx, &code).await?;
        self.insert_contract(&mut tx, &row).await?;
        let c = contract_pb(row);
        self.emit(
            &mut tx,
            Some(&code),
            "contract_concluded",
            &c.id,
            &pb::ContractConcluded {
                contract: Some(c.clone()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Loads a contract for update, applies `change`, stores the result with a `contract_changed` event.
    async fn change_contract(
        &self,
        id: &str,
        what: &str,
        change: impl AsyncFnOnce(&mut ContractRow, &mut PgConnection) -> ApiResult<()>,
    ) -> ApiResult<pb::Contract> {
        let id = uuid("contract_id", id)?;
        let mut tx = self.pool.begin().await?;
        let mut row = self.contract(&mut tx, id, true).await?;
        change(&mut row, &mut tx).await?;
        let row = self.contract(&mut tx, id, false).await?;
        let c = contract_pb(row);
        self.emit(
            &mut tx,
            Some(&c.agb_code),
            "contract_changed",
            &c.id,
            &pb::ContractChanged {
                contract: Some(c.clone()),
                change: what.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    fn financing_of(&self, row: &ContractRow) -> Vec<Financing> {
        row.subsegments
            .iter()
            .filter_map(|s| {
                self.catalogue
                    .subsegment("subsegment", s)
                    .ok()
                    .map(|(_, ss)| ss.financing)
            })
            .collect()
    }

    async fn set_lumpsum_budget(&self, r: pb::SetLumpsumBudgetRequest) -> ApiResult<pb::Contract> {
        let m = self
            .catalogue
            .municipality("municipality", &r.municipality)?
            .code
            .to_string();
        let cents = Cents::new(r.amount_cents).map_err(|e| e.at("amount_cents"))?;
        self.change_contract(&r.contract_id, "budget_set", async |row, tx| {
            let financing = self.financing_of(row);
            if !financing
                .iter()
                .any(|f| matches!(f, Financing::Lumpsum | Financing::PopulationBased))
            {
                return Err(ApiError::rule(
                    "budget.fixed_sum_only",
                    "contract_id",
                    "a budget belongs to a contract for a lumpsum or population-based segment",
                ));
            }
            if !row.municipalities.contains(&m) {
                return Err(ApiError::rule(
                    "budget.municipality_covered",
                    "municipality",
                    format!("the contract does not cover municipality {m}"),
                ));
            }
            let (from, to) = (row.term.start.year(), row.term.end().year());
            if r.year < from || r.year > to {
                return Err(ApiError::rule(
                    "budget.year_within_term",
                    "year",
                    format!("the contract runs from {from} to {to}"),
                ));
            }
            Ok(store::set_budget(tx, row.id, &m, r.year, cents.as_i64()).await?)
        })
        .await
    }

    async fn set_tariff(&self, r: pb::SetTariffRequest) -> ApiResult<pb::Contract> {
        let mut f = Fields::default();
        let product =
            f.check(ProductCode::parse(&r.product_code).map_err(|e| e.at("product_code")));
        let unit = f.check(Unit::from_code(&r.unit).map_err(|e| e.at("unit")));
        let cents = f.check(Cents::new(r.price_cents).map_err(|e| e.at("price_cents")));
        f.finish()?;
        let (product, unit, cents) = (
            product.map(|p| p.to_string()).unwrap_or_default(),
            unit.map(|u| u.code()).unwrap_or_default(),
            cents.unwrap_or_default(),
        );
        self.change_contract(&r.contract_id, "tariff_set", async |row, tx| {
            if !self.financing_of(row).contains(&Financing::PxQ) {
                return Err(ApiError::rule(
                    "tariff.pxq_only",
                    "contract_id",
                    "tariffs belong to a contract for a PxQ (price times quantity) segment",
                ));
            }
            Ok(store::set_tariff(tx, row.id, &product, unit, cents.as_i64()).await?)
        })
        .await
    }

    async fn list_contracts(
        &self,
        r: pb::ListContractsRequest,
    ) -> ApiResult<pb::ListContractsResponse> {
        let mut f = Fields::default();
        let filter = ContractFilter {
            agb_code: (!r.agb_code.is_empty())
                .then(|| f.check(agb("agb_code", &r.agb_code)).map(|a| a.to_string()))
                .flatten(),
            segment_code: (!r.segment_code.is_empty()).then(|| r.segment_code.clone()),
            municipality: (!r.municipality.is_empty()).then(|| r.municipality.clone()),
            active_on: (!r.active_on.is_empty())
                .then(|| f.check(parse_date("active_on", &r.active_on)))
                .flatten(),
        };
        f.finish()?;
        if let Some(s) = &filter.segment_code {
            self.catalogue.segment("segment_code", s)?;
        }
        if let Some(m) = &filter.municipality {
            self.catalogue.municipality("municipality", m)?;
        }
        let mut conn = self.pool.acquire().await?;
        let rows = store::list_contracts(&mut conn, &filter).await?;
        Ok(pb::ListContractsResponse {
            contracts: rows.into_iter().map(contract_pb).collect(),
        })
    }

    fn where_when(
        &self,
        subsegment: &str,
        municipality: &str,
        date: &str,
    ) -> ApiResult<(String, String, NaiveDate)> {
        let mut f = Fields::default();
        let d = f.check(parse_date("date", date));
        f.finish()?;
        self.catalogue.subsegment("subsegment_code", subsegment)?;
        let m = self
            .catalogue
            .municipality("municipality", municipality)?
            .code
            .to_string();
        Ok((subsegment.to_owned(), m, d.unwrap_or_default()))
    }

    async fn list_contracted(
        &self,
        r: pb::ListContractedProvidersRequest,
    ) -> ApiResult<pb::ListContractedProvidersResponse> {
        let (s, m, d) = self.where_when(&r.subsegment_code, &r.municipality, &r.date)?;
        let mut conn = self.pool.acquire().await?;
        let rows = store::contracted(&mut conn, &s, &m, d, None).await?;
        // The providers of all contracts in one statement rather than one per contract.
        let agbs: Vec<String> = rows.iter().map(|(_, agb, _)| agb.clone()).collect();
        let found: std::collections::HashMap<String, ProviderRow> =
            store::get_providers(&mut conn, &agbs)
                .await?
                .into_iter()
                .map(|p| (p.agb_code.clone(), p))
                .collect();
        let mut providers = Vec::with_capacity(rows.len());
        for (contract_id, agb, budget) in rows {
            let provider = found
                .get(&agb)
                .cloned()
                .ok_or_else(|| not_registered(&agb))?;
            providers.push(pb::ContractedProvider {
                provider: Some(provider_pb(provider)),
                contract_id: contract_id.to_string(),
                lumpsum_budget_cents: budget,
            });
        }
        Ok(pb::ListContractedProvidersResponse { providers })
    }

    async fn check_contracted(
        &self,
        r: pb::CheckContractedRequest,
    ) -> ApiResult<pb::CheckContractedResponse> {
        let code = agb("agb_code", &r.agb_code)?.to_string();
        let (s, m, d) = self.where_when(&r.subsegment_code, &r.municipality, &r.date)?;
        let mut conn = self.pool.acquire().await?;
        let rows = store::contracted(&mut conn, &s, &m, d, Some(&code)).await?;
        Ok(match rows.first() {
            Some((id, _, _)) => pb::CheckContractedResponse {
                contracted: true,
                contract_id: id.to_string(),
            },
            None => pb::CheckContractedResponse {
                contracted: false,
                contract_id: String::new(),
            },
        })
    }
}

fn not_registered(agb: &str) -> ApiError {
    ApiError::NotFound(format!("provider {agb} is not registered"))
}

fn key_conflict() -> ApiError {
    ApiError::AlreadyExists("idempotency_key was used before for a different request".into())
}

pub fn provider_pb(p: ProviderRow) -> pb::Provider {
    pb::Provider {
        kind: if p.kind == "consortium" {
            pb::ProviderKind::Consortium
        } else {
            pb::ProviderKind::Organisation
        } as i32,
        agb_code: p.agb_code,
        name: p.name,
        legal_form: p.legal_form,
        kvk_number: p.kvk_number,
        lead_agb_code: p.lead_agb_code.unwrap_or_default(),
        member_agb_codes: p.members,
        subcontractor_agb_codes: p.subcontractors,
    }
}

pub fn contract_pb(c: ContractRow) -> pb::Contract {
    let status = match c.term.status(today()) {
        ContractStatus::Active => pb::ContractStatus::Active,
        ContractStatus::Ended => pb::ContractStatus::Ended,
        ContractStatus::Terminated => pb::ContractStatus::Terminated,
    };
    let left = c.term.extensions_left();
    pb::Contract {
        id: c.id.to_string(),
        agb_code: c.agb_code,
        segment_code: c.segment_code,
        subsegment_codes: c.subsegments,
        municipalities: c.municipalities,
        period: Some(types::Period {
            start: c.term.start.to_string(),
            end: c.term.end().to_string(),
        }),
        initial_end: c.term.initial_end().to_string(),
        extensions: c.term.extensions,
        extensions_left: left,
        latest_possible_end: if left > 0 {
            c.term.latest_possible_end().to_string()
        } else {
            String::new()
        },
        terminated_on: c
            .term
            .terminated_on
            .map(|d| d.to_string())
            .unwrap_or_default(),
        termination_reason: c.termination_reason,
        tender_id: c.tender_id.map(|t| t.to_string()).unwrap_or_default(),
        budgets: c
            .budgets
            .into_iter()
            .map(|(municipality, year, amount_cents)| pb::LumpsumBudget {
                municipality,
                year,
                amount_cents,
            })
            .collect(),
        tariffs: c
            .tariffs
            .into_iter()
            .map(|(product_code, unit, price_cents)| pb::Tariff {
                product_code,
                unit,
                price_cents,
            })
            .collect(),
        status: status as i32,
    }
}

pub fn tender_pb(t: &Tender) -> pb::Tender {
    use pb::RegistrationStatus as R;
    pb::Tender {
        id: t.id.to_string(),
        name: t.name.clone(),
        segment_code: t.segment_code.clone(),
        selection_quota: t.selection_quota,
        award_quota: t.award_quota,
        contract_start: t.contract_start.to_string(),
        status: match t.status {
            TenderStatus::Open => pb::TenderStatus::Open,
            TenderStatus::Selected => pb::TenderStatus::Selected,
            TenderStatus::Awarded => pb::TenderStatus::Awarded,
        } as i32,
        registrations: t
            .registrations
            .iter()
            .map(|r| {
                let s = r.score.unwrap_or(BidScore {
                    meets_minimum_demands: false,
                    cooperation: 0,
                    lead_time: 0,
                    scaling_down: 0,
                });
                pb::TenderRegistration {
                    agb_code: r.agb_code.to_string(),
                    subsegment_codes: r.subsegments.clone(),
                    municipalities: r.municipalities.iter().map(ToString::to_string).collect(),
                    selection_score: r.selection_score,
                    status: match r.status {
                        RegistrationStatus::Submitted => R::Submitted,
                        RegistrationStatus::Admitted => R::Admitted,
                        RegistrationStatus::NotAdmitted => R::NotAdmitted,
                        RegistrationStatus::Awarded => R::Awarded,
                        RegistrationStatus::NotAwarded => R::NotAwarded,
                        RegistrationStatus::Rejected => R::Rejected,
                    } as i32,
                    scored: r.score.is_some(),
                    meets_minimum_demands: s.meets_minimum_demands,
                    cooperation: s.cooperation,
                    lead_time: s.lead_time,
                    scaling_down: s.scaling_down,
                    total_score: s.total(),
                    rank: r.rank.unwrap_or(0),
                }
            })
            .collect(),
    }
}

pub fn catalogue_pb(c: &Catalogue) -> pb::Catalogue {
    let law = |l: rz_domain::Law| match l {
        rz_domain::Law::Jeugdwet => types::Law::Jeugdwet,
        rz_domain::Law::Wmo => types::Law::Wmo,
    } as i32;
    let fin = |f: Financing| match f {
        Financing::Lumpsum => types::Financing::Lumpsum,
        Financing::PopulationBased => types::Financing::PopulationBased,
        Financing::PxQ => types::Financing::Pxq,
        Financing::SeparateContract => types::Financing::SeparateContract,
    } as i32;
    let var = |f: Financing| match f.execution_variant() {
        rz_domain::ExecutionVariant::Taakgericht => types::ExecutionVariant::Taakgericht,
        rz_domain::ExecutionVariant::Outputgericht => types::ExecutionVariant::Outputgericht,
        rz_domain::ExecutionVariant::Inspanningsgericht => {
            types::ExecutionVariant::Inspanningsgericht
        }
    } as i32;
    pb::Catalogue {
        region: c.region.clone(),
        municipalities: c
            .municipalities
            .iter()
            .map(|m| pb::Municipality {
                code: m.code.to_string(),
                name: m.name.clone(),
            })
            .collect(),
        lots: c
            .lots
            .iter()
            .map(|l| pb::Lot {
                code: l.code.clone(),
                name: l.name.clone(),
                segments: l
                    .segments
                    .iter()
                    .map(|s| pb::Segment {
                        code: s.code.clone(),
                        name: s.name.clone(),
                        law: law(s.law),
                        municipalities: s.municipalities.iter().map(ToString::to_string).collect(),
                        note: s.note.clone(),
                        subsegments: s
                            .subsegments
                            .iter()
                            .map(|ss| pb::Subsegment {
                                code: ss.code.clone(),
                                name: ss.name.clone(),
                                financing: fin(ss.financing),
                                execution_variant: var(ss.financing),
                                product_categories: ss.product_categories.clone(),
                                product_codes: ss
                                    .product_codes
                                    .iter()
                                    .map(|c| c.as_str().to_owned())
                                    .collect(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
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
        reply(
            async {
                let mut conn = self.pool.acquire().await?;
                let rows = store::list_providers(&mut conn).await?;
                Ok(pb::ListProvidersResponse {
                    providers: rows.into_iter().map(provider_pb).collect(),
                })
            }
            .await,
        )
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
        reply(
            self.change_tender(&r.into_inner().tender_id, |t, _| Ok(t.select()?))
                .await,
        )
    }
    async fn score_bid(&self, r: Request<pb::ScoreBidRequest>) -> Reply<pb::Tender> {
        let r = r.into_inner();
        reply(
            async {
                let code = agb("agb_code", &r.agb_code)?;
                let score = BidScore::new(
                    r.meets_minimum_demands,
                    r.cooperation,
                    r.lead_time,
                    r.scaling_down,
                )?;
                self.change_tender(&r.tender_id, |t, _| Ok(t.score(&code, score)?))
                    .await
            }
            .await,
        )
    }
    async fn award_tender(
        &self,
        r: Request<pb::AwardTenderRequest>,
    ) -> Reply<pb::AwardTenderResponse> {
        reply(self.award_tender(r.into_inner()).await)
    }
    async fn get_tender(&self, r: Request<pb::GetTenderRequest>) -> Reply<pb::Tender> {
        reply(
            async {
                let id = uuid("tender_id", &r.into_inner().tender_id)?;
                let mut conn = self.pool.acquire().await?;
                Ok(tender_pb(&self.tender(&mut conn, id, false).await?))
            }
            .await,
        )
    }
    async fn conclude_contract(
        &self,
        r: Request<pb::ConcludeContractRequest>,
    ) -> Reply<pb::Contract> {
        reply(self.conclude_contract(r.into_inner()).await)
    }
    async fn extend_contract(&self, r: Request<pb::ExtendContractRequest>) -> Reply<pb::Contract> {
        reply(
            self.change_contract(&r.into_inner().contract_id, "extended", async |row, tx| {
                row.term = row.term.extend()?;
                self.update_term(tx, row).await
            })
            .await,
        )
    }
    async fn terminate_contract(
        &self,
        r: Request<pb::TerminateContractRequest>,
    ) -> Reply<pb::Contract> {
        let r = r.into_inner();
        reply(
            async {
                let mut f = Fields::default();
                let end = f.check(parse_date("end_date", &r.end_date));
                f.non_empty("reason", &r.reason);
                f.finish()?;
                let end = end.unwrap_or_default();
                self.change_contract(&r.contract_id, "terminated", async |row, tx| {
                    row.term = row.term.terminate(end)?;
                    row.termination_reason = r.reason.trim().to_owned();
                    self.update_term(tx, row).await
                })
                .await
            }
            .await,
        )
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
        reply(
            async {
                let id = uuid("contract_id", &r.into_inner().contract_id)?;
                let mut conn = self.pool.acquire().await?;
                Ok(contract_pb(self.contract(&mut conn, id, false).await?))
            }
            .await,
        )
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
