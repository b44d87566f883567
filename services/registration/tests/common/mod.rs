//! `spawn_app`: the registration service from the test stack (port 0, a fresh database, its own
//! NATS namespace) and a gRPC client talking to it like any other client.

#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use rz_proto::registration::v1 as pb;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_stack::Stack;
pub use rz_stack::{assert_invalid, assert_rule};
use sqlx::PgPool;
use tonic::transport::Channel;

pub struct TestApp {
    pub client: RegistrationServiceClient<Channel>,
    pub channel: Channel,
    pub pool: PgPool,
    pub db_url: String,
    pub namespace: String,
    pub nats_url: String,
    pub stack: Stack,
}

pub async fn spawn_app() -> TestApp {
    let mut stack = Stack::builder().registration().start().await;
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
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
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
            .register_provider(pb::RegisterProviderRequest {
                idempotency_key: format!("reg-{agb}"),
                agb_code: agb.into(),
                name: name.into(),
                legal_form: "stichting".into(),
                kvk_number: "41234567".into(),
            })
            .await
            .expect("provider registers")
            .into_inner()
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
