//! `spawn_app`: the registration service from the test stack (port 0, a fresh database, its own
//! NATS namespace) and a gRPC client talking to it like any other client.

// Each test file uses a part of these helpers; the test files allow unwrap, expect and panic.
#![allow(dead_code, unused_imports)]

use rz_proto::registration::v1 as pb;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_stack::Stack;
pub use rz_stack::{assert_invalid, assert_rule};
use sqlx::PgPool;
use tonic::transport::Channel;

/// A reply's message, or the status it was refused with.
pub type Reply<T> = Result<T, tonic::Status>;

fn reply<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Reply<T> {
    r.map(tonic::Response::into_inner)
}

/// A RegisterProvider request (KvK number 41234567).
pub fn provider(key: &str, agb: &str, name: &str, legal_form: &str) -> pb::RegisterProviderRequest {
    pb::RegisterProviderRequest {
        idempotency_key: key.into(),
        agb_code: agb.into(),
        name: name.into(),
        legal_form: legal_form.into(),
        kvk_number: "41234567".into(),
    }
}

pub struct TestApp {
    pub client: RegistrationServiceClient<Channel>,
    pub channel: Channel,
    pub pool: PgPool,
    pub db_url: String,
    pub namespace: String,
    pub nats_url: String,
    pub stack: Stack,
}

/// The tests' date: the register of the 2022 tender is written in mid-2022 (the date rules refuse
/// older history, see `tender.contract_start_recent`); a test moves it with `app.stack.clock()`.
pub const TODAY: &str = "2022-07-01";

pub async fn spawn_app() -> TestApp {
    let today = rz_domain::parse_date("today", TODAY).expect("a date");
    let mut stack = Stack::builder().registration().today(today).start().await;
    let service = stack.registration_service();
    let (channel, pool, db_url) = (
        service.channel.clone(),
        service.pool.clone(),
        service.db_url.clone(),
    );
    TestApp {
        client: stack.registration(),
        channel,
        pool,
        db_url,
        namespace: stack.namespace().to_owned(),
        nats_url: stack.nats_url().to_owned(),
        stack,
    }
}

impl TestApp {
    /// A client of registration as the provider `agb` (its own certificate): a bid is the
    /// provider's call.
    pub fn provider(&self, agb: &str) -> RegistrationServiceClient<Channel> {
        self.stack.as_provider(agb).registration()
    }

    pub async fn count(&self, table: &str) -> i64 {
        rz_stack::count(&self.pool, table).await
    }

    /// Row counts of every table a command could change, to show a refused command changed nothing.
    pub async fn snapshot(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for t in [
            "providers",
            "consortium_members",
            "subcontractors",
            "tenders",
            "contracts",
            "contract_coverage",
            "contract_budgets",
            "contract_tariffs",
            "outbox",
        ] {
            out.push(self.count(t).await);
        }
        out
    }

    pub async fn register(&mut self, agb: &str, name: &str) -> pb::Provider {
        self.client
            .register_provider(provider(&format!("reg-{agb}"), agb, name, "stichting"))
            .await
            .expect("provider registers")
            .into_inner()
    }

    /// RegisterProvider under an idempotency key of the caller's choosing.
    pub async fn register_as(
        &mut self,
        key: &str,
        agb: &str,
        name: &str,
        legal_form: &str,
    ) -> Reply<pb::Provider> {
        reply(
            self.client
                .register_provider(provider(key, agb, name, legal_form))
                .await,
        )
    }

    pub async fn budget(
        &mut self,
        contract_id: &str,
        municipality: &str,
        year: i32,
        amount_cents: i64,
    ) -> Reply<pb::Contract> {
        let request = pb::SetLumpsumBudgetRequest {
            contract_id: contract_id.into(),
            municipality: municipality.into(),
            year,
            amount_cents,
        };
        reply(self.client.set_lumpsum_budget(request).await)
    }

    pub async fn tariff(
        &mut self,
        contract_id: &str,
        product_code: &str,
        unit: &str,
        price_cents: i64,
    ) -> Reply<pb::Contract> {
        let request = pb::SetTariffRequest {
            contract_id: contract_id.into(),
            product_code: product_code.into(),
            unit: unit.into(),
            price_cents,
        };
        reply(self.client.set_tariff(request).await)
    }

    pub async fn extend(&mut self, contract_id: &str) -> Reply<pb::Contract> {
        let request = pb::ExtendContractRequest {
            contract_id: contract_id.into(),
        };
        reply(self.client.extend_contract(request).await)
    }

    pub async fn terminate(
        &mut self,
        contract_id: &str,
        end_date: &str,
        reason: &str,
    ) -> Reply<pb::Contract> {
        let request = pb::TerminateContractRequest {
            contract_id: contract_id.into(),
            end_date: end_date.into(),
            reason: reason.into(),
        };
        reply(self.client.terminate_contract(request).await)
    }

    /// OpenTender for a segment with a selection and an award quota, contracts from 2022-07-01.
    pub async fn open_tender(
        &mut self,
        key: &str,
        name: &str,
        segment: &str,
        (selection_quota, award_quota): (u32, u32),
    ) -> pb::Tender {
        let request = pb::OpenTenderRequest {
            idempotency_key: key.into(),
            name: name.into(),
            segment_code: segment.into(),
            selection_quota,
            award_quota,
            contract_start: "2022-07-01".into(),
        };
        self.client.open_tender(request).await.unwrap().into_inner()
    }

    /// ScoreBid with the scores for cooperation, lead time and scaling down.
    pub async fn score(
        &mut self,
        tender_id: &str,
        agb: &str,
        meets_minimum_demands: bool,
        [cooperation, lead_time, scaling_down]: [u32; 3],
    ) -> Reply<pb::Tender> {
        let request = pb::ScoreBidRequest {
            tender_id: tender_id.into(),
            agb_code: agb.into(),
            meets_minimum_demands,
            cooperation,
            lead_time,
            scaling_down,
        };
        reply(self.client.score_bid(request).await)
    }

    pub async fn award(&mut self, tender_id: &str) -> Reply<pb::AwardTenderResponse> {
        let request = pb::AwardTenderRequest {
            tender_id: tender_id.into(),
        };
        reply(self.client.award_tender(request).await)
    }

    pub async fn conclude(
        &mut self,
        agb: &str,
        segment: &str,
        subsegments: &[&str],
        municipalities: &[&str],
        start: &str,
    ) -> Result<pb::Contract, tonic::Status> {
        self.client
            .conclude_contract(pb::ConcludeContractRequest {
                idempotency_key: format!(
                    "c-{agb}-{segment}-{start}-{subsegments:?}-{municipalities:?}"
                ),
                agb_code: agb.into(),
                segment_code: segment.into(),
                subsegment_codes: subsegments.iter().map(|s| s.to_string()).collect(),
                municipalities: municipalities.iter().map(|s| s.to_string()).collect(),
                start: start.into(),
            })
            .await
            .map(|r| r.into_inner())
    }
}
