//! Webhooks end to end: events written to JetStream on the assignment subjects, the real service,
//! and real HTTP receivers on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Receiver, spawn_app, spawn_replica, verify_signature};
use rz_proto::notification::v1 as pb;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const AGB_A: &str = "12345678";
const AGB_B: &str = "87654321";

#[tokio::test]
async fn retries_until_the_receiver_recovers_then_delivers_once_signed() {
    let mut app = spawn_app().await;
    let receiver = Receiver::start(2).await;
    let sub = app
        .subscribe(AGB_A, &receiver.url("/hook"), &[], &[], &[])
        .await;
    assert!(sub.secret.starts_with("whsec_"), "{sub:?}");
    let event_id = app
        .publish_assignment("0222", AGB_A, "issued", 42, "IAJ")
        .await;
    app.wait_delivered(1).await;
    let got = receiver.received();
    // 503, 503, 204: three attempts, the same document and delivery id each time.
    assert_eq!(got.len(), 3, "{got:?}");
    for r in &got {
        assert!(verify_signature(&sub.secret, r), "bad signature {r:?}");
        assert!(!verify_signature("whsec_b3RoZXI=", r));
        assert_eq!(r.delivery, got[0].delivery);
        assert_eq!(r.body, got[0].body);
        assert!(r.content_type.starts_with("application/cloudevents+json"));
        let ce = r.json();
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], event_id.to_string());
        assert_eq!(ce["type"], "nl.regiozorg.assignment.issued.v1");
        assert_eq!(ce["source"], "regiozorg/assignment/0222");
        assert_eq!(ce["subject"], "0222/42");
        assert_eq!(ce["datacontenttype"], "application/json");
        assert!(ce["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(ce["data"]["assignment"]["number"], 42);
        assert_eq!(ce["data"]["assignment"]["agb_code"], AGB_A);
        assert_eq!(ce["data"]["assignment"]["law"], "jeugdwet");
        assert_eq!(ce["data"]["client"]["bsn"], "999990019");
    }
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 3);
    // The same event again (a republish with another Nats-Msg-Id) is not delivered twice: the
    // inbox drops it. A later event is the barrier: the consumer applies events in order.
    let doc = got[0].json();
    app.publish_as(
        event_id,
        "republished",
        &format!("{}.assignment.0222.{AGB_A}.issued", app.namespace),
        "nl.regiozorg.assignment.issued.v1",
        "regiozorg/assignment/0222",
        "0222/42",
        Vec::new(),
    )
    .await;
    let later = app
        .publish_assignment("0222", AGB_A, "issued", 43, "IAJ")
        .await;
    app.wait_delivered(2).await;
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].json()["id"], later.to_string());
    assert_eq!(doc["id"], event_id.to_string());
    // The operator's view of every provider's failed deliveries.
    let failed = app
        .client
        .list_failed_deliveries(pb::ListFailedDeliveriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(failed.deliveries.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_never_recovers_fails_raises_an_alert_and_can_be_replayed() {
    let mut app = spawn_app().await;
    let receiver = Receiver::start(usize::MAX).await;
    let sub = app
        .subscribe(AGB_A, &receiver.url("/down"), &[], &[], &[])
        .await;
    let event_id = app
        .publish_assignment("0197", AGB_A, "changed", 7, "IAJ")
        .await;
    app.wait_count("SELECT count(*) FROM deliveries WHERE status = 'failed'", 1)
        .await;
    // The configured 4 attempts, all 503.
    assert_eq!(receiver.received().len(), 4);
    app.wait_count(
        "SELECT count(*) FROM alerts WHERE kind = 'webhook_delivery_failed' AND resolved_at IS NULL",
        1,
    )
    .await;
    let failed = app
        .provider(AGB_A)
        .list_failed_deliveries(pb::ListFailedDeliveriesRequest {
            agb_code: AGB_A.into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(failed.len(), 1);
    let d = &failed[0];
    assert_eq!(d.event_id, event_id.to_string());
    assert_eq!(d.subscription_id, sub.id);
    assert_eq!(d.status, pb::DeliveryStatus::Failed as i32);
    assert_eq!(d.attempts, 4);
    assert_eq!(d.last_error, "HTTP 503");
    assert!(!d.failed_at.is_empty());
    // Another provider's failures are not listed under it.
    let other = app
        .provider(AGB_B)
        .list_failed_deliveries(pb::ListFailedDeliveriesRequest {
            agb_code: AGB_B.into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.deliveries.is_empty());

    // Another provider cannot replay it: not a delivery to its subscription. Nothing changes.
    let delivery = |app: &common::TestApp| {
        let pool = app.pool.clone();
        let id = uuid::Uuid::parse_str(&d.id).unwrap();
        async move {
            sqlx::query_as::<_, (String, i32)>(
                "SELECT status, attempts FROM deliveries WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let before = delivery(&app).await;
    let e = app
        .provider(AGB_B)
        .replay_delivery(pb::ReplayDeliveryRequest {
            delivery_id: d.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(delivery(&app).await, before);
    assert_eq!(before, ("failed".to_owned(), 4));

    // Replaying a delivery that is not failed is refused; after recovery the replay delivers.
    receiver.recover();
    let mut provider = app.provider(AGB_A);
    let replayed = provider
        .replay_delivery(pb::ReplayDeliveryRequest {
            delivery_id: d.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.status, pb::DeliveryStatus::Pending as i32);
    app.wait_delivered(1).await;
    let got = receiver.received();
    assert_eq!(got.len(), 5);
    let last = got.last().unwrap();
    assert_eq!(last.json()["id"], event_id.to_string());
    assert_eq!(last.delivery, d.id);
    assert!(verify_signature(&sub.secret, last));
    app.wait_count("SELECT count(*) FROM alerts WHERE resolved_at IS NULL", 0)
        .await;
    let again = provider
        .replay_delivery(pb::ReplayDeliveryRequest {
            delivery_id: d.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    let missing = provider
        .replay_delivery(pb::ReplayDeliveryRequest {
            delivery_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn a_new_delivery_wakes_the_worker_without_waiting_for_its_poll() {
    // The worker polls once an hour here: only the NOTIFY at the matcher's commit can wake it.
    let mut app = common::spawn_app_with(|c| c.webhooks.poll_interval_ms = 3_600_000).await;
    let receiver = Receiver::start(0).await;
    app.subscribe(AGB_A, &receiver.url("/a"), &[], &[], &[])
        .await;
    // Let the worker go idle first.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for n in 1..=3 {
        app.publish_assignment("0222", AGB_A, "issued", n, "IAJ")
            .await;
        app.wait_count(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
            i64::from(n),
        )
        .await;
    }
    assert_eq!(receiver.received().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn providers_only_get_their_own_events_through_their_filters() {
    let mut app = spawn_app().await;
    let receiver = Receiver::start(0).await;
    app.subscribe(AGB_A, &receiver.url("/a-all"), &[], &[], &[])
        .await;
    app.subscribe(
        AGB_A,
        &receiver.url("/a-changed"),
        &["nl.regiozorg.assignment.changed.v1"],
        &[],
        &[],
    )
    .await;
    app.subscribe(AGB_A, &receiver.url("/a-0197"), &[], &["0197"], &[])
        .await;
    app.subscribe(AGB_A, &receiver.url("/a-wmo"), &["changed"], &[], &["WIO"])
        .await;
    app.subscribe(AGB_B, &receiver.url("/b-all"), &[], &[], &[])
        .await;

    let a1 = app
        .publish_assignment("0222", AGB_A, "issued", 1, "IAJ")
        .await;
    let b1 = app
        .publish_assignment("0222", AGB_B, "issued", 2, "IAJ")
        .await;
    // Not addressed to a provider: never sent to a webhook.
    app.publish(
        &format!("{}.assignment.0222._.lifecycle", app.namespace),
        "nl.regiozorg.assignment.lifecycle.v1",
        "regiozorg/assignment/0222",
        "0222/1",
        Vec::new(),
    )
    .await;
    let a2 = app
        .publish_assignment("0197", AGB_A, "changed", 3, "WIO")
        .await;
    // a1 -> a-all; b1 -> b-all; a2 -> a-all, a-changed, a-0197, a-wmo.
    app.wait_delivered(6).await;
    let ids = |path: &str| -> Vec<String> {
        receiver
            .at(path)
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut a_all = ids("/a-all");
    a_all.sort();
    let mut want = vec![a1.to_string(), a2.to_string()];
    want.sort();
    assert_eq!(a_all, want);
    assert_eq!(ids("/a-changed"), vec![a2.to_string()]);
    assert_eq!(ids("/a-0197"), vec![a2.to_string()]);
    assert_eq!(ids("/a-wmo"), vec![a2.to_string()]);
    assert_eq!(ids("/b-all"), vec![b1.to_string()]);
    for r in receiver.at("/b-all") {
        assert_eq!(r.json()["data"]["assignment"]["agb_code"], AGB_B);
    }
    assert_eq!(receiver.received().len(), 6);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(total, 6);
    app.stop().await;
}

/// The matcher writes a whole batch of events' deliveries with one statement: the filters hold
/// per event within it, a provider gets only its own events, and an event already queued is not
/// queued again.
#[tokio::test]
async fn a_batch_of_events_is_matched_per_event_in_one_statement() {
    use notification::store::{EventToQueue, queue_deliveries};
    let mut app = spawn_app().await;
    // Nothing listens there: the deliveries stay in the table to be looked at.
    let url = |path: &str| format!("http://127.0.0.1:9{path}");
    app.subscribe(AGB_A, &url("/a-all"), &[], &[], &[]).await;
    app.subscribe(
        AGB_A,
        &url("/a-changed"),
        &["nl.regiozorg.assignment.changed.v1"],
        &[],
        &[],
    )
    .await;
    app.subscribe(AGB_A, &url("/a-0197"), &[], &["0197"], &[])
        .await;
    app.subscribe(AGB_A, &url("/a-wmo"), &["changed"], &[], &["WIO"])
        .await;
    app.subscribe(AGB_B, &url("/b-all"), &[], &[], &[]).await;
    let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::now_v7()).collect();
    let (wmo, none) = (vec!["WIO".to_owned(), String::new()], Vec::new());
    let event = |k: usize, agb, kind, municipality, segments| EventToQueue {
        agb_code: agb,
        event_id: ids[k],
        event_type: if kind == "changed" {
            "nl.regiozorg.assignment.changed.v1"
        } else {
            "nl.regiozorg.assignment.issued.v1"
        },
        short_type: kind,
        event_subject: "0222/1",
        municipality,
        segments,
        body: "{}",
    };
    let batch = [
        event(0, AGB_A, "issued", "0222", &wmo),
        event(1, AGB_B, "issued", "0222", &none),
        event(2, AGB_A, "changed", "0197", &wmo),
        event(3, AGB_A, "changed", "0222", &none),
    ];
    let mut tx = app.pool.begin().await.unwrap();
    // 0 -> a-all; 1 -> b-all; 2 -> a-all, a-changed, a-0197, a-wmo; 3 -> a-all, a-changed.
    assert_eq!(
        queue_deliveries(&mut tx, &app.keys, &batch).await.unwrap(),
        8
    );
    // The same events again (a redelivery): nothing new.
    assert_eq!(
        queue_deliveries(&mut tx, &app.keys, &batch).await.unwrap(),
        0
    );
    tx.commit().await.unwrap();
    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT d.event_id, s.url FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         ORDER BY d.event_id, s.url",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut want: Vec<(uuid::Uuid, String)> = [
        (0, "/a-all"),
        (1, "/b-all"),
        (2, "/a-0197"),
        (2, "/a-all"),
        (2, "/a-changed"),
        (2, "/a-wmo"),
        (3, "/a-all"),
        (3, "/a-changed"),
    ]
    .iter()
    .map(|(k, p)| (ids[*k], url(p)))
    .collect();
    want.sort();
    assert_eq!(rows, want);
    app.stop().await;
}

#[tokio::test]
async fn subscriptions_are_validated_idempotent_listed_and_deleted() {
    let mut app = spawn_app().await;
    // A provider names only itself (the server layer refuses another or a malformed AGB code);
    // the operator, who may subscribe for any provider, reaches the handler's validation.
    let e = app
        .provider(AGB_A)
        .create_subscription(pb::CreateSubscriptionRequest {
            idempotency_key: "k0".into(),
            agb_code: "1234".into(),
            url: "http://127.0.0.1:9/hook".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let bad = app
        .client
        .create_subscription(pb::CreateSubscriptionRequest {
            idempotency_key: "k1".into(),
            agb_code: "1234".into(),
            url: "ftp://example.org/x".into(),
            municipalities: vec!["222".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    use tonic_types::StatusExt;
    let fields: Vec<String> = bad
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    for f in ["agb_code", "url", "municipalities[0]"] {
        assert!(fields.iter().any(|x| x == f), "{f} not in {fields:?}");
    }

    let req = pb::CreateSubscriptionRequest {
        idempotency_key: "k2".into(),
        agb_code: AGB_A.into(),
        url: "http://127.0.0.1:9/hook".into(),
        event_types: vec!["issued".into()],
        municipalities: vec!["0222".into()],
        segments: vec![],
    };
    let mut a = app.provider(AGB_A);
    let first = a
        .create_subscription(req.clone())
        .await
        .unwrap()
        .into_inner();
    let again = a
        .create_subscription(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.id, again.id);
    assert!(first.secret.starts_with("whsec_"));
    assert!(again.secret.is_empty(), "the secret is shown once");
    let conflict = a
        .create_subscription(pb::CreateSubscriptionRequest {
            url: "http://127.0.0.1:9/other".into(),
            ..req
        })
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), tonic::Code::AlreadyExists);

    let listed = a
        .list_subscriptions(pb::ListSubscriptionsRequest {
            agb_code: AGB_A.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].secret.is_empty(),
        "secrets are returned only once"
    );
    assert_eq!(listed[0].municipalities, vec!["0222".to_owned()]);

    // Another provider cannot delete it (nor list A's subscriptions).
    let e = app
        .provider(AGB_B)
        .list_subscriptions(pb::ListSubscriptionsRequest {
            agb_code: AGB_A.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let denied = app
        .provider(AGB_B)
        .delete_subscription(pb::DeleteSubscriptionRequest {
            agb_code: AGB_B.into(),
            subscription_id: first.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::NotFound);
    a.delete_subscription(pb::DeleteSubscriptionRequest {
        agb_code: AGB_A.into(),
        subscription_id: first.id.clone(),
    })
    .await
    .unwrap();
    let listed = a
        .list_subscriptions(pb::ListSubscriptionsRequest {
            agb_code: AGB_A.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.subscriptions.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn two_replicas_share_the_work_and_deliver_each_event_once() {
    const EVENTS: usize = 400;
    let mut one = spawn_app().await;
    let two = spawn_replica(&one.db_url, &one.namespace).await;
    // 20 ms per answer: throughput needs many deliveries in flight.
    let receiver = Receiver::start_with(0, Duration::from_millis(20)).await;
    one.subscribe(AGB_A, &receiver.url("/bulk"), &[], &[], &[])
        .await;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(EVENTS);
    for n in 0..EVENTS {
        ids.push(
            one.publish_assignment("0222", AGB_A, "issued", n as u32 + 1, "IAJ")
                .await,
        );
    }
    one.wait_count(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        EVENTS as i64,
    )
    .await;
    let elapsed = started.elapsed();
    let got = receiver.received();
    // In the happy path every delivery is sent exactly once, although two replicas claim work.
    assert_eq!(got.len(), EVENTS);
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    seen.dedup();
    let mut want: Vec<String> = ids.iter().map(ToString::to_string).collect();
    want.sort();
    assert_eq!(seen, want);
    let concurrent = receiver.max_in_flight.load(Ordering::SeqCst);
    assert!(concurrent > 1, "deliveries ran one at a time");
    eprintln!(
        "{EVENTS} events published and delivered by 2 replicas in {elapsed:?} \
         ({:.0}/s), at most {concurrent} requests in flight at the receiver",
        EVENTS as f64 / elapsed.as_secs_f64()
    );
    two.stop().await;
    one.stop().await;
}

#[tokio::test]
async fn delivers_over_https_and_refuses_an_untrusted_certificate() {
    let mut app = spawn_app().await;
    let receiver = Receiver::start_tls(0).await;
    let url = receiver.url("/tls");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let sub = app.subscribe(AGB_A, &url, &[], &[], &[]).await;
    // By name as well as by IP address: the test certificate names both.
    let by_name = format!("https://localhost:{}/tls-name", receiver.addr.port());
    app.subscribe(AGB_A, &by_name, &[], &[], &[]).await;
    let event_id = app
        .publish_assignment("0222", AGB_A, "issued", 5, "IAJ")
        .await;
    app.wait_delivered(2).await;
    let got = receiver.at("/tls");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["id"], event_id.to_string());
    assert!(verify_signature(&sub.secret, &got[0]));
    assert_eq!(receiver.at("/tls-name").len(), 1);
    app.stop().await;

    // A service that does not trust the test CA never delivers, and says why.
    let mut strict = common::spawn_app_with(|c| c.webhooks.ca_file = None).await;
    strict.subscribe(AGB_A, &url, &[], &[], &[]).await;
    strict
        .publish_assignment("0222", AGB_A, "issued", 6, "IAJ")
        .await;
    strict
        .wait_count("SELECT count(*) FROM deliveries WHERE status = 'failed'", 1)
        .await;
    let error: String = sqlx::query_scalar("SELECT last_error FROM deliveries")
        .fetch_one(&strict.pool)
        .await
        .unwrap();
    assert!(error.starts_with("tls:"), "{error}");
    assert_eq!(receiver.at("/tls").len(), 1);
    strict.stop().await;
}

/// Many `issued` events at once are written as letters in batches: one letter each, none twice
/// (an event republished under another `Nats-Msg-Id` is still one letter), and no letter for a
/// `changed` event.
#[tokio::test]
async fn a_burst_of_assignments_gives_one_letter_each() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..40u32 {
        ids.push(
            app.publish_assignment("0222", AGB_A, "issued", 100 + n, "IAJ")
                .await,
        );
        app.publish_assignment("0222", AGB_A, "changed", 100 + n, "IAJ")
            .await;
    }
    app.wait_count("SELECT count(*) FROM letters", 40).await;
    // The first event again, past JetStream's duplicate window: the inbox and the letters' unique
    // (event, kind) keep it to one letter.
    app.publish_as(
        ids[0],
        "republished-0",
        &format!("{}.assignment.0222.{AGB_A}.issued", app.namespace),
        "nl.regiozorg.assignment.issued.v1",
        "regiozorg/assignment/0222",
        "0222/100",
        common::assignment_payload("0222", AGB_A, 100, "IAJ"),
    )
    .await;
    app.publish_assignment("0222", AGB_A, "issued", 999, "IAJ")
        .await;
    app.wait_count("SELECT count(*) FROM letters", 41).await;
    let per_event: Vec<i64> =
        sqlx::query_scalar("SELECT count(*) FROM letters GROUP BY event_id HAVING count(*) > 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(per_event.is_empty(), "an event with more than one letter");
    let sealed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM letters WHERE text IS NULL AND text_sealed IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(sealed, 41);
    app.stop().await;
}

#[tokio::test]
async fn a_letter_is_written_when_a_provider_is_assigned() {
    let app = spawn_app().await;
    let issued = app
        .publish_assignment("0222", AGB_A, "issued", 11, "IAJ")
        .await;
    app.publish_assignment("0222", AGB_A, "changed", 11, "IAJ")
        .await;
    app.publish_assignment("0294", AGB_B, "issued", 12, "IAJ")
        .await;
    app.wait_count("SELECT count(*) FROM letters", 2).await;
    let letters = app
        .municipality("0222")
        .list_letters(pb::ListLettersRequest {
            municipality: "0222".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .letters;
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.event_id, issued.to_string());
    assert_eq!(l.kind, "provider_assigned");
    assert_eq!(l.assignment_number, 11);
    assert!(l.text.starts_with("Gemeente Doetinchem"), "{}", l.text);
    // Born 2012: a child, so the letter goes to the parents.
    assert!(
        l.text
            .contains("Aan de ouder(s) of verzorger(s) van Sanne Jansen"),
        "{}",
        l.text
    );
    assert!(l.text.contains("AGB-code 12345678"));
    // A request that names no municipality is not the municipality's own: refused before the
    // handler.
    let bad = app
        .municipality("0222")
        .list_letters(pb::ListLettersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::PermissionDenied, "{bad:?}");
    assert!(bad.message().contains("municipality"), "{bad:?}");
    app.stop().await;
}
