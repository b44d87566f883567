//! The handover (overdracht): clients of a provider whose contract ended on 2022-06-30 are imported,
//! handed over to contracted providers from 2022-07-01, and the old assignment ends the day before
//! the new provider starts care. The run is idempotent, and an interrupted run followed by a full
//! one gives exactly the result of one clean run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rz_proto::assignment::v1 as pb;

fn handover(as_of: &str) -> pb::RunHandoverRequest {
    pb::RunHandoverRequest {
        as_of: as_of.into(),
        municipality: String::new(),
    }
}

async fn progress(app: &mut TestApp) -> Vec<(String, String, u32, u32, u32)> {
    app.a
        .client
        .handover_progress(pb::HandoverProgressRequest {
            deadline: "2023-01-01".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .rows
        .into_iter()
        .map(|r| {
            (
                r.municipality,
                r.segment_code,
                r.handed_over,
                r.waiting_for_start,
                r.not_arranged,
            )
        })
        .collect()
}

fn row(handed_over: u32, waiting: u32, not_arranged: u32) -> (String, String, u32, u32, u32) {
    (M.into(), "IAJ".into(), handed_over, waiting, not_arranged)
}

/// The care of the old provider: five clients by BSN (the fifth open-ended), one client that
/// access knows, imported by client key only, and one assignment that ended before the handover.
async fn import_old_care(app: &mut TestApp) -> Vec<pb::Assignment> {
    let mut out = Vec::new();
    for n in 1..=5 {
        let end = if n == 5 { "" } else { "2023-02-28" };
        out.push(
            app.import(&bsn(n), OLD, "2021-03-01", end, n % 2 == 1)
                .await
                .unwrap(),
        );
    }
    let known = bsn(6);
    app.register_resident(&known, "2010-10-10").await;
    let mut by_key = import_request("", OLD, "2021-09-01", "2022-12-31", true);
    by_key.idempotency_key = "by-key".into();
    by_key.bsn = String::new();
    by_key.client_key = key_of(&known);
    out.push(
        app.a
            .client
            .import_assignment(by_key)
            .await
            .unwrap()
            .into_inner(),
    );
    app.import(&bsn(7), OLD, "2021-01-01", "2022-05-31", true)
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn import_checks_the_contract_of_its_time() {
    let mut app = spawn_app().await;
    let before = app.a.snapshot().await;
    // The old provider's contract ended on 2022-06-30.
    let e = app
        .import(&bsn(1), OLD, "2022-07-01", "2022-12-31", true)
        .await
        .unwrap_err();
    assert_rule(&e, "import.provider_contracted");
    let e = app
        .import(&bsn(1), NONE, "2021-07-01", "2022-12-31", true)
        .await
        .unwrap_err();
    assert_rule(&e, "import.provider_contracted");
    let mut bad = import_request("", OLD, "2021-07-01", "2021-06-30", true);
    bad.bsn = String::new();
    bad.subsegment_code = "nope".into();
    bad.budget_cents = 10;
    let e = app.a.client.import_assignment(bad).await.unwrap_err();
    for field in ["bsn", "period.end", "subsegment_code"] {
        assert_invalid(&e, field);
    }
    let mut mismatch = import_request(&bsn(1), OLD, "2021-07-01", "2022-12-31", true);
    mismatch.client_key = key_of(&bsn(2));
    let e = app.a.client.import_assignment(mismatch).await.unwrap_err();
    assert_invalid(&e, "client_key");
    // A client key that neither access nor this service knows cannot be addressed to a provider.
    let mut unknown = import_request("", OLD, "2021-07-01", "2022-12-31", true);
    unknown.bsn = String::new();
    unknown.client_key = key_of(&bsn(9));
    let e = app.a.client.import_assignment(unknown).await.unwrap_err();
    assert_rule(&e, "client.identity_known");
    assert_eq!(app.a.snapshot().await, before);

    let a = app
        .import(&bsn(1), OLD, "2021-07-01", "2022-12-31", true)
        .await
        .unwrap();
    assert_eq!(a.status(), pb::AssignmentStatus::Started);
    assert_eq!(a.started_on, "2021-07-01");
    assert!(
        a.choice_reason.starts_with(
            "imported existing care: provider 03019999 was contracted for IAJ-ON in 0222 on 2021-07-01"
        ),
        "{}",
        a.choice_reason
    );
    // Idempotent.
    let again = app
        .import(&bsn(1), OLD, "2021-07-01", "2022-12-31", true)
        .await
        .unwrap();
    assert_eq!(again.number, a.number);
    assert_eq!(app.a.count("assignments").await, 1);
    // No stacking, imported or not.
    let mut twice = import_request(&bsn(1), OLD, "2022-01-01", "2022-06-30", true);
    twice.idempotency_key = "twice".into();
    let e = app.a.client.import_assignment(twice).await.unwrap_err();
    assert_rule(&e, "assignment.no_stacking");
}

#[tokio::test]
async fn the_handover_hands_clients_over_and_the_old_assignment_ends_the_day_before() {
    let mut app = spawn_app().await;
    let old = import_old_care(&mut app).await;
    assert_eq!(progress(&mut app).await, [row(0, 0, 6)]);

    let out = app
        .a
        .client
        .run_handover(handover("2022-07-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            out.examined,
            out.newly_arranged,
            out.already_arranged,
            out.not_arranged
        ),
        (6, 6, 0, 0)
    );

    // Budgets 50/30/20 % and no caseload yet: P1, P2, P3, then P1 (1/50), P2 (1/30), P1 (2/50).
    let mut new = Vec::new();
    for o in &old {
        let o = app.a.get(o.number).await;
        assert_eq!(
            o.status() as i32,
            old[new.len()].status,
            "the old one stays active"
        );
        assert_ne!(o.replaced_by_number, 0);
        let n = app.a.get(o.replaced_by_number).await;
        assert_eq!(n.replaces_number, o.number);
        assert_eq!(n.client_key, o.client_key);
        assert_eq!(n.status(), pb::AssignmentStatus::Issued);
        assert_eq!(n.change_reason, "03", "contractwijziging");
        assert_eq!(n.assigned_on, "2022-06-27");
        assert_eq!(
            n.period.as_ref().unwrap().start,
            "2022-07-01",
            "starts on the handover date"
        );
        assert_eq!(
            n.period.as_ref().unwrap().end,
            o.period.as_ref().unwrap().end
        );
        assert!(
            n.choice_reason.starts_with(
                "handover: provider 03019999 is not contracted for IAJ-ON in 0222 on 2022-07-01; no preferred provider; lowest caseload against lumpsum budget share"
            ),
            "{}",
            n.choice_reason
        );
        new.push(n);
    }
    let providers: Vec<&str> = new.iter().map(|n| n.agb_code.as_str()).collect();
    assert_eq!(providers, [P1, P2, P3, P1, P2, P1]);
    assert_eq!(progress(&mut app).await, [row(0, 6, 0)]);

    // The new providers got the standard's message with the BSN; for the client access knows,
    // with name and birth date too.
    let to_p1 = app.a.messages_to(P1).await;
    assert_eq!(to_p1.len(), 3);
    assert_eq!(to_p1[0].1.client.as_ref().unwrap().bsn, bsn(1));
    let known = to_p1
        .iter()
        .find(|(_, m)| m.client.as_ref().unwrap().bsn == bsn(6))
        .unwrap();
    assert_eq!(known.1.client.as_ref().unwrap().birth_date, "2010-10-10");

    // The new provider cannot start before its assignment does.
    let e = app
        .a
        .provider(P1)
        .report_start_of_care(pb::ReportStartOfCareRequest {
            agb_code: P1.into(),
            municipality: M.into(),
            assignment_number: new[0].number,
            start_date: "2022-06-30".into(),
        })
        .await
        .unwrap_err();
    assert_rule(&e, "start.not_before_assignment_start");
    // It starts on Monday 2022-07-04: the old assignment ends on Sunday 2022-07-03.
    app.a
        .provider(P1)
        .report_start_of_care(pb::ReportStartOfCareRequest {
            agb_code: P1.into(),
            municipality: M.into(),
            assignment_number: new[0].number,
            start_date: "2022-07-04".into(),
        })
        .await
        .unwrap();
    let ended = app.a.get(old[0].number).await;
    assert_eq!(ended.status(), pb::AssignmentStatus::Ended);
    assert_eq!(ended.period, period("2021-03-01", "2022-07-03"));
    assert_eq!(ended.change_reason, "09", "overstap naar andere aanbieder");
    let to_old = app.a.messages_to(OLD).await;
    let last = &to_old.last().unwrap().1;
    assert_eq!(
        to_old.last().unwrap().0,
        "nl.regiozorg.assignment.changed.v1"
    );
    assert_eq!(last.assignment.as_ref().unwrap().number, old[0].number);
    assert_eq!(last.client.as_ref().unwrap().bsn, bsn(1));
    // The old provider reports its stop of care up to that day, not beyond.
    let stop = |date: &str| pb::ReportStopOfCareRequest {
        agb_code: OLD.into(),
        municipality: M.into(),
        assignment_number: old[0].number,
        end_date: date.into(),
        end_reason: "38".into(),
    };
    let e = app
        .a
        .provider(OLD)
        .report_stop_of_care(stop("2022-07-04"))
        .await
        .unwrap_err();
    assert_rule(&e, "stop.within_assignment");
    let stopped = app
        .a
        .provider(OLD)
        .report_stop_of_care(stop("2022-07-03"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.stopped_on, "2022-07-03");
    assert_eq!(progress(&mut app).await, [row(1, 5, 0)]);

    // A second run arranges nothing new.
    let again = app
        .a
        .client
        .run_handover(handover("2022-07-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.newly_arranged, again.already_arranged), (0, 5));
    assert_eq!(again.not_arranged, 0);
    assert_eq!(app.a.count("assignments").await, 7 + 6);
}

#[tokio::test]
async fn the_handover_honours_the_residents_preference_once_it_is_contracted() {
    let mut app = spawn_app().await;
    // Decided in February 2022 with a preference for P3, whose contract starts on 2022-07-01: the
    // rule picks the old provider, the only one contracted on 2022-03-01.
    let client = bsn(1);
    app.decide_youth(
        &client,
        "2022-02-20",
        vec![youth_product("2022-03-01", "2023-02-28", P3)],
    )
    .await;
    let old = app.a.wait_for(&key_of(&client), 1).await.remove(0);
    assert_eq!(old.agb_code, OLD);
    assert!(
        old.choice_reason
            .starts_with("preferred provider 03010003 is not contracted for IAJ-ON in 0222 on 2022-03-01; lowest caseload among 1 contracted providers"),
        "{}",
        old.choice_reason
    );
    // At the handover the preference is contracted, and wins over the caseload rule (which would
    // pick P1: all caseloads are 0, ties go to the lowest AGB code).
    app.a
        .client
        .run_handover(handover("2022-07-01"))
        .await
        .unwrap();
    let replaced_by = app.a.get(old.number).await.replaced_by_number;
    let new = app.a.get(replaced_by).await;
    assert_eq!(new.agb_code, P3);
    assert_eq!(new.granted_product_id, old.granted_product_id);
    assert!(
        new.choice_reason.starts_with(
            "handover: provider 03019999 is not contracted for IAJ-ON in 0222 on 2022-07-01; preferred provider 03010003 (the resident's choice) is contracted"
        ),
        "{}",
        new.choice_reason
    );
}

#[tokio::test]
async fn a_late_handover_starts_today_never_retroactively() {
    let mut app = spawn_app().await;
    let old = app
        .import(&bsn(1), OLD, "2021-03-01", "2023-02-28", true)
        .await
        .unwrap();
    // The handover runs six weeks after the contracts ended.
    app.a.clock.set(d("2022-08-12"));
    let out = app
        .a
        .client
        .run_handover(handover("2022-07-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.newly_arranged, 1);
    let o = app.a.get(old.number).await;
    let n = app.a.get(o.replaced_by_number).await;
    assert_eq!(n.assigned_on, "2022-08-12");
    assert_eq!(n.period.as_ref().unwrap().start, "2022-08-12");
    // The new provider starts on Monday 15 August, not earlier; the old one ends the day before.
    let start = |date: &str| pb::ReportStartOfCareRequest {
        agb_code: n.agb_code.clone(),
        municipality: M.into(),
        assignment_number: n.number,
        start_date: date.into(),
    };
    let mut new_provider = app.a.provider(&n.agb_code);
    let e = new_provider
        .report_start_of_care(start("2022-07-01"))
        .await
        .unwrap_err();
    assert_rule(&e, "start.not_before_assignment_start");
    new_provider
        .report_start_of_care(start("2022-08-15"))
        .await
        .unwrap();
    let ended = app.a.get(old.number).await;
    assert_eq!(ended.period, period("2021-03-01", "2022-08-14"));
}

#[tokio::test]
async fn without_a_contracted_provider_the_handover_is_not_arranged() {
    let mut app = spawn_app().await;
    let mut pv = import_request(&bsn(1), OLD, "2021-03-01", "2023-02-28", true);
    pv.subsegment_code = "IAJ-PV".into();
    app.a.client.import_assignment(pv).await.unwrap();
    let out = app
        .a
        .client
        .run_handover(handover("2022-07-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.examined, out.newly_arranged, out.not_arranged),
        (1, 0, 1)
    );
    assert_eq!(progress(&mut app).await, [row(0, 0, 1)]);
}

/// What a handover leaves behind, independent of the instance.
async fn state(a: &Assignment) -> Vec<String> {
    let mut out: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws('|', number, client_key, agb_code, status, start_date, end_date,
                change_reason, replaces_number, replaced_by_number, choice_reason)
         FROM assignments ORDER BY number",
    )
    .fetch_all(&a.pool)
    .await
    .unwrap();
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT replace(nats_subject, $1, 'ns'), event_type FROM outbox ORDER BY nats_subject, event_type",
    )
    .bind(&a.namespace)
    .fetch_all(&a.pool)
    .await
    .unwrap();
    out.extend(events.into_iter().map(|e| format!("{e:?}")));
    out
}

#[tokio::test]
async fn an_interrupted_handover_gives_the_same_result_as_a_clean_run() {
    let mut app = spawn_app().await;
    // A second assignment instance (own database and namespace) with the same registration and
    // access: it gets the same imports and one clean run.
    let clean = spawn_assignment(
        &app.registration_endpoint,
        &[(M, &app.access_endpoint)],
        "2022-06-27",
    )
    .await;
    let interrupted_app = &mut app;
    import_old_care(interrupted_app).await;
    let mut imports = Vec::new();
    for n in 1..=5 {
        let end = if n == 5 { "" } else { "2023-02-28" };
        imports.push(import_request(&bsn(n), OLD, "2021-03-01", end, n % 2 == 1));
    }
    let mut by_key = import_request("", OLD, "2021-09-01", "2022-12-31", true);
    by_key.idempotency_key = "by-key".into();
    by_key.bsn = String::new();
    by_key.client_key = key_of(&bsn(6));
    imports.push(by_key);
    imports.push(import_request(
        &bsn(7),
        OLD,
        "2021-01-01",
        "2022-05-31",
        true,
    ));
    let mut c2 = clean.client.clone();
    for r in imports {
        c2.import_assignment(r).await.unwrap();
    }
    assert_eq!(
        state(&app.a).await,
        state(&clean).await,
        "same starting point"
    );

    // Interrupted: the first run handles only three assignments (as if the process died), the
    // second run does the rest.
    let as_of = d("2022-07-01");
    let first = app
        .a
        .assigner
        .run_handover(as_of, None, Some(3))
        .await
        .unwrap();
    assert_eq!((first.examined, first.newly_arranged), (3, 3));
    let second = app
        .a
        .assigner
        .run_handover(as_of, None, None)
        .await
        .unwrap();
    assert_eq!((second.newly_arranged, second.already_arranged), (3, 3));
    let full = clean
        .assigner
        .run_handover(as_of, None, None)
        .await
        .unwrap();
    assert_eq!((full.examined, full.newly_arranged), (6, 6));

    assert_eq!(state(&app.a).await, state(&clean).await);

    // A run reads the candidates page by page: pages of 2 give the same list as one read.
    let mut conn = app.a.pool.acquire().await.unwrap();
    let key = |a: &assignment::domain::Assignment| (a.municipality.clone(), a.number);
    let all: Vec<_> = assignment::store::handover_candidates(&mut conn, as_of, None, None, 1_000)
        .await
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let mut paged = Vec::new();
    let mut after: Option<(String, i64)> = None;
    loop {
        let from = after.as_ref().map(|(m, n)| (m.as_str(), *n));
        let page = assignment::store::handover_candidates(&mut conn, as_of, None, from, 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.municipality.to_string(), i64::from(last.number)));
        paged.extend(page.iter().map(key));
    }
    assert!(all.len() > 4, "{all:?}");
    assert_eq!(paged, all);
    drop(conn);

    // And a third run changes nothing.
    let before = app.a.snapshot().await;
    let third = app
        .a
        .assigner
        .run_handover(as_of, None, None)
        .await
        .unwrap();
    assert_eq!(third.newly_arranged, 0);
    assert_eq!(app.a.snapshot().await, before);
}

/// How fast imports and a handover run are on this machine (not a pass/fail test):
/// `cargo test -p assignment --release --test handover -- --ignored --nocapture`
/// (`RZ_HANDOVER_N` clients, 2000 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement"]
async fn measure_import_and_handover_throughput() {
    use futures::StreamExt;
    let app = spawn_app().await;
    let n: u32 = std::env::var("RZ_HANDOVER_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let client = app.a.client.clone();
    let started = std::time::Instant::now();
    let results: Vec<_> = futures::stream::iter(1..=n)
        .map(|i| {
            let mut c = client.clone();
            async move {
                c.import_assignment(import_request(
                    &bsn(i),
                    OLD,
                    "2021-03-01",
                    "2023-02-28",
                    true,
                ))
                .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(results.iter().all(|r| r.is_ok()));
    let import = started.elapsed();
    let started = std::time::Instant::now();
    let out = client
        .clone()
        .run_handover(handover("2022-07-01"))
        .await
        .unwrap()
        .into_inner();
    let run = started.elapsed();
    assert_eq!(out.newly_arranged, n);
    println!(
        "imported {n} assignments in {:.2} s ({:.0}/s, 16 concurrent calls); handover of {n} in {:.2} s ({:.0}/s, one transaction each)",
        import.as_secs_f64(),
        f64::from(n) / import.as_secs_f64(),
        run.as_secs_f64(),
        f64::from(n) / run.as_secs_f64()
    );
}
