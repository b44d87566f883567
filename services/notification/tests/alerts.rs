//! Staff alerts on statutory deadlines (real access) and chain deadlines (real assignment, fed by
//! access' decisions over NATS), scanned with simulated dates through `ScanDeadlines`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::spawn_app;
use common::stack::{M, Stack, bsn, d, key_of, youth_product};
use rz_proto::assignment::v1 as asg;
use rz_proto::notification::v1 as pb;
use tonic_types::StatusExt;

#[tokio::test]
async fn alerts_go_from_upcoming_to_overdue_to_resolved_and_carry_no_bsn_or_name() {
    let mut stack = Stack::start(true).await;
    let mut app = stack
        .notification(|c| {
            c.notification.alert_within_days = 10;
        })
        .await;
    // X: a youth care application on 2022-07-01, its decision due 8 weeks later (2022-08-26).
    let (bx, by) = (bsn(10), bsn(11));
    stack.resident(&bx, "Sanne", "Jansen", "2012-05-01").await;
    stack.resident(&by, "Lotte", "Visser", "2011-04-04").await;
    let x = stack.youth_case(&bx, "2022-07-01").await;
    // Y: decided at once; its care starts on Monday 2022-08-22, so the provider's start of care
    // is due 5 working days later.
    let y = stack.youth_case(&by, "2022-07-01").await;
    stack
        .grant(
            &y,
            "2022-07-04",
            vec![youth_product("2022-08-22", "2022-12-31")],
        )
        .await;
    let assigned = stack.assignments_of(&by, 1).await.remove(0);

    let r = app.scan("2022-08-22").await;
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(
        (r.alerts_opened, r.alerts_overdue, r.alerts_resolved),
        (2, 0, 0),
        "{r:?}"
    );
    let alerts = app.alerts(M, &[pb::AlertState::Upcoming]).await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let decision = alerts.iter().find(|a| a.kind == "decision").unwrap();
    assert_eq!(decision.case_id, x);
    assert_eq!(decision.client_key, key_of(&bx));
    assert_eq!(decision.due, "2022-08-26");
    assert_eq!(decision.key, format!("access/{M}/{x}/decision"));
    let start = alerts.iter().find(|a| a.kind == "start_of_care").unwrap();
    assert_eq!(start.assignment_number, assigned.number);
    assert_eq!(start.agb_code, assigned.agb_code);
    assert!(start.client_key.is_empty() && start.case_id.is_empty());
    assert_eq!(start.last_scanned_on, "2022-08-22");

    // The same scan again changes nothing.
    app.assert_scan("2022-08-22", (0, 0, 0)).await;

    // Both due dates pass.
    app.assert_scan("2022-09-02", (0, 2, 0)).await;
    let overdue = app.alerts(M, &[pb::AlertState::Overdue]).await;
    assert_eq!(overdue.len(), 2, "{overdue:?}");
    assert!(overdue.iter().all(|a| !a.overdue_at.is_empty()));
    // Same row, same id: one alert per deadline.
    assert!(overdue.iter().any(|a| a.id == decision.id));
    assert!(app.alerts(M, &[pb::AlertState::Upcoming]).await.is_empty());

    // The decision is made and the provider reports the start of care: both resolve.
    stack
        .refuse(&x, "2022-09-05", "Er is hulp uit het eigen netwerk.")
        .await;
    stack.clock.set(d("2022-09-05"));
    stack
        .provider(&assigned.agb_code)
        .report_start_of_care(asg::ReportStartOfCareRequest {
            agb_code: assigned.agb_code.clone(),
            municipality: M.into(),
            assignment_number: assigned.number,
            start_date: "2022-08-24".into(),
        })
        .await
        .unwrap();
    app.assert_scan("2022-09-05", (0, 0, 2)).await;
    let resolved = app.alerts(M, &[pb::AlertState::Resolved]).await;
    assert_eq!(resolved.len(), 2, "{resolved:?}");
    assert!(resolved.iter().all(|a| !a.resolved_at.is_empty()));
    assert!(
        app.alerts(M, &[pb::AlertState::Upcoming, pb::AlertState::Overdue])
            .await
            .is_empty()
    );
    let all = app.alerts(M, &[]).await;
    assert_eq!(all.len(), 2);
    // Another municipality sees none of them.
    assert!(app.alerts("1859", &[]).await.is_empty());

    // No BSN and no name in any alert, nor in their table.
    let shown = format!("{all:?}");
    let table: Vec<String> = sqlx::query_scalar("SELECT row_to_json(a)::text FROM staff_alerts a")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    for secret in [
        &bx,
        &by,
        "Sanne",
        "Jansen",
        "Lotte",
        "Visser",
        "Raadhuisstraat",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
        assert!(
            table.iter().all(|row| !row.contains(secret)),
            "{secret} in {table:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_as_of_or_filter_is_invalid_argument_naming_the_field() {
    let mut app = spawn_app().await;
    let before = scan_rows(&app.pool).await;
    for bad in [
        "",
        "2022-13-01",
        "1-7-2022",
        "morgen",
        "0000-01-01",
        "1899-12-31",
        "2101-01-01",
        "9999-12-31",
    ] {
        let e = app
            .client
            .scan_deadlines(pb::ScanDeadlinesRequest { as_of: bad.into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e:?}");
        let fields: Vec<String> = e
            .get_details_bad_request()
            .unwrap()
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["as_of"], "{bad}");
    }
    assert_eq!(scan_rows(&app.pool).await, before, "nothing written");
    // Without access endpoints a valid date scans nothing and errs on nothing.
    let r = app.scan("2022-08-01").await;
    assert_eq!(r, pb::ScanDeadlinesResponse::default());
    // A municipality lists its own alerts: a malformed code is not its own (refused before the
    // handler), a bad state filter is the handler's INVALID_ARGUMENT.
    let e = app
        .municipality(M)
        .list_staff_alerts(pb::ListStaffAlertsRequest {
            municipality: "222".into(),
            states: vec![pb::AlertState::Unspecified as i32],
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("municipality"), "{e:?}");
    let e = app
        .municipality(M)
        .list_staff_alerts(pb::ListStaffAlertsRequest {
            municipality: M.into(),
            states: vec![pb::AlertState::Unspecified as i32],
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let fields: Vec<String> = e
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["states[0]"]);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_request_waiting_for_an_answer_alerts_until_it_is_answered() {
    let mut stack = Stack::start(true).await;
    let mut app = stack.notification(|_| {}).await;
    let child = bsn(20);
    stack.resident(&child, "Bram", "Mulder", "2013-03-03").await;
    // A GP referred the child; the provider asks for an assignment on Monday 2022-08-22: the
    // municipality answers within 5 working days (2022-08-29).
    stack.clock.set(d("2022-08-22"));
    let request = stack
        .provider(common::stack::P1)
        .request_assignment(asg::RequestAssignmentRequest {
            idempotency_key: "gp-1".into(),
            agb_code: common::stack::P1.into(),
            municipality: M.into(),
            bsn: child.clone(),
            subsegment_code: "IAJ-ON".into(),
            product_code: String::new(),
            period: common::stack::period("2022-09-01", "2022-12-31"),
            size: None,
            budget_cents: 0,
            referrer: Some(asg::Referrer {
                r#type: "02".into(),
                name: "Huisartsenpraktijk De Linde".into(),
                agb_code: "01012345".into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(request.answer_due, "2022-08-29");

    let r = app.scan("2022-08-22").await;
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!((r.alerts_opened, r.alerts_overdue), (1, 0), "{r:?}");
    let a = app.alerts(M, &[pb::AlertState::Upcoming]).await.remove(0);
    assert_eq!(a.kind, "request_answer");
    assert_eq!(a.request_id, request.id);
    assert_eq!(
        a.key,
        format!("assignment/{M}/request_answer/{}", request.id)
    );
    assert_eq!(a.due, "2022-08-29");
    assert_eq!(a.agb_code, common::stack::P1);
    assert!(a.client_key.is_empty());

    let r = app.scan("2022-08-30").await;
    assert_eq!((r.alerts_opened, r.alerts_overdue), (0, 1), "{r:?}");
    assert_eq!(app.alerts(M, &[pb::AlertState::Overdue]).await.len(), 1);

    stack.clock.set(d("2022-08-31"));
    stack
        .assignment
        .as_mut()
        .unwrap()
        .answer_request(asg::AnswerRequestRequest {
            request_id: request.id.clone(),
            grant: false,
            refusal_reason: "7".into(),
            date: "2022-08-31".into(),
        })
        .await
        .unwrap();
    app.assert_scan("2022-08-31", (0, 0, 1)).await;
    let all = app.alerts(M, &[]).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state(), pb::AlertState::Resolved);
    let shown = format!("{all:?}");
    for secret in [child.as_str(), "Bram", "Mulder"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    app.stop().await;
}

/// Rows a scan writes (alerts and letters), to show a refused scan wrote nothing.
async fn scan_rows(pool: &sqlx::PgPool) -> (i64, i64) {
    let n = async |t: &str| -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(pool)
            .await
            .unwrap()
    };
    (n("staff_alerts").await, n("letters").await)
}
