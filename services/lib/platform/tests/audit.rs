//! The audit trail against the real PostgreSQL: the chain verifies; the database refuses UPDATE,
//! TRUNCATE and DELETE of young entries; an entry changed behind the triggers' back, or one taken
//! out, is found by verify; pruning keeps the chain verifiable; concurrent writers keep one chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use rz_platform::audit::{Actor, Audit, AuditContext, AuditEntry, MIGRATION};
use rz_platform::db::migrate;
use rz_platform::identity::{Caller, Organisation, Person, Role};
use rz_testkit::TestEnv;
use sqlx::PgPool;

const KEY_A: &str = "0123456789abcdef0123456789abcdef";
const KEY_B: &str = "fedcba9876543210fedcba9876543210";

async fn fresh() -> PgPool {
    let env = TestEnv::load();
    let pool = PgPool::connect(&env.fresh_database().await).await.unwrap();
    migrate(&pool, rz_platform::migrations![]).await.unwrap();
    pool
}

fn consulent() -> Caller {
    Caller {
        organisation: Organisation::Municipality(rz_domain::GemeenteCode::parse("0222").unwrap()),
        person: Some(Person {
            subject: "u-17".to_owned(),
            name: "Anna de Vries".to_owned(),
            role: Role::Consulent,
        }),
    }
}

fn provider() -> AuditContext {
    AuditContext::new(
        Actor::organisation("urn:regiozorg:provider:12345678"),
        Some("jw301 intake".to_owned()),
    )
}

async fn record_some(audit: &Audit, n: usize) {
    for i in 0..n {
        let key = if i % 2 == 0 { KEY_A } else { KEY_B };
        audit
            .record(
                &provider(),
                &[AuditEntry::new(key, "0222", "fetch_provider_messages")],
            )
            .await
            .unwrap();
    }
}

async fn refused(pool: &PgPool, sql: &str) -> String {
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .expect_err(sql);
    err.to_string()
}

#[tokio::test]
async fn every_service_gets_the_audit_migration_as_a_shared_one() {
    let pool = fresh().await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(versions, vec![1, 2, 3, MIGRATION.version]);
    // A service's own migration numbered among the shared versions is still refused.
    let clash = rz_platform::db::Migration {
        version: 4,
        name: "gadgets",
        sql: "CREATE TABLE gadgets (id INT)",
    };
    let mut list: Vec<_> = rz_platform::migrations![].to_vec();
    list.retain(|m| m.name != MIGRATION.name);
    list.push(clash);
    let err = migrate(&pool, &list).await.unwrap_err().to_string();
    assert!(
        err.contains("not rz-eventing's shared migration 4"),
        "{err}"
    );
}

#[tokio::test]
async fn entries_form_a_chain_that_verifies_and_a_client_can_be_listed() {
    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "access");
    let empty = audit.verify().await.unwrap();
    assert!(empty.intact());
    assert_eq!((empty.entries, empty.oldest_seq), (0, 0));

    audit
        .record_caller(
            &consulent(),
            Some("herindicatie"),
            &[
                AuditEntry::new(KEY_A, "0222", "read_resident"),
                AuditEntry::new(KEY_B, "0222", "read_resident"),
            ],
        )
        .await
        .unwrap();
    audit.record(&provider(), &[]).await.unwrap(); // nothing
    record_some(&audit, 3).await;

    let v = audit.verify().await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.entries, v.oldest_seq), (5, 1));

    let a = audit.list(Some("0222"), KEY_A, 100).await.unwrap();
    assert_eq!(
        a.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![5, 3, 1],
        "newest first"
    );
    let first = &a[2];
    assert_eq!(first.organisation, "urn:regiozorg:municipality:0222");
    assert_eq!(first.person, "u-17");
    assert_eq!(first.role, "consulent");
    assert_eq!(first.system, "access");
    assert_eq!(first.action, "read_resident");
    assert_eq!(first.purpose, "herindicatie");
    assert_eq!(a[0].organisation, "urn:regiozorg:provider:12345678");
    assert_eq!(a[0].person, "");
    // The batch has one time; another municipality sees nothing; the limit holds.
    let b = audit.list(None, KEY_B, 100).await.unwrap();
    assert_eq!(b.last().unwrap().at, first.at);
    assert!(
        audit
            .list(Some("0197"), KEY_A, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(audit.list(None, KEY_A, 1).await.unwrap().len(), 1);
    // No name was stored anywhere.
    let names: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE audit_log::text LIKE '%Anna%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(names, 0);
}

#[tokio::test]
async fn the_database_refuses_update_truncate_and_delete_of_young_entries() {
    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "assignment");
    record_some(&audit, 2).await;
    let err = refused(
        &pool,
        "UPDATE audit_log SET action = 'nothing' WHERE seq = 1",
    )
    .await;
    assert!(err.contains("append-only: UPDATE refused"), "{err}");
    let err = refused(&pool, "DELETE FROM audit_log WHERE seq = 2").await;
    assert!(err.contains("within the retention period"), "{err}");
    let err = refused(&pool, "TRUNCATE audit_log").await;
    assert!(err.contains("append-only: TRUNCATE refused"), "{err}");
    // Without a retention setting nothing can be deleted.
    sqlx::raw_sql("DELETE FROM audit_settings")
        .execute(&pool)
        .await
        .unwrap();
    let err = refused(&pool, "DELETE FROM audit_log").await;
    assert!(err.contains("within the retention period"), "{err}");
    // Pruning with the default retention deletes nothing young.
    let pool2 = fresh().await;
    let audit2 = Audit::new(pool2.clone(), "assignment");
    record_some(&audit2, 2).await;
    assert_eq!(
        audit2
            .prune(Duration::from_secs(1826 * 86_400))
            .await
            .unwrap(),
        0
    );
    assert!(audit2.verify().await.unwrap().intact());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&pool2)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn an_entry_changed_behind_the_triggers_back_breaks_the_chain_at_that_entry() {
    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "notification");
    record_some(&audit, 6).await;
    // A superuser disables the guard and rewrites entry 4's purpose.
    sqlx::raw_sql(
        "ALTER TABLE audit_log DISABLE TRIGGER USER;
         UPDATE audit_log SET purpose = 'nothing to see' WHERE seq = 4;
         ALTER TABLE audit_log ENABLE TRIGGER USER;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let v = audit.verify().await.unwrap();
    assert!(!v.intact());
    assert_eq!(v.first_broken_seq, Some(4), "{v:?}");
    assert!(v.detail.contains("hash does not match"), "{v:?}");

    // Recomputing entry 4's hash does not help: entry 5 names the old one.
    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "notification");
    record_some(&audit, 6).await;
    let e4 = audit
        .list(None, KEY_B, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.seq == 4)
        .unwrap();
    let forged = rz_platform::audit::StoredEntry {
        action: "nothing".to_owned(),
        ..e4.clone()
    };
    let hash = forged.expected_hash(&e4.prev_hash);
    sqlx::raw_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET action = 'nothing', hash = $1 WHERE seq = 4")
        .bind(hash)
        .execute(&pool)
        .await
        .unwrap();
    let v = audit.verify().await.unwrap();
    assert_eq!(v.first_broken_seq, Some(5), "{v:?}");

    // An entry taken out of the middle is a gap.
    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "notification");
    record_some(&audit, 6).await;
    sqlx::raw_sql(
        "ALTER TABLE audit_log DISABLE TRIGGER USER;
         DELETE FROM audit_log WHERE seq = 3;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let v = audit.verify().await.unwrap();
    assert_eq!(v.first_broken_seq, Some(4), "{v:?}");
    assert!(v.detail.contains("missing"), "{v:?}");
}

#[tokio::test]
async fn pruning_deletes_the_oldest_entries_and_the_rest_still_verifies() {
    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "access");
    record_some(&audit, 3).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    record_some(&audit, 2).await;
    assert_eq!(audit.prune(Duration::from_secs(2)).await.unwrap(), 3);
    let v = audit.verify().await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.entries, v.oldest_seq), (2, 4));
    // Young entries are still protected under the shorter retention.
    let err = refused(&pool, "DELETE FROM audit_log WHERE seq = 5").await;
    assert!(err.contains("within the retention period"), "{err}");
    // The chain goes on from the kept entries.
    record_some(&audit, 1).await;
    let v = audit.verify().await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.entries, v.oldest_seq), (3, 4));
    // When every entry is past the retention the newest stays, and the chain goes on from it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(audit.prune(Duration::from_secs(1)).await.unwrap(), 2);
    record_some(&audit, 1).await;
    let v = audit.verify().await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.entries, v.oldest_seq), (2, 6));
    assert!(audit.prune(Duration::ZERO).await.is_err());
}

#[tokio::test]
async fn concurrent_recorders_keep_one_chain() {
    let pool = fresh().await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let audit = Audit::new(pool.clone(), "assignment");
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let entries: Vec<AuditEntry> = (0..3)
                    .map(|j| {
                        AuditEntry::new(
                            format!("{:032x}", t * 1000 + i * 10 + j),
                            "0222",
                            "read_client_block",
                        )
                    })
                    .collect();
                audit.record(&provider(), &entries).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let audit = Audit::new(pool.clone(), "assignment");
    let v = audit.verify().await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.entries, v.oldest_seq), (8 * 15 * 3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_of_one_recorder_are_written_together_each_with_its_own_purpose() {
    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "access");
    let calls = 300u32;
    let mut tasks = Vec::new();
    for i in 0..calls {
        let audit = audit.clone();
        tasks.push(tokio::spawn(async move {
            let context = AuditContext::new(
                Actor::organisation(format!("urn:regiozorg:municipality:{:04}", i % 7)),
                Some(format!("purpose {i}")),
            );
            audit
                .record(
                    &context,
                    &[AuditEntry::new(
                        format!("{i:032x}"),
                        "0222",
                        "read_resident",
                    )],
                )
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let v = audit.verify().await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!(v.entries, u64::from(calls));
    // Each call's entry carries its own actor and purpose, whichever group wrote it.
    for i in [0, 1, 150, calls - 1] {
        let listed = audit
            .list(Some("0222"), &format!("{i:032x}"), 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1, "{i}");
        assert_eq!(listed[0].purpose, format!("purpose {i}"));
        assert_eq!(
            listed[0].organisation,
            format!("urn:regiozorg:municipality:{:04}", i % 7)
        );
    }
    let transactions: i64 = sqlx::query_scalar("SELECT count(DISTINCT at) FROM audit_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("{calls} concurrent calls written in {transactions} transactions");
}

#[tokio::test]
async fn a_batch_can_name_an_actor_per_entry() {
    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "notification");
    let to = |agb: &str| Actor::organisation(format!("urn:regiozorg:provider:{agb}"));
    audit
        .record_each(
            Some("webhook delivery"),
            &[
                (
                    to("11111111"),
                    AuditEntry::new(KEY_A, "0222", "webhook_delivery"),
                ),
                (
                    to("22222222"),
                    AuditEntry::new(KEY_A, "0222", "webhook_delivery"),
                ),
            ],
        )
        .await
        .unwrap();
    let a = audit.list(Some("0222"), KEY_A, 10).await.unwrap();
    let who: Vec<&str> = a.iter().map(|e| e.organisation.as_str()).collect();
    assert_eq!(
        who,
        [
            "urn:regiozorg:provider:22222222",
            "urn:regiozorg:provider:11111111"
        ]
    );
    assert!(a.iter().all(|e| e.purpose == "webhook delivery"));
    assert!(audit.verify().await.unwrap().intact());
}

#[tokio::test]
async fn the_purpose_comes_from_x_purpose_and_is_checked() {
    let mut request = tonic::Request::new(());
    request
        .metadata_mut()
        .insert("x-purpose", "beschikking herindicatie".parse().unwrap());
    request.extensions_mut().insert(consulent());
    let c = AuditContext::from_request(&request).unwrap();
    assert_eq!(c.purpose.as_deref(), Some("beschikking herindicatie"));
    assert_eq!(c.actor.organisation, "urn:regiozorg:municipality:0222");
    assert_eq!(c.actor.role, "consulent");

    let mut long = tonic::Request::new(());
    long.metadata_mut()
        .insert("x-purpose", "x".repeat(201).parse().unwrap());
    let err = AuditContext::from_request(&long).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("x-purpose"), "{err:?}");

    let none = AuditContext::from_request(&tonic::Request::new(())).unwrap();
    assert_eq!(none.purpose, None);
    assert_eq!(none.actor.organisation, "urn:regiozorg:unknown");
}

/// The hash's encoding is part of every stored trail: changing it would make every existing chain
/// fail verification. This pins it.
#[test]
fn the_entry_hash_encoding_is_stable() {
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00.123456Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let h = rz_platform::audit::entry_hash(
        &[0; 32],
        1,
        at,
        [
            "urn:regiozorg:municipality:0222",
            "u-17",
            "consulent",
            "access",
            KEY_A,
            "0222",
            "read_resident",
            "",
        ],
    );
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "f0cb35533408532c24d841d9a64bf6c4e01bf6dd592144ad95e24ca5ad3868ea"
    );
}

#[tokio::test]
async fn the_api_lists_a_municipalitys_own_entries_and_takes_a_bsn_only_with_a_resolver() {
    use rz_platform::audit::AuditApi;
    use rz_proto::audit::v1 as pb;
    use rz_proto::audit::v1::audit_service_server::AuditService;

    let pool = fresh().await;
    let audit = Audit::new(pool.clone(), "access");
    audit
        .record_caller(
            &consulent(),
            None,
            &[
                AuditEntry::new(KEY_A, "0222", "read_resident"),
                AuditEntry::new(KEY_A, "0197", "read_resident"),
            ],
        )
        .await
        .unwrap();
    let as_0222 = |r: pb::ListClientEntriesRequest| {
        let mut req = tonic::Request::new(r);
        req.extensions_mut().insert(consulent());
        req
    };
    let list = |key: &str, bsn: &str| pb::ListClientEntriesRequest {
        municipality: "0222".into(),
        client_key: key.into(),
        bsn: bsn.into(),
        page_size: 0,
    };

    let api = AuditApi::new(audit.clone());
    let got = api
        .list_client_entries(as_0222(list(KEY_A, "")))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].municipality, "0222");
    assert_eq!(got[0].person, "u-17");
    // Even naming no municipality, a municipality sees its own entries only.
    let mut r = list(KEY_A, "");
    r.municipality.clear();
    let got = api
        .list_client_entries(as_0222(r))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.entries.len(), 1);
    // A call that passed no authorisation layer has no caller: refused, not read as an operator's.
    let err = api
        .list_client_entries(tonic::Request::new(list(KEY_A, "")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // A BSN without a resolver; neither or both; a malformed key.
    for (key, bsn, field) in [
        ("", "111222333", "bsn"),
        ("", "", "client_key"),
        (KEY_A, "111222333", "bsn"),
        ("nothex", "", "client_key"),
    ] {
        let err = api
            .list_client_entries(as_0222(list(key, bsn)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{key} {bsn}");
        assert!(err.message().contains(field), "{err:?}");
    }
    // With a resolver (access), the BSN becomes the client key.
    let api = AuditApi::new(audit.clone()).with_resolver(std::sync::Arc::new(|_, bsn| {
        assert_eq!(bsn, "111222333");
        Ok(KEY_A.to_owned())
    }));
    let got = api
        .list_client_entries(as_0222(list("", "111222333")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.entries.len(), 1);

    let v = api
        .verify_chain(tonic::Request::new(pb::VerifyChainRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(v.intact);
    assert_eq!((v.entries, v.oldest_seq, v.first_broken_seq), (2, 1, 0));
}
