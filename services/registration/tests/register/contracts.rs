//! Contracts: terms, extensions, termination and overlap; budgets and tariffs by financing.

use crate::common::{assert_invalid, assert_rule, provider, spawn_app};
use rz_proto::registration::v1 as pb;
use tonic_types::StatusExt;

/// How a refused command is told: a malformed field, a broken rule, or a gRPC code.
enum Refusal {
    Invalid(&'static str),
    Rule(&'static str),
    Code(tonic::Code),
}

/// ConcludeContract's arguments (AGB code, segment, subsegments, municipalities, start) and how
/// it is refused.
type Conclude = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
    Refusal,
);

fn assert_refused(err: &tonic::Status, want: &Refusal) {
    match want {
        Refusal::Invalid(field) => assert_invalid(err, field),
        Refusal::Rule(rule) => assert_rule(err, rule),
        Refusal::Code(code) => assert_eq!(err.code(), *code, "{err:?}"),
    }
}

#[tokio::test]
async fn contract_terms_extensions_termination_and_overlap() {
    let mut app = spawn_app().await;
    app.register("41000001", "Wmo Zorg Een").await;
    let c = app
        .conclude("41000001", "WIO", &["WIO-ONT", "WIO-PV"], &[], "2022-07-01")
        .await
        .unwrap();
    assert_eq!(c.municipalities.len(), 7);
    assert_eq!(
        (
            c.initial_end.as_str(),
            c.extensions_left,
            c.latest_possible_end.as_str()
        ),
        ("2025-06-30", 2, "2029-06-30")
    );

    let before = app.snapshot().await;
    // Malformed and unknown input; a second overlapping contract for the same subsegment and
    // municipality.
    #[rustfmt::skip]
    let concluded: [Conclude; 10] = [
        ("4100001", "WIO", &[], &[], "2022-07-01", Refusal::Invalid("agb_code")),
        ("41000001", "WIO", &["WIO-XX"], &[], "2022-07-01", Refusal::Invalid("subsegment_codes[0]")),
        ("41000001", "NOPE", &[], &[], "2022-07-01", Refusal::Invalid("segment_code")),
        ("41000001", "WIO", &[], &["9999"], "2022-07-01", Refusal::Invalid("municipalities[0]")),
        ("41000001", "WIO", &[], &["1509"], "2022-07-01", Refusal::Rule("segment.municipality_takes_part")),
        ("41000001", "WIO", &[], &[], "1-7-2022", Refusal::Invalid("start")),
        ("41000001", "WIO", &[], &[], "0000-07-01", Refusal::Invalid("start")),
        ("41000001", "WIO", &[], &[], "2101-01-01", Refusal::Invalid("start")),
        ("41000404", "WIO", &[], &[], "2022-07-01", Refusal::Code(tonic::Code::NotFound)),
        ("41000001", "WIO", &["WIO-PV"], &["0222"], "2024-01-01", Refusal::Rule("contract.no_overlap")),
    ];
    for (agb, segment, subsegments, municipalities, start, want) in &concluded {
        let err = app
            .conclude(agb, segment, subsegments, municipalities, start)
            .await
            .unwrap_err();
        assert_refused(&err, want);
    }
    // End before start; no reason.
    let err = app.terminate(&c.id, "2022-06-30", "x").await.unwrap_err();
    assert_invalid(&err, "end_date");
    let err = app.terminate(&c.id, "2023-01-01", "").await.unwrap_err();
    assert_invalid(&err, "reason");
    // Dates outside the years 1900..=2100.
    let err = app.terminate(&c.id, "9999-12-31", "x").await.unwrap_err();
    assert_invalid(&err, "end_date");
    let err = app
        .client
        .list_contracts(pb::ListContractsRequest {
            active_on: "1899-12-31".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "active_on");
    let err = app
        .client
        .check_contracted(pb::CheckContractedRequest {
            agb_code: "41000001".into(),
            subsegment_code: "WIO-PV".into(),
            municipality: "0222".into(),
            date: "2101-01-01".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "date");
    // Budgets and tariffs belong to the right financing, municipality and years.
    for (municipality, year, cents, want) in [
        (
            "1509",
            2023,
            1,
            Refusal::Rule("budget.municipality_covered"),
        ),
        ("0222", 2031, 1, Refusal::Rule("budget.year_within_term")),
        ("0222", 2023, -5, Refusal::Invalid("amount_cents")),
    ] {
        let err = app
            .budget(&c.id, municipality, year, cents)
            .await
            .unwrap_err();
        assert_refused(&err, &want);
    }
    let err = app.tariff(&c.id, "TOOLONG", "99", 100).await.unwrap_err();
    assert_invalid(&err, "product_code");
    assert_invalid(&err, "unit");
    // A product the contract's PxQ subsegments do not have: of another segment (HBH, WLOG) or
    // of none.
    for product in ["HH01", "LOG01", "PV99"] {
        let err = app.tariff(&c.id, product, "04", 6_250).await.unwrap_err();
        assert_rule(&err, "tariff.product_of_segment");
        let failure = err.get_details_precondition_failure().unwrap();
        assert_eq!(failure.violations[0].subject, "product_code");
    }
    let err = app.extend("not-a-uuid").await.unwrap_err();
    assert_invalid(&err, "contract_id");
    assert_eq!(
        app.snapshot().await,
        before,
        "refused commands changed something"
    );

    let with_budget = app.budget(&c.id, "0222", 2023, 35_000_000).await.unwrap();
    assert_eq!(
        with_budget.budgets,
        [pb::LumpsumBudget {
            municipality: "0222".into(),
            year: 2023,
            amount_cents: 35_000_000
        }]
    );
    let with_tariff = app.tariff(&c.id, "PV01", "04", 6_250).await.unwrap();
    assert_eq!(with_tariff.tariffs.len(), 1);

    // Two extensions of two years, then no third.
    let e1 = app.extend(&c.id).await.unwrap();
    assert_eq!(e1.period.unwrap().end, "2027-06-30");
    let e2 = app.extend(&c.id).await.unwrap();
    assert_eq!(
        (e2.period.unwrap().end.as_str(), e2.extensions_left),
        ("2029-06-30", 0)
    );
    let err = app.extend(&c.id).await.unwrap_err();
    assert_rule(&err, "contract.max_extensions");

    // Early termination; afterwards the provider may be contracted again from the next day.
    app.stack
        .clock()
        .set(rz_domain::parse_date("today", "2024-01-15").unwrap());
    let t = app
        .terminate(&c.id, "2023-12-31", "Kwaliteit")
        .await
        .unwrap();
    assert_eq!(
        (t.terminated_on.as_str(), t.status()),
        ("2023-12-31", pb::ContractStatus::Terminated)
    );
    let err = app.extend(&c.id).await.unwrap_err();
    assert_rule(&err, "contract.terminated");
    app.conclude("41000001", "WIO", &["WIO-PV"], &["0222"], "2024-01-01")
        .await
        .unwrap();
    let err = app
        .conclude("41000001", "WIO", &["WIO-PV"], &["0222"], "2023-12-31")
        .await
        .unwrap_err();
    assert_rule(&err, "contract.no_overlap");

    let listed = app
        .client
        .list_contracts(pb::ListContractsRequest {
            agb_code: "41000001".into(),
            active_on: "2024-06-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.contracts.len(), 1);
}

#[tokio::test]
async fn concurrent_overlapping_contracts_cannot_both_land() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    client
        .register_provider(provider("p", "03000077", "Race", "bv"))
        .await
        .unwrap();
    let mut calls = Vec::new();
    for i in 0..6 {
        let mut c = client.clone();
        calls.push(tokio::spawn(async move {
            c.conclude_contract(pb::ConcludeContractRequest {
                idempotency_key: format!("race-{i}"),
                agb_code: "03000077".into(),
                segment_code: "GWV".into(),
                subsegment_codes: vec!["GWV-PZ".into()],
                municipalities: vec!["0222".into()],
                start: format!("2022-0{}-01", 1 + i),
            })
            .await
        }));
    }
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_rule(&e, "contract.no_overlap"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(app.count("contract_coverage").await, 1);
}

#[tokio::test]
async fn an_extension_may_not_run_into_a_later_contract() {
    let mut app = spawn_app().await;
    app.register("03000088", "Verlenging BV").await;
    let old = app
        .conclude("03000088", "GWV", &["GWV-PZ"], &["0222"], "2019-01-01")
        .await
        .unwrap();
    app.conclude("03000088", "GWV", &["GWV-PZ"], &["0222"], "2022-07-01")
        .await
        .unwrap();
    let before = app.snapshot().await;
    let err = app.extend(&old.id).await.unwrap_err();
    assert_rule(&err, "contract.no_overlap");
    assert_eq!(app.snapshot().await, before);
    // Ending it early stays possible.
    app.terminate(&old.id, "2021-06-30", "Omzetting")
        .await
        .unwrap();
}

#[tokio::test]
async fn budgets_follow_the_financing() {
    let mut app = spawn_app().await;
    app.register("03000099", "Dyslexie Instituut").await;
    app.register("41000099", "Logeerhuis").await;
    let dys = app
        .conclude("03000099", "DYS", &[], &[], "2021-08-01")
        .await
        .unwrap();
    app.budget(&dys.id, "0294", 2022, 12_000_000).await.unwrap();
    let log = app
        .conclude("41000099", "WLOG", &[], &[], "2022-07-01")
        .await
        .unwrap();
    let err = app.budget(&log.id, "0294", 2022, 1).await.unwrap_err();
    assert_rule(&err, "budget.fixed_sum_only");
    let err = app.tariff(&dys.id, "DYS01", "04", 1).await.unwrap_err();
    assert_rule(&err, "tariff.pxq_only");
    app.tariff(&log.id, "LOG01", "14", 14_500).await.unwrap();
}

#[tokio::test]
async fn a_contract_that_ended_over_a_year_ago_is_not_extended() {
    let mut app = spawn_app().await;
    app.register("03000077", "Lang Geleden BV").await;
    // Runs 2019-01-01 to 2021-12-31: extensible until 2022-12-31.
    let old = app
        .conclude("03000077", "GWV", &["GWV-PZ"], &["0222"], "2019-01-01")
        .await
        .unwrap();
    app.stack
        .clock()
        .set(rz_domain::parse_date("today", "2023-01-01").unwrap());
    let before = app.snapshot().await;
    let err = app.extend(&old.id).await.unwrap_err();
    assert_rule(&err, "contract.extend_recently_ended");
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused extension changed something"
    );
    // A day earlier it was still allowed.
    app.stack
        .clock()
        .set(rz_domain::parse_date("today", "2022-12-31").unwrap());
    let extended = app.extend(&old.id).await.unwrap();
    assert_eq!(extended.period.unwrap().end, "2023-12-31");
}
