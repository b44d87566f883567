//! Residents' letters about decisions and about indications that are about to end, against the
//! real access service (in-process, its own database) and the real NATS: decisions are made
//! through access' gRPC API and reach notification as access' events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::spawn_in;
use common::stack::{M, Stack, bsn, free_addr, key_of, youth_product};
use rz_eventing::Namespace;
use rz_eventing::dlq::DeadLetters;
use rz_proto::access::v1 as acc;

#[tokio::test]
async fn a_granted_decision_gives_a_letter_to_the_parents_with_products_and_the_right_to_object() {
    let mut stack = Stack::start(false).await;
    let mut app = stack.notification(|_| {}).await;
    let child = bsn(1);
    stack
        .resident(&child, "Sanne", "Jansen", "2012-05-01")
        .await;
    let case_id = stack.youth_case(&child, "2022-07-01").await;
    stack
        .grant(
            &case_id,
            "2022-07-15",
            vec![youth_product("2022-08-01", "2023-01-31")],
        )
        .await;
    let letters = app.letters(M, "decision_granted", 1).await;
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.client_key, key_of(&child));
    assert_eq!(l.case_id, case_id);
    assert!(!l.event_id.is_empty());
    let t = &l.text;
    assert!(t.starts_with("Gemeente Doetinchem\n"), "{t}");
    // A child of 10 in youth care: the parents are addressed, with the name and address from
    // access (the event itself carries only the client key).
    assert!(
        t.contains("Aan de ouder(s) of verzorger(s) van Sanne Jansen\n"),
        "{t}"
    );
    assert!(
        t.contains("Raadhuisstraat 12a\n7001EW  Doetinchem\n"),
        "{t}"
    );
    assert!(t.contains("15 juli 2022"), "{t}");
    assert!(t.contains("Uw kind krijgt jeugdhulp"), "{t}");
    assert!(t.contains("IAJ-ON"), "{t}");
    assert!(t.contains("Vanaf:         1 augustus 2022"), "{t}");
    assert!(t.contains("Tot en met:    31 januari 2023"), "{t}");
    assert!(t.contains("Resultaat:     Zelfstandig naar school"), "{t}");
    assert!(
        t.contains("Doel:          meedoen in de samenleving"),
        "{t}"
    );
    assert!(t.contains("bezwaar maken binnen zes weken"), "{t}");
    assert!(!t.contains(&child), "no BSN in a letter: {t}");
    // The same resident's list holds it; nothing else was written.
    let all = app
        .municipality(M)
        .list_letters(rz_proto::notification::v1::ListLettersRequest {
            municipality: M.into(),
            client_key: key_of(&child),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .letters;
    assert_eq!(all.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_refusal_gives_a_letter_with_the_reason_and_the_right_to_object() {
    let mut stack = Stack::start(false).await;
    let mut app = stack.notification(|_| {}).await;
    let adult = bsn(2);
    stack
        .resident(&adult, "Piet", "de Boer", "1950-03-10")
        .await;
    let case_id = stack.wmo_case(&adult, "2022-07-01", "2022-07-20").await;
    stack
        .refuse(
            &case_id,
            "2022-07-25",
            "U kunt met een rollator zelf boodschappen doen.",
        )
        .await;
    let letters = app.letters(M, "decision_refused", 1).await;
    let t = &letters[0].text;
    assert_eq!(letters[0].case_id, case_id);
    assert!(t.contains("Aan Piet de Boer\n"), "{t}");
    assert!(t.contains("Beste Piet de Boer,"), "{t}");
    assert!(t.contains("25 juli 2022"), "{t}");
    assert!(
        t.contains("U krijgt geen ondersteuning vanuit de Wmo."),
        "{t}"
    );
    assert!(
        t.contains("De reden:\nU kunt met een rollator zelf boodschappen doen.\n"),
        "{t}"
    );
    assert!(t.contains("bezwaar maken binnen zes weken"), "{t}");
    // The earlier case steps (opened, investigated, applied) wrote nothing.
    assert!(app.letters(M, "decision_granted", 0).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_client_is_dead_lettered_with_the_reason_and_nothing_is_written() {
    let stack = Stack::start(false).await;
    let app = stack.notification(|_| {}).await;
    // A well-formed decision for a client key access has never seen.
    let stranger = key_of(&bsn(99));
    let case_id = uuid::Uuid::now_v7().to_string();
    let event = acc::DecisionGranted {
        case: Some(acc::Case {
            id: case_id.clone(),
            client_key: stranger.clone(),
            law: rz_proto::types::v1::Law::Jeugdwet as i32,
            status: acc::CaseStatus::Granted as i32,
            decided_on: "2022-07-15".into(),
            ..Default::default()
        }),
        municipality: M.into(),
    };
    let event_id = app
        .publish(
            &format!("{}.access.{M}._.decision_granted", app.namespace),
            "nl.regiozorg.access.decision_granted.v1",
            &format!("regiozorg/access/{M}"),
            &case_id,
            prost::Message::encode_to_vec(&event),
        )
        .await;
    let dlq = DeadLetters::new(app.js.clone(), Namespace::new(&app.namespace).unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let list = dlq.list().await.unwrap();
        if let Some(d) = list
            .into_iter()
            .find(|d| d.event_id == event_id.to_string())
        {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.consumer, "notification-decisions");
    assert!(
        dead.reason.contains(&stranger) && dead.reason.contains("unknown to access 0222"),
        "{}",
        dead.reason
    );
    // Permanent: dead-lettered on the first attempt, not after the retries.
    assert_eq!(dead.attempts, 1, "{dead:?}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM letters")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    app.stop().await;
}

#[tokio::test]
async fn access_down_is_retried_and_the_letter_written_once_it_is_back() {
    let mut stack = Stack::start(false).await;
    // Notification knows access 0222 at an address where nothing listens yet.
    let later = free_addr();
    let mut app = spawn_in(&stack.namespace, move |c| {
        c.notification.access_endpoints = [(M.to_string(), format!("http://{later}"))].into();
        c.notification.upstream_timeout_secs = 1;
    })
    .await;
    let child = bsn(3);
    stack.resident(&child, "Daan", "Smit", "2016-02-02").await;
    let case_id = stack.youth_case(&child, "2022-07-01").await;
    stack
        .grant(
            &case_id,
            "2022-07-15",
            vec![youth_product("2022-08-01", "2022-12-31")],
        )
        .await;
    // The event arrives and fails (access unreachable); the consumer redelivers it.
    let consumer_redelivered = || async {
        let stream = app
            .js
            .get_stream(
                Namespace::new(&app.namespace)
                    .unwrap()
                    .stream_name("access"),
            )
            .await;
        let Ok(stream) = stream else { return 0 };
        let Ok(mut c) = stream
            .get_consumer::<rz_eventing::nats::jetstream::consumer::pull::Config>(
                "notification-decisions",
            )
            .await
        else {
            return 0;
        };
        c.info().await.map(|i| i.num_redelivered).unwrap_or(0)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while consumer_redelivered().await < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no retries seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM letters")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "no letter while access is down");
    // Access comes up at that address (a second instance on the same database).
    stack.another_access_at(later).await;
    let letters = app.letters(M, "decision_granted", 1).await;
    assert!(letters[0].text.contains("Daan Smit"), "{}", letters[0].text);
    // Nothing was dead-lettered on the way.
    let dlq = DeadLetters::new(app.js.clone(), Namespace::new(&app.namespace).unwrap());
    assert!(dlq.list().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_expiring_indication_gets_one_letter_however_often_it_is_scanned() {
    let mut stack = Stack::start(false).await;
    let mut app = stack.notification(|_| {}).await;
    let child = bsn(4);
    stack.resident(&child, "Noor", "Bakker", "2013-09-09").await;
    let case_id = stack.youth_case(&child, "2022-07-01").await;
    // One product ends on 2022-12-31 (within 8 weeks of 2022-11-15), one on 2023-06-30 (not).
    let case = stack
        .grant(
            &case_id,
            "2022-07-15",
            vec![
                youth_product("2022-08-01", "2022-12-31"),
                youth_product("2023-01-01", "2023-06-30"),
            ],
        )
        .await;
    app.letters(M, "decision_granted", 1).await;
    // Before the window: nothing to write.
    let r = app.scan("2022-10-01").await;
    assert_eq!(r.letters_written, 0, "{r:?}");
    let r = app.scan("2022-11-15").await;
    assert_eq!(r.letters_written, 1, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    // Again, and later in the window: never twice.
    let r = app.scan("2022-11-15").await;
    assert_eq!(r.letters_written, 0, "{r:?}");
    let r = app.scan("2022-12-01").await;
    assert_eq!(r.letters_written, 0, "{r:?}");
    let letters = app.letters(M, "indication_ending", 1).await;
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    let first = case
        .products
        .iter()
        .find(|p| p.period.as_ref().unwrap().end == "2022-12-31")
        .unwrap();
    assert_eq!(l.product_id, first.id);
    assert_eq!(l.ends_on, "2022-12-31");
    assert_eq!(l.client_key, key_of(&child));
    assert!(l.event_id.is_empty());
    assert!(
        l.text
            .contains("Aan de ouder(s) of verzorger(s) van Noor Bakker"),
        "{}",
        l.text
    );
    assert!(
        l.text.contains("Die hulp stopt op 31 december 2022."),
        "{}",
        l.text
    );
    assert!(l.text.contains("15 november 2022"), "{}", l.text);
    // Two scans at once, as two replicas would run them (the second product's window): still
    // one letter.
    let (mut c1, mut c2) = (app.client.clone(), app.client.clone());
    let req = || rz_proto::notification::v1::ScanDeadlinesRequest {
        as_of: "2023-05-15".into(),
    };
    let (a, b) = tokio::join!(c1.scan_deadlines(req()), c2.scan_deadlines(req()));
    let written = a.unwrap().into_inner().letters_written + b.unwrap().into_inner().letters_written;
    assert_eq!(written, 1);
    assert_eq!(app.letters(M, "indication_ending", 2).await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn the_background_scan_writes_the_letter_with_the_configured_date() {
    let mut stack = Stack::start(false).await;
    let mut app = stack
        .notification(|c| {
            c.notification.scan_interval_secs = 1;
            c.notification.today = Some(chrono::NaiveDate::from_ymd_opt(2022, 11, 15).unwrap());
        })
        .await;
    let child = bsn(5);
    stack.resident(&child, "Mila", "de Wit", "2014-01-20").await;
    let case_id = stack.youth_case(&child, "2022-07-01").await;
    stack
        .grant(
            &case_id,
            "2022-07-15",
            vec![youth_product("2022-08-01", "2022-12-31")],
        )
        .await;
    // Nobody calls ScanDeadlines: the loop scans every second with 2022-11-15 as today.
    let letters = app.letters(M, "indication_ending", 1).await;
    assert!(
        letters[0].text.contains("15 november 2022"),
        "{}",
        letters[0].text
    );
    // Further rounds write nothing more.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(app.letters(M, "indication_ending", 1).await.len(), 1);
    app.stop().await;
}
