//! `spawn_app`: the test stack with the real registration service (loaded with the standard
//! contract landscape through its gRPC API), the real access service for Doetinchem (0222) and
//! assignment, each in-process on port 0 with a fresh database, sharing one NATS namespace of their
//! own. Assignment's date is a [`FixedClock`] the test moves.

// Each test file uses a part of these helpers; the test files allow unwrap, expect and panic.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use assignment::{Assigner, FixedClock};
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as pb;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::types::v1 as types;
pub use rz_stack::{
    Landscape, M, NONE, OLD, P1, P2, P3, PV1, PV2, SECRET, Stack, TestEnv, ZH, assert_invalid,
    assert_rule, bsn, d, import_request, key_of, output_product, period, pxq_product,
    youth_product,
};
use sqlx::PgPool;
use tonic::transport::Channel;

/// How long the waits of these helpers wait.
const TEN_SECONDS: Duration = Duration::from_secs(10);

/// The date assignment's clock starts on: a Monday before the contracts of 2022-07-01.
pub const START: &str = "2022-06-27";

/// The assignment service of a stack, with what its tests reach for.
pub struct Assignment {
    pub client: AssignmentServiceClient<Channel>,
    /// `http://<addr>` of the gRPC server.
    pub endpoint: String,
    pub channel: Channel,
    pub pool: PgPool,
    pub assigner: Assigner,
    pub clock: Arc<FixedClock>,
    pub namespace: String,
    /// The stack it runs in (its drop stops the services).
    pub stack: Stack,
}

impl Assignment {
    /// Assignment's client of the stack's operator (`urn:regiozorg:operator:ops`) is `client`;
    /// what a provider or a municipality does goes through [`Assignment::provider`] and
    /// [`Assignment::municipality`], each with that organisation's certificate.
    pub fn of(mut stack: Stack) -> Self {
        let service = stack.assignment_service();
        let (endpoint, channel, pool) = (
            service.endpoint.clone(),
            service.channel.clone(),
            service.pool.clone(),
        );
        Self {
            client: stack.assignment(),
            endpoint,
            channel,
            pool,
            assigner: stack.assigner(),
            clock: stack.clock(),
            namespace: stack.namespace().to_owned(),
            stack,
        }
    }
}

pub struct TestApp {
    pub env: TestEnv,
    pub namespace: String,
    pub registration: RegistrationServiceClient<Channel>,
    pub registration_endpoint: String,
    pub access: AccessServiceClient<Channel>,
    pub access_endpoint: String,
    pub contracts: HashMap<String, String>,
    pub a: Assignment,
}

/// Assignment on port 0 with a fresh database in a namespace of its own, today = `today`, using
/// the registration and access endpoints of another stack.
pub async fn spawn_assignment(
    registration: &str,
    access: &[(&str, &str)],
    today: &str,
) -> Assignment {
    let mut builder = Stack::builder()
        .use_registration(registration)
        .assignment()
        .today(d(today));
    for (m, url) in access {
        builder = builder.use_access(m, url);
    }
    Assignment::of(builder.start().await)
}

/// The whole stack, with assignment's date on 2022-06-27 (a Monday).
pub async fn spawn_app() -> TestApp {
    let stack = Stack::builder()
        .landscape(Landscape::standard())
        .access(M)
        .assignment()
        .today(d(START))
        .start()
        .await;
    TestApp {
        env: stack.env.clone(),
        namespace: stack.namespace().to_owned(),
        registration: stack.registration(),
        registration_endpoint: stack.registration_endpoint(),
        access: stack.access(M),
        access_endpoint: stack.access_endpoint(M),
        contracts: stack.contracts().clone(),
        a: Assignment::of(stack),
    }
}

impl TestApp {
    pub async fn register_resident(&mut self, bsn: &str, birth_date: &str) -> acc::Resident {
        self.access
            .register_resident(rz_stack::resident_request(bsn, birth_date))
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
        let key = format!("case-{bsn}-{date}-{}", grant.len());
        let case =
            rz_stack::open_case(&mut self.access, key, bsn, types::Law::Jeugdwet, date).await;
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
        let key = format!("case-{bsn}-{date}-{}", grant.len());
        let case = rz_stack::open_case(&mut self.access, key, bsn, types::Law::Wmo, date).await;
        rz_stack::investigate_and_apply(&mut self.access, &case.id, date).await;
        self.decide(&case.id, date, grant).await
    }

    async fn decide(
        &mut self,
        case_id: &str,
        date: &str,
        grant: Vec<acc::ProductToGrant>,
    ) -> acc::Case {
        rz_stack::decide(&mut self.access, case_id, date, grant, "")
            .await
            .expect("decided")
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

impl Assignment {
    /// A client of assignment as provider `agb` (its own certificate).
    pub fn provider(&self, agb: &str) -> AssignmentServiceClient<Channel> {
        self.stack.as_provider(agb).assignment()
    }

    /// A client of assignment as the municipality Doetinchem ([`M`]).
    pub fn municipality(&self) -> AssignmentServiceClient<Channel> {
        self.as_municipality(M)
    }

    /// A client of assignment as municipality `m`.
    pub fn as_municipality(&self, m: &str) -> AssignmentServiceClient<Channel> {
        self.stack.as_municipality(m).assignment()
    }

    pub async fn count(&self, table: &str) -> i64 {
        rz_stack::count(&self.pool, table).await
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

    /// Assignment `number` of Doetinchem, as the municipality reads it.
    pub async fn get(&mut self, number: u32) -> pb::Assignment {
        self.municipality()
            .get_assignment(pb::GetAssignmentRequest {
                municipality: M.into(),
                assignment_number: number,
            })
            .await
            .expect("assignment exists")
            .into_inner()
    }

    /// The client's assignments in Doetinchem, as the municipality lists them.
    pub async fn of_client(&mut self, client_key: &str) -> Vec<pb::Assignment> {
        self.municipality()
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
        rz_stack::eventually(TEN_SECONDS, async || {
            rz_stack::at_least(
                self.of_client(client_key).await,
                n,
                "assignments of the client",
            )
        })
        .await
    }

    /// Waits (at most 10 s) until assignment `number` passes `check`.
    pub async fn wait_until(
        &mut self,
        number: u32,
        check: impl Fn(&pb::Assignment) -> bool,
    ) -> pb::Assignment {
        rz_stack::eventually(TEN_SECONDS, async || {
            let now = self.get(number).await;
            if check(&now) {
                Ok(now)
            } else {
                Err(format!("{now:?}"))
            }
        })
        .await
    }

    /// Waits (at most 10 s) until `n` granted products are recorded as not assigned.
    pub async fn wait_for_unassigned(&self, n: usize) -> Vec<assignment::store::Unassigned> {
        rz_stack::eventually(TEN_SECONDS, async || {
            let got = self.assigner.list_unassigned(Some(M)).await.unwrap();
            rz_stack::at_least(got, n, "products recorded as not assigned")
        })
        .await
    }

    /// (NATS subject, event type) of the events in the outbox, in order.
    pub async fn outbox(&self) -> Vec<(String, String)> {
        sqlx::query_as("SELECT nats_subject, event_type FROM outbox ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// The decoded provider messages (`issued`/`changed`) written for `agb`, in order, as the
    /// provider receives them from the stream (the outbox keeps no payload with personal data
    /// once published).
    pub async fn messages_to(&self, agb: &str) -> Vec<(String, pb::AssignmentMessage)> {
        let ids: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT id, event_type FROM outbox WHERE nats_subject LIKE '%.' || $1 || '.%'
               AND event_type IN ('nl.regiozorg.assignment.issued.v1', 'nl.regiozorg.assignment.changed.v1')
             ORDER BY id",
        )
        .bind(agb)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let filter = format!("{}.assignment.*.{agb}.>", self.namespace);
        let ids: Vec<(String, String)> = ids.into_iter().map(|(i, t)| (i.to_string(), t)).collect();
        let payloads = self
            .published(&filter, ids.iter().map(|(i, _)| i.as_str()))
            .await;
        ids.into_iter()
            .map(|(id, t)| (t, prost::Message::decode(payloads[&id].as_slice()).unwrap()))
            .collect()
    }

    /// The payloads of the events `ids` on `filter` in assignment's stream, by event id; waits
    /// (10 s at most) until the relay has published them all.
    pub async fn published<'a>(
        &self,
        filter: &str,
        ids: impl Iterator<Item = &'a str>,
    ) -> HashMap<String, Vec<u8>> {
        use futures::StreamExt;
        use rz_eventing::nats::jetstream;
        let want: Vec<&str> = ids.collect();
        let client = rz_eventing::nats::connect(self.stack.nats_url())
            .await
            .unwrap();
        let js = jetstream::new(client);
        let stream = js
            .get_stream(format!("{}_ASSIGNMENT", self.namespace).to_ascii_uppercase())
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::Config {
                    filter_subject: filter.to_owned(),
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    inactive_threshold: Duration::from_secs(30),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut got = HashMap::new();
            let mut messages = consumer
                .fetch()
                .max_messages(10_000)
                .expires(Duration::from_millis(300))
                .messages()
                .await
                .unwrap();
            while let Some(m) = messages.next().await {
                let m = m.unwrap();
                if let Some(id) = m.headers.as_ref().and_then(|h| h.get("ce-id")) {
                    got.insert(id.as_str().to_owned(), m.payload.to_vec());
                }
            }
            if want.iter().all(|id| got.contains_key(*id)) {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {} events on {filter} published",
                want.iter().filter(|id| got.contains_key(**id)).count(),
                want.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn subject(&self, agb: Option<&str>, event: &str) -> String {
        format!(
            "{}.assignment.{M}.{}.{event}",
            self.namespace,
            agb.unwrap_or("_")
        )
    }
}
