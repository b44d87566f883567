//! From decision to assignment, end to end: decisions are made through access' gRPC API, access
//! publishes them, assignment consumes them, chooses a contracted provider and issues the
//! assignment (with the standard's message to the provider and a pseudonymous lifecycle event).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use rz_eventing::Namespace;
use rz_eventing::dlq::DeadLetters;
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as pb;
use rz_proto::types::v1 as types;

fn by_subsegment<'a>(list: &'a [pb::Assignment], s: &str) -> &'a pb::Assignment {
    list.iter().find(|a| a.subsegment_code == s).unwrap()
}

#[tokio::test]
async fn each_financing_variant_and_both_laws_get_an_assignment() {
    let mut app = spawn_app().await;
    let (youth, adult) = (bsn(1), bsn(2));
    let case = app
        .decide_youth(
            &youth,
            "2022-06-20",
            vec![
                youth_product("2022-07-01", "2022-12-31", P2),
                output_product("2022-07-01", "2022-09-30"),
            ],
        )
        .await;
    let wmo = app
        .decide_wmo(
            &adult,
            "2022-06-21",
            vec![pxq_product("2022-07-01", "2023-06-30", PV2)],
        )
        .await;
    let youth_list = app.a.wait_for(&key_of(&youth), 2).await;
    let adult_list = app.a.wait_for(&key_of(&adult), 1).await;

    // Lumpsum (taakgericht), Jeugdwet: the resident's contracted preference.
    let iaj = by_subsegment(&youth_list, "IAJ-ON");
    assert_eq!(iaj.agb_code, P2);
    assert_eq!(iaj.law(), types::Law::Jeugdwet);
    assert_eq!(
        (iaj.segment_code.as_str(), iaj.product_category.as_str()),
        ("IAJ", "45")
    );
    assert_eq!(
        iaj.execution_variant(),
        types::ExecutionVariant::Taakgericht
    );
    assert_eq!((iaj.size.clone(), iaj.budget_cents), (None, 0));
    assert_eq!(iaj.status(), pb::AssignmentStatus::Issued);
    assert_eq!(iaj.assigned_on, "2022-06-20");
    assert_eq!(iaj.period, period("2022-07-01", "2022-12-31"));
    assert_eq!(iaj.client_key, key_of(&youth));
    let granted = case
        .products
        .iter()
        .find(|p| p.subsegment_code == "IAJ-ON")
        .unwrap();
    assert_eq!(iaj.granted_product_id, granted.id);
    assert!(
        iaj.choice_reason.starts_with(&format!(
            "preferred provider {P2} (the resident's choice) is contracted for IAJ-ON in 0222 on 2022-07-01"
        )),
        "{}",
        iaj.choice_reason
    );

    // Separate contract (outputgericht), Jeugdwet: the budget.
    let zhz = by_subsegment(&youth_list, "ZHZ");
    assert_eq!(zhz.agb_code, ZH);
    assert_eq!(
        zhz.execution_variant(),
        types::ExecutionVariant::Outputgericht
    );
    assert_eq!(
        (zhz.budget_cents, zhz.product_category.as_str()),
        (250_000, "53")
    );
    assert!(zhz.choice_reason.starts_with("no preferred provider; lowest caseload among 1 contracted providers (no lumpsum budgets, equal shares)"), "{}", zhz.choice_reason);

    // PxQ (inspanningsgericht), Wmo: volume, unit and frequency.
    let pv = &adult_list[0];
    assert_eq!(pv.agb_code, PV2);
    assert_eq!(pv.law(), types::Law::Wmo);
    assert_eq!(
        (
            pv.segment_code.as_str(),
            pv.product_category.as_str(),
            pv.product_code.as_str()
        ),
        ("WIO", "03", "PV01")
    );
    assert_eq!(
        pv.execution_variant(),
        types::ExecutionVariant::Inspanningsgericht
    );
    assert_eq!(
        pv.size,
        Some(pb::Size {
            volume: 3,
            unit: "04".into(),
            frequency: "2".into()
        })
    );
    assert_eq!(pv.assigned_on, wmo.decided_on);

    // Numbers are unique within the municipality.
    let mut numbers: Vec<u32> = youth_list
        .iter()
        .chain(&adult_list)
        .map(|a| a.number)
        .collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3]);

    // Each provider got its message; reporting got three pseudonymous lifecycle events.
    let outbox = app.a.outbox().await;
    for agb in [P2, ZH, PV2] {
        assert_eq!(app.a.messages_to(agb).await.len(), 1, "{agb}");
    }
    let lifecycle = app.a.subject(None, "lifecycle");
    assert_eq!(outbox.iter().filter(|(s, _)| *s == lifecycle).count(), 3);
}

#[tokio::test]
async fn the_caseload_rule_chooses_and_says_why_when_the_preference_is_not_contracted() {
    let mut app = spawn_app().await;
    // Caseloads before: P1 3 clients (50 % of the budget), P2 1 (30 %), P3 1 (20 %).
    // Load / share: 3/50 = 0.060, 1/30 = 0.033, 1/20 = 0.050 -> P2.
    let mut n = 100;
    for (agb, count) in [(P1, 3), (P2, 1), (P3, 1)] {
        for _ in 0..count {
            n += 1;
            app.import(&bsn(n), agb, "2022-07-01", "2023-06-30", true)
                .await
                .unwrap();
        }
    }
    let first = bsn(1);
    app.decide_youth(
        &first,
        "2022-06-20",
        vec![youth_product("2022-07-01", "2022-12-31", OLD)],
    )
    .await;
    let a = app.a.wait_for(&key_of(&first), 1).await.remove(0);
    assert_eq!(a.agb_code, P2);
    assert_eq!(
        a.choice_reason,
        "preferred provider 03019999 is not contracted for IAJ-ON in 0222 on 2022-07-01; lowest caseload against lumpsum budget share among 3 contracted providers: 03010002 with 1 client / 30.0 % of the budget"
    );

    // Now P2 has 2: 3/50 = 0.060, 2/30 = 0.067, 1/20 = 0.050 -> P3.
    let second = bsn(2);
    app.decide_youth(
        &second,
        "2022-06-20",
        vec![youth_product("2022-07-01", "2022-12-31", "")],
    )
    .await;
    let b = app.a.wait_for(&key_of(&second), 1).await.remove(0);
    assert_eq!(b.agb_code, P3);
    assert_eq!(
        b.choice_reason,
        "no preferred provider; lowest caseload against lumpsum budget share among 3 contracted providers: 03010003 with 1 client / 20.0 % of the budget"
    );
}

#[tokio::test]
async fn a_product_without_a_contracted_provider_or_that_would_stack_is_not_assigned() {
    let mut app = spawn_app().await;
    // IAJ-PV: only the old provider had a contract, and it ended on 2022-06-30.
    let lonely = bsn(10);
    let mut pv = youth_product("2022-07-01", "2022-12-31", "");
    pv.subsegment_code = "IAJ-PV".into();
    app.decide_youth(&lonely, "2022-06-20", vec![pv]).await;
    let unassigned = app.a.wait_for_unassigned(1).await;
    assert_eq!(unassigned[0].reason_code, "no_contracted_provider");
    assert_eq!(
        unassigned[0].reason,
        "no preferred provider; no provider is contracted for IAJ-PV in 0222 on 2022-07-01"
    );
    assert_eq!(unassigned[0].client_key.as_str(), key_of(&lonely));
    assert!(app.a.of_client(&key_of(&lonely)).await.is_empty());

    // No stacking: the same subsegment for an overlapping period is not assigned again. Access
    // refuses a second grant of the same product up front (decide.no_stacking), so here the
    // assignment it would stack on is existing care imported at assignment.
    let client = bsn(11);
    let first = app
        .import(&client, P1, "2022-07-01", "2022-12-31", true)
        .await
        .unwrap();
    app.decide_youth(
        &client,
        "2022-09-15",
        vec![youth_product("2022-10-01", "2023-03-31", P2)],
    )
    .await;
    let unassigned = app.a.wait_for_unassigned(2).await;
    let stacked = unassigned
        .iter()
        .find(|u| u.reason_code == "stacking")
        .unwrap();
    assert_eq!(
        stacked.reason,
        format!(
            "the client already has assignment {} for IAJ-ON with provider {P1} from 2022-07-01 until 2022-12-31 (no stacking)",
            first.number
        )
    );
    // Operators see the same list over gRPC.
    let listed = app
        .a
        .client
        .clone()
        .list_unassigned_products(pb::ListUnassignedProductsRequest {
            municipality: M.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|u| u.reason_code == "stacking" && u.reason == stacked.reason)
    );
    assert!(
        listed
            .iter()
            .all(|u| u.municipality == M && u.client_key.len() == 32)
    );
    // After the first one ends, a new period is fine (after the stacked grant's end too, which
    // access knows).
    app.decide_youth(
        &client,
        "2022-12-01",
        vec![youth_product("2023-04-01", "2023-06-30", P1)],
    )
    .await;
    let both = app.a.wait_for(&key_of(&client), 2).await;
    assert_eq!(both[1].period, period("2023-04-01", "2023-06-30"));
}

async fn inbox(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'assignment-decisions'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the decision consumer acknowledged everything up to stream sequence `last`.
async fn consumed(stream: &rz_eventing::nats::jetstream::stream::Stream, last: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut consumer = stream
            .get_consumer::<rz_eventing::nats::jetstream::consumer::pull::Config>(
                "assignment-decisions",
            )
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        if info.ack_floor.stream_sequence >= last {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not consumed: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_redelivered_or_repeated_decision_has_no_second_effect() {
    let mut app = spawn_app().await;
    let client = bsn(20);
    app.decide_youth(
        &client,
        "2022-06-20",
        vec![youth_product("2022-07-01", "2022-12-31", P1)],
    )
    .await;
    app.a.wait_for(&key_of(&client), 1).await;

    let (_c, js) = rz_eventing::connect(&app.env.nats_url, "test")
        .await
        .unwrap();
    let ns = Namespace::new(&app.namespace).unwrap();
    let mut stream = js.get_stream(ns.stream_name("access")).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut decision = None;
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        if m.headers.get("ce-type").map(|v| v.as_str())
            == Some("nl.regiozorg.access.decision_granted.v1")
        {
            decision = Some(m);
        }
    }
    let decision = decision.expect("the decision is on the stream");
    consumed(&stream, last).await;
    let before = inbox(&app.a.pool).await;
    // 1. The same event again (a redelivery): the inbox drops it.
    // 2. The same decision under a new event id (a producer that sent it twice): the unique
    //    (granted product, version) makes it a no-op.
    for (msg_id, ce_id) in [
        ("again-1", None),
        ("again-2", Some(uuid::Uuid::now_v7().to_string())),
    ] {
        let mut h = decision.headers.clone();
        h.insert("Nats-Msg-Id", msg_id);
        if let Some(id) = &ce_id {
            h.insert("ce-id", id.as_str());
        }
        js.publish_with_headers(decision.subject.to_string(), h, decision.payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let last = stream.info().await.unwrap().state.last_sequence;
    consumed(&stream, last).await;
    assert_eq!(app.a.of_client(&key_of(&client)).await.len(), 1);
    assert_eq!(app.a.messages_to(P1).await.len(), 1);
    assert_eq!(
        inbox(&app.a.pool).await - before,
        1,
        "the one under a new id is recorded; the redelivery is dropped by the inbox"
    );
}

#[tokio::test]
async fn amendments_change_extend_and_end_the_assignment() {
    let mut app = spawn_app().await;
    let client = bsn(30);
    // Access amends only products that are active on the system date, so this one runs to 2027.
    app.decide_wmo(
        &client,
        "2023-12-15",
        vec![pxq_product("2024-01-01", "2027-12-31", PV1)],
    )
    .await;
    let a = app.a.wait_for(&key_of(&client), 1).await.remove(0);
    assert_eq!(a.agb_code, PV1);
    let today = chrono::Utc::now().date_naive().to_string();
    let amend = |amendment: acc::Amendment, new_end: &str, volume: u32| acc::AmendProductRequest {
        product_id: a.granted_product_id.clone(),
        amendment: amendment as i32,
        date: today.clone(),
        new_end: new_end.into(),
        budget_cents: 0,
        volume,
        unit: if volume > 0 {
            "04".into()
        } else {
            String::new()
        },
        frequency: if volume > 0 {
            "2".into()
        } else {
            String::new()
        },
    };
    app.access
        .amend_product(amend(acc::Amendment::Change, "", 5))
        .await
        .unwrap();
    let changed = app
        .a
        .wait_until(a.number, |x| x.size.as_ref().is_some_and(|s| s.volume == 5))
        .await;
    assert_eq!(changed.change_reason, "05");

    app.access
        .amend_product(amend(acc::Amendment::Extend, "2028-06-30", 0))
        .await
        .unwrap();
    let extended = app
        .a
        .wait_until(a.number, |x| {
            x.period.as_ref().is_some_and(|p| p.end == "2028-06-30")
        })
        .await;
    assert_eq!(extended.change_reason, "04");
    assert_eq!(extended.size.unwrap().volume, 5);

    app.access
        .amend_product(amend(acc::Amendment::End, "2027-03-31", 0))
        .await
        .unwrap();
    let ended = app
        .a
        .wait_until(a.number, |x| {
            x.period.as_ref().is_some_and(|p| p.end == "2027-03-31")
        })
        .await;
    assert_eq!(ended.change_reason, "05");
    assert_eq!(ended.status(), pb::AssignmentStatus::Issued);

    // The provider was told every time.
    let kinds: Vec<String> = app
        .a
        .messages_to(PV1)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        kinds,
        [
            "nl.regiozorg.assignment.issued.v1",
            "nl.regiozorg.assignment.changed.v1",
            "nl.regiozorg.assignment.changed.v1",
            "nl.regiozorg.assignment.changed.v1"
        ]
    );
}

#[tokio::test]
async fn a_provider_receives_its_message_with_the_bsn_and_the_lifecycle_carries_none() {
    let mut app = spawn_app().await;
    let nats = rz_eventing::nats::connect(&app.env.nats_url).await.unwrap();
    let mut mine = nats
        .subscribe(format!("{}.assignment.*.{P2}.>", app.namespace))
        .await
        .unwrap();
    let mut lifecycle = nats
        .subscribe(format!("{}.assignment.*._.lifecycle", app.namespace))
        .await
        .unwrap();
    nats.flush().await.unwrap();

    let client = bsn(40);
    app.decide_youth(
        &client,
        "2022-06-20",
        vec![youth_product("2022-07-01", "2022-12-31", P2)],
    )
    .await;

    let msg = tokio::time::timeout(Duration::from_secs(10), mine.next())
        .await
        .expect("the provider's message arrives")
        .unwrap();
    let headers = msg.headers.clone().unwrap();
    assert_eq!(
        headers.get("ce-type").unwrap().as_str(),
        "nl.regiozorg.assignment.issued.v1"
    );
    assert_eq!(
        msg.subject.as_str(),
        format!("{}.assignment.0222.{P2}.issued", app.namespace)
    );
    let m: pb::AssignmentMessage = prost::Message::decode(msg.payload.as_ref()).unwrap();
    let c = m.client.unwrap();
    assert_eq!(c.bsn, client);
    assert_eq!(
        (
            c.family_name.as_str(),
            c.given_names.as_str(),
            c.birth_date.as_str()
        ),
        ("de Vries", "Sanne", "2012-05-01")
    );
    assert_eq!(m.assignment.unwrap().agb_code, P2);
    assert!(
        !headers
            .get("ce-subject")
            .unwrap()
            .as_str()
            .contains(&client)
    );

    let life = tokio::time::timeout(Duration::from_secs(10), lifecycle.next())
        .await
        .expect("the lifecycle event arrives")
        .unwrap();
    let raw = life.payload.to_vec();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&client), "no BSN in the lifecycle event");
    assert!(!text.contains("de Vries"), "no name in the lifecycle event");
    let l: pb::AssignmentLifecycle = prost::Message::decode(raw.as_slice()).unwrap();
    assert_eq!(l.change, "issued");
    assert_eq!(l.assignment.unwrap().client_key, key_of(&client));
}

#[tokio::test]
async fn a_decision_of_a_municipality_without_an_access_endpoint_is_dead_lettered() {
    let mut app = spawn_app().await;
    // Aalten's access publishes on the same NATS; assignment has no endpoint for 0197.
    app.a.stack.start_access("0197").await;
    // Aalten's staff system, with Aalten's certificate.
    let mut access = app.a.stack.access("0197");
    let person = bsn(50);
    access
        .register_resident(acc::RegisterResidentRequest {
            idempotency_key: "r".into(),
            bsn: person.clone(),
            given_names: "Piet".into(),
            family_name: "Klein".into(),
            birth_date: "2011-01-01".into(),
            address: Some(acc::Address {
                street: "Markt".into(),
                house_number: "2".into(),
                postal_code: "7121CS".into(),
                city: "Aalten".into(),
                municipality: "0197".into(),
            }),
            legal_representative: Some(acc::LegalRepresentative {
                name: "M. Klein".into(),
                relation: "ouder".into(),
            }),
            gender: "1".into(),
        })
        .await
        .unwrap();
    let case = access
        .open_case(acc::OpenCaseRequest {
            idempotency_key: "c".into(),
            bsn: person.clone(),
            law: types::Law::Jeugdwet as i32,
            date: "2022-06-20".into(),
        })
        .await
        .unwrap()
        .into_inner();
    access
        .decide(acc::DecideRequest {
            case_id: case.id,
            date: "2022-06-20".into(),
            grant: vec![youth_product("2022-07-01", "2022-12-31", "")],
            refusal_reason: String::new(),
        })
        .await
        .unwrap();

    let (_c, js) = rz_eventing::connect(&app.env.nats_url, "test")
        .await
        .unwrap();
    let dlq = DeadLetters::new(js, Namespace::new(&app.namespace).unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let letters = dlq.list().await.unwrap();
        if !letters.is_empty() {
            break letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(letters[0].consumer, "assignment-decisions");
    assert_eq!(
        letters[0].event_type,
        "nl.regiozorg.access.decision_granted.v1"
    );
    assert!(
        letters[0]
            .reason
            .contains("no access endpoint is configured for municipality 0197"),
        "{}",
        letters[0].reason
    );
    assert_eq!(app.a.count("assignments").await, 0);
}
