//! The chain's deadlines and the handover as Prometheus reads them: assignment with `[metrics]
//! listen` serves `GET /metrics`; Doetinchem (0222, a municipality with an access instance) is
//! there at 0 from the start; an assignment whose start of care is more than 5 working days late
//! is `rz_deadlines_overdue{municipality="0222",kind="start_of_care"} 1`, exactly as
//! `ListChainDeadlines` lists it, also after the date moves on; a handover run counts what it
//! arranged and its replacements are waiting for their start until the new provider reports it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rz_proto::assignment::v1 as pb;
use rz_stack::{free_addr, scrape_until};

fn deadlines(metric: &str, kind: &str) -> String {
    format!("rz_deadlines_{metric}{{municipality=\"{M}\",kind=\"{kind}\"}}")
}

fn replacements(state: &str) -> String {
    format!("rz_handover_replacements{{municipality=\"{M}\",state=\"{state}\"}}")
}

fn handed(outcome: &str) -> String {
    format!("rz_handover_assignments_total{{outcome=\"{outcome}\"}}")
}

/// (open, overdue) per kind as `ListChainDeadlines` gives them on `as_of`: what the gauges must
/// show.
async fn listed(app: &TestApp, as_of: &str) -> Vec<(String, f64)> {
    let all = app
        .a
        .municipality()
        .list_chain_deadlines(pb::ListChainDeadlinesRequest {
            as_of: as_of.into(),
            municipality: M.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .deadlines;
    let mut out = Vec::new();
    for kind in ["start_of_care", "request_answer"] {
        let of_kind = all.iter().filter(|d| d.kind == kind);
        out.push((deadlines("open", kind), of_kind.clone().count() as f64));
        out.push((
            deadlines("overdue", kind),
            of_kind.filter(|d| d.late).count() as f64,
        ));
    }
    out
}

fn with(mut a: Vec<(String, f64)>, b: &[(String, f64)]) -> Vec<(String, f64)> {
    a.extend_from_slice(b);
    a
}

#[tokio::test]
async fn overdue_chain_deadlines_per_municipality_and_the_handover_are_served_as_listed() {
    let metrics = free_addr();
    let stack = Stack::builder()
        .landscape(Landscape::standard())
        .access(M)
        .assignment()
        .today(d(START))
        .assignment_config(move |c| {
            c.metrics.listen = Some(metrics);
            c.metrics.sample_secs = 1;
        })
        .start()
        .await;
    let mut app = TestApp {
        env: stack.env.clone(),
        namespace: stack.namespace().to_owned(),
        registration: stack.registration(),
        registration_endpoint: stack.registration_endpoint(),
        access: stack.access(M),
        access_endpoint: stack.access_endpoint(M),
        contracts: stack.contracts().clone(),
        a: Assignment::of(stack),
    };

    // Nothing yet: the municipality at 0, every kind, state and outcome.
    let zero = |s: String| (s, 0.0);
    scrape_until(
        metrics,
        &[
            zero(deadlines("open", "start_of_care")),
            zero(deadlines("overdue", "start_of_care")),
            zero(deadlines("open", "request_answer")),
            zero(deadlines("overdue", "request_answer")),
            zero(replacements("waiting_for_start")),
            zero(replacements("handed_over")),
            zero(handed("arranged")),
            zero(handed("already_arranged")),
            zero(handed("not_arranged")),
            zero("rz_handover_runs_total".into()),
        ],
    )
    .await;

    // Existing care of the old provider (no contract from 2022-07-01): one client whose start of
    // care was never reported (started 2021-03-01: its 5 working days long passed), one in care.
    let late = app
        .import(&bsn(1), OLD, "2021-03-01", "2023-02-28", false)
        .await
        .unwrap();
    assert_eq!(late.status(), pb::AssignmentStatus::Issued);
    app.import(&bsn(2), OLD, "2021-03-01", "2023-02-28", true)
        .await
        .unwrap();
    let want = listed(&app, START).await;
    assert!(
        want.contains(&(deadlines("overdue", "start_of_care"), 1.0)),
        "{want:?}"
    );
    scrape_until(metrics, &want).await;

    // The handover on 2022-07-01 replaces both: two new assignments, issued from 2022-07-01 (not
    // yet due on 2022-06-27), waiting for their start of care.
    let out = app
        .a
        .client
        .run_handover(pb::RunHandoverRequest {
            as_of: "2022-07-01".into(),
            municipality: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((out.newly_arranged, out.not_arranged), (2, 0), "{out:?}");
    let want = listed(&app, START).await;
    assert!(
        want.contains(&(deadlines("open", "start_of_care"), 3.0))
            && want.contains(&(deadlines("overdue", "start_of_care"), 1.0)),
        "{want:?}"
    );
    let counted = [
        (handed("arranged"), 2.0),
        (handed("already_arranged"), 0.0),
        (handed("not_arranged"), 0.0),
        ("rz_handover_runs_total".to_owned(), 1.0),
        (replacements("waiting_for_start"), 2.0),
        (replacements("handed_over"), 0.0),
    ];
    scrape_until(metrics, &with(want, &counted)).await;

    // A second run finds both arranged already.
    app.a
        .client
        .run_handover(pb::RunHandoverRequest {
            as_of: "2022-07-01".into(),
            municipality: String::new(),
        })
        .await
        .unwrap();
    scrape_until(
        metrics,
        &[
            (handed("arranged"), 2.0),
            (handed("already_arranged"), 2.0),
            ("rz_handover_runs_total".to_owned(), 2.0),
        ],
    )
    .await;

    // The new provider of the first reports its start: handed over; its deadline is met.
    let first = app.a.get(late.number).await.replaced_by_number;
    let new = app.a.get(first).await;
    app.a
        .provider(&new.agb_code)
        .report_start_of_care(pb::ReportStartOfCareRequest {
            agb_code: new.agb_code.clone(),
            municipality: M.into(),
            assignment_number: new.number,
            start_date: "2022-07-04".into(),
        })
        .await
        .unwrap();
    let want = listed(&app, START).await;
    scrape_until(
        metrics,
        &with(
            want,
            &[
                (replacements("waiting_for_start"), 1.0),
                (replacements("handed_over"), 1.0),
            ],
        ),
    )
    .await;

    // A fortnight later the other replacement's start of care is overdue too.
    app.a.clock.set(d("2022-07-15"));
    let want = listed(&app, "2022-07-15").await;
    assert!(
        want.contains(&(deadlines("overdue", "start_of_care"), want[0].1)),
        "every open one is overdue: {want:?}"
    );
    assert!(want[0].1 >= 1.0, "{want:?}");
    let text = scrape_until(metrics, &want).await;

    // Labels: municipality codes, kinds, states and outcomes only; no client key or BSN.
    for secret in [bsn(1), bsn(2), late.client_key.clone()] {
        assert!(!text.contains(&secret), "{secret} in the metrics");
    }
}
