//! The services notification asks, from the test stack (in-process on port 0 with fresh databases
//! and one NATS namespace): registration (one contract for IAJ-ON from 2022-07-01), access for
//! Doetinchem (0222) and, when asked, assignment with a [`FixedClock`]. The test talks to them over
//! gRPC like a client; notification is spawned by the test with their endpoints.

#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use assignment::FixedClock;
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::types::v1 as types;
pub use rz_stack::{Landscape, M, P1, SECRET, bsn, d, key_of, period};
use tonic::transport::Channel;

/// A free port on 127.0.0.1 (nothing listens on it when this returns).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub struct Stack {
    pub namespace: String,
    pub registration_endpoint: String,
    pub access: AccessServiceClient<Channel>,
    pub access_endpoint: String,
    pub assignment: Option<AssignmentServiceClient<Channel>>,
    pub assignment_endpoint: String,
    pub clock: Arc<FixedClock>,
    pub inner: rz_stack::Stack,
}

impl Stack {
    /// Registration with its contract and access 0222; assignment too when `with_assignment`
    /// (its date 2022-06-27).
    pub async fn start(with_assignment: bool) -> Self {
        let landscape = Landscape::new()
            .provider(P1, "Jeugdhulp Een")
            .contract(P1, "IAJ", &["IAJ-ON"], "2022-07-01")
            .budget(M, 2022, 10_000_000);
        let mut builder = rz_stack::Stack::builder().landscape(landscape).access(M);
        if with_assignment {
            builder = builder.assignment().today(d("2022-06-27"));
        }
        let inner = builder.start().await;
        let (assignment, assignment_endpoint, clock) = if with_assignment {
            (
                Some(inner.assignment()),
                inner.assignment_endpoint(),
                inner.clock(),
            )
        } else {
            (
                None,
                String::new(),
                Arc::new(FixedClock::new(d("2022-06-27"))),
            )
        };
        Self {
            namespace: inner.namespace().to_owned(),
            registration_endpoint: inner.registration_endpoint(),
            access: inner.access(M),
            access_endpoint: inner.access_endpoint(M),
            assignment,
            assignment_endpoint,
            clock,
            inner,
        }
    }

    /// Another access instance on the same database, listening on `listen`.
    pub async fn another_access_at(&mut self, listen: SocketAddr) -> String {
        self.inner.start_access_at(M, listen).await
    }

    pub async fn resident(&mut self, bsn: &str, given: &str, family: &str, birth: &str) {
        self.access
            .register_resident(acc::RegisterResidentRequest {
                given_names: given.into(),
                family_name: family.into(),
                address: Some(acc::Address {
                    house_number: "12a".into(),
                    ..rz_stack::resident_request(bsn, birth).address.unwrap()
                }),
                legal_representative: Some(acc::LegalRepresentative {
                    name: "J. Jansen".into(),
                    relation: "ouder".into(),
                }),
                gender: String::new(),
                ..rz_stack::resident_request(bsn, birth)
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
