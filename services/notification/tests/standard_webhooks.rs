//! Webhooks as an off-the-shelf receiver verifies them (the `standardwebhooks` library on real
//! deliveries), secrets sealed at rest, shown once and rotated, legacy secrets sealed at start,
//! and the SSRF guard at subscription and again at delivery.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Receiver, spawn_app, spawn_app_with, spawn_replica, spawn_replica_with};
use notification::secrets::{Keyring, Sealed};
use notification::store;
use rz_proto::notification::v1 as pb;
use tonic_types::StatusExt;
use uuid::Uuid;

const AGB_A: &str = "12345678";
const AGB_B: &str = "87654321";

fn verify(secret: &str, r: &common::Received) -> Result<(), standardwebhooks::WebhookError> {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&r.body, &r.headers)
}

#[tokio::test]
async fn a_standardwebhooks_receiver_verifies_every_attempt_and_each_has_a_fresh_timestamp() {
    // One failure, retried 1.1 s later: the two attempts fall in different seconds.
    let mut app = spawn_app_with(|c| {
        c.webhooks.initial_backoff_ms = 1_100;
        c.webhooks.max_backoff_ms = 1_100;
    })
    .await;
    let receiver = Receiver::start(1).await;
    let sub = app
        .subscribe(AGB_A, &receiver.url("/hook"), &[], &[], &[])
        .await;
    assert!(sub.secret.starts_with("whsec_"), "{sub:?}");
    let event_id = app
        .publish_assignment("0222", AGB_A, "issued", 42, "IAJ")
        .await;
    app.wait_delivered(1).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2, "{got:?}");
    for r in &got {
        verify(&sub.secret, r).unwrap_or_else(|e| panic!("{e}: {r:?}"));
        // The CloudEvents body is kept.
        assert_eq!(r.json()["id"], event_id.to_string());
        assert_eq!(r.json()["specversion"], "1.0");
        assert!(r.content_type.starts_with("application/cloudevents+json"));
        assert!(r.signature.starts_with("v1,"), "{}", r.signature);
        assert_eq!(r.headers.get("x-regiozorg-signature"), None);
    }
    // The same message id on every attempt (the delivery id), a fresh timestamp on each.
    assert_eq!(got[0].delivery, got[1].delivery);
    let ts: Vec<i64> = got.iter().map(|r| r.timestamp.parse().unwrap()).collect();
    assert!(ts[1] > ts[0], "{ts:?}");
    let now = chrono::Utc::now().timestamp();
    assert!((now - ts[1]).abs() < 60, "{ts:?} vs {now}");
    let delivery_id: Uuid = sqlx::query_scalar("SELECT id FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(got[0].delivery, delivery_id.to_string());

    // What the receiver refuses: another secret, a changed body, a changed or stale timestamp.
    let r = &got[1];
    let other = notification::webhook::new_secret(&[9u8; 32]);
    assert!(matches!(
        verify(&other, r),
        Err(standardwebhooks::WebhookError::InvalidSignature)
    ));
    let mut changed = r.clone();
    changed.body = bytes::Bytes::from(r.body.iter().copied().rev().collect::<Vec<u8>>());
    assert!(verify(&sub.secret, &changed).is_err());
    let mut shifted = r.clone();
    shifted.headers.insert(
        "webhook-timestamp",
        (ts[1] + 1).to_string().parse().unwrap(),
    );
    assert!(matches!(
        verify(&sub.secret, &shifted),
        Err(standardwebhooks::WebhookError::InvalidSignature)
    ));
    let mut stale = r.clone();
    stale.headers.insert(
        "webhook-timestamp",
        (now - 600).to_string().parse().unwrap(),
    );
    assert!(matches!(
        verify(&sub.secret, &stale),
        Err(standardwebhooks::WebhookError::TimestampTooOldError)
    ));
    app.stop().await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_shown_once_and_rotated() {
    let app = spawn_app().await;
    let receiver = Receiver::start(0).await;
    let req = pb::CreateSubscriptionRequest {
        idempotency_key: "once".into(),
        agb_code: AGB_A.into(),
        url: receiver.url("/hook"),
        ..Default::default()
    };
    let mut a = app.provider(AGB_A);
    let sub = a
        .create_subscription(req.clone())
        .await
        .unwrap()
        .into_inner();
    let key = notification::webhook::signing_key(&sub.secret).unwrap();
    assert_eq!(key.len(), 32);

    // At rest: no plaintext column, sealed bytes that contain neither the secret nor its key,
    // the key id beside them.
    let (plain, sealed, key_id): (Option<String>, Vec<u8>, String) = sqlx::query_as(
        "SELECT secret, secret_sealed, secret_key_id FROM subscriptions WHERE id = $1::uuid",
    )
    .bind(&sub.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(plain, None);
    assert_eq!(key_id, "test1");
    assert!(!sealed.windows(6).any(|w| w == b"whsec_"));
    assert!(!sealed.windows(key.len()).any(|w| w == key.as_slice()));
    let b64 = sub.secret.trim_start_matches("whsec_").as_bytes();
    assert!(!sealed.windows(b64.len()).any(|w| w == b64));

    // Shown once: not on a replay of the same request, not in the list.
    let again = a.create_subscription(req).await.unwrap().into_inner();
    assert_eq!(
        (again.id.as_str(), again.secret.as_str()),
        (sub.id.as_str(), "")
    );
    let listed = a
        .list_subscriptions(pb::ListSubscriptionsRequest {
            agb_code: AGB_A.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    assert!(listed.iter().all(|s| s.secret.is_empty()), "{listed:?}");

    app.publish_assignment("0222", AGB_A, "issued", 1, "IAJ")
        .await;
    app.wait_delivered(1).await;
    verify(&sub.secret, &receiver.received()[0]).unwrap();

    // Rotation: a new secret, once; deliveries from then on verify with it, not the old one.
    let rotate = |agb: &str, id: &str| pb::RotateSubscriptionSecretRequest {
        agb_code: agb.into(),
        subscription_id: id.into(),
    };
    let rotated = a
        .rotate_subscription_secret(rotate(AGB_A, &sub.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.id, sub.id);
    assert!(rotated.secret.starts_with("whsec_"));
    assert_ne!(rotated.secret, sub.secret);
    app.publish_assignment("0222", AGB_A, "changed", 1, "IAJ")
        .await;
    app.wait_delivered(2).await;
    let last = receiver.received().pop().unwrap();
    verify(&rotated.secret, &last).unwrap();
    assert!(verify(&sub.secret, &last).is_err());

    // Another provider cannot rotate it: refused by the policy for A's code, not found for its
    // own; an unknown subscription is not found.
    let mut b = app.provider(AGB_B);
    let e = b
        .rotate_subscription_secret(rotate(AGB_A, &sub.id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = b
        .rotate_subscription_secret(rotate(AGB_B, &sub.id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let e = a
        .rotate_subscription_secret(rotate(AGB_A, &Uuid::now_v7().to_string()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let e = a
        .rotate_subscription_secret(rotate(AGB_A, "x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // B's attempts changed nothing: the secret is still the rotated one.
    app.publish_assignment("0222", AGB_A, "changed", 1, "IAJ")
        .await;
    app.wait_delivered(3).await;
    verify(&rotated.secret, &receiver.received().pop().unwrap()).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_legacy_hex_secret_is_sealed_at_start_and_keeps_verifying() {
    let app = spawn_app().await;
    let receiver = Receiver::start(0).await;
    // A subscription as the service stored it before sealing: `whsec_` and 64 hex digits, in
    // the clear.
    let legacy = format!("whsec_{}", "0123456789abcdef".repeat(4));
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO subscriptions (id, agb_code, url, event_types, municipalities, segments, secret)
         VALUES ($1, $2, $3, '{}', '{}', '{}', $4)",
    )
    .bind(id)
    .bind(AGB_A)
    .bind(receiver.url("/legacy"))
    .bind(&legacy)
    .execute(&app.pool)
    .await
    .unwrap();
    let (db, ns) = (app.db_url.clone(), app.namespace.clone());
    app.stop().await;

    // The next start seals it.
    let app = spawn_replica(&db, &ns).await;
    let (plain, key_id): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT secret, secret_key_id FROM subscriptions WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((plain, key_id.as_deref()), (None, Some("test1")));
    app.publish_assignment("0222", AGB_A, "issued", 3, "IAJ")
        .await;
    app.wait_delivered(1).await;
    let got = receiver.at("/legacy");
    assert_eq!(got.len(), 1);
    // The receiver keeps the secret it was given and verifies with the library.
    verify(&legacy, &got[0]).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_new_key_reseals_every_secret_and_a_missing_key_stops_the_reseal() {
    let pool = rz_stack::migrated_pool(store::MIGRATIONS).await;
    let k1 = Keyring::from_keys("k1", &[("k1".into(), [1u8; 32])]).unwrap();
    let both =
        Keyring::from_keys("k2", &[("k1".into(), [1u8; 32]), ("k2".into(), [2u8; 32])]).unwrap();
    let k2_only = Keyring::from_keys("k2", &[("k2".into(), [2u8; 32])]).unwrap();
    let mut ids = Vec::new();
    for n in 0..3u8 {
        let row = store::SubscriptionRow {
            id: Uuid::now_v7(),
            agb_code: AGB_A.parse().unwrap(),
            url: "https://hooks.example.org/".into(),
            event_types: vec![],
            municipalities: vec![],
            segments: vec![],
            created_at: chrono::Utc::now(),
        };
        let sealed = k1.seal(row.id.as_bytes(), &[b'0' + n; 8]).unwrap();
        let mut conn = pool.acquire().await.unwrap();
        store::insert_subscription(&mut conn, &row, &sealed)
            .await
            .unwrap();
        ids.push(row.id);
    }
    // Under k1 now; a keyring without k1 cannot reseal, names the key, and changes nothing.
    let e = store::reseal_secrets(&pool, &k2_only).await.unwrap_err();
    assert!(e.to_string().contains("`k1`"), "{e}");
    let keys: Vec<String> = sqlx::query_scalar("SELECT secret_key_id FROM subscriptions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(keys, vec!["k1"; 3]);
    // With k1 and the new k2: all resealed under k2, same secrets; then nothing left to do.
    assert_eq!(store::reseal_secrets(&pool, &both).await.unwrap(), 3);
    assert_eq!(store::reseal_secrets(&pool, &both).await.unwrap(), 0);
    for (n, id) in ids.iter().enumerate() {
        let (key_id, bytes): (String, Vec<u8>) =
            sqlx::query_as("SELECT secret_key_id, secret_sealed FROM subscriptions WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(key_id, "k2");
        let opened = k2_only
            .open(id.as_bytes(), &Sealed { key_id, bytes })
            .unwrap();
        assert_eq!(opened, vec![b'0' + n as u8; 8]);
    }
}

/// The field violations of an INVALID_ARGUMENT: (field, description).
fn violations(e: &tonic::Status) -> Vec<(String, String)> {
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    e.get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

#[tokio::test]
async fn unsafe_webhook_urls_are_refused_naming_url_and_the_rule_and_nothing_is_stored() {
    // Production settings: https only, no allow-list; plus a configured cluster range.
    let app = spawn_app_with(|c| {
        c.webhooks.require_https = true;
        c.webhooks.allow_cidrs = vec![];
        c.webhooks.deny_cidrs = vec!["198.51.100.0/24".into()];
    })
    .await;
    let receiver = Receiver::start(0).await;
    let port = receiver.addr.port();
    let cases = [
        (
            "https://169.254.169.254/latest/meta-data/".to_owned(),
            "webhook_url.link_local",
        ),
        ("https://10.20.30.40/hook".to_owned(), "webhook_url.private"),
        (
            "https://192.168.1.10/hook".to_owned(),
            "webhook_url.private",
        ),
        (format!("https://[::1]:{port}/hook"), "webhook_url.loopback"),
        (
            format!("https://localhost:{port}/hook"),
            "webhook_url.loopback",
        ),
        (
            format!("https://127.0.0.1:{port}/hook"),
            "webhook_url.loopback",
        ),
        (
            "https://[fd00::1]/hook".to_owned(),
            "webhook_url.unique_local",
        ),
        (
            "https://[fe80::1]/hook".to_owned(),
            "webhook_url.link_local",
        ),
        ("https://0.0.0.0/hook".to_owned(), "webhook_url.unspecified"),
        (
            "https://198.51.100.7/hook".to_owned(),
            "webhook_url.cluster_range",
        ),
        (
            "https://no-such-host.invalid/hook".to_owned(),
            "webhook_url.resolves",
        ),
        ("http://203.0.113.9/hook".to_owned(), "webhook_url.https"),
    ];
    let mut a = app.provider(AGB_A);
    for (url, rule) in &cases {
        let e = a
            .create_subscription(pb::CreateSubscriptionRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                agb_code: AGB_A.into(),
                url: url.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let v = violations(&e);
        assert!(
            v.iter().any(|(f, d)| f == "url" && d.contains(rule)),
            "{url}: {v:?}"
        );
        assert!(!e.message().contains("whsec_"));
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    app.publish_assignment("0222", AGB_A, "issued", 9, "IAJ")
        .await;
    // The letter is the sign the event was read; no subscription, so no delivery.
    app.wait_count("SELECT count(*) FROM letters", 1).await;
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(deliveries, 0);
    assert!(receiver.received().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_address_refused_at_delivery_is_never_connected_to_and_fails_at_once() {
    // Subscribed while the receiver's address was allowed ...
    let mut app = spawn_app().await;
    let receiver = Receiver::start(0).await;
    app.subscribe(AGB_A, &receiver.url("/hook"), &[], &[], &[])
        .await;
    let (db, ns) = (app.db_url.clone(), app.namespace.clone());
    app.stop().await;
    // ... and delivered by a service for which it no longer is (as when a name is made to
    // resolve elsewhere after the check): refused before any connection, failed for good with
    // the rule, the operator alerted.
    let app = spawn_replica_with(&db, &ns, |c| c.webhooks.allow_cidrs = vec![]).await;
    app.publish_assignment("0222", AGB_A, "issued", 4, "IAJ")
        .await;
    app.wait_count("SELECT count(*) FROM deliveries WHERE status = 'failed'", 1)
        .await;
    let (attempts, error): (i32, String) =
        sqlx::query_as("SELECT attempts, last_error FROM deliveries")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.contains("webhook_url.loopback"), "{error}");
    assert!(receiver.received().is_empty());
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE resolved_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(alerts, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_http_subscription_made_before_https_was_required_is_not_delivered() {
    let mut app = spawn_app().await;
    let receiver = Receiver::start(0).await;
    app.subscribe(AGB_A, &receiver.url("/hook"), &[], &[], &[])
        .await;
    let (db, ns) = (app.db_url.clone(), app.namespace.clone());
    app.stop().await;
    let app = spawn_replica_with(&db, &ns, |c| c.webhooks.require_https = true).await;
    app.publish_assignment("0222", AGB_A, "issued", 5, "IAJ")
        .await;
    app.wait_count("SELECT count(*) FROM deliveries WHERE status = 'failed'", 1)
        .await;
    let error: String = sqlx::query_scalar("SELECT last_error FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(error.contains("webhook_url.https"), "{error}");
    assert!(receiver.received().is_empty());
    app.stop().await;
}
