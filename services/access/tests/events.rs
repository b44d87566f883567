//! What access publishes: CloudEvents on `<ns>.access.0222._.<event>` carrying the client key and
//! never the BSN; health, graceful shutdown and start-up failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{MUNICIPALITY, Stack, bsn, header, lumpsum, pxq, spawn_app};
use prost::Message;
use rz_proto::access::v1 as pb;
use rz_proto::types::v1 as types;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn events_carry_the_client_key_and_never_the_bsn() {
    let mut app = spawn_app().await;
    let b = bsn(1000);
    let resident = app.register_adult(&b).await;
    let wmo = app.open(&b, types::Law::Wmo, "2026-03-02").await;
    app.investigate(&wmo.id, "2026-03-20").await;
    app.apply(&wmo.id, "2026-03-23").await;
    let granted = app
        .decide(&wmo.id, "2026-03-30", vec![pxq("2026-04-01", "2099-12-31")])
        .await
        .unwrap();
    let jw = app.open(&b, types::Law::Jeugdwet, "2026-03-02").await;
    app.client
        .decide(pb::DecideRequest {
            case_id: jw.id.clone(),
            date: "2026-03-10".into(),
            grant: vec![],
            refusal_reason: "Geen jeugdhulp nodig".into(),
        })
        .await
        .unwrap();
    let mut change = pb::AmendProductRequest {
        product_id: granted.products[0].id.clone(),
        amendment: pb::Amendment::Change as i32,
        date: common::days_from_today(0),
        volume: 4,
        unit: "04".into(),
        frequency: "2".into(),
        ..Default::default()
    };
    change.new_end = String::new();
    app.amend(change).await.unwrap();

    let events = app.events(7).await;
    let ns = &app.namespace;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|m| (m.subject.to_string(), header(m, "ce-type").to_owned()))
        .collect();
    let ev = |e: &str| {
        (
            format!("{ns}.access.{MUNICIPALITY}._.{e}"),
            format!("nl.regiozorg.access.{e}.v1"),
        )
    };
    assert_eq!(
        seen,
        [
            ev("case_changed"),
            ev("case_changed"),
            ev("case_changed"),
            ev("decision_granted"),
            ev("case_changed"),
            ev("case_changed"),
            ev("product_amended"),
        ]
    );
    for m in &events {
        assert_eq!(
            header(m, "ce-source"),
            format!("regiozorg/access/{MUNICIPALITY}")
        );
        assert!(!header(m, "ce-id").is_empty());
        assert_eq!(header(m, "Nats-Msg-Id"), header(m, "ce-id"));
        assert!(
            !contains(&m.payload, b.as_bytes()),
            "{} carries the BSN",
            m.subject
        );
        assert!(
            !contains(&m.payload, b"Jansen"),
            "{} carries a name",
            m.subject
        );
        for (_, values) in m.headers.iter() {
            for v in values {
                assert!(!v.as_str().contains(&b), "a header carries the BSN");
            }
        }
        assert!(
            contains(&m.payload, resident.client_key.as_bytes()),
            "{} carries the client key",
            m.subject
        );
    }

    let decision = pb::DecisionGranted::decode(events[3].payload.as_ref()).unwrap();
    assert_eq!(decision.municipality, MUNICIPALITY);
    assert_eq!(header(&events[3], "ce-subject"), granted.id);
    assert!(!contains(&decision.encode_to_vec(), b.as_bytes()));
    let case = decision.case.unwrap();
    assert_eq!(case, granted);
    assert_eq!(case.client_key, resident.client_key);
    assert_eq!(case.products[0].subsegment_code, "WIO-PV");

    let refused = pb::CaseChanged::decode(events[5].payload.as_ref()).unwrap();
    assert_eq!(refused.case.unwrap().status(), pb::CaseStatus::Refused);
    let amended = pb::ProductAmended::decode(events[6].payload.as_ref()).unwrap();
    assert_eq!(amended.amendment(), pb::Amendment::Change);
    let product = amended.product.unwrap();
    assert_eq!((product.volume, product.version), (4, 2));
    assert_eq!(header(&events[6], "ce-subject"), product.id);
}

#[tokio::test]
async fn health_reports_serving_and_shutdown_flushes_the_outbox() {
    let mut app = spawn_app().await;
    rz_stack::assert_serving(&app.channel).await;

    app.register_adult(&bsn(1100)).await;
    let c = app
        .open(&bsn(1100), types::Law::Jeugdwet, "2026-03-02")
        .await;
    app.decide(
        &c.id,
        "2026-03-03",
        vec![lumpsum("2026-04-01", "2026-12-31")],
    )
    .await
    .unwrap();
    app.stack
        .access_service(MUNICIPALITY)
        .stop()
        .await
        .expect("stops within the grace period");
    let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
    let pending = rz_stack::unpublished(&pool).await;
    assert_eq!(pending, 0, "the relay flushed the outbox before exiting");
    assert_eq!(app.events(2).await.len(), 2);
}

#[tokio::test]
async fn start_up_refuses_a_bad_configuration_or_an_unreachable_registration() {
    let stack = Stack::builder().registration().start().await;
    let registration = stack.registration_endpoint();

    let mut config = stack.access_config(MUNICIPALITY).await;
    config.access.municipality = "222".into();
    let err = access::App::build(config.clone()).await.err().unwrap();
    assert!(matches!(err, access::StartError::Config(_)), "{err}");
    config.access.municipality = "0363".into(); // Amsterdam: not in the Achterhoek
    let err = access::App::build(config.clone()).await.err().unwrap();
    assert!(err.to_string().contains("0363"), "{err}");
    config.access.municipality = MUNICIPALITY.into();
    config.access.client_key_secret = String::new();
    let err = access::App::build(config.clone()).await.err().unwrap();
    assert!(err.to_string().contains("client_key_secret"), "{err}");

    // Nothing listens on a port we just bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = access::fetch_catalogue(
        &config.tls,
        &format!("http://127.0.0.1:{port}"),
        Duration::from_millis(600),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, access::StartError::Upstream(_)), "{err}");
    assert!(err.to_string().contains("did not answer"), "{err}");

    let catalogue = access::fetch_catalogue(&config.tls, &registration, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(catalogue.region, "Achterhoek");
}
