//! Contracts: concluding, extending, terminating, budgets and tariffs, and the queries other
//! services ask (which providers are contracted where and when).

use chrono::{Datelike, NaiveDate};
use rz_domain::{Cents, Fields, Financing, ProductCode, Unit};
use rz_platform::ApiError;
use rz_proto::events::registration as events;
use rz_proto::registration::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::conversion::provider_pb;
use super::{ApiResult, RegistrationApi, agb, date, key_conflict, not_registered, uuid};
use crate::domain::contract::ContractTerm;
use crate::store::{self, Claim, ContractFilter, ContractRow, ProviderRow};

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
    pub(super) async fn insert_contract(
        &self,
        tx: &mut PgConnection,
        row: &ContractRow,
    ) -> ApiResult<()> {
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
    pub(super) async fn update_term(
        &self,
        tx: &mut PgConnection,
        row: &ContractRow,
    ) -> ApiResult<()> {
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

    pub(super) async fn conclude_contract(
        &self,
        r: pb::ConcludeContractRequest,
    ) -> ApiResult<pb::Contract> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let code = f.check(agb("agb_code", &r.agb_code));
        let start = f.check(date("start", &r.start));
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
        match self
            .claim(
                &mut tx,
                &r.idempotency_key,
                "conclude_contract",
                &r,
                &row.id.to_string(),
            )
            .await?
        {
            Claim::Replay(id) => {
                return Ok(self.contract_pb(
                    self.contract(&mut tx, uuid("contract_id", &id)?, false)
                        .await?,
                ));
            }
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        self.provider(&mut tx, &code).await?;
        self.insert_contract(&mut tx, &row).await?;
        let c = self.contract_pb(row);
        self.emit(
            &mut tx,
            Some(&code),
            events::CONTRACT_CONCLUDED,
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
    pub(super) async fn change_contract(
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
        let c = self.contract_pb(row);
        self.emit(
            &mut tx,
            Some(&c.agb_code),
            events::CONTRACT_CHANGED,
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

    pub(super) fn financing_of(&self, row: &ContractRow) -> Vec<Financing> {
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

    pub(super) async fn set_lumpsum_budget(
        &self,
        r: pb::SetLumpsumBudgetRequest,
    ) -> ApiResult<pb::Contract> {
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

    pub(super) async fn set_tariff(&self, r: pb::SetTariffRequest) -> ApiResult<pb::Contract> {
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
            // The product is one the catalogue lists for a PxQ subsegment of the contract.
            let products: Vec<String> = row
                .subsegments
                .iter()
                .filter_map(|s| self.catalogue.subsegment("subsegment", s).ok())
                .filter(|(_, ss)| ss.financing == Financing::PxQ)
                .flat_map(|(_, ss)| ss.product_codes.iter().map(ToString::to_string))
                .collect();
            if !products.contains(&product) {
                return Err(ApiError::rule(
                    "tariff.product_of_segment",
                    "product_code",
                    format!(
                        "the contract's PxQ subsegments ({}) have the products {}; not {product}",
                        row.subsegments.join(", "),
                        products.join(", ")
                    ),
                ));
            }
            Ok(store::set_tariff(tx, row.id, &product, unit, cents.as_i64()).await?)
        })
        .await
    }

    pub(super) async fn list_contracts(
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
                .then(|| f.check(date("active_on", &r.active_on)))
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
            contracts: rows.into_iter().map(|c| self.contract_pb(c)).collect(),
        })
    }

    pub(super) fn where_when(
        &self,
        subsegment: &str,
        municipality: &str,
        date: &str,
    ) -> ApiResult<(String, String, NaiveDate)> {
        let mut f = Fields::default();
        let d = f.check(super::date("date", date));
        f.finish()?;
        self.catalogue.subsegment("subsegment_code", subsegment)?;
        let m = self
            .catalogue
            .municipality("municipality", municipality)?
            .code
            .to_string();
        Ok((subsegment.to_owned(), m, d.unwrap_or_default()))
    }

    pub(super) async fn list_contracted(
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

    pub(super) async fn check_contracted(
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

    pub(super) async fn extend_contract(
        &self,
        r: pb::ExtendContractRequest,
    ) -> ApiResult<pb::Contract> {
        let today = self.clock.today();
        self.change_contract(&r.contract_id, "extended", async |row, tx| {
            row.term = row.term.extend(today)?;
            self.update_term(tx, row).await
        })
        .await
    }

    pub(super) async fn terminate_contract(
        &self,
        r: pb::TerminateContractRequest,
    ) -> ApiResult<pb::Contract> {
        let mut f = Fields::default();
        let end = f.check(date("end_date", &r.end_date));
        f.non_empty("reason", &r.reason);
        f.finish()?;
        let end = end.unwrap_or_default();
        self.change_contract(&r.contract_id, "terminated", async |row, tx| {
            row.term = row.term.terminate(end)?;
            row.termination_reason = r.reason.clone();
            self.update_term(tx, row).await
        })
        .await
    }

    pub(super) async fn get_contract(&self, r: pb::GetContractRequest) -> ApiResult<pb::Contract> {
        let id = uuid("contract_id", &r.contract_id)?;
        let mut conn = self.pool.acquire().await?;
        Ok(self.contract_pb(self.contract(&mut conn, id, false).await?))
    }
}
