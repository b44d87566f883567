//! Residents' personal data at rest: sealed under `personal_data.keys_file` (AES-256-GCM, the key
//! outside the database), opened for the callers that may read it, resealed at start after a key
//! rotation, and rows from before sealing sealed at start with their plaintext cleared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{MUNICIPALITY, SECRET, bsn, resident_request, spawn_app};
use rz_platform::Shutdown;
use rz_proto::access::v1 as pb;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_stack::Stack;
use sqlx::{PgPool, Row};

/// What the row of `client_key` holds: (plaintext BSN, plaintext family name, sealed bytes, key id).
async fn stored(
    pool: &PgPool,
    client_key: &str,
) -> (
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
) {
    let row =
        sqlx::query("SELECT bsn, family_name, sealed, key_id FROM residents WHERE client_key = $1")
            .bind(client_key)
            .fetch_one(pool)
            .await
            .unwrap();
    (
        row.get("bsn"),
        row.get("family_name"),
        row.get("sealed"),
        row.get("key_id"),
    )
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_registered_residents_personal_data_is_sealed_and_opens_for_its_readers() {
    let mut app = spawn_app().await;
    let person = bsn(21);
    let registered = app
        .client
        .register_resident(resident_request(&person, "1980-05-01"))
        .await
        .unwrap()
        .into_inner();

    let (plain_bsn, plain_name, sealed, key_id) = stored(&app.pool, &registered.client_key).await;
    assert_eq!(plain_bsn, None, "no plaintext BSN at rest");
    assert_eq!(plain_name, None, "no plaintext name at rest");
    let sealed = sealed.expect("sealed personal data");
    assert_eq!(key_id.as_deref(), Some("pd1"));
    for clear in [
        person.as_str(),
        "Jansen",
        "Anna Maria",
        "Raadhuisstraat",
        "7001EW",
    ] {
        assert!(
            !contains(&sealed, clear),
            "`{clear}` readable in the sealed bytes"
        );
    }
    // Nothing else in the database holds the BSN in the clear either (the outbox's events carry
    // the client key only).
    let anywhere: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE position($1::bytea IN payload) > 0")
            .bind(person.as_bytes())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(anywhere, 0, "an outbox row holds the BSN");

    // By BSN and by client key, as the municipality.
    let by_bsn = app
        .client
        .get_resident(pb::GetResidentRequest {
            bsn: person.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_bsn, registered);
    assert_eq!(by_bsn.family_name, "Jansen");
    assert_eq!(by_bsn.bsn, person);
    // A case opened by BSN finds the sealed resident.
    app.client
        .open_case(pb::OpenCaseRequest {
            idempotency_key: "case-sealed".into(),
            bsn: person.clone(),
            law: rz_proto::types::v1::Law::Jeugdwet as i32,
            date: "2022-06-01".into(),
        })
        .await
        .expect("opens a case by BSN");
    // The client block assignment addresses the provider's message with.
    let blocks = app
        .assignment
        .get_clients_for_assignment(pb::GetClientsForAssignmentRequest {
            client_keys: vec![registered.client_key.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .clients;
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].bsn, person);
    assert_eq!(blocks[0].family_name, "Jansen");
    assert_eq!(
        blocks[0].address.as_ref().map(|a| a.postal_code.as_str()),
        Some("7001EW")
    );
}

/// A key file with the stack's key and a new one, `pd2`, that seals from now on.
fn rotated_key_file() -> std::path::PathBuf {
    let old = std::fs::read_to_string(rz_stack::personal_keys_file()).unwrap();
    let path = std::env::temp_dir().join(format!(
        "rz-access-rotated-keys-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    let new = rz_platform::sealing::new_key_line("pd2").unwrap();
    std::fs::write(&path, format!("{old}{new}")).unwrap();
    path
}

/// Starts access on `db_url` with `keys` (None: the stack's file); the build error, if any.
async fn start(
    stack: &Stack,
    db_url: &str,
    keys: Option<&std::path::Path>,
) -> Result<(String, Shutdown, tokio::task::JoinHandle<()>), String> {
    let mut config = stack.access_config(MUNICIPALITY).await;
    config.database.url = db_url.to_owned();
    if let Some(k) = keys {
        config.personal_data.keys_file = Some(k.to_owned());
    }
    let app = access::App::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let endpoint = format!("http://{}", app.local_addr());
    let shutdown = Shutdown::new();
    let run = app.run(shutdown.clone());
    let server = tokio::spawn(async move {
        run.await.unwrap();
    });
    Ok((endpoint, shutdown, server))
}

#[tokio::test]
async fn rows_in_plaintext_and_under_an_older_key_are_sealed_with_the_current_key_at_start() {
    let stack = Stack::builder()
        .registration()
        .municipalities(&[MUNICIPALITY])
        .start()
        .await;
    let db_url = stack.access_config(MUNICIPALITY).await.database.url;
    let (endpoint, shutdown, server) = start(&stack, &db_url, None).await.unwrap();
    let mut client =
        AccessServiceClient::new(stack.as_municipality(MUNICIPALITY).channel(&endpoint));
    let sealed_person = bsn(31);
    let sealed_key = client
        .register_resident(resident_request(&sealed_person, "1980-01-01"))
        .await
        .unwrap()
        .into_inner()
        .client_key;
    shutdown.trigger();
    server.await.unwrap();

    // A row as written before sealing existed (migration 103): every column in plaintext.
    let pool = PgPool::connect(&db_url).await.unwrap();
    let legacy_person = bsn(32);
    let legacy_key = rz_domain::ClientKey::derive(
        SECRET.as_bytes(),
        &rz_domain::Bsn::parse(&legacy_person).unwrap(),
    )
    .to_string();
    sqlx::query(
        "INSERT INTO residents (client_key, bsn, given_names, family_name, birth_date, street,
             house_number, postal_code, city, municipality, rep_name, rep_relation, gender)
         VALUES ($1, $2, 'Piet', 'Bakker', '1970-02-03', 'Markt', '5', '7001AB', 'Doetinchem',
             '0222', NULL, NULL, 1)",
    )
    .bind(&legacy_key)
    .bind(&legacy_person)
    .execute(&pool)
    .await
    .unwrap();

    // Rotation: a new key appended; the restart seals both rows with it.
    let rotated = rotated_key_file();
    let (endpoint, shutdown, server) = start(&stack, &db_url, Some(&rotated)).await.unwrap();
    for key in [&sealed_key, &legacy_key] {
        let (plain_bsn, plain_name, sealed, key_id) = stored(&pool, key).await;
        assert_eq!((plain_bsn, plain_name), (None, None), "plaintext left");
        assert!(sealed.is_some());
        assert_eq!(key_id.as_deref(), Some("pd2"));
    }
    let mut client =
        AccessServiceClient::new(stack.as_municipality(MUNICIPALITY).channel(&endpoint));
    let legacy = client
        .get_resident(pb::GetResidentRequest {
            bsn: legacy_person.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (legacy.family_name.as_str(), legacy.client_key.as_str()),
        ("Bakker", legacy_key.as_str())
    );
    assert_eq!(legacy.birth_date, "1970-02-03");
    let earlier = client
        .get_resident(pb::GetResidentRequest {
            client_key: sealed_key.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(earlier.bsn, sealed_person);
    shutdown.trigger();
    server.await.unwrap();

    // Without the key the rows are sealed with, access does not start, and says which key.
    let only_new = std::env::temp_dir().join(format!(
        "rz-access-other-key-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    std::fs::write(
        &only_new,
        rz_platform::sealing::new_key_line("pd3").unwrap(),
    )
    .unwrap();
    let err = match start(&stack, &db_url, Some(&only_new)).await {
        Ok(_) => panic!("access started without the key its rows are sealed with"),
        Err(e) => e,
    };
    assert!(err.contains("`pd2`"), "{err}");
    // No key file at all: refused, the setting named.
    let mut config = stack.access_config(MUNICIPALITY).await;
    config.personal_data.keys_file = None;
    let err = match access::App::build(config).await {
        Ok(_) => panic!("access started without personal_data.keys_file"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("personal_data.keys_file"), "{err}");
}
