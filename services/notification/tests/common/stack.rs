//! The services notification asks, in-process on port 0 with fresh databases and one NATS
//! namespace: registration (one contract for IAJ-ON from 2022-07-01), access for Doetinchem
//! (0222) and, when asked, assignment with a [`FixedClock`]. The test talks to them over gRPC like
//! a client; notification is spawned by the test with their endpoints.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use assignment::FixedClock;
use chrono::NaiveDate;
use rz_domain::{Bsn, ClientKey};
use rz_platform::Shutdown;
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::types::v1 as types;
use rz_testkit::TestEnv;
use tonic::transport::Channel;

pub const M: &str = "0222";
pub const SECRET: &str = "test-region-secret";
/// Contracted for IAJ-ON in 0222 from 2022-07-01.
pub const P1: &str = "03010001";

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

pub async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

/// A free port on 127.0.0.1 (nothing listens on it when this returns).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub struct Stack {
    pub env: TestEnv,
    pub namespace: String,
    pub registration_endpoint: String,
    pub access: AccessServiceClient<Channel>,
    pub access_endpoint: String,
    pub access_db: String,
    pub assignment: Option<AssignmentServiceClient<Channel>>,
    pub assignment_endpoint: String,
    pub clock: Arc<FixedClock>,
    shutdowns: Vec<Shutdown>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for s in &self.shutdowns {
            s.trigger();
        }
    }
}

async fn spawn_registration(env: &TestEnv, namespace: &str) -> (String, Shutdown) {
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

/// Access for 0222 on `listen` with the database `db`.
pub async fn spawn_access(
    env: &TestEnv,
    namespace: &str,
    registration: &str,
    db: &str,
    listen: SocketAddr,
) -> (String, Shutdown) {
    let mut config = access::Config::default();
    config.database.url = db.to_owned();
    config.database.max_connections = 3;
    config.nats.url = env.nats_url.clone();
    config.nats.namespace = namespace.to_owned();
    config.server.listen = listen;
    config.server.shutdown_grace_secs = 2;
    config.access = access::AccessConfig {
        municipality: M.into(),
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

impl Stack {
    /// Registration with its contract and access 0222; assignment too when `with_assignment`
    /// (its date 2022-06-27).
    pub async fn start(with_assignment: bool) -> Self {
        let env = TestEnv::load();
        let namespace = env.namespace();
        let (registration_endpoint, s1) = spawn_registration(&env, &namespace).await;
        let mut registration =
            RegistrationServiceClient::new(connect(&registration_endpoint).await);
        registration
            .register_provider(reg::RegisterProviderRequest {
                idempotency_key: format!("reg-{P1}"),
                agb_code: P1.into(),
                name: "Jeugdhulp Een".into(),
                legal_form: "stichting".into(),
                kvk_number: format!("4{}", &P1[1..]),
            })
            .await
            .unwrap();
        let contract = registration
            .conclude_contract(reg::ConcludeContractRequest {
                idempotency_key: format!("c-{P1}"),
                agb_code: P1.into(),
                segment_code: "IAJ".into(),
                subsegment_codes: vec!["IAJ-ON".into()],
                municipalities: vec![],
                start: "2022-07-01".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .id;
        registration
            .set_lumpsum_budget(reg::SetLumpsumBudgetRequest {
                contract_id: contract,
                municipality: M.into(),
                year: 2022,
                amount_cents: 10_000_000,
            })
            .await
            .unwrap();
        let access_db = env.fresh_database().await;
        let (access_endpoint, s2) = spawn_access(
            &env,
            &namespace,
            &registration_endpoint,
            &access_db,
            "127.0.0.1:0".parse().unwrap(),
        )
        .await;
        let access = AccessServiceClient::new(connect(&access_endpoint).await);
        let clock = Arc::new(FixedClock::new(d("2022-06-27")));
        let mut shutdowns = vec![s1, s2];
        let (assignment, assignment_endpoint) = if with_assignment {
            let mut config = assignment::Config::default();
            config.database.url = env.fresh_database().await;
            config.database.max_connections = 5;
            config.nats.url = env.nats_url.clone();
            config.nats.namespace = namespace.clone();
            config.server.listen = "127.0.0.1:0".parse().unwrap();
            config.server.shutdown_grace_secs = 2;
            config.assignment.registration_endpoint = registration_endpoint.clone();
            config.assignment.client_key_secret = SECRET.into();
            config.assignment.access_endpoints = [(M.to_string(), access_endpoint.clone())].into();
            let app = assignment::App::build_with_clock(config, clock.clone())
                .await
                .expect("assignment builds");
            let endpoint = format!("http://{}", app.local_addr());
            let s = Shutdown::new();
            tokio::spawn(app.run(s.clone()));
            shutdowns.push(s);
            (
                Some(AssignmentServiceClient::new(connect(&endpoint).await)),
                endpoint,
            )
        } else {
            (None, String::new())
        };
        Self {
            env,
            namespace,
            registration_endpoint,
            access,
            access_endpoint,
            access_db,
            assignment,
            assignment_endpoint,
            clock,
            shutdowns,
        }
    }

    /// Another access instance on the same database, listening on `listen`.
    pub async fn another_access_at(&mut self, listen: SocketAddr) -> String {
        let (endpoint, s) = spawn_access(
            &self.env,
            &self.namespace,
            &self.registration_endpoint,
            &self.access_db,
            listen,
        )
        .await;
        self.shutdowns.push(s);
        endpoint
    }

    pub async fn resident(&mut self, bsn: &str, given: &str, family: &str, birth: &str) {
        self.access
            .register_resident(acc::RegisterResidentRequest {
                idempotency_key: format!("res-{bsn}"),
                bsn: bsn.into(),
                given_names: given.into(),
                family_name: family.into(),
                birth_date: birth.into(),
                address: Some(acc::Address {
                    street: "Raadhuisstraat".into(),
                    house_number: "12a".into(),
                    postal_code: "7001EW".into(),
                    city: "Doetinchem".into(),
                    municipality: M.into(),
                }),
                legal_representative: Some(acc::LegalRepresentative {
                    name: "J. Jansen".into(),
                    relation: "ouder".into(),
                }),
                gender: String::new(),
            })
            .await
            .unwrap();
    }

    /// A Jeugdwet application on `applied`; the case id.
    pub async fn youth_case(&mut self, bsn: &str, applied: &str) -> String {
        self.access
            .open_case(acc::OpenCaseRequest {
                idempotency_key: format!("case-{bsn}-{applied}"),
                bsn: bsn.into(),
                law: types::Law::Jeugdwet as i32,
                date: applied.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .id
    }

    /// A Wmo melding on `reported`, investigated and applied for on `applied`; the case id.
    pub async fn wmo_case(&mut self, bsn: &str, reported: &str, applied: &str) -> String {
        let id = self
            .access
            .open_case(acc::OpenCaseRequest {
                idempotency_key: format!("case-{bsn}-{reported}"),
                bsn: bsn.into(),
                law: types::Law::Wmo as i32,
                date: reported.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .id;
        self.access
            .complete_investigation(acc::CompleteInvestigationRequest {
                case_id: id.clone(),
                date: applied.into(),
            })
            .await
            .unwrap();
        self.access
            .submit_application(acc::SubmitApplicationRequest {
                case_id: id.clone(),
                date: applied.into(),
            })
            .await
            .unwrap();
        id
    }

    pub async fn grant(
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
            .unwrap()
            .into_inner()
    }

    pub async fn refuse(&mut self, case_id: &str, date: &str, reason: &str) -> acc::Case {
        self.access
            .decide(acc::DecideRequest {
                case_id: case_id.into(),
                date: date.into(),
                grant: vec![],
                refusal_reason: reason.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits until assignment has `n` assignments for the client and returns them.
    pub async fn assignments_of(&mut self, bsn: &str, n: usize) -> Vec<asg::Assignment> {
        let key = key_of(bsn);
        let client = self.assignment.as_mut().expect("assignment runs");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = client
                .list_client_assignments(asg::ListClientAssignmentsRequest {
                    municipality: M.into(),
                    client_key: key.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .assignments;
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "{got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A youth care product of IAJ-ON (taakgericht: no size).
pub fn youth_product(start: &str, end: &str) -> acc::ProductToGrant {
    acc::ProductToGrant {
        subsegment_code: "IAJ-ON".into(),
        result: "Zelfstandig naar school".into(),
        goal: acc::Goal::Participation as i32,
        period: period(start, end),
        preferred_provider_agb: P1.into(),
        ..Default::default()
    }
}
