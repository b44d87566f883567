//! Cases on the statutory clock and decisions, end to end; every refused step with its precise
//! status, changing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    assert_invalid, assert_invalid_says, assert_rule, bsn, lumpsum, open_request, output, period,
    pxq, spawn_app,
};
use rz_proto::access::v1 as pb;
use rz_proto::types::v1 as types;

#[tokio::test]
async fn the_wmo_path_melding_investigation_application_decision() {
    let mut app = spawn_app().await;
    let b = bsn(100);
    let resident = app.register_adult(&b).await;

    let c = app.open(&b, types::Law::Wmo, "2026-03-02").await;
    assert_eq!(c.status(), pb::CaseStatus::Reported);
    assert_eq!(c.law(), types::Law::Wmo);
    assert_eq!(c.client_key, resident.client_key);
    assert_eq!(c.reported_on, "2026-03-02");
    assert_eq!(c.investigation_due, "2026-04-13", "6 weeks");
    assert_eq!(c.decision_due, "");

    // Idempotent: the same melding under the same key is the same case.
    let again = app.open(&b, types::Law::Wmo, "2026-03-02").await;
    assert_eq!(again.id, c.id);
    assert_eq!(app.count("cases").await, 1);

    let c = app.investigate(&c.id, "2026-04-01").await;
    assert_eq!(c.status(), pb::CaseStatus::Investigated);
    assert_eq!(c.investigated_on, "2026-04-01");

    let c = app.apply(&c.id, "2026-04-03").await;
    assert_eq!(c.status(), pb::CaseStatus::Applied);
    assert_eq!(c.applied_on, "2026-04-03");
    assert_eq!(c.decision_due, "2026-04-17", "2 weeks");

    let c = app
        .decide(&c.id, "2026-04-10", vec![pxq("2026-04-15", "2026-10-14")])
        .await
        .unwrap();
    assert_eq!(c.status(), pb::CaseStatus::Granted);
    assert_eq!(c.decided_on, "2026-04-10");
    assert_eq!(c.products.len(), 1);
    let p = &c.products[0];
    assert_eq!(p.case_id, c.id);
    assert_eq!(p.client_key, resident.client_key);
    assert_eq!(p.law(), types::Law::Wmo);
    assert_eq!(p.segment_code, "WIO");
    assert_eq!(p.subsegment_code, "WIO-PV");
    assert_eq!(p.product_category, "03");
    assert_eq!(p.product_code, "PV01");
    assert_eq!(
        p.execution_variant(),
        types::ExecutionVariant::Inspanningsgericht
    );
    assert_eq!(
        (p.volume, p.unit.as_str(), p.frequency.as_str()),
        (3, "04", "2")
    );
    assert_eq!(p.budget_cents, 0);
    assert_eq!(p.goal(), pb::Goal::TimelyLastingResult);
    assert_eq!(p.preferred_provider_agb, "03000001");
    assert_eq!(p.version, 1);

    let stored = app
        .client
        .get_case(pb::GetCaseRequest {
            case_id: c.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored, c);
    // opened, investigated, applied: case_changed; granted: decision_granted.
    assert_eq!(app.count("outbox").await, 4);
}

#[tokio::test]
async fn the_jeugdwet_path_application_then_decision_with_lumpsum_and_separate_contract() {
    let mut app = spawn_app().await;
    let b = bsn(200);
    let mut r = common::resident_request(&b, &common::years_ago(10));
    r.legal_representative = Some(pb::LegalRepresentative {
        name: "M. de Vries".into(),
        relation: "ouder".into(),
    });
    app.client.register_resident(r).await.unwrap();

    let c = app.open(&b, types::Law::Jeugdwet, "2026-01-05").await;
    assert_eq!(c.status(), pb::CaseStatus::Applied);
    assert_eq!(c.applied_on, "2026-01-05");
    assert_eq!(c.decision_due, "2026-03-02", "8 weeks");
    assert_eq!(c.reported_on, "");
    assert_eq!(c.investigation_due, "");

    let c = app
        .decide(
            &c.id,
            "2026-02-20",
            vec![
                lumpsum("2026-03-01", "2026-12-31"),
                output("2026-03-01", ""),
            ],
        )
        .await
        .unwrap();
    assert_eq!(c.status(), pb::CaseStatus::Granted);
    let [task, out] = &c.products[..] else {
        panic!("two products: {:?}", c.products)
    };
    assert_eq!(task.segment_code, "IAJ");
    assert_eq!(task.product_category, "45");
    assert_eq!(
        task.execution_variant(),
        types::ExecutionVariant::Taakgericht
    );
    assert_eq!(
        (task.budget_cents, task.volume, task.unit.as_str()),
        (0, 0, "")
    );
    assert_eq!(task.period, period("2026-03-01", "2026-12-31"));
    assert_eq!(out.segment_code, "ZHZ");
    assert_eq!(out.product_category, "53");
    assert_eq!(
        out.execution_variant(),
        types::ExecutionVariant::Outputgericht
    );
    assert_eq!(out.budget_cents, 250_000);
    assert_eq!(out.period, period("2026-03-01", ""), "open-ended");
    assert_eq!(out.status, "active");
}

#[tokio::test]
async fn a_decision_can_refuse() {
    let mut app = spawn_app().await;
    let b = bsn(300);
    app.register_adult(&b).await;
    let c = app.open(&b, types::Law::Jeugdwet, "2026-01-05").await;
    let refused = app
        .client
        .decide(pb::DecideRequest {
            case_id: c.id.clone(),
            date: "2026-01-20".into(),
            grant: vec![],
            refusal_reason: "Voorliggende voorziening volstaat".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refused.status(), pb::CaseStatus::Refused);
    assert_eq!(refused.refusal_reason, "Voorliggende voorziening volstaat");
    assert_eq!(refused.decided_on, "2026-01-20");
    assert!(refused.products.is_empty());
    assert_eq!(app.count("products").await, 0);

    // A decided case takes no second decision.
    let before = app.snapshot().await;
    let err = app
        .decide(
            &c.id,
            "2026-01-21",
            vec![lumpsum("2026-02-01", "2026-12-31")],
        )
        .await
        .unwrap_err();
    assert_rule(&err, "case.step_order");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn case_steps_out_of_order_or_out_of_time_are_refused_and_change_nothing() {
    let mut app = spawn_app().await;
    let b = bsn(400);
    app.register_adult(&b).await;
    let wmo = app.open(&b, types::Law::Wmo, "2026-03-02").await;
    let jw = app.open(&b, types::Law::Jeugdwet, "2026-03-02").await;
    let before = app.snapshot().await;

    // Jeugdwet has no investigation or separate application step.
    let err = app.try_investigate(&jw.id, "2026-03-10").await.unwrap_err();
    assert_rule(&err, "case.wmo_step");
    let err = app.try_apply(&jw.id, "2026-03-10").await.unwrap_err();
    assert_rule(&err, "case.wmo_step");

    // A REPORTED Wmo case is not decided, nor applied for before the investigation.
    let err = app
        .decide(&wmo.id, "2026-03-10", vec![pxq("2026-04-01", "2026-12-31")])
        .await
        .unwrap_err();
    assert_rule(&err, "case.step_order");
    let err = app.try_apply(&wmo.id, "2026-03-10").await.unwrap_err();
    assert_rule(&err, "case.step_order");

    // A step dated before the previous one.
    let err = app
        .try_investigate(&wmo.id, "2026-03-01")
        .await
        .unwrap_err();
    assert_rule(&err, "case.date_order");
    let err = app
        .decide(
            &jw.id,
            "2026-03-01",
            vec![lumpsum("2026-04-01", "2026-12-31")],
        )
        .await
        .unwrap_err();
    assert_rule(&err, "case.date_order");

    // Unknown and malformed cases, malformed dates.
    let err = app
        .try_investigate(&uuid::Uuid::now_v7().to_string(), "2026-03-10")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = app
        .try_investigate("case-1", "10-03-2026")
        .await
        .unwrap_err();
    assert_invalid(&err, "case_id");
    assert_invalid(&err, "date");
    let err = app
        .client
        .get_case(pb::GetCaseRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // Opening: an unregistered resident, no law, no idempotency key.
    let err = app
        .client
        .open_case(open_request(&bsn(401), types::Law::Wmo, "2026-03-02"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let err = app
        .client
        .open_case(open_request(&b, types::Law::Unspecified, "2026-03-02"))
        .await
        .unwrap_err();
    assert_invalid(&err, "law");
    let mut r = open_request(&b, types::Law::Wmo, "2026-3-2");
    r.idempotency_key = String::new();
    r.bsn = "123456789".into();
    let err = app.client.open_case(r).await.unwrap_err();
    assert_invalid(&err, "idempotency_key");
    assert_invalid(&err, "bsn");
    assert_invalid(&err, "date");
    // The key of the first melding, for another request.
    let mut r = open_request(&b, types::Law::Wmo, "2026-03-02");
    r.date = "2026-03-03".into();
    let err = app.client.open_case(r).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);

    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn decisions_follow_the_catalogue_and_the_execution_variant() {
    let mut app = spawn_app().await;
    let b = bsn(500);
    app.register_adult(&b).await;
    let jw = app.open(&b, types::Law::Jeugdwet, "2026-03-02").await;
    let wmo = app
        .wmo_applied(&bsn(501), "2026-03-02", "2026-03-20", "2026-03-23")
        .await;
    let before = app.snapshot().await;
    let (start, end) = ("2026-04-01", "2026-12-31");

    // Grant and refuse at once, or neither.
    let err = app
        .client
        .decide(pb::DecideRequest {
            case_id: jw.id.clone(),
            date: "2026-03-10".into(),
            grant: vec![lumpsum(start, end)],
            refusal_reason: "nee".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "refusal_reason");
    let err = app.decide(&jw.id, "2026-03-10", vec![]).await.unwrap_err();
    assert_invalid(&err, "grant");

    // The subsegment's law must be the case's law.
    let err = app
        .decide(&jw.id, "2026-03-10", vec![pxq(start, end)])
        .await
        .unwrap_err();
    assert_rule(&err, "product.law_matches_case");
    let err = app
        .decide(&wmo.id, "2026-03-25", vec![lumpsum(start, end)])
        .await
        .unwrap_err();
    assert_rule(&err, "product.law_matches_case");

    // Doetinchem buys Hulp bij het Huishouden on its own, not through the joint contracts.
    let mut hbh = pxq(start, end);
    hbh.subsegment_code = "HBH".into();
    hbh.product_code = "HH01".into();
    let err = app
        .decide(&wmo.id, "2026-03-25", vec![hbh])
        .await
        .unwrap_err();
    assert_rule(&err, "product.municipality_takes_part");

    // An inspanningsgericht product names one of its subsegment's product codes (the 301 does).
    let mut p = pxq(start, end);
    p.product_code = String::new();
    let err = app
        .decide(&wmo.id, "2026-03-25", vec![p])
        .await
        .unwrap_err();
    assert_invalid_says(&err, "grant[0].product_code", "one of PV01, PV02");
    let mut p = pxq(start, end);
    p.product_code = "HH01".into();
    let err = app
        .decide(&wmo.id, "2026-03-25", vec![p])
        .await
        .unwrap_err();
    assert_invalid_says(
        &err,
        "grant[0].product_code",
        "must be one of the subsegment's product codes",
    );

    // taakgericht: no budget, volume, unit or frequency.
    let mut p = lumpsum(start, end);
    p.budget_cents = 100;
    p.volume = 2;
    p.unit = "04".into();
    p.frequency = "2".into();
    let err = app.decide(&jw.id, "2026-03-10", vec![p]).await.unwrap_err();
    for f in ["budget_cents", "volume", "unit", "frequency"] {
        assert_invalid_says(
            &err,
            &format!("grant[0].{f}"),
            "must be empty for a taakgericht product",
        );
    }

    // outputgericht: a budget, no volume.
    let mut p = output(start, end);
    p.budget_cents = 0;
    p.volume = 5;
    let err = app
        .decide(&jw.id, "2026-03-10", vec![lumpsum(start, end), p])
        .await
        .unwrap_err();
    assert_invalid_says(&err, "grant[1].budget_cents", "more than 0");
    assert_invalid_says(
        &err,
        "grant[1].volume",
        "must be empty for an outputgericht product",
    );

    // inspanningsgericht: volume, unit (WJ756) and frequency (WMO757), no budget.
    let mut p = pxq(start, end);
    p.volume = 0;
    p.unit = "99".into();
    p.frequency = String::new();
    p.budget_cents = 500;
    let err = app
        .decide(&wmo.id, "2026-03-25", vec![p])
        .await
        .unwrap_err();
    assert_invalid_says(&err, "grant[0].volume", "more than 0");
    assert_invalid_says(&err, "grant[0].unit", "WJ756");
    assert_invalid_says(&err, "grant[0].frequency", "WMO757");
    assert_invalid_says(
        &err,
        "grant[0].budget_cents",
        "must be empty for an inspanningsgericht product",
    );

    // The other fields of a product.
    let mut p = lumpsum("2026-12-31", "2026-04-01");
    p.subsegment_code = "IAJ-XX".into();
    p.result = " ".into();
    p.goal = pb::Goal::Unspecified as i32;
    p.product_code = "TOOLONG".into();
    p.preferred_provider_agb = "123".into();
    let mut q = lumpsum(start, end);
    q.period = None;
    let err = app
        .decide(&jw.id, "2026-03-10", vec![p, q])
        .await
        .unwrap_err();
    assert_invalid(&err, "grant[0].subsegment_code");
    assert_invalid(&err, "grant[0].result");
    assert_invalid(&err, "grant[0].goal");
    assert_invalid(&err, "grant[0].product_code");
    assert_invalid(&err, "grant[0].preferred_provider_agb");
    assert_invalid_says(&err, "grant[0].period.end", "before the start");
    assert_invalid(&err, "grant[1].period");
    let err = app
        .decide(&jw.id, "2026-03-10", vec![lumpsum("2026-04-31", "")])
        .await
        .unwrap_err();
    assert_invalid(&err, "grant[0].period.start");

    assert_eq!(app.snapshot().await, before);

    // Both can still be decided properly.
    app.decide(&jw.id, "2026-03-10", vec![lumpsum(start, end)])
        .await
        .unwrap();
    app.decide(&wmo.id, "2026-03-25", vec![pxq(start, end)])
        .await
        .unwrap();
}
