//! `spawn_app`: the registration service on port 0 with a fresh database and its own NATS
//! namespace, and a gRPC client talking to it like any other client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use registration::{App, Config};
use rz_platform::Shutdown;
use rz_proto::registration::v1 as pb;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_testkit::TestEnv;
use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub struct TestApp {
    pub client: RegistrationServiceClient<Channel>,
    pub channel: Channel,
    pub pool: PgPool,
    pub db_url: String,
    pub namespace: String,
    pub nats_url: String,
    pub shutdown: Shutdown,
    pub server: tokio::task::JoinHandle<Result<(), registration::StartError>>,
}

pub async fn spawn_app() -> TestApp {
    let env = TestEnv::load();
    let mut config = Config::default();
    config.database.url = env.fresh_database().await;
    config.database.max_connections = 5;
    config.nats.url = env.nats_url.clone();
    config.nats.namespace = env.namespace();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 5;
    let namespace = config.nats.namespace.clone();
    let db_url = config.database.url.clone();
    let app = App::build(config).await.expect("registration builds");
    let addr = app.local_addr();
    let pool = app.pool().clone();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    let client = RegistrationServiceClient::new(channel.clone());
    TestApp {
        client,
        channel,
        pool,
        db_url,
        namespace,
        nats_url: env.nats_url,
        shutdown,
        server,
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

/// Asserts INVALID_ARGUMENT with a BadRequest violation for `field`.
pub fn assert_invalid(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let bad = status
        .get_details_bad_request()
        .expect("BadRequest details");
    assert!(
        bad.field_violations
            .iter()
            .any(|v| v.field == field && !v.description.is_empty()),
        "no violation for {field}: {:?}",
        bad.field_violations
    );
}

/// Asserts FAILED_PRECONDITION with a PreconditionFailure naming `rule`.
pub fn assert_rule(status: &tonic::Status, rule: &str) {
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let failure = status
        .get_details_precondition_failure()
        .expect("PreconditionFailure details");
    assert!(
        failure.violations.iter().any(|v| v.r#type == rule),
        "no rule {rule}: {:?}",
        failure.violations
    );
}
