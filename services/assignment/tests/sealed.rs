//! Personal data at rest in assignment: the BSN it received directly (an import, a provider's
//! 315) and the standard's messages to providers (a 301 carries the BSN, name and address) are
//! sealed under `personal_data.keys_file`; the provider still fetches its messages in the clear.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rz_proto::assignment::v1 as pb;
use sqlx::Row;

/// The stack's personal data keys, as assignment loads them.
fn keyring() -> rz_platform::sealing::Keyring {
    rz_platform::sealing::Keyring::load(&rz_stack::personal_keys_file(), None).unwrap()
}

/// The messages of provider OLD in municipality M, as the provider fetches them.
async fn fetch(app: &mut TestApp) -> pb::FetchProviderMessagesResponse {
    app.a
        .provider(OLD)
        .fetch_provider_messages(pb::FetchProviderMessagesRequest {
            agb_code: OLD.into(),
            municipality: M.into(),
            since: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_imported_bsn_and_the_providers_message_are_sealed_and_the_provider_reads_them() {
    let mut app = spawn_app().await;
    // The import gives the BSN, which assignment keeps; access knows the resident (the 301 needs
    // the birth date and name).
    let person = bsn(41);
    app.register_resident(&person, "1980-01-01").await;
    let a = app
        .import(&person, OLD, "2021-07-01", "2022-12-31", true)
        .await
        .unwrap();

    let row = sqlx::query(
        "SELECT bsn, sealed, key_id FROM client_identities WHERE municipality = $1 AND client_key = $2",
    )
    .bind(M)
    .bind(&a.client_key)
    .fetch_one(&app.a.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<Option<String>, _>("bsn"), None, "plaintext BSN");
    let sealed: Vec<u8> = row.get("sealed");
    assert!(!contains(&sealed, &person));
    assert_eq!(
        row.get::<Option<String>, _>("key_id").as_deref(),
        Some("pd1")
    );

    let messages = sqlx::query("SELECT payload, key_id FROM provider_messages WHERE agb_code = $1")
        .bind(OLD)
        .fetch_all(&app.a.pool)
        .await
        .unwrap();
    assert!(!messages.is_empty(), "the 301 of the import is recorded");
    for m in &messages {
        assert!(!contains(&m.get::<Vec<u8>, _>("payload"), &person));
        assert_eq!(m.get::<Option<String>, _>("key_id").as_deref(), Some("pd1"));
    }

    let fetched = fetch(&mut app).await;
    assert_eq!(fetched.skipped.len(), 0, "{:?}", fetched.skipped);
    assert_eq!(fetched.messages.len(), messages.len());
    assert!(
        fetched.messages.iter().any(|m| m.xml.contains(&person)),
        "the provider's 301 names the client's BSN"
    );
}

#[tokio::test]
async fn rows_from_before_sealing_are_sealed_at_start() {
    let mut app = spawn_app().await;
    let person = bsn(42);
    app.register_resident(&person, "1980-01-01").await;
    let a = app
        .import(&person, OLD, "2021-07-01", "2022-12-31", true)
        .await
        .unwrap();
    // As the rows were before migration 113: the BSN and the message payload in the clear.
    let payload = assignment::store::list_provider_messages(
        &mut app.a.pool.acquire().await.unwrap(),
        &keyring(),
        &rz_domain::AgbCode::parse(OLD).unwrap(),
        None,
        None,
    )
    .await
    .unwrap()
    .remove(0)
    .payload;
    sqlx::query(
        "UPDATE client_identities SET bsn = $2, sealed = NULL, key_id = NULL WHERE client_key = $1",
    )
    .bind(&a.client_key)
    .bind(&person)
    .execute(&app.a.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE provider_messages SET payload = $2, key_id = NULL WHERE agb_code = $1")
        .bind(OLD)
        .bind(&payload)
        .execute(&app.a.pool)
        .await
        .unwrap();

    let sealed = assignment::store::seal_identities(&app.a.pool, &keyring())
        .await
        .unwrap();
    assert_eq!(sealed, 1);
    let messages = assignment::store::seal_provider_messages(&app.a.pool, &keyring())
        .await
        .unwrap();
    assert!(messages >= 1);
    let plain: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM client_identities WHERE bsn IS NOT NULL OR sealed IS NULL)
              + (SELECT count(*) FROM provider_messages WHERE key_id IS NULL)",
    )
    .fetch_one(&app.a.pool)
    .await
    .unwrap();
    assert_eq!(plain, 0, "rows left in plaintext");
    // And they open as before: the provider's message names the client.
    let fetched = fetch(&mut app).await;
    assert!(fetched.messages.iter().any(|m| m.xml.contains(&person)));
}
