//! Providers: organisations, consortia (samenwerkingsverbanden) and subcontractors (onderaannemers).

use rz_domain::{Fields, KvkNumber};
use rz_platform::ApiError;
use rz_proto::events::registration as events;
use rz_proto::registration::v1 as pb;

use super::conversion::provider_pb;
use super::{ApiResult, RegistrationApi, agb, key_conflict};
use crate::store::{self, Claim, ContractFilter, ProviderRow};

impl RegistrationApi {
    pub(super) async fn register_provider(
        &self,
        r: pb::RegisterProviderRequest,
    ) -> ApiResult<pb::Provider> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let code = f.check(agb("agb_code", &r.agb_code));
        f.non_empty("name", &r.name);
        f.non_empty("legal_form", &r.legal_form);
        f.check(KvkNumber::parse(&r.kvk_number).map_err(|e| e.at("kvk_number")));
        f.finish()?;
        let code = code.map(|c| c.to_string()).unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        match self
            .claim(&mut tx, &r.idempotency_key, "register_provider", &r, &code)
            .await?
        {
            Claim::Replay(id) => return Ok(provider_pb(self.provider(&mut tx, &id).await?)),
            Claim::Conflict => return Err(key_conflict()),
            Claim::New => {}
        }
        let row = ProviderRow {
            agb_code: code.clone(),
            name: r.name.clone(),
            legal_form: r.legal_form.clone(),
            kvk_number: r.kvk_number,
            kind: "organisation".into(),
            lead_agb_code: None,
            members: vec![],
            subcontractors: vec![],
        };
        self.insert_provider(tx, row).await
    }

    /// Stores a new provider (organisation or consortium) with its `provider_registered` event.
    pub(super) async fn insert_provider(
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
        self.emit(
            &mut tx,
            Some(&code),
            events::PROVIDER_REGISTERED,
            &code,
            &event,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(agb_code = %code, kind = %p.kind().as_str_name(), "provider registered");
        Ok(p)
    }

    pub(super) async fn form_consortium(
        &self,
        r: pb::FormConsortiumRequest,
    ) -> ApiResult<pb::Provider> {
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
        match self
            .claim(&mut tx, &r.idempotency_key, "form_consortium", &r, &code)
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
            name: r.name.clone(),
            legal_form: "samenwerkingsverband".into(),
            kvk_number: r.kvk_number,
            kind: "consortium".into(),
            lead_agb_code: Some(lead),
            members,
            subcontractors: vec![],
        };
        self.insert_provider(tx, row).await
    }

    pub(super) async fn add_subcontractor(
        &self,
        r: pb::AddSubcontractorRequest,
    ) -> ApiResult<pb::Provider> {
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
            events::PROVIDER_CHANGED,
            &main,
            &pb::ProviderChanged {
                provider: Some(p.clone()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(p)
    }

    pub(super) async fn get_provider(
        &self,
        r: pb::GetProviderRequest,
    ) -> ApiResult<pb::ProviderDetail> {
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
            contracts: contracts.into_iter().map(|c| self.contract_pb(c)).collect(),
            consortium_agb_codes: consortia,
        })
    }

    pub(super) async fn list_providers(&self) -> ApiResult<pb::ListProvidersResponse> {
        let mut conn = self.pool.acquire().await?;
        let rows = store::list_providers(&mut conn).await?;
        Ok(pb::ListProvidersResponse {
            providers: rows.into_iter().map(provider_pb).collect(),
        })
    }
}
