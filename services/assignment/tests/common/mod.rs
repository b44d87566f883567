//! `spawn_app`: the real registration service (loaded with a small contract landscape through its
//! gRPC API), the real access service for Doetinchem (0222) and assignment, each in-process on
//! port 0 with a fresh database, sharing one NATS namespace of their own. Assignment's date is a
//! [`FixedClock`] the test moves.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use assignment::{Assigner, Config, FixedClock};
use chrono::NaiveDate;
use rz_domain::{Bsn, ClientKey};
use rz_platform::Shutdown;
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as pb;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::types::v1 as types;
use rz_testkit::TestEnv;
use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub const M: &str = "0222";
pub const SECRET: &str = "test-region-secret";

/// Contracted for IAJ-ON in every participating municipality from 2022-07-01, with lumpsum
/// budgets of 50 / 30 / 20 % of the sum.
pub const P1: &str = "03010001";
pub const P2: &str = "03010002";
pub const P3: &str = "03010003";
/// Contracted for all of IAJ from 2019-07-01; the contract ended on 2022-06-30.
pub const OLD: &str = "03019999";
/// Contracted for WIO-PV (PxQ) from 2022-07-01.
pub const PV1: &str = "03020001";
pub const PV2: &str = "03020002";
/// Contracted for ZHZ (a separate contract, outputgericht) from 2022-07-01.
pub const ZH: &str = "03030001";
/// Registered, never contracted.
pub const NONE: &str = "03040001";

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A valid BSN (passing the 11-test) for `n`; distinct `n` give distinct numbers.
pub fn bsn(n: u32) -> String {
    const WEIGHTS: [u32; 8] = [9, 8, 7, 6, 5, 4, 3, 2];
    for k in 0..10 {
        let head = format!("{:08}", 10_000_000 + (n % 8_999_999) * 10 + k);
        let sum: u32 = head
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        if sum % 11 < 10 {
            let s = format!("{head}{}", sum % 11);
            assert!(Bsn::parse(&s).is_ok());
            return s;
        }
    }
    unreachable!("one of ten consecutive numbers has a check digit")
}

pub fn key_of(bsn: &str) -> String {
    ClientKey::derive(SECRET.as_bytes(), &Bsn::parse(bsn).unwrap()).to_string()
}

pub fn period(start: &str, end: &str) -> Option<types::Period> {
    Some(types::Period {
        start: start.into(),
        end: end.into(),
    })
}

pub struct Assignment {
    pub client: AssignmentServiceClient<Channel>,
    /// `http://<addr>` of the gRPC server.
    pub endpoint: String,
    pub channel: Channel,
    pub pool: PgPool,
    pub assigner: Assigner,
    pub clock: Arc<FixedClock>,
    pub namespace: String,
    pub shutdown: Shutdown,
    pub server: tokio::task::JoinHandle<Result<(), assignment::StartError>>,
}

impl Drop for Assignment {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub struct TestApp {
    pub env: TestEnv,
    pub namespace: String,
    pub registration: RegistrationServiceClient<Channel>,
    pub registration_endpoint: String,
    pub access: AccessServiceClient<Channel>,
    pub access_endpoint: String,
    pub contracts: HashMap<&'static str, String>,
    pub a: Assignment,
    shutdowns: Vec<Shutdown>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for s in &self.shutdowns {
            s.trigger();
        }
    }
}

async fn connect(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

pub async fn spawn_registration(env: &TestEnv, namespace: &str) -> (String, Shutdown) {
    let mut config = registration::Config::default();
    config.database.url = env.fresh_database().await;
    config.database.max_connections = 3;
    config.nats.url = env.nats_url.clone();
    config.nats.namespace = namespace.to_owned();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 2;
    let app = registration::App::build(config)
        .await
        .expect("registration builds");
    let addr = app.local_addr();
    let shutdown = Shutdown::new();
    tokio::spawn(app.run(shutdown.clone()));
    (format!("http://{addr}"), shutdown)
}

pub async fn spawn_access(
    env: &TestEnv,
    namespace: &str,
    registration: &str,
    municipality: &str,
) -> (String, Shutdown) {
    let mut config = access::Config::default();
    config.database.url = env.fresh_database().await;
    config.database.max_connections = 3;
    config.nats.url = env.nats_url.clone();
    config.nats.namespace = namespace.to_owned();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 2;
    config.access = access::AccessConfig {
        municipality: municipality.into(),
        client_key_secret: SECRET.into(),
        registration_endpoint: registration.to_owned(),
        ..Default::default()
    };
    let app = access::App::build(config).await.expect("access builds");
    let addr = app.local_addr();
    let shutdown = Shutdown::new();
    tokio::spawn(app.run(shutdown.clone()));
    (format!("http://{addr}"), shutdown)
}

/// Assignment on port 0 with a fresh database, today = `today`.
pub async fn spawn_assignment(
    env: &TestEnv,
    namespace: &str,
    registration: &str,
    access: &[(&str, &str)],
    today: &str,
) -> Assignment {
    let mut config = Config::default();
    config.database.url = env.fresh_database().await;
    config.database.max_connections = 5;
    config.nats.url = env.nats_url.clone();
    config.nats.namespace = namespace.to_owned();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 2;
    config.assignment.registration_endpoint = registration.to_owned();
    config.assignment.client_key_secret = SECRET.into();
    config.assignment.access_endpoints = access
        .iter()
        .map(|(m, url)| (m.to_string(), url.to_string()))
        .collect();
    let clock = Arc::new(FixedClock::new(d(today)));
    let app = assignment::App::build_with_clock(config, clock.clone())
        .await
        .expect("assignment builds");
    let addr = app.local_addr();
    let pool = app.pool().clone();
    let assigner = app.assigner();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let channel = connect(addr).await;
    Assignment {
        client: AssignmentServiceClient::new(channel.clone()),
        endpoint: format!("http://{addr}"),
        channel,
        pool,
        assigner,
        clock,
        namespace: namespace.to_owned(),
        shutdown,
        server,
    }
}

/// The whole stack, with assignment's date on 2022-06-27 (a Monday).
pub async fn spawn_app() -> TestApp {
    let env = TestEnv::load();
    let namespace = env.namespace();
    let (registration_endpoint, reg_shutdown) = spawn_registration(&env, &namespace).await;
    let mut registration = RegistrationServiceClient::new(
        Channel::from_shared(registration_endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let contracts = load_landscape(&mut registration).await;
    let (access_endpoint, access_shutdown) =
        spawn_access(&env, &namespace, &registration_endpoint, M).await;
    let access = AccessServiceClient::new(
        Channel::from_shared(access_endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let a = spawn_assignment(
        &env,
        &namespace,
        &registration_endpoint,
        &[(M, &access_endpoint)],
        "2022-06-27",
    )
    .await;
    TestApp {
        env,
        namespace,
        registration,
        registration_endpoint,
        access,
        access_endpoint,
        contracts,
        a,
        shutdowns: vec![reg_shutdown, access_shutdown],
    }
}

async fn register(c: &mut RegistrationServiceClient<Channel>, agb: &str, name: &str) {
    c.register_provider(reg::RegisterProviderRequest {
        idempotency_key: format!("reg-{agb}"),
        agb_code: agb.into(),
        name: name.into(),
        legal_form: "stichting".into(),
        kvk_number: format!("4{}", &agb[1..]),
    })
    .await
    .expect("provider registers");
}

async fn conclude(
    c: &mut RegistrationServiceClient<Channel>,
    agb: &str,
    segment: &str,
    subsegments: &[&str],
    start: &str,
) -> String {
    c.conclude_contract(reg::ConcludeContractRequest {
        idempotency_key: format!("c-{agb}-{segment}"),
        agb_code: agb.into(),
        segment_code: segment.into(),
        subsegment_codes: subsegments.iter().map(|s| s.to_string()).collect(),
        municipalities: vec![],
        start: start.into(),
    })
    .await
    .expect("contract concluded")
    .into_inner()
    .id
}

/// The test's contract landscape (see the constants above).
pub async fn load_landscape(
    c: &mut RegistrationServiceClient<Channel>,
) -> HashMap<&'static str, String> {
    let mut contracts = HashMap::new();
    for (agb, name) in [
        (P1, "Jeugdhulp Een"),
        (P2, "Jeugdhulp Twee"),
        (P3, "Jeugdhulp Drie"),
        (OLD, "Oude Zorg"),
        (PV1, "Verzorging Een"),
        (PV2, "Verzorging Twee"),
        (ZH, "Ziekenhuis Achterhoek"),
        (NONE, "Zonder Contract"),
    ] {
        register(c, agb, name).await;
    }
    for (agb, budget) in [(P1, 50_000_000), (P2, 30_000_000), (P3, 20_000_000)] {
        let id = conclude(c, agb, "IAJ", &["IAJ-ON"], "2022-07-01").await;
        for year in 2022..=2025 {
            c.set_lumpsum_budget(reg::SetLumpsumBudgetRequest {
                contract_id: id.clone(),
                municipality: M.into(),
                year,
                amount_cents: budget,
            })
            .await
            .expect("budget set");
        }
        contracts.insert(agb, id);
    }
    contracts.insert(OLD, conclude(c, OLD, "IAJ", &[], "2019-07-01").await);
    contracts.insert(
        PV1,
        conclude(c, PV1, "WIO", &["WIO-PV"], "2022-07-01").await,
    );
    contracts.insert(
        PV2,
        conclude(c, PV2, "WIO", &["WIO-PV"], "2022-07-01").await,
    );
    contracts.insert(ZH, conclude(c, ZH, "ZHZ", &[], "2022-07-01").await);
    contracts
}

/// An IAJ-ON (taakgericht) product.
pub fn youth_product(start: &str, end: &str, preferred: &str) -> acc::ProductToGrant {
    acc::ProductToGrant {
        subsegment_code: "IAJ-ON".into(),
        result: "Zelfstandig naar school".into(),
        goal: acc::Goal::Participation as i32,
        period: period(start, end),
        preferred_provider_agb: preferred.into(),
        ..Default::default()
    }
}

/// A WIO-PV (inspanningsgericht, PxQ) product: 3 hours a week.
pub fn pxq_product(start: &str, end: &str, preferred: &str) -> acc::ProductToGrant {
    acc::ProductToGrant {
        subsegment_code: "WIO-PV".into(),
        product_code: "PV01".into(),
        result: "Zelfstandig wassen en aankleden".into(),
        goal: acc::Goal::TimelyLastingResult as i32,
        period: period(start, end),
        volume: 3,
        unit: "04".into(),
        frequency: "2".into(),
        preferred_provider_agb: preferred.into(),
        ..Default::default()
    }
}

/// A ZHZ (outputgericht) product with a budget of EUR 2,500.
pub fn output_product(start: &str, end: &str) -> acc::ProductToGrant {
    acc::ProductToGrant {
        subsegment_code: "ZHZ".into(),
        result: "Herstel na opname".into(),
        goal: acc::Goal::MeaningfulLife as i32,
        period: period(start, end),
        budget_cents: 250_000,
        ..Default::default()
    }
}

impl TestApp {
    pub async fn register_resident(&mut self, bsn: &str, birth_date: &str) -> acc::Resident {
        self.access
            .register_resident(acc::RegisterResidentRequest {
                idempotency_key: format!("res-{bsn}"),
                bsn: bsn.into(),
                given_names: "Sanne".into(),
                family_name: "de Vries".into(),
                birth_date: birth_date.into(),
                address: Some(acc::Address {
                    street: "Raadhuisstraat".into(),
                    house_number: "1".into(),
                    postal_code: "7001EW".into(),
                    city: "Doetinchem".into(),
                    municipality: M.into(),
                }),
                legal_representative: Some(acc::LegalRepresentative {
                    name: "J. de Vries".into(),
                    relation: "ouder".into(),
                }),
                gender: "2".into(),
            })
            .await
            .expect("resident registers")
            .into_inner()
    }

    /// A Jeugdwet decision (application on `date`, decided on `date`) for a resident born 2012.
    pub async fn decide_youth(
        &mut self,
        bsn: &str,
        date: &str,
        grant: Vec<acc::ProductToGrant>,
    ) -> acc::Case {
        self.register_resident(bsn, "2012-05-01").await;
        let case = self
            .access
            .open_case(acc::OpenCaseRequest {
                idempotency_key: format!("case-{bsn}-{date}-{}", grant.len()),
                bsn: bsn.into(),
                law: types::Law::Jeugdwet as i32,
                date: date.into(),
            })
            .await
            .expect("case opens")
            .into_inner();
        self.decide(&case.id, date, grant).await
    }

    /// A Wmo decision for an adult: melding, investigation, application and decision on `date`.
    pub async fn decide_wmo(
        &mut self,
        bsn: &str,
        date: &str,
        grant: Vec<acc::ProductToGrant>,
    ) -> acc::Case {
        self.register_resident(bsn, "1960-01-10").await;
        let case = self
            .access
            .open_case(acc::OpenCaseRequest {
                idempotency_key: format!("case-{bsn}-{date}-{}", grant.len()),
                bsn: bsn.into(),
                law: types::Law::Wmo as i32,
                date: date.into(),
            })
            .await
            .expect("case opens")
            .into_inner();
        self.access
            .complete_investigation(acc::CompleteInvestigationRequest {
                case_id: case.id.clone(),
                date: date.into(),
            })
            .await
            .expect("investigated");
        self.access
            .submit_application(acc::SubmitApplicationRequest {
                case_id: case.id.clone(),
                date: date.into(),
            })
            .await
            .expect("applied");
        self.decide(&case.id, date, grant).await
    }

    async fn decide(
        &mut self,
        case_id: &str,
        date: &str,
        grant: Vec<acc::ProductToGrant>,
    ) -> acc::Case {
        self.access
            .decide(acc::DecideRequest {
                case_id: case_id.into(),
                date: date.into(),
                grant,
                refusal_reason: String::new(),
            })
            .await
            .expect("decided")
            .into_inner()
    }

    /// Imports existing care of `agb` for a new client.
    pub async fn import(
        &mut self,
        bsn: &str,
        agb: &str,
        start: &str,
        end: &str,
        started: bool,
    ) -> Result<pb::Assignment, tonic::Status> {
        self.a
            .client
            .import_assignment(import_request(bsn, agb, start, end, started))
            .await
            .map(|r| r.into_inner())
    }
}

pub fn import_request(
    bsn: &str,
    agb: &str,
    start: &str,
    end: &str,
    started: bool,
) -> pb::ImportAssignmentRequest {
    pb::ImportAssignmentRequest {
        idempotency_key: format!("imp-{bsn}-{agb}-{start}"),
        municipality: M.into(),
        bsn: bsn.into(),
        client_key: String::new(),
        agb_code: agb.into(),
        subsegment_code: "IAJ-ON".into(),
        product_code: String::new(),
        period: period(start, end),
        size: None,
        budget_cents: 0,
        started,
    }
}

impl Assignment {
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Row counts of every table a command could change and a digest of the assignments' and
    /// requests' contents, to show a refused command changed nothing.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in [
            "assignments",
            "provider_requests",
            "unassigned_products",
            "client_identities",
            "idempotency_keys",
            "assignment_counters",
            "outbox",
        ] {
            out.push(format!("{t}={}", self.count(t).await));
        }
        for t in ["assignments", "provider_requests", "assignment_counters"] {
            let digest: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {t} t"
            )))
            .fetch_one(&self.pool)
            .await
            .unwrap();
            out.push(format!("{t}:{}", digest.unwrap_or_default()));
        }
        out
    }

    pub async fn get(&mut self, number: u32) -> pb::Assignment {
        self.client
            .get_assignment(pb::GetAssignmentRequest {
                municipality: M.into(),
                assignment_number: number,
            })
            .await
            .expect("assignment exists")
            .into_inner()
    }

    pub async fn of_client(&mut self, client_key: &str) -> Vec<pb::Assignment> {
        self.client
            .list_client_assignments(pb::ListClientAssignmentsRequest {
                municipality: M.into(),
                client_key: client_key.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .assignments
    }

    /// Waits (at most 10 s) until the client has `n` assignments.
    pub async fn wait_for(&mut self, client_key: &str, n: usize) -> Vec<pb::Assignment> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.of_client(client_key).await;
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "client has {} of {n} assignments after 10 s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most 10 s) until assignment `number` passes `check`.
    pub async fn wait_until(
        &mut self,
        number: u32,
        check: impl Fn(&pb::Assignment) -> bool,
    ) -> pb::Assignment {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.get(number).await;
            if check(&now) {
                return now;
            }
            assert!(tokio::time::Instant::now() < deadline, "{now:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most 10 s) until `n` granted products are recorded as not assigned.
    pub async fn wait_for_unassigned(&self, n: usize) -> Vec<assignment::store::Unassigned> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.assigner.list_unassigned(Some(M)).await.unwrap();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} products recorded as not assigned after 10 s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// (NATS subject, event type) of the events in the outbox, in order.
    pub async fn outbox(&self) -> Vec<(String, String)> {
        sqlx::query_as("SELECT nats_subject, event_type FROM outbox ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// The decoded provider messages (`issued`/`changed`) written for `agb`.
    pub async fn messages_to(&self, agb: &str) -> Vec<(String, pb::AssignmentMessage)> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT event_type, payload FROM outbox WHERE nats_subject LIKE '%.' || $1 || '.%'
               AND event_type IN ('nl.regiozorg.assignment.issued.v1', 'nl.regiozorg.assignment.changed.v1')
             ORDER BY id",
        )
        .bind(agb)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(t, p)| (t, prost::Message::decode(p.as_slice()).unwrap()))
            .collect()
    }

    pub fn subject(&self, agb: Option<&str>, event: &str) -> String {
        format!(
            "{}.assignment.{M}.{}.{event}",
            self.namespace,
            agb.unwrap_or("_")
        )
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
