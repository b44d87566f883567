//! A service that does not migrate (`[database] migrate = false`, Kubernetes): the schema check
//! it starts with (every migration of its build applied, a newer release's accepted: expand, then
//! contract), and the runtime role `migrate --grant-to` gives it: rows yes, schema no.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rz_platform::db::{
    Migration, SchemaError, can_change_schema, check_applied, grant_runtime, migrate,
};
use rz_testkit::TestEnv;
use sqlx::{Connection, PgConnection, PgPool};

const THINGS: Migration = Migration {
    version: 101,
    name: "things",
    sql: "CREATE TABLE things (id BIGSERIAL PRIMARY KEY, label TEXT NOT NULL);",
};
/// The expand step of the next release: a column the old release does not know, with a default.
const COLOURS: Migration = Migration {
    version: 102,
    name: "colours",
    sql: "ALTER TABLE things ADD COLUMN colour TEXT NOT NULL DEFAULT 'blue'",
};

fn list(own: &[Migration]) -> Vec<Migration> {
    let mut all: Vec<Migration> = rz_eventing::SHARED_MIGRATIONS
        .iter()
        .map(|m| Migration::shared(*m))
        .collect();
    all.push(rz_platform::audit::MIGRATION);
    all.extend_from_slice(own);
    all
}

async fn fresh() -> (PgPool, String) {
    let env = TestEnv::load();
    let url = env.fresh_database().await;
    (PgPool::connect(&url).await.unwrap(), url)
}

/// `url` with its user replaced by `role`.
fn as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split_once('@').map(|(_, h)| h).unwrap_or(rest);
    format!("{scheme}://{role}@{host}")
}

/// A login role of its own (roles are cluster-wide; tests run in parallel).
async fn new_role(pool: &PgPool) -> String {
    let role = format!(
        "rzt_app_{}",
        &uuid::Uuid::now_v7().simple().to_string()[16..]
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
        .execute(pool)
        .await
        .unwrap();
    role
}

#[tokio::test]
async fn a_database_never_migrated_is_refused_with_the_command_to_run() {
    let (pool, _) = fresh().await;
    let err = check_applied(&pool, "registration", &list(&[THINGS]))
        .await
        .unwrap_err();
    assert!(matches!(err, SchemaError::NotMigrated { .. }), "{err:?}");
    assert!(
        err.to_string().contains("run `registration migrate`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_release_whose_migration_is_not_applied_yet_is_refused_naming_it() {
    let (pool, _) = fresh().await;
    migrate(&pool, &list(&[THINGS])).await.unwrap();
    let err = check_applied(&pool, "access", &list(&[THINGS, COLOURS]))
        .await
        .unwrap_err();
    match &err {
        SchemaError::Missing { version, name, .. } => {
            assert_eq!((*version, name.as_str()), (102, "colours"))
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("migration 102 `colours` is not applied"),
        "{err}"
    );
}

#[tokio::test]
async fn the_old_release_keeps_serving_on_the_expanded_schema() {
    let (pool, _) = fresh().await;
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    // The new release: everything applied, nothing newer.
    let new = check_applied(&pool, "access", &list(&[THINGS, COLOURS]))
        .await
        .unwrap();
    assert_eq!((new.version, new.newer.len()), (102, 0));
    // The old release during the rolling upgrade: its migrations applied, 102 is a newer one.
    let old = check_applied(&pool, "access", &list(&[THINGS]))
        .await
        .unwrap();
    assert_eq!(old.version, 101);
    assert_eq!(old.newer, vec![(102, "colours".to_owned())]);
    // And its statements still work: the expand step added a column with a default.
    sqlx::query("INSERT INTO things (label) VALUES ('old release')")
        .execute(&pool)
        .await
        .unwrap();
    let colour: String = sqlx::query_scalar("SELECT colour FROM things")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(colour, "blue");
}

#[tokio::test]
async fn an_applied_migration_with_other_sql_is_refused() {
    let (pool, _) = fresh().await;
    migrate(&pool, &list(&[THINGS])).await.unwrap();
    let changed = Migration {
        sql: "CREATE TABLE things (id BIGINT PRIMARY KEY);",
        ..THINGS
    };
    let err = check_applied(&pool, "access", &list(&[changed]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SchemaError::Changed { version: 101, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_runtime_role_reads_and_writes_rows_but_cannot_change_the_schema() {
    let (pool, url) = fresh().await;
    let role = new_role(&pool).await;
    migrate(&pool, &list(&[THINGS])).await.unwrap();
    grant_runtime(&pool, &role).await.unwrap();
    // A table a later migration creates is covered too (default privileges).
    migrate(
        &pool,
        &list(&[
            THINGS,
            COLOURS,
            Migration {
                version: 103,
                name: "later",
                sql: "CREATE TABLE later (id BIGSERIAL PRIMARY KEY)",
            },
        ]),
    )
    .await
    .unwrap();

    let runtime = PgPool::connect(&as_role(&url, &role)).await.unwrap();
    assert!(!can_change_schema(&runtime).await.unwrap());
    assert!(can_change_schema(&pool).await.unwrap(), "the owner can");
    // Rows: insert (the sequence too), update, delete, select, truncate; the later table as well.
    sqlx::raw_sql(
        "INSERT INTO things (label) VALUES ('a'), ('b');
         UPDATE things SET label = 'c' WHERE label = 'a';
         DELETE FROM things WHERE label = 'b';
         INSERT INTO later DEFAULT VALUES;
         SELECT count(*) FROM outbox;",
    )
    .execute(&runtime)
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM things")
        .fetch_one(&runtime)
        .await
        .unwrap();
    assert_eq!(n, 1);
    sqlx::query("TRUNCATE later")
        .execute(&runtime)
        .await
        .unwrap();
    // The schema: no table, no column, no drop, no index.
    for ddl in [
        "CREATE TABLE sneaky (id INT)",
        "ALTER TABLE things ADD COLUMN sneaky TEXT",
        "DROP TABLE things",
        "CREATE INDEX sneaky ON things (label)",
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
    ] {
        let mut conn = PgConnection::connect(&as_role(&url, &role)).await.unwrap();
        let err = sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&mut conn)
            .await
            .expect_err(ddl);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap_or_default();
        // 42501 insufficient_privilege; 42501 too for "must be owner of table"
        assert_eq!(code, "42501", "{ddl}: {err}");
    }
    // It can check the schema (what a pod with migrate = false does at start).
    let state = check_applied(&runtime, "access", &list(&[THINGS, COLOURS]))
        .await
        .unwrap();
    assert_eq!(state.newer, vec![(103, "later".to_owned())]);
    // And it cannot migrate.
    let more = list(&[
        THINGS,
        COLOURS,
        Migration {
            version: 103,
            name: "later",
            sql: "CREATE TABLE later (id BIGSERIAL PRIMARY KEY)",
        },
        Migration {
            version: 104,
            name: "more",
            sql: "CREATE TABLE more (id INT)",
        },
    ]);
    assert!(migrate(&runtime, &more).await.is_err());
}

#[tokio::test]
async fn a_role_name_that_is_not_a_plain_identifier_is_refused() {
    let (pool, _) = fresh().await;
    migrate(&pool, &list(&[THINGS])).await.unwrap();
    for bad in ["", "App", "x; DROP TABLE things", "1abc", &"a".repeat(64)] {
        let err = grant_runtime(&pool, bad).await.unwrap_err();
        assert!(err.to_string().contains("--grant-to"), "{bad}: {err}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM things")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
