//! The care flow through access' public API that the tests of several services walk: the products
//! a decision grants, and a case from the melding or application to the decision.

use std::time::Duration;

use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::types::v1 as types;
use tonic::transport::Channel;

use crate::fixtures::{M, key_of, period};
use crate::probe::{at_least, eventually};

/// An IAJ-ON product (Integrale Ambulante Jeugdhulp, Ondersteuning; taakgericht, lumpsum: no
/// size), with the provider the municipality prefers (`""`: none).
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

/// A WIO-PV product (Wmo Persoonlijke Verzorging; inspanningsgericht, PxQ): 3 hours a week.
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

/// A ZHZ product (Ziekenhuiszorg; outputgericht, a separate contract) with a budget of EUR 2,500.
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

/// Existing care of `agb` for IAJ-ON in Doetinchem ([`M`]), imported (started or not) for a
/// resident assignment has not seen.
pub fn import_request(
    bsn: &str,
    agb: &str,
    start: &str,
    end: &str,
    started: bool,
) -> asg::ImportAssignmentRequest {
    asg::ImportAssignmentRequest {
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

/// Opens a case for a registered resident under the idempotency key `key`; panics (the test
/// fails) when access refuses.
pub async fn open_case(
    access: &mut AccessServiceClient<Channel>,
    key: String,
    bsn: &str,
    law: types::Law,
    date: &str,
) -> acc::Case {
    access
        .open_case(acc::OpenCaseRequest {
            idempotency_key: key,
            bsn: bsn.into(),
            law: law as i32,
            date: date.into(),
        })
        .await
        .expect("case opens")
        .into_inner()
}

/// Completes the investigation of a Wmo case and submits the application, both on `date`.
pub async fn investigate_and_apply(
    access: &mut AccessServiceClient<Channel>,
    case_id: &str,
    date: &str,
) {
    access
        .complete_investigation(acc::CompleteInvestigationRequest {
            case_id: case_id.into(),
            date: date.into(),
        })
        .await
        .expect("investigated");
    access
        .submit_application(acc::SubmitApplicationRequest {
            case_id: case_id.into(),
            date: date.into(),
        })
        .await
        .expect("applied");
}

/// Decides a case on `date`: grants `grant`, or refuses it for `refusal_reason` when `grant` is
/// empty.
pub async fn decide(
    access: &mut AccessServiceClient<Channel>,
    case_id: &str,
    date: &str,
    grant: Vec<acc::ProductToGrant>,
    refusal_reason: &str,
) -> Result<acc::Case, tonic::Status> {
    access
        .decide(acc::DecideRequest {
            case_id: case_id.into(),
            date: date.into(),
            grant,
            refusal_reason: refusal_reason.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Waits (at most `within`) until assignment has `n` assignments for the resident in
/// Doetinchem ([`M`]), and returns them.
pub async fn assignments_of(
    assignment: &mut AssignmentServiceClient<Channel>,
    bsn: &str,
    n: usize,
    within: Duration,
) -> Vec<asg::Assignment> {
    let request = asg::ListClientAssignmentsRequest {
        municipality: M.into(),
        client_key: key_of(bsn),
    };
    eventually(within, async || {
        let got = assignment
            .list_client_assignments(request.clone())
            .await
            .unwrap()
            .into_inner()
            .assignments;
        let seen = format!("assignments: {got:?}");
        at_least(got, n, &seen)
    })
    .await
}
