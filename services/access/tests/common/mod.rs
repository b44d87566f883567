//! `spawn_app`: the real registration service (catalogue) and then access for Doetinchem (0222),
//! each on port 0 with a fresh database, sharing one NATS namespace of their own; a gRPC client
//! talking to access like any other client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use access::{AccessConfig, App, Config};
use chrono::{Days, Months, NaiveDate, Utc};
use rz_eventing::nats::jetstream::message::StreamMessage;
use rz_platform::Shutdown;
use rz_proto::access::v1 as pb;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::types::v1 as types;
use rz_testkit::TestEnv;
use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub const MUNICIPALITY: &str = "0222";
pub const SECRET: &str = "test-region-secret";

pub struct TestApp {
    pub client: AccessServiceClient<Channel>,
    pub channel: Channel,
    pub pool: PgPool,
    pub db_url: String,
    pub namespace: String,
    pub nats_url: String,
    pub registration_endpoint: String,
    pub shutdown: Shutdown,
    pub server: tokio::task::JoinHandle<Result<(), access::StartError>>,
    pub registration_shutdown: Shutdown,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
        self.registration_shutdown.trigger();
    }
}

/// Registration (the catalogue) on port 0 with its own fresh database; returns its URL.
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

/// Access's configuration for a test, with a fresh database.
pub async fn test_config(env: &TestEnv, namespace: &str, registration: &str) -> Config {
    let mut config = Config::default();
    config.database.url = env.fresh_database().await;
    config.database.max_connections = 5;
    config.nats.url = env.nats_url.clone();
    config.nats.namespace = namespace.to_owned();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 5;
    config.access = AccessConfig {
        municipality: MUNICIPALITY.into(),
        client_key_secret: SECRET.into(),
        registration_endpoint: registration.to_owned(),
        ..Default::default()
    };
    config
}

pub async fn spawn_app() -> TestApp {
    let env = TestEnv::load();
    let namespace = env.namespace();
    let (registration_endpoint, registration_shutdown) = spawn_registration(&env, &namespace).await;
    let config = test_config(&env, &namespace, &registration_endpoint).await;
    let db_url = config.database.url.clone();
    let app = App::build(config).await.expect("access builds");
    let addr = app.local_addr();
    let pool = app.pool().clone();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    TestApp {
        client: AccessServiceClient::new(channel.clone()),
        channel,
        pool,
        db_url,
        namespace,
        nats_url: env.nats_url,
        registration_endpoint,
        shutdown,
        server,
        registration_shutdown,
    }
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
            return format!("{head}{}", sum % 11);
        }
    }
    unreachable!("one of ten consecutive numbers has a check digit")
}

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub fn days_from_today(days: i64) -> String {
    let t = today();
    if days >= 0 {
        t.checked_add_days(Days::new(days as u64)).unwrap()
    } else {
        t.checked_sub_days(Days::new(days.unsigned_abs())).unwrap()
    }
    .to_string()
}

pub fn years_ago(years: u32) -> String {
    today()
        .checked_sub_months(Months::new(years * 12))
        .unwrap()
        .to_string()
}

pub fn resident_request(bsn: &str, birth_date: &str) -> pb::RegisterResidentRequest {
    pb::RegisterResidentRequest {
        idempotency_key: format!("res-{bsn}"),
        bsn: bsn.into(),
        given_names: "Anna Maria".into(),
        family_name: "Jansen".into(),
        birth_date: birth_date.into(),
        address: Some(pb::Address {
            street: "Raadhuisstraat".into(),
            house_number: "1".into(),
            postal_code: "7001EW".into(),
            city: "Doetinchem".into(),
            municipality: MUNICIPALITY.into(),
        }),
        legal_representative: None,
        gender: "2".into(),
    }
}

pub fn open_request(bsn: &str, law: types::Law, date: &str) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        idempotency_key: format!("case-{bsn}-{}-{date}", law as i32),
        bsn: bsn.into(),
        law: law as i32,
        date: date.into(),
    }
}

pub fn period(start: &str, end: &str) -> Option<types::Period> {
    Some(types::Period {
        start: start.into(),
        end: end.into(),
    })
}

/// A taakgericht (lumpsum) product: Integrale Ambulante Jeugdhulp, Ondersteuning.
pub fn lumpsum(start: &str, end: &str) -> pb::ProductToGrant {
    pb::ProductToGrant {
        subsegment_code: "IAJ-ON".into(),
        result: "Zelfstandig naar school".into(),
        goal: pb::Goal::Participation as i32,
        period: period(start, end),
        ..Default::default()
    }
}

/// An inspanningsgericht (PxQ) product: Wmo Persoonlijke Verzorging, 3 hours a week.
pub fn pxq(start: &str, end: &str) -> pb::ProductToGrant {
    pb::ProductToGrant {
        subsegment_code: "WIO-PV".into(),
        product_code: "PV01".into(),
        result: "Zelfstandig wassen en aankleden".into(),
        goal: pb::Goal::TimelyLastingResult as i32,
        period: period(start, end),
        volume: 3,
        unit: "04".into(),
        frequency: "2".into(),
        preferred_provider_agb: "03000001".into(),
        ..Default::default()
    }
}

/// An outputgericht (separate contract) product: Ziekenhuiszorg with a budget.
pub fn output(start: &str, end: &str) -> pb::ProductToGrant {
    pb::ProductToGrant {
        subsegment_code: "ZHZ".into(),
        result: "Herstel na opname".into(),
        goal: pb::Goal::MeaningfulLife as i32,
        period: period(start, end),
        budget_cents: 250_000,
        ..Default::default()
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
    pub async fn snapshot(&self) -> Vec<(&'static str, i64)> {
        let mut out = Vec::new();
        for t in access::store::TABLES {
            out.push((*t, self.count(t).await));
        }
        out
    }

    pub async fn register_adult(&mut self, bsn: &str) -> pb::Resident {
        self.client
            .register_resident(resident_request(bsn, "1970-03-15"))
            .await
            .expect("resident registers")
            .into_inner()
    }

    pub async fn open(&mut self, bsn: &str, law: types::Law, date: &str) -> pb::Case {
        self.client
            .open_case(open_request(bsn, law, date))
            .await
            .expect("case opens")
            .into_inner()
    }

    pub async fn investigate(&mut self, case_id: &str, date: &str) -> pb::Case {
        self.client
            .complete_investigation(pb::CompleteInvestigationRequest {
                case_id: case_id.into(),
                date: date.into(),
            })
            .await
            .expect("investigation completes")
            .into_inner()
    }

    pub async fn apply(&mut self, case_id: &str, date: &str) -> pb::Case {
        self.client
            .submit_application(pb::SubmitApplicationRequest {
                case_id: case_id.into(),
                date: date.into(),
            })
            .await
            .expect("application submitted")
            .into_inner()
    }

    /// A Wmo case for a new adult resident, walked to APPLIED.
    pub async fn wmo_applied(
        &mut self,
        bsn: &str,
        reported: &str,
        investigated: &str,
        applied: &str,
    ) -> pb::Case {
        self.register_adult(bsn).await;
        let c = self.open(bsn, types::Law::Wmo, reported).await;
        self.investigate(&c.id, investigated).await;
        self.apply(&c.id, applied).await
    }

    pub async fn decide(
        &mut self,
        case_id: &str,
        date: &str,
        grant: Vec<pb::ProductToGrant>,
    ) -> Result<pb::Case, tonic::Status> {
        self.client
            .decide(pb::DecideRequest {
                case_id: case_id.into(),
                date: date.into(),
                grant,
                refusal_reason: String::new(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn amend(
        &mut self,
        r: pb::AmendProductRequest,
    ) -> Result<pb::GrantedProduct, tonic::Status> {
        self.client.amend_product(r).await.map(|r| r.into_inner())
    }

    /// Waits until the relay published `n` events of this test to JetStream, and returns them.
    pub async fn events(&self, n: u64) -> Vec<StreamMessage> {
        let (_c, js) = rz_eventing::connect(&self.nats_url, "test-reader")
            .await
            .unwrap();
        let mut stream = js
            .get_stream(format!("{}_ACCESS", self.namespace.to_uppercase()))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let have = stream.info().await.unwrap().state.messages;
            if have >= n {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {have} of {n} events published"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut out = Vec::new();
        let last = stream.info().await.unwrap().state.last_sequence;
        for seq in 1..=last {
            out.push(stream.get_raw_message(seq).await.unwrap());
        }
        out
    }
}

pub fn header<'a>(m: &'a StreamMessage, name: &str) -> &'a str {
    m.headers.get(name).map(|v| v.as_str()).unwrap_or("")
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

/// As [`assert_invalid`], and the violation's description contains `text`.
pub fn assert_invalid_says(status: &tonic::Status, field: &str, text: &str) {
    assert_invalid(status, field);
    let bad = status.get_details_bad_request().unwrap();
    assert!(
        bad.field_violations
            .iter()
            .any(|v| v.field == field && v.description.contains(text)),
        "{field} does not say {text:?}: {:?}",
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
