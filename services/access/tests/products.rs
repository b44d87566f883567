//! Granted products after the decision: change, extend and end them (never retroactively), and the
//! lists that steer the access team: deadlines of the statutory clock and expiring indications.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    TestApp, assert_invalid, assert_rule, bsn, days_from_today as day, lumpsum, output, pxq,
    spawn_app,
};
use rz_proto::access::v1 as pb;
use rz_proto::types::v1 as types;

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

/// A Wmo PxQ product and a Jeugdwet case with a lumpsum and an open-ended output product, all
/// running today; granted 40 days ago.
async fn granted(
    app: &mut TestApp,
) -> (pb::GrantedProduct, pb::GrantedProduct, pb::GrantedProduct) {
    let wmo = app
        .wmo_applied(&bsn(600), &day(-60), &day(-50), &day(-45))
        .await;
    let c = app
        .decide(&wmo.id, &day(-40), vec![pxq(&day(-30), &day(200))])
        .await
        .unwrap();
    let p = c.products[0].clone();
    app.register_adult(&bsn(601)).await;
    let jw = app.open(&bsn(601), types::Law::Jeugdwet, &day(-60)).await;
    let c = app
        .decide(
            &jw.id,
            &day(-40),
            vec![lumpsum(&day(-30), &day(200)), output(&day(-30), "")],
        )
        .await
        .unwrap();
    (p, c.products[0].clone(), c.products[1].clone())
}

#[tokio::test]
async fn products_are_changed_extended_and_ended() {
    let mut app = spawn_app().await;
    let (p, task, out) = granted(&mut app).await;
    let outbox = app.count("outbox").await;

    // CHANGE an inspanningsgericht product: a new volume, unit and frequency.
    let mut change = amendment(&p.id, pb::Amendment::Change, &day(0), "");
    change.volume = 5;
    change.unit = "01".into();
    change.frequency = "4".into();
    let changed = app.amend(change).await.unwrap();
    assert_eq!(
        (
            changed.volume,
            changed.unit.as_str(),
            changed.frequency.as_str()
        ),
        (5, "01", "4")
    );
    assert_eq!(changed.version, 2);
    assert_eq!(changed.period, p.period);

    // EXTEND: a later end.
    let extended = app
        .amend(amendment(&p.id, pb::Amendment::Extend, &day(0), &day(300)))
        .await
        .unwrap();
    assert_eq!(extended.period.as_ref().unwrap().end, day(300));
    assert_eq!(extended.version, 3);
    assert_eq!(extended.volume, 5, "the size stays");

    // END: an earlier end, not before today's decision; the product stays active until then.
    let ended = app
        .amend(amendment(&p.id, pb::Amendment::End, &day(0), &day(100)))
        .await
        .unwrap();
    assert_eq!(ended.period.as_ref().unwrap().end, day(100));
    assert_eq!(ended.status, "active");
    assert_eq!(ended.version, 4);

    // CHANGE an outputgericht product's budget; extend... an open-ended one cannot be extended.
    let mut change = amendment(&out.id, pb::Amendment::Change, &day(0), "");
    change.budget_cents = 300_000;
    let o = app.amend(change).await.unwrap();
    assert_eq!((o.budget_cents, o.version), (300_000, 2));

    // END decided earlier, ending today: active through today (an end before today is refused,
    // see tests/dates.rs).
    let t = app
        .amend(amendment(&task.id, pb::Amendment::End, &day(-10), &day(0)))
        .await
        .unwrap();
    assert_eq!(t.status, "active");
    assert_eq!(t.period.as_ref().unwrap().end, day(0));

    // The case shows the products as they are now; every amendment is recorded and published.
    let case = app
        .client
        .get_case(pb::GetCaseRequest {
            case_id: p.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case.products, [ended]);
    assert_eq!(app.count("product_amendments").await, 5);
    assert_eq!(app.count("outbox").await, outbox + 5);
}

#[tokio::test]
async fn amendments_that_break_a_rule_change_nothing() {
    let mut app = spawn_app().await;
    let (p, task, out) = granted(&mut app).await;
    app.amend(amendment(&p.id, pb::Amendment::End, &day(0), &day(100)))
        .await
        .unwrap();
    let before = app.snapshot().await;

    let err = app
        .amend(amendment(&p.id, pb::Amendment::Extend, &day(0), &day(50)))
        .await
        .unwrap_err();
    assert_rule(&err, "amendment.extend_later_end");
    let err = app
        .amend(amendment(
            &out.id,
            pb::Amendment::Extend,
            &day(0),
            &day(500),
        ))
        .await
        .unwrap_err();
    assert_rule(&err, "amendment.extend_later_end");
    let err = app
        .amend(amendment(&p.id, pb::Amendment::End, &day(0), &day(-1)))
        .await
        .unwrap_err();
    assert_rule(&err, "amendment.end_not_retroactive");
    let err = app
        .amend(amendment(&p.id, pb::Amendment::End, &day(0), &day(150)))
        .await
        .unwrap_err();
    assert_rule(&err, "amendment.end_before_current_end");
    let err = app
        .amend(amendment(&p.id, pb::Amendment::End, &day(-41), &day(50)))
        .await
        .unwrap_err();
    assert_rule(&err, "amendment.not_before_grant");
    let err = app
        .amend(amendment(&task.id, pb::Amendment::Change, &day(0), ""))
        .await
        .unwrap_err();
    assert_rule(&err, "amendment.change_needs_size");

    // CHANGE follows the product's execution variant.
    let mut change = amendment(&p.id, pb::Amendment::Change, &day(0), "");
    change.budget_cents = 100;
    change.volume = 4;
    let err = app.amend(change).await.unwrap_err();
    assert_invalid(&err, "budget_cents");
    assert_invalid(&err, "unit");
    assert_invalid(&err, "frequency");
    let mut change = amendment(&out.id, pb::Amendment::Change, &day(0), &day(9));
    change.volume = 4;
    let err = app.amend(change).await.unwrap_err();
    assert_invalid(&err, "new_end");
    assert_invalid(&err, "volume");
    assert_invalid(&err, "budget_cents");
    let mut extend = amendment(&p.id, pb::Amendment::Extend, &day(0), "");
    extend.volume = 2;
    let err = app.amend(extend).await.unwrap_err();
    assert_invalid(&err, "new_end");
    assert_invalid(&err, "volume");

    // Malformed and unknown.
    let err = app
        .amend(amendment(
            "x",
            pb::Amendment::Unspecified,
            "2026-13-01",
            "soon",
        ))
        .await
        .unwrap_err();
    for f in ["product_id", "amendment", "date", "new_end"] {
        assert_invalid(&err, f);
    }
    let err = app
        .amend(amendment(
            &uuid::Uuid::now_v7().to_string(),
            pb::Amendment::Extend,
            &day(0),
            &day(400),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn an_ended_product_is_not_amended() {
    let mut app = spawn_app().await;
    app.register_adult(&bsn(700)).await;
    let c = app.open(&bsn(700), types::Law::Jeugdwet, &day(-500)).await;
    let c = app
        .decide(&c.id, &day(-450), vec![lumpsum(&day(-400), &day(-200))])
        .await
        .unwrap();
    let p = &c.products[0];
    assert_eq!(p.status, "ended");
    let before = app.snapshot().await;
    let err = app
        .amend(amendment(&p.id, pb::Amendment::Extend, &day(0), &day(100)))
        .await
        .unwrap_err();
    assert_rule(&err, "product.active");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn deadlines_of_the_statutory_clock() {
    let mut app = spawn_app().await;
    // Wmo, applied on 12 Feb: decision due 26 Feb.
    let applied = app
        .wmo_applied(&bsn(800), "2026-01-05", "2026-02-10", "2026-02-12")
        .await;
    // Jeugdwet, applied on 2 Feb: decision due 30 Mar.
    app.register_adult(&bsn(801)).await;
    let jw = app
        .open(&bsn(801), types::Law::Jeugdwet, "2026-02-02")
        .await;
    // Wmo melding on 2 Mar: investigation due 13 Apr.
    app.register_adult(&bsn(802)).await;
    let reported = app.open(&bsn(802), types::Law::Wmo, "2026-03-02").await;
    // Not on the clock: an investigated case (waiting for the resident), decided cases.
    app.register_adult(&bsn(803)).await;
    let waiting = app.open(&bsn(803), types::Law::Wmo, "2026-01-05").await;
    app.investigate(&waiting.id, "2026-01-20").await;
    let decided = app
        .open(&bsn(803), types::Law::Jeugdwet, "2026-01-05")
        .await;
    app.decide(
        &decided.id,
        "2026-01-10",
        vec![lumpsum("2026-02-01", "2026-12-31")],
    )
    .await
    .unwrap();

    let list = |within_days| pb::ListDeadlinesRequest {
        as_of: "2026-03-01".into(),
        within_days,
    };
    let got = app
        .client
        .list_deadlines(list(14))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.deadlines,
        [pb::Deadline {
            case_id: applied.id.clone(),
            client_key: applied.client_key.clone(),
            law: types::Law::Wmo as i32,
            step: "decision".into(),
            due: "2026-02-26".into(),
            late: true,
            days_left: -3,
        }]
    );
    let got = app
        .client
        .list_deadlines(list(29))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.deadlines.len(),
        2,
        "30 Mar is due within 29 days of 1 Mar"
    );
    let d = &got.deadlines[1];
    assert_eq!(
        (
            d.case_id.as_str(),
            d.law(),
            d.step.as_str(),
            d.due.as_str(),
            d.late,
            d.days_left
        ),
        (
            jw.id.as_str(),
            types::Law::Jeugdwet,
            "decision",
            "2026-03-30",
            false,
            29
        )
    );
    let got = app
        .client
        .list_deadlines(list(43))
        .await
        .unwrap()
        .into_inner();
    let steps: Vec<_> = got
        .deadlines
        .iter()
        .map(|d| {
            (
                d.case_id.as_str(),
                d.step.as_str(),
                d.due.as_str(),
                d.days_left,
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (applied.id.as_str(), "decision", "2026-02-26", -3),
            (jw.id.as_str(), "decision", "2026-03-30", 29),
            (reported.id.as_str(), "investigation", "2026-04-13", 43),
        ]
    );
    // On the due date itself a step is not late yet.
    let got = app
        .client
        .list_deadlines(pb::ListDeadlinesRequest {
            as_of: "2026-02-26".into(),
            within_days: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.deadlines.len(), 1);
    assert!(!got.deadlines[0].late);
    assert_eq!(got.deadlines[0].days_left, 0);

    let err = app
        .client
        .list_deadlines(pb::ListDeadlinesRequest {
            as_of: String::new(),
            within_days: 7,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "as_of");
}

#[tokio::test]
async fn indications_ending_within_eight_weeks() {
    let mut app = spawn_app().await;
    let ends = [
        "2026-03-14",
        "2026-03-15",
        "2026-04-30",
        "2026-05-10",
        "2026-05-11",
        "",
    ];
    // One resident per product: the same product twice for one resident would stack.
    let mut products = Vec::new();
    for (i, e) in ends.iter().enumerate() {
        let b = bsn(900 + i as u32);
        app.register_adult(&b).await;
        let c = app.open(&b, types::Law::Jeugdwet, "2026-01-01").await;
        let c = app
            .decide(&c.id, "2026-01-20", vec![lumpsum("2026-01-01", e)])
            .await
            .unwrap();
        products.push(c.products[0].clone());
    }
    let got = app
        .client
        .list_expiring_indications(pb::ListExpiringIndicationsRequest {
            as_of: "2026-03-15".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<_> = got
        .products
        .iter()
        .map(|p| (p.id.as_str(), p.period.as_ref().unwrap().end.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (products[1].id.as_str(), "2026-03-15"),
            (products[2].id.as_str(), "2026-04-30"),
            (products[3].id.as_str(), "2026-05-10"),
        ]
    );
    let err = app
        .client
        .list_expiring_indications(pb::ListExpiringIndicationsRequest {
            as_of: "15-03-2026".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "as_of");
}
