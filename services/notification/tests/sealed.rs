//! Personal data at rest in notification: a webhook delivery's body and a resident's letter are
//! sealed under the key file `webhooks.secret_keys_file` (AES-256-GCM, the key outside the
//! database), opened to be sent or listed, a delivered body removed; rows written in plaintext (as
//! before migration 107) are sealed at a restart and resealed after a key rotation; a row whose key
//! the replica does not hold is put off, not sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Receiver, spawn_app, spawn_replica, spawn_replica_with, verify_signature};
use notification::secrets::{Keyring, Sealed};
use notification::store::{self, NewDelivery, NewLetter, SubscriptionRow};
use rz_proto::notification::v1 as pb;
use sqlx::{PgPool, Row};
use uuid::Uuid;

const AGB: &str = "12345678";
/// The BSN and family name `publish_assignment` puts in the client block.
const BSN: &str = "999990019";
const NAME: &str = "Jansen";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A delivery row's body columns: (plaintext, sealed bytes, key id).
type BodyColumns = (Option<String>, Option<Vec<u8>>, Option<String>);

async fn body_columns(pool: &PgPool, id: Uuid) -> BodyColumns {
    sqlx::query_as("SELECT body, body_sealed, body_key_id FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A letter row's text columns: (plaintext, sealed bytes, key id).
async fn text_columns(pool: &PgPool, id: Uuid) -> BodyColumns {
    sqlx::query_as("SELECT text, text_sealed, text_key_id FROM letters WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Opens sealed columns with `keys` under `aad`, as text.
fn open(keys: &Keyring, aad: &str, bytes: Option<Vec<u8>>, key_id: Option<String>) -> String {
    let sealed = Sealed {
        key_id: key_id.expect("a key id"),
        bytes: bytes.expect("sealed bytes"),
    };
    String::from_utf8(keys.open(aad.as_bytes(), &sealed).unwrap()).unwrap()
}

#[tokio::test]
async fn an_events_delivery_body_and_letter_are_sealed_sent_signed_listed_and_the_delivered_body_removed()
 {
    let mut app = spawn_app().await;
    let receiver = Receiver::start(0).await;
    let sub = app
        .subscribe(AGB, &receiver.url("/hook"), &[], &[], &[])
        .await;
    // Nothing listens there: this subscription's delivery fails and keeps its body.
    let dead = app
        .subscribe(AGB, "http://127.0.0.1:9/dead", &[], &[], &[])
        .await;
    let event_id = app
        .publish_assignment("0222", AGB, "issued", 7, "IAJ")
        .await;
    app.wait_delivered(1).await;
    app.wait_count("SELECT count(*) FROM deliveries WHERE status = 'failed'", 1)
        .await;

    // The receiver got the CloudEvent with the BSN, signed with the subscription's secret.
    let got = receiver.at("/hook");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(verify_signature(&sub.secret, &got[0]), "bad signature");
    let ce = got[0].json();
    assert_eq!(ce["id"], event_id.to_string());
    assert_eq!(ce["data"]["client"]["bsn"], BSN);

    let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT d.id, d.subscription_id, d.status FROM deliveries d ORDER BY d.status",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (id, subscription, status) in rows {
        let (plain, bytes, key_id) = body_columns(&app.pool, id).await;
        assert_eq!(plain, None, "no plaintext body at rest ({status})");
        if status == "delivered" {
            assert_eq!(subscription.to_string(), sub.id);
            // Never sent again: the body is gone.
            assert_eq!((bytes, key_id), (None, None));
        } else {
            assert_eq!(
                (status.as_str(), subscription.to_string()),
                ("failed", dead.id.clone())
            );
            let sealed = bytes
                .clone()
                .expect("the failed delivery keeps its body, sealed");
            assert!(
                !contains(&sealed, BSN),
                "the BSN is not readable in the sealed bytes"
            );
            assert!(!contains(&sealed, NAME));
            assert_eq!(key_id.as_deref(), Some(app.keys.current()));
            // Bound to its event; the same document the receiver got.
            let body = open(&app.keys, &format!("deliveries/{event_id}"), bytes, key_id);
            assert_eq!(body.as_bytes(), got[0].body.as_ref());
        }
    }

    // The letter of the same event: sealed at rest, listed with its text.
    let letters = app.letters("0222", "provider_assigned", 1).await;
    assert!(
        letters[0].text.contains("Sanne Jansen"),
        "{}",
        letters[0].text
    );
    let id: Uuid = letters[0].id.parse().unwrap();
    let (plain, bytes, key_id) = text_columns(&app.pool, id).await;
    assert_eq!(plain, None, "no plaintext letter at rest");
    assert!(!contains(bytes.as_ref().unwrap(), NAME));
    assert_eq!(
        open(&app.keys, &format!("letters/{id}"), bytes, key_id),
        letters[0].text
    );
    app.stop().await;
}

/// A plaintext CloudEvent body, as rows before migration 107 held them.
fn legacy_body(n: u32) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"legacy-{n}","data":{{"client":{{"bsn":"{BSN}","family_name":"{NAME}"}}}}}}"#
    )
}

/// Writes a delivery in plaintext (as before migration 107) for `subscription`; returns its id
/// and event id.
async fn legacy_delivery(pool: &PgPool, subscription: Uuid, status: &str, n: u32) -> (Uuid, Uuid) {
    let (id, event_id) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query(
        "INSERT INTO deliveries (id, subscription_id, agb_code, event_id, event_type,
                                 event_subject, body, status, next_attempt_at, delivered_at,
                                 failed_at)
         VALUES ($1, $2, $3, $4, 'nl.regiozorg.assignment.issued.v1', '0222/1', $5, $6,
                 now() + interval '1 hour',
                 CASE WHEN $6 = 'delivered' THEN now() END,
                 CASE WHEN $6 = 'failed' THEN now() END)",
    )
    .bind(id)
    .bind(subscription)
    .bind(AGB)
    .bind(event_id)
    .bind(legacy_body(n))
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
    (id, event_id)
}

const LEGACY_LETTER: &str = "Gemeente Doetinchem\n\nAan Sanne Jansen\nRaadhuisstraat 12a\n";

#[tokio::test]
async fn rows_written_in_plaintext_are_sealed_at_a_restart_and_resealed_under_a_new_key() {
    let mut app = spawn_app().await;
    let sub = app
        .subscribe(AGB, "http://127.0.0.1:9/later", &[], &[], &[])
        .await;
    let sub_id: Uuid = sub.id.parse().unwrap();
    // Not due for an hour: the worker leaves them alone.
    let (pending, pending_event) = legacy_delivery(&app.pool, sub_id, "pending", 1).await;
    let (failed, failed_event) = legacy_delivery(&app.pool, sub_id, "failed", 2).await;
    let (delivered, _) = legacy_delivery(&app.pool, sub_id, "delivered", 3).await;
    let letter = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO letters (id, event_id, kind, municipality, client_key, assignment_number, text)
         VALUES ($1, $2, 'provider_assigned', '0222', 'key-1', 1, $3)",
    )
    .bind(letter)
    .bind(Uuid::now_v7())
    .bind(LEGACY_LETTER)
    .execute(&app.pool)
    .await
    .unwrap();
    let _ = app.stack.notification_service().stop().await;

    // The restart seals them, clears the plaintext and removes the delivered body.
    let mut again = spawn_replica(&app.db_url, &app.namespace).await;
    for (id, event_id, n) in [(pending, pending_event, 1), (failed, failed_event, 2)] {
        let (plain, bytes, key_id) = body_columns(&again.pool, id).await;
        assert_eq!(plain, None);
        assert!(!contains(bytes.as_ref().unwrap(), BSN));
        assert_eq!(key_id.as_deref(), Some(again.keys.current()));
        let body = open(
            &again.keys,
            &format!("deliveries/{event_id}"),
            bytes,
            key_id,
        );
        assert_eq!(body, legacy_body(n));
    }
    assert_eq!(
        body_columns(&again.pool, delivered).await,
        (None, None, None)
    );
    let (plain, bytes, key_id) = text_columns(&again.pool, letter).await;
    assert_eq!(plain, None);
    assert!(!contains(bytes.as_ref().unwrap(), NAME));
    assert_eq!(key_id.as_deref(), Some(again.keys.current()));
    let listed = again.letters("0222", "provider_assigned", 1).await;
    assert_eq!(listed[0].text, LEGACY_LETTER);
    let old_key = again.keys.current().to_owned();
    let _ = again.stack.notification_service().stop().await;

    // A new key appended to the file: the next start reseals under it; the texts stay.
    let rotated = std::env::temp_dir().join(format!("rz-notification-keys-{}", Uuid::now_v7()));
    let mut file = std::fs::read_to_string(&app.keys_file).unwrap();
    file.push_str(&notification::secrets::new_key_line("k2").unwrap());
    std::fs::write(&rotated, file).unwrap();
    let path = rotated.clone();
    let mut third = spawn_replica_with(&app.db_url, &app.namespace, move |c| {
        c.webhooks.secret_keys_file = Some(path);
        c.webhooks.secret_key_id = String::new();
    })
    .await;
    assert_eq!(third.keys.current(), "k2");
    for (id, event_id, n) in [(pending, pending_event, 1), (failed, failed_event, 2)] {
        let (plain, bytes, key_id) = body_columns(&third.pool, id).await;
        assert_eq!((plain, key_id.as_deref()), (None, Some("k2")));
        let body = open(
            &third.keys,
            &format!("deliveries/{event_id}"),
            bytes,
            key_id,
        );
        assert_eq!(body, legacy_body(n));
    }
    let (_, _, key_id) = text_columns(&third.pool, letter).await;
    assert_eq!(key_id.as_deref(), Some("k2"));
    let listed = third.letters("0222", "provider_assigned", 1).await;
    assert_eq!(listed[0].text, LEGACY_LETTER);
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE body_key_id = $1 OR body IS NOT NULL",
    )
    .bind(&old_key)
    .fetch_one(&third.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    third.stop().await;
    let _ = std::fs::remove_file(rotated);
}

async fn fresh_pool() -> PgPool {
    rz_stack::migrated_pool(store::MIGRATIONS).await
}

#[tokio::test]
async fn a_row_under_a_key_the_replica_lacks_is_put_off_naming_the_key_and_a_start_refuses() {
    let pool = fresh_pool().await;
    // Sealed by a replica that has key `new`; claimed by one that only has `old`.
    let newer = Keyring::from_keys("new", &[("new".into(), [3u8; 32])]).unwrap();
    let older = Keyring::from_keys("old", &[("old".into(), [4u8; 32])]).unwrap();
    let sub = SubscriptionRow {
        id: Uuid::now_v7(),
        agb_code: AGB.parse().unwrap(),
        url: "http://127.0.0.1:9/".into(),
        event_types: vec![],
        municipalities: vec![],
        segments: vec![],
        created_at: chrono::Utc::now(),
    };
    let secret = older.seal(sub.id.as_bytes(), b"whsec_x").unwrap();
    let mut conn = pool.acquire().await.unwrap();
    store::insert_subscription(&mut conn, &sub, &secret)
        .await
        .unwrap();
    let body = legacy_body(1);
    store::insert_delivery(
        &mut conn,
        &newer,
        &NewDelivery {
            subscription_id: sub.id,
            agb_code: AGB,
            event_id: Uuid::now_v7(),
            event_type: "nl.regiozorg.assignment.issued.v1",
            event_subject: "0222/1",
            body: &body,
        },
    )
    .await
    .unwrap();
    store::insert_letter(
        &mut conn,
        &newer,
        &NewLetter {
            event_id: Some(Uuid::now_v7()),
            kind: "provider_assigned",
            municipality: "0222",
            client_key: "key-1",
            assignment_number: Some(1),
            case_id: None,
            product_id: None,
            ends_on: None,
            text: LEGACY_LETTER,
        },
    )
    .await
    .unwrap();
    drop(conn);

    assert!(
        store::claim_due(&pool, &older, 10, 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store::claim_due_letters(&pool, &older, 10, 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    for table in ["deliveries", "letters"] {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT status, attempts, last_error, claim,
                    next_attempt_at > now() + interval '50 seconds' AS later
             FROM {table}"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        let error: String = row.get("last_error");
        assert_eq!(row.get::<String, _>("status"), "pending", "{table}");
        assert_eq!(row.get::<i32, _>("attempts"), 1, "{table}");
        assert!(row.get::<Option<Uuid>, _>("claim").is_none(), "{table}");
        assert!(row.get::<bool, _>("later"), "{table}: put off a minute");
        assert!(error.contains("`new`"), "{table}: {error}");
        assert!(!error.contains(BSN) && !error.contains(NAME), "{error}");
    }
    // A replica with the key sends them.
    sqlx::query("UPDATE deliveries SET next_attempt_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE letters SET next_attempt_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    let claimed = store::claim_due(&pool, &newer, 10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].body, body);
    let letters = store::claim_due_letters(&pool, &newer, 10, 60_000)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].text, LEGACY_LETTER);

    // At start, a value whose key is missing stops the sealing, naming the row and the key.
    let e = store::seal_delivery_bodies(&pool, &older)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("delivery") && e.contains("`new`"), "{e}");
    let e = store::seal_letter_texts(&pool, &older)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("letter") && e.contains("`new`"), "{e}");
    // Listing a letter that does not open is an error, not a panic.
    assert!(
        store::letters(&pool, &older, &"0222".parse().unwrap(), None, 10)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn list_letters_shows_a_sealed_letter_to_its_municipality() {
    let app = spawn_app().await;
    let mut conn = app.pool.acquire().await.unwrap();
    store::insert_letter(
        &mut conn,
        &app.keys,
        &NewLetter {
            event_id: Some(Uuid::now_v7()),
            kind: "decision_granted",
            municipality: "0222",
            client_key: "key-2",
            assignment_number: None,
            case_id: Some(Uuid::now_v7()),
            product_id: None,
            ends_on: None,
            text: LEGACY_LETTER,
        },
    )
    .await
    .unwrap();
    drop(conn);
    let listed = app
        .municipality("0222")
        .list_letters(pb::ListLettersRequest {
            municipality: "0222".into(),
            client_key: "key-2".into(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .letters;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].text, LEGACY_LETTER);
    app.stop().await;
}
