//! The providers' start and stop of care (305/307) and the municipality's withdrawal, each rule in
//! its unhappy form with a precise status; a refused message changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rz_proto::assignment::v1 as pb;

fn start(agb: &str, number: u32, date: &str) -> pb::ReportStartOfCareRequest {
    pb::ReportStartOfCareRequest {
        agb_code: agb.into(),
        municipality: M.into(),
        assignment_number: number,
        start_date: date.into(),
    }
}

fn stop(agb: &str, number: u32, date: &str, reason: &str) -> pb::ReportStopOfCareRequest {
    pb::ReportStopOfCareRequest {
        agb_code: agb.into(),
        municipality: M.into(),
        assignment_number: number,
        end_date: date.into(),
        end_reason: reason.into(),
    }
}

fn withdraw(number: u32, date: &str, reason: &str) -> pb::WithdrawAssignmentRequest {
    pb::WithdrawAssignmentRequest {
        municipality: M.into(),
        assignment_number: number,
        date: date.into(),
        reason: reason.into(),
    }
}

#[tokio::test]
async fn start_of_care_rules() {
    let mut app = spawn_app().await;
    let a = app
        .import(&bsn(1), P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    // The provider reports with its own certificate.
    let mut c = app.a.provider(P1);
    let before = app.a.snapshot().await;

    let e = c
        .report_start_of_care(pb::ReportStartOfCareRequest {
            agb_code: P1.into(),
            municipality: "222".into(),
            assignment_number: 0,
            start_date: "04-07-2022".into(),
        })
        .await
        .unwrap_err();
    for field in ["municipality", "assignment_number", "start_date"] {
        assert_invalid(&e, field);
    }
    // A malformed AGB code is not the caller's own: refused before the handler.
    let e = c
        .report_start_of_care(pb::ReportStartOfCareRequest {
            agb_code: "3010001".into(),
            ..start(P1, a.number, "2022-07-04")
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = c
        .report_start_of_care(start(P1, 4242, "2022-07-04"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // Another provider, naming itself, on P1's assignment: not its assignment.
    let e = app
        .a
        .provider(P2)
        .report_start_of_care(start(P2, a.number, "2022-07-04"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = c
        .report_start_of_care(start(P1, a.number, "2022-06-30"))
        .await
        .unwrap_err();
    assert_rule(&e, "start.not_before_assignment_start");
    let e = c
        .report_start_of_care(start(P1, a.number, "2023-01-01"))
        .await
        .unwrap_err();
    assert_rule(&e, "start.within_assignment");
    assert_eq!(
        app.a.snapshot().await,
        before,
        "refused starts change nothing"
    );

    let mut c = app.a.provider(P1);
    let started = c
        .report_start_of_care(start(P1, a.number, "2022-07-04"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.status(), pb::AssignmentStatus::Started);
    assert_eq!(started.started_on, "2022-07-04");
    let before = app.a.snapshot().await;
    let mut c = app.a.provider(P1);
    let e = c
        .report_start_of_care(start(P1, a.number, "2022-07-05"))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        tonic::Code::AlreadyExists,
        "only one active start"
    );
    assert_eq!(app.a.snapshot().await, before);
    let lifecycle: Vec<_> = app
        .a
        .outbox()
        .await
        .into_iter()
        .filter(|(s, _)| *s == app.a.subject(None, "lifecycle"))
        .collect();
    assert_eq!(lifecycle.len(), 2, "issued and started");
}

#[tokio::test]
async fn stop_of_care_rules_per_law() {
    let mut app = spawn_app().await;
    let issued = app
        .import(&bsn(1), P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    let started = app
        .import(&bsn(2), P1, "2022-07-01", "2022-12-31", true)
        .await
        .unwrap();
    let mut wmo = import_request(&bsn(3), PV1, "2022-07-01", "2023-06-30", true);
    wmo.subsegment_code = "WIO-PV".into();
    wmo.product_code = "PV01".into();
    wmo.size = Some(pb::Size {
        volume: 3,
        unit: "04".into(),
        frequency: "2".into(),
    });
    let wmo = app
        .a
        .client
        .import_assignment(wmo)
        .await
        .unwrap()
        .into_inner();
    let before = app.a.snapshot().await;
    let (mut c, mut pv1) = (app.a.provider(P1), app.a.provider(PV1));

    let e = c
        .report_stop_of_care(stop(P1, issued.number, "2022-09-30", "31"))
        .await
        .unwrap_err();
    assert_rule(&e, "stop.care_started");
    let e = c
        .report_stop_of_care(stop(P1, started.number, "2022-09-30", ""))
        .await
        .unwrap_err();
    assert_invalid(&e, "end_reason");
    // 19 is a Wmo end reason (WMO588), not in JZ588.
    let e = c
        .report_stop_of_care(stop(P1, started.number, "2022-09-30", "19"))
        .await
        .unwrap_err();
    assert_invalid(&e, "end_reason");
    // 32 is a youth end reason (JZ588), not in WMO588.
    let e = pv1
        .report_stop_of_care(stop(PV1, wmo.number, "2022-09-30", "32"))
        .await
        .unwrap_err();
    assert_invalid(&e, "end_reason");
    // Another provider, naming itself, on P1's assignment: not its assignment.
    let e = app
        .a
        .provider(P2)
        .report_stop_of_care(stop(P2, started.number, "2022-09-30", "31"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = c
        .report_stop_of_care(stop(P1, started.number, "2022-06-30", "31"))
        .await
        .unwrap_err();
    assert_rule(&e, "stop.not_before_start");
    let e = c
        .report_stop_of_care(stop(P1, started.number, "2023-01-15", "31"))
        .await
        .unwrap_err();
    assert_rule(&e, "stop.within_assignment");
    let e = c
        .report_stop_of_care(stop(P1, 999, "2022-09-30", "31"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(
        app.a.snapshot().await,
        before,
        "refused stops change nothing"
    );

    let mut c = app.a.provider(P1);
    let stopped = c
        .report_stop_of_care(stop(P1, started.number, "2022-09-30", "31"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.status(), pb::AssignmentStatus::Stopped);
    assert_eq!(
        (stopped.stopped_on.as_str(), stopped.end_reason.as_str()),
        ("2022-09-30", "31")
    );
    let e = c
        .report_stop_of_care(stop(P1, started.number, "2022-10-30", "31"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    let e = c
        .report_start_of_care(start(P1, started.number, "2022-10-01"))
        .await
        .unwrap_err();
    assert_rule(&e, "start.assignment_active");
    let w = pv1
        .report_stop_of_care(stop(PV1, wmo.number, "2022-12-31", "19"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.status(), pb::AssignmentStatus::Stopped);
}

#[tokio::test]
async fn withdrawal_is_never_retroactive() {
    let mut app = spawn_app().await;
    let a = app
        .import(&bsn(1), P1, "2022-07-01", "2022-12-31", true)
        .await
        .unwrap();
    app.a.clock.set(d("2022-08-15"));
    let before = app.a.snapshot().await;
    // The municipality withdraws, with its own certificate.
    let mut c = app.a.municipality();
    let e = c
        .withdraw_assignment(withdraw(a.number, "2022-08-14", "06"))
        .await
        .unwrap_err();
    assert_rule(&e, "withdraw.not_retroactive");
    let e = c
        .withdraw_assignment(withdraw(a.number, "2022-08-15", ""))
        .await
        .unwrap_err();
    assert_invalid(&e, "reason");
    let e = c
        .withdraw_assignment(withdraw(a.number, "2022-08-15", "01"))
        .await
        .unwrap_err();
    assert_invalid(&e, "reason");
    let e = c
        .withdraw_assignment(withdraw(a.number, "2023-01-02", "06"))
        .await
        .unwrap_err();
    assert_rule(&e, "withdraw.within_assignment");
    let e = c
        .withdraw_assignment(withdraw(77, "2022-08-15", "06"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(app.a.snapshot().await, before);

    // From today on is fine: valid up to and including yesterday.
    let mut c = app.a.municipality();
    let w = c
        .withdraw_assignment(withdraw(a.number, "2022-08-15", "06"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.status(), pb::AssignmentStatus::Withdrawn);
    assert_eq!(w.period, period("2022-07-01", "2022-08-14"));
    assert_eq!(w.change_reason, "06");
    let e = c
        .withdraw_assignment(withdraw(a.number, "2022-08-16", "06"))
        .await
        .unwrap_err();
    assert_rule(&e, "withdraw.assignment_active");
    let msgs = app.a.messages_to(P1).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].0, "nl.regiozorg.assignment.changed.v1");
    let m = &msgs[1].1;
    assert_eq!(m.client.as_ref().unwrap().bsn, bsn(1));
    assert_eq!(
        m.assignment.as_ref().unwrap().status(),
        pb::AssignmentStatus::Withdrawn
    );
}

#[tokio::test]
async fn providers_see_only_their_own_assignments() {
    let mut app = spawn_app().await;
    app.import(&bsn(1), P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    app.import(&bsn(2), P2, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    app.import(&bsn(3), P1, "2022-07-01", "2022-12-31", true)
        .await
        .unwrap();
    let mut p1 = app.a.provider(P1);
    let mine = p1
        .list_provider_assignments(pb::ListProviderAssignmentsRequest {
            agb_code: P1.into(),
            municipality: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|a| a.agb_code == P1));
    // A malformed AGB code, or another provider's, is not the caller's own: refused before the
    // handler.
    for agb in ["x", P2] {
        let e = p1
            .list_provider_assignments(pb::ListProviderAssignmentsRequest {
                agb_code: agb.into(),
                municipality: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{agb}: {e:?}");
    }
    let client = app.a.of_client(&key_of(&bsn(2))).await;
    assert_eq!(client.len(), 1);
    assert_eq!(client[0].agb_code, P2);
}

/// A start of care changes the status from issued to started, which no index names (the caseload
/// index names `active`): PostgreSQL updates the row in place (HOT), without new index entries.
#[tokio::test]
async fn a_start_of_care_is_a_hot_update() {
    let mut app = spawn_app().await;
    let a = app
        .import(&bsn(1), P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    let mut tx = app.a.pool.begin().await.unwrap();
    sqlx::query(
        "UPDATE assignments SET status = 'started', started_on = '2022-07-04', updated_at = now()
         WHERE municipality = $1 AND number = $2",
    )
    .bind(M)
    .bind(i64::from(a.number))
    .execute(&mut *tx)
    .await
    .unwrap();
    let (updated, hot): (i64, i64) = sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'assignments'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((updated, hot), (1, 1), "the start was not a HOT update");
    let active: bool = sqlx::query_scalar(
        "SELECT active FROM assignments WHERE municipality = $1 AND number = $2",
    )
    .bind(M)
    .bind(i64::from(a.number))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert!(active);
}

/// A provider acts on and reads only its own assignments: another provider naming itself in the
/// request (so the server layer lets it through) but another's assignment number is
/// PERMISSION_DENIED by the handler, and nothing changes. A municipality reads only its own.
#[tokio::test]
async fn a_provider_acts_only_on_its_own_assignments() {
    let mut app = spawn_app().await;
    let issued = app
        .import(&bsn(1), P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    let started = app
        .import(&bsn(2), P1, "2022-07-01", "2022-12-31", true)
        .await
        .unwrap();
    let get = |number: u32| pb::GetAssignmentRequest {
        municipality: M.into(),
        assignment_number: number,
    };
    let before = app.a.snapshot().await;

    let mut p2 = app.a.provider(P2);
    let e = p2
        .report_start_of_care(start(P2, issued.number, "2022-07-04"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "start: {e:?}");
    let e = p2
        .report_stop_of_care(stop(P2, started.number, "2022-09-30", "31"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "stop: {e:?}");
    let e = p2
        .request_change(pb::RequestChangeRequest {
            idempotency_key: "c".into(),
            agb_code: P2.into(),
            municipality: M.into(),
            assignment_number: issued.number,
            reason: "2".into(),
            new_end: "2022-11-30".into(),
            size: None,
            budget_cents: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "change: {e:?}");
    for number in [issued.number, started.number] {
        let e = p2.get_assignment(get(number)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "get: {e:?}");
    }
    // Another municipality reading Doetinchem's assignment: refused by the server layer.
    let e = app
        .a
        .as_municipality("0197")
        .get_assignment(get(issued.number))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(
        app.a.snapshot().await,
        before,
        "refused calls change nothing"
    );

    // The provider itself reads and starts it; the municipality and the operator read it too.
    let mut p1 = app.a.provider(P1);
    let own = p1
        .get_assignment(get(issued.number))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((own.agb_code.as_str(), own.number), (P1, issued.number));
    let now = p1
        .report_start_of_care(start(P1, issued.number, "2022-07-04"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.status(), pb::AssignmentStatus::Started);
    assert_eq!(app.a.get(issued.number).await.started_on, "2022-07-04");
    let by_operator = app
        .a
        .client
        .get_assignment(get(issued.number))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_operator.status(), pb::AssignmentStatus::Started);
}
