//! Tenders: opening, registrations, selection, scoring and the award that concludes contracts.

use rz_domain::Fields;
use rz_platform::ApiError;
use rz_proto::events::registration as events;
use rz_proto::registration::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::conversion::tender_pb;
use super::{ApiResult, RegistrationApi, agb, date, key_conflict, uuid};
use crate::domain::contract::ContractTerm;
use crate::domain::tender::{BidScore, Registration, RegistrationStatus, Tender};
use crate::store::{self, Claim, ContractRow};

impl RegistrationApi {
    pub(super) async fn open_tender(&self, r: pb::OpenTenderRequest) -> ApiResult<pb::Tender> {
        let mut f = Fields::default();
        f.non_empty("idempotency_key", &r.idempotency_key);
        let start = f.check(date("contract_start", &r.contract_start));
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
            self.clock.today(),
        )?;
        let mut tx = self.pool.begin().await?;
        match self
            .claim(
                &mut tx,
                &r.idempotency_key,
                "open_tender",
                &r,
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
            events::TENDER_CHANGED,
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
    pub(super) async fn change_tender(
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
            events::TENDER_CHANGED,
            &id.to_string(),
            &pb::TenderChanged {
                tender: Some(t.clone()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(t)
    }

    pub(super) async fn submit_registration(
        &self,
        r: pb::SubmitRegistrationRequest,
    ) -> ApiResult<pb::Tender> {
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

    pub(super) async fn award_tender(
        &self,
        r: pb::AwardTenderRequest,
    ) -> ApiResult<pb::AwardTenderResponse> {
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
            events::TENDER_CHANGED,
            &id.to_string(),
            &pb::TenderChanged {
                tender: Some(t.clone()),
            },
        )
        .await?;
        let contracts: Vec<pb::Contract> =
            contracts.into_iter().map(|c| self.contract_pb(c)).collect();
        for c in &contracts {
            self.emit(
                &mut tx,
                Some(&c.agb_code),
                events::CONTRACT_CONCLUDED,
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

    pub(super) async fn select_registrations(
        &self,
        r: pb::SelectRegistrationsRequest,
    ) -> ApiResult<pb::Tender> {
        self.change_tender(&r.tender_id, |t, _| Ok(t.select()?))
            .await
    }

    pub(super) async fn score_bid(&self, r: pb::ScoreBidRequest) -> ApiResult<pb::Tender> {
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

    pub(super) async fn get_tender(&self, r: pb::GetTenderRequest) -> ApiResult<pb::Tender> {
        let id = uuid("tender_id", &r.tender_id)?;
        let mut conn = self.pool.acquire().await?;
        Ok(tender_pb(&self.tender(&mut conn, id, false).await?))
    }
}
