//! Dates and stacking over gRPC (issue 14): every date field lies in the years 1900..=2100
//! (INVALID_ARGUMENT naming the field); a decision is not dated after today nor grants care from
//! before the application; an amendment is not dated after today and END never ends a product
//! before today; a second grant of the same product for an overlapping period is refused up front
//! (`decide.no_stacking`). Each refusal changes no row and publishes no event.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    TestApp, assert_invalid, assert_rule, bsn, days_from_today as day, lumpsum, output, pxq,
    spawn_app,
};
use rz_proto::access::v1 as pb;
use rz_proto::types::v1 as types;
use tonic_types::StatusExt;

/// FAILED_PRECONDITION naming `rule` for `subject`.
fn assert_rule_on(err: &tonic::Status, rule: &str, subject: &str) {
    assert_rule(err, rule);
    let failure = err.get_details_precondition_failure().unwrap();
    assert!(
        failure
            .violations
            .iter()
            .any(|v| v.r#type == rule && v.subject == subject),
        "{rule} not for {subject}: {:?}",
        failure.violations
    );
}

fn amendment(
    product: &str,
    kind: pb::Amendment,
    date: &str,
    new_end: &str,
) -> pb::AmendProductRequest {
    pb::AmendProductRequest {
        product_id: product.into(),
        amendment: kind as i32,
        date: date.into(),
        new_end: new_end.into(),
        ..Default::default()
    }
}

/// Row counts unchanged since `before`, and JetStream holds exactly the outbox's events.
async fn nothing_changed(app: &TestApp, before: &[(&'static str, i64)]) {
    assert_eq!(app.snapshot().await, before);
    let outbox = app.count("outbox").await;
    let published = app.events(outbox as u64).await;
    assert_eq!(published.len() as i64, outbox, "no event beyond the outbox");
}

#[tokio::test]
async fn dates_outside_1900_to_2100_are_malformed() {
    let mut app = spawn_app().await;
    let wmo = app
        .wmo_applied(&bsn(100), &day(-30), &day(-20), &day(-10))
        .await;
    let granted = app
        .decide(&wmo.id, &day(-5), vec![pxq(&day(0), &day(100))])
        .await
        .unwrap();
    let product = granted.products[0].id.clone();
    app.register_adult(&bsn(101)).await;
    let jw = app.open(&bsn(101), types::Law::Jeugdwet, &day(-10)).await;
    let before = app.snapshot().await;

    for birth in ["1899-12-31", "0000-01-01"] {
        let err = app
            .client
            .register_resident(common::resident_request(&bsn(102), birth))
            .await
            .unwrap_err();
        assert_invalid(&err, "birth_date");
    }
    for date in ["0000-01-01", "9999-12-31", "1899-12-31", "2101-01-01"] {
        let err = app
            .client
            .open_case(common::open_request(&bsn(101), types::Law::Jeugdwet, date))
            .await
            .unwrap_err();
        assert_invalid(&err, "date");
        let err = app.try_investigate(&wmo.id, date).await.unwrap_err();
        assert_invalid(&err, "date");
        let err = app.decide(&jw.id, date, vec![]).await.unwrap_err();
        assert_invalid(&err, "date");
        let err = app
            .decide(&jw.id, &day(0), vec![lumpsum(date, "")])
            .await
            .unwrap_err();
        assert_invalid(&err, "grant[0].period.start");
        let err = app
            .decide(&jw.id, &day(0), vec![lumpsum(&day(0), date)])
            .await
            .unwrap_err();
        assert_invalid(&err, "grant[0].period.end");
        let err = app
            .amend(amendment(&product, pb::Amendment::Extend, date, &day(200)))
            .await
            .unwrap_err();
        assert_invalid(&err, "date");
        let err = app
            .amend(amendment(&product, pb::Amendment::Extend, &day(0), date))
            .await
            .unwrap_err();
        assert_invalid(&err, "new_end");
        let err = app
            .client
            .list_deadlines(pb::ListDeadlinesRequest {
                as_of: date.into(),
                within_days: 7,
            })
            .await
            .unwrap_err();
        assert_invalid(&err, "as_of");
        let err = app
            .client
            .list_expiring_indications(pb::ListExpiringIndicationsRequest { as_of: date.into() })
            .await
            .unwrap_err();
        assert_invalid(&err, "as_of");
    }
    // The edges of the window are dates like any other.
    app.client
        .list_deadlines(pb::ListDeadlinesRequest {
            as_of: "2100-12-31".into(),
            within_days: 0,
        })
        .await
        .unwrap();
    app.client
        .list_expiring_indications(pb::ListExpiringIndicationsRequest {
            as_of: "1900-01-01".into(),
        })
        .await
        .unwrap();
    nothing_changed(&app, &before).await;
}

#[tokio::test]
async fn decisions_are_not_dated_after_today_nor_grant_care_before_the_application() {
    let mut app = spawn_app().await;
    app.register_adult(&bsn(200)).await;
    let jw = app.open(&bsn(200), types::Law::Jeugdwet, &day(-20)).await;
    let before = app.snapshot().await;

    let err = app
        .decide(&jw.id, &day(1), vec![lumpsum(&day(1), &day(100))])
        .await
        .unwrap_err();
    assert_rule_on(&err, "decide.not_in_future", "date");
    // A refusal dated after today too.
    let err = rz_stack::decide(&mut app.client, &jw.id, &day(400), vec![], "geen noodzaak")
        .await
        .unwrap_err();
    assert_rule_on(&err, "decide.not_in_future", "date");
    // Granted from the day before the application: refused; from the application on: granted.
    let err = app
        .decide(
            &jw.id,
            &day(0),
            vec![lumpsum(&day(0), &day(100)), output(&day(-21), "")],
        )
        .await
        .unwrap_err();
    assert_rule_on(
        &err,
        "decide.period_after_application",
        "grant[1].period.start",
    );
    // Before the application itself: the statutory order (unchanged).
    let err = app
        .decide(&jw.id, &day(-21), vec![lumpsum(&day(-20), &day(100))])
        .await
        .unwrap_err();
    assert_rule(&err, "case.date_order");
    nothing_changed(&app, &before).await;

    let c = app
        .decide(&jw.id, &day(0), vec![lumpsum(&day(-20), &day(100))])
        .await
        .unwrap();
    assert_eq!(c.products[0].period.as_ref().unwrap().start, day(-20));
}

#[tokio::test]
async fn amendments_are_not_dated_after_today_and_end_never_before_today() {
    let mut app = spawn_app().await;
    let wmo = app
        .wmo_applied(&bsn(300), &day(-60), &day(-50), &day(-45))
        .await;
    let c = app
        .decide(&wmo.id, &day(-40), vec![pxq(&day(-30), &day(200))])
        .await
        .unwrap();
    let p = c.products[0].id.clone();
    let before = app.snapshot().await;

    // END decided ten days ago, ending five days ago: retroactive (the started care would end
    // before today), refused as the withdrawal of an assignment is.
    let err = app
        .amend(amendment(&p, pb::Amendment::End, &day(-10), &day(-5)))
        .await
        .unwrap_err();
    assert_rule_on(&err, "amendment.end_not_retroactive", &p);
    let err = app
        .amend(amendment(&p, pb::Amendment::End, &day(0), &day(-1)))
        .await
        .unwrap_err();
    assert_rule_on(&err, "amendment.end_not_retroactive", &p);
    // Dated after today.
    let err = app
        .amend(amendment(&p, pb::Amendment::Extend, &day(1), &day(300)))
        .await
        .unwrap_err();
    assert_rule_on(&err, "amendment.not_in_future", &p);
    let err = app
        .amend(amendment(&p, pb::Amendment::End, &day(3), &day(10)))
        .await
        .unwrap_err();
    assert_rule_on(&err, "amendment.not_in_future", &p);
    nothing_changed(&app, &before).await;

    // Ending today is not retroactive.
    let ended = app
        .amend(amendment(&p, pb::Amendment::End, &day(-3), &day(0)))
        .await
        .unwrap();
    assert_eq!(ended.period.as_ref().unwrap().end, day(0));
    assert_eq!(ended.status, "active");
}

#[tokio::test]
async fn the_same_product_is_not_granted_twice_for_an_overlapping_period() {
    let mut app = spawn_app().await;
    app.register_adult(&bsn(400)).await;
    let first = app.open(&bsn(400), types::Law::Jeugdwet, &day(-60)).await;
    let c = app
        .decide(&first.id, &day(-50), vec![lumpsum(&day(-40), &day(100))])
        .await
        .unwrap();
    let granted = c.products[0].id.clone();
    let second = app.open(&bsn(400), types::Law::Jeugdwet, &day(-30)).await;
    // (Another date: the helper's idempotency key is made of BSN, law and date.)
    let third = app.open(&bsn(400), types::Law::Jeugdwet, &day(-29)).await;
    let before = app.snapshot().await;

    // Overlapping the granted product by one day (end dates are inclusive), or open-ended.
    for (start, end) in [(day(100), day(200)), (day(-20), String::new())] {
        let err = app
            .decide(&second.id, &day(0), vec![lumpsum(&start, &end)])
            .await
            .unwrap_err();
        assert_rule_on(&err, "decide.no_stacking", "grant[0]");
        assert!(err.message().contains(&granted), "{}", err.message());
    }
    // Within one decision: the same product twice for overlapping periods.
    let err = app
        .decide(
            &second.id,
            &day(0),
            vec![lumpsum(&day(200), &day(300)), lumpsum(&day(300), &day(400))],
        )
        .await
        .unwrap_err();
    assert_rule_on(&err, "decide.no_stacking", "grant[1]");
    nothing_changed(&app, &before).await;

    // After the granted product ends, or other products for the same period (IAJ-BH shares
    // IAJ-ON's product category 45, yet is another product of the catalogue): granted.
    let c = app
        .decide(&second.id, &day(0), vec![lumpsum(&day(101), &day(200))])
        .await
        .unwrap();
    assert_eq!(c.status(), pb::CaseStatus::Granted);
    let c = app
        .decide(
            &third.id,
            &day(0),
            vec![output(&day(-20), ""), behandeling(&day(-20), &day(100))],
        )
        .await
        .unwrap();
    assert_eq!(c.status(), pb::CaseStatus::Granted);

    // Ending the first product earlier does not make room for a stacked grant before its end.
    let fourth = app.open(&bsn(400), types::Law::Jeugdwet, &day(-10)).await;
    app.amend(amendment(&granted, pb::Amendment::End, &day(0), &day(10)))
        .await
        .unwrap();
    let err = app
        .decide(&fourth.id, &day(0), vec![lumpsum(&day(5), &day(50))])
        .await
        .unwrap_err();
    assert_rule_on(&err, "decide.no_stacking", "grant[0]");
    let c = app
        .decide(&fourth.id, &day(0), vec![lumpsum(&day(11), &day(100))])
        .await
        .unwrap();
    assert_eq!(c.status(), pb::CaseStatus::Granted);
}

/// An IAJ-BH (Behandeling) product: the same product category as IAJ-ON (45), another subsegment.
fn behandeling(start: &str, end: &str) -> pb::ProductToGrant {
    pb::ProductToGrant {
        subsegment_code: "IAJ-BH".into(),
        ..lumpsum(start, end)
    }
}
