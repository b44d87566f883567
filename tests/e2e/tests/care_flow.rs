//! The care flow across every service, as a region runs it: the contract register, access for
//! Doetinchem, assignment and a provider system simulator. A decision in access becomes an
//! assignment to a contracted provider, the provider's system receives it on its own subject and
//! reports the start of care, and one trace id runs from the decision to the start of care.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rz_platform::Shutdown;
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use rz_proto::types::v1 as types;
use rz_provider_sim::{SimConfig, Stats};
use rz_stack::{Landscape, Stack};

const SECRET: &str = "e2e-secret";
const PROVIDER: &str = "03077001";

#[tokio::test]
async fn a_decision_reaches_a_contracted_provider_who_starts_care_within_one_trace() {
    // The contract register, with one provider contracted for IAJ in Doetinchem; access for
    // Doetinchem; assignment.
    let landscape = Landscape::new()
        .provider(PROVIDER, "Jeugdhulp Oost BV")
        .contract_in(PROVIDER, "IAJ", &[], &["0222"], "2022-07-01");
    let stack = Stack::builder()
        .landscape(landscape)
        .access("0222")
        .assignment()
        .client_key_secret(SECRET)
        .start()
        .await;
    let (env, ns) = (stack.env.clone(), stack.namespace().to_owned());
    let assignment_url = stack.assignment_endpoint();
    let shutdown = Shutdown::new();

    // The provider's system, subscribed to its own subjects only.
    let stats = Arc::new(Stats::default());
    let sim = SimConfig {
        nats_url: env.nats_url.clone(),
        namespace: ns.clone(),
        assignment_endpoint: assignment_url.clone(),
        pki: stack.pki().dir().to_owned(),
        agb_codes: vec![PROVIDER.into()],
        name: format!("provider-sim-{PROVIDER}"),
        late_start_every: 0,
    };
    tokio::spawn(rz_provider_sim::run(sim, stats.clone(), shutdown.clone()));

    // A resident applies for youth care and gets a decision, inside a trace of the caller's:
    // Doetinchem at its access instance.
    let mut access = stack.access("0222");
    let resident = access
        .register_resident(acc::RegisterResidentRequest {
            idempotency_key: "r".into(),
            bsn: "111222333".into(),
            given_names: "Sam".into(),
            family_name: "Jansen".into(),
            birth_date: "1990-03-04".into(),
            address: Some(acc::Address {
                street: "Raadhuisstraat".into(),
                house_number: "1".into(),
                postal_code: "7001EW".into(),
                city: "Doetinchem".into(),
                municipality: "0222".into(),
            }),
            legal_representative: None,
            gender: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let case = access
        .open_case(acc::OpenCaseRequest {
            idempotency_key: "case".into(),
            bsn: "111222333".into(),
            law: types::Law::Jeugdwet as i32,
            date: "2022-06-10".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut decide = tonic::Request::new(acc::DecideRequest {
        case_id: case.id.clone(),
        date: "2022-06-20".into(),
        grant: vec![acc::ProductToGrant {
            subsegment_code: "IAJ-ON".into(),
            result: "Zelfstandig naar school".into(),
            goal: acc::Goal::Participation as i32,
            period: Some(types::Period {
                start: "2022-07-01".into(),
                end: "2023-06-30".into(),
            }),
            ..Default::default()
        }],
        refusal_reason: String::new(),
    });
    decide.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    access.decide(decide).await.unwrap();

    // The assignment is issued to the contracted provider and its system starts care; Doetinchem
    // reads its client's assignments.
    let mut assignments = stack.as_municipality("0222").assignment();
    let mut started = None;
    for _ in 0..200 {
        let list = assignments
            .list_client_assignments(asg::ListClientAssignmentsRequest {
                municipality: "0222".into(),
                client_key: resident.client_key.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .assignments;
        if let Some(a) = list
            .into_iter()
            .find(|a| a.status() == asg::AssignmentStatus::Started)
        {
            started = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = started.expect("the provider started care");
    assert_eq!(a.agb_code, PROVIDER);
    assert_eq!(a.started_on, "2022-07-01");
    assert_eq!(a.execution_variant(), types::ExecutionVariant::Taakgericht);
    assert!(!a.choice_reason.is_empty());
    assert_eq!(stats.started.load(Ordering::Relaxed), 1);

    // The provider's message carried the BSN; the pseudonymous lifecycle events did not; and the
    // caller's trace id travelled from the decision to the assignment event.
    let (_c, js) = rz_eventing::connect(&env.nats_url, "check").await.unwrap();
    let mut stream = js
        .get_stream(format!("{}_ASSIGNMENT", ns.to_uppercase()))
        .await
        .unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut issued_traceparent = None;
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        let body = String::from_utf8_lossy(&m.payload).into_owned();
        if m.subject.ends_with(".issued") {
            assert!(
                m.subject.as_str().contains(&format!(".0222.{PROVIDER}.")),
                "{}",
                m.subject
            );
            assert!(body.contains("111222333"), "the provider needs the BSN");
            issued_traceparent = m.headers.get("traceparent").map(|v| v.as_str().to_owned());
        } else {
            assert!(!body.contains("111222333"), "{} carries a BSN", m.subject);
            assert!(!body.contains("Jansen"), "{} carries a name", m.subject);
        }
    }
    let tp = issued_traceparent.expect("the issued message carries trace context");
    assert!(tp.starts_with(&format!("00-{trace_id}-")), "{tp}");

    shutdown.trigger();
}
