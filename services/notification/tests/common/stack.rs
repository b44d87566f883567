//! The services notification asks, from the test stack (in-process on port 0 with fresh databases
//! and one NATS namespace): registration (one contract for IAJ-ON from 2022-07-01), access for
//! Doetinchem (0222) and, when asked, assignment with a [`FixedClock`]. The test talks to them over
//! gRPC like a client; notification is spawned by the test with their endpoints.

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
    /// Assignment's client of Doetinchem ([`M`]); a provider's calls go through
    /// [`Stack::provider`].
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
                Some(inner.as_municipality(M).assignment()),
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

    /// Notification in this stack's namespace, asking its access (and assignment, when it runs)
    /// for what the events do not carry; `tune` changes the rest of its configuration.
    pub async fn notification(
        &self,
        tune: impl FnOnce(&mut notification::Config) + Send + Sync + 'static,
    ) -> super::TestApp {
        let access = self.access_endpoint.clone();
        let assignment = self
            .assignment
            .is_some()
            .then(|| self.assignment_endpoint.clone());
        super::spawn_in(&self.namespace, move |c| {
            c.notification.access_endpoints = [(M.to_string(), access)].into();
            if let Some(assignment) = assignment {
                c.notification.assignment_endpoint = assignment;
            }
            tune(c);
        })
        .await
    }

    /// A client of assignment as provider `agb` (its own certificate).
    pub fn provider(&self, agb: &str) -> AssignmentServiceClient<Channel> {
        assert!(self.assignment.is_some(), "assignment runs");
        self.inner.as_provider(agb).assignment()
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
        let key = format!("case-{bsn}-{applied}");
        rz_stack::open_case(&mut self.access, key, bsn, types::Law::Jeugdwet, applied)
            .await
            .id
    }

    /// A Wmo melding on `reported`, investigated and applied for on `applied`; the case id.
    pub async fn wmo_case(&mut self, bsn: &str, reported: &str, applied: &str) -> String {
        let key = format!("case-{bsn}-{reported}");
        let id = rz_stack::open_case(&mut self.access, key, bsn, types::Law::Wmo, reported)
            .await
            .id;
        rz_stack::investigate_and_apply(&mut self.access, &id, applied).await;
        id
    }

    pub async fn grant(
        &mut self,
        case_id: &str,
        date: &str,
        grant: Vec<acc::ProductToGrant>,
    ) -> acc::Case {
        rz_stack::decide(&mut self.access, case_id, date, grant, "")
            .await
            .unwrap()
    }

    pub async fn refuse(&mut self, case_id: &str, date: &str, reason: &str) -> acc::Case {
        rz_stack::decide(&mut self.access, case_id, date, vec![], reason)
            .await
            .unwrap()
    }

    /// Waits until assignment has `n` assignments for the client and returns them.
    pub async fn assignments_of(&mut self, bsn: &str, n: usize) -> Vec<asg::Assignment> {
        let client = self.assignment.as_mut().expect("assignment runs");
        rz_stack::assignments_of(client, bsn, n, Duration::from_secs(20)).await
    }
}

/// A youth care product of IAJ-ON (taakgericht: no size), P1 preferred.
pub fn youth_product(start: &str, end: &str) -> acc::ProductToGrant {
    rz_stack::youth_product(start, end, P1)
}
