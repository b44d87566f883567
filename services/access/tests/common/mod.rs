//! `spawn_app`: the test stack with the real registration service (the catalogue) and access for
//! Doetinchem (0222), each on port 0 with a fresh database, sharing one NATS namespace of their
//! own; a gRPC client talking to access like any other client.

// Each test file uses a part of these helpers; the test files allow unwrap, expect and panic.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use chrono::{Days, Months, NaiveDate, Utc};
use rz_eventing::nats::jetstream::message::StreamMessage;
use rz_proto::access::v1 as pb;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::types::v1 as types;
pub use rz_stack::{SECRET, Stack, assert_invalid, assert_invalid_says, assert_rule, bsn, period};
use sqlx::PgPool;
use tonic::transport::Channel;

pub const MUNICIPALITY: &str = "0222";

pub struct TestApp {
    /// As the municipality whose instance this is.
    pub client: AccessServiceClient<Channel>,
    /// As the assignment service (GetClient(s)ForAssignment are its calls).
    pub assignment: AccessServiceClient<Channel>,
    pub channel: Channel,
    pub pool: PgPool,
    pub db_url: String,
    pub namespace: String,
    pub nats_url: String,
    pub registration_endpoint: String,
    pub stack: Stack,
}

pub async fn spawn_app() -> TestApp {
    let mut stack = Stack::builder().access(MUNICIPALITY).start().await;
    let service = stack.access_service(MUNICIPALITY);
    let (channel, pool, db_url) = (
        service.channel.clone(),
        service.pool.clone(),
        service.db_url.clone(),
    );
    TestApp {
        client: stack.access(MUNICIPALITY),
        assignment: stack.as_service("assignment").access(MUNICIPALITY),
        channel,
        pool,
        db_url,
        namespace: stack.namespace().to_owned(),
        nats_url: stack.nats_url().to_owned(),
        registration_endpoint: stack.registration_endpoint(),
        stack,
    }
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
        given_names: "Anna Maria".into(),
        family_name: "Jansen".into(),
        legal_representative: None,
        ..rz_stack::resident_request(bsn, birth_date)
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

/// A taakgericht (lumpsum) product: Integrale Ambulante Jeugdhulp, Ondersteuning.
pub fn lumpsum(start: &str, end: &str) -> pb::ProductToGrant {
    rz_stack::youth_product(start, end, "")
}

/// An inspanningsgericht (PxQ) product: Wmo Persoonlijke Verzorging, 3 hours a week.
pub fn pxq(start: &str, end: &str) -> pb::ProductToGrant {
    rz_stack::pxq_product(start, end, "03000001")
}

/// An outputgericht (separate contract) product: Ziekenhuiszorg with a budget.
pub fn output(start: &str, end: &str) -> pb::ProductToGrant {
    rz_stack::output_product(start, end)
}

impl TestApp {
    pub async fn count(&self, table: &str) -> i64 {
        rz_stack::count(&self.pool, table).await
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
        self.try_investigate(case_id, date)
            .await
            .expect("investigation completes")
    }

    /// CompleteInvestigation, refused or not.
    pub async fn try_investigate(
        &mut self,
        case_id: &str,
        date: &str,
    ) -> Result<pb::Case, tonic::Status> {
        let request = pb::CompleteInvestigationRequest {
            case_id: case_id.into(),
            date: date.into(),
        };
        self.client
            .complete_investigation(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn apply(&mut self, case_id: &str, date: &str) -> pb::Case {
        self.try_apply(case_id, date)
            .await
            .expect("application submitted")
    }

    /// SubmitApplication, refused or not.
    pub async fn try_apply(
        &mut self,
        case_id: &str,
        date: &str,
    ) -> Result<pb::Case, tonic::Status> {
        let request = pb::SubmitApplicationRequest {
            case_id: case_id.into(),
            date: date.into(),
        };
        self.client
            .submit_application(request)
            .await
            .map(tonic::Response::into_inner)
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
        rz_stack::decide(&mut self.client, case_id, date, grant, "").await
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
        rz_stack::eventually(Duration::from_secs(10), async || {
            let have = stream.info().await.unwrap().state.messages;
            match have >= n {
                true => Ok(()),
                false => Err(format!("only {have} of {n} events published")),
            }
        })
        .await;
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
