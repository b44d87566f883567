//! Migrations against the real PostgreSQL: a fresh database, a second run, a changed or unknown
//! migration, a malformed list, and a database migrated by the earlier runner (`schema_migrations`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Utc};
use rz_platform::db::{Migration, migrate};
use rz_testkit::TestEnv;
use sqlx::PgPool;

const THINGS: Migration = Migration {
    version: 101,
    name: "things",
    sql: "CREATE TABLE things (id BIGINT PRIMARY KEY);
          INSERT INTO things VALUES (1);",
};
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
    all.extend_from_slice(own);
    all
}

async fn fresh() -> PgPool {
    let env = TestEnv::load();
    PgPool::connect(&env.fresh_database().await).await.unwrap()
}

/// (version, name, installed_on) as recorded.
async fn recorded(pool: &PgPool) -> Vec<(i64, String, DateTime<Utc>)> {
    sqlx::query_as("SELECT version, description, installed_on FROM _sqlx_migrations ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn versions(rows: &[(i64, String, DateTime<Utc>)]) -> Vec<i64> {
    rows.iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn a_fresh_database_gets_every_migration_and_a_second_run_changes_nothing() {
    let pool = fresh().await;
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    let first = recorded(&pool).await;
    assert_eq!(versions(&first), vec![1, 2, 3, 101, 102]);
    let colour: String = sqlx::query_scalar("SELECT colour FROM things WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(colour, "blue");
    let outbox: Option<String> = sqlx::query_scalar("SELECT to_regclass('outbox')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outbox.as_deref(), Some("outbox"));

    // Again: nothing runs (THINGS would fail on its existing table), nothing is recorded anew.
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    assert_eq!(recorded(&pool).await, first);
}

#[tokio::test]
async fn a_new_migration_is_applied_after_the_old_ones() {
    let pool = fresh().await;
    migrate(&pool, &list(&[THINGS])).await.unwrap();
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    assert_eq!(versions(&recorded(&pool).await), vec![1, 2, 3, 101, 102]);
}

#[tokio::test]
async fn a_changed_migration_is_refused() {
    let pool = fresh().await;
    migrate(&pool, &list(&[THINGS])).await.unwrap();
    let changed = Migration {
        sql: "CREATE TABLE things (id INT PRIMARY KEY)",
        ..THINGS
    };
    let err = migrate(&pool, &list(&[changed])).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("migration 101 was previously applied but has been modified"),
        "{err}"
    );
}

#[tokio::test]
async fn a_migration_the_build_does_not_know_is_refused() {
    let pool = fresh().await;
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    // An older build, without COLOURS.
    let err = migrate(&pool, &list(&[THINGS])).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("migration 102 was previously applied but is missing"),
        "{err}"
    );
}

#[tokio::test]
async fn a_malformed_list_is_refused_before_anything_runs() {
    let pool = fresh().await;
    // A shared migration under another version.
    let mut moved = list(&[THINGS]);
    moved.retain(|m| m.name != "outbox_vacuum");
    moved.push(Migration {
        version: 103,
        name: "outbox_vacuum",
        sql: rz_eventing::OUTBOX_VACUUM_SQL,
    });
    let err = migrate(&pool, &moved).await.unwrap_err().to_string();
    assert!(
        err.contains("is not rz-eventing's shared migration 3"),
        "{err}"
    );
    // A service migration among the shared versions.
    let low = [Migration {
        version: 50,
        name: "things",
        sql: THINGS.sql,
    }];
    let err = migrate(&pool, &list(&low)).await.unwrap_err().to_string();
    assert!(
        err.contains("versions up to 100 are rz-eventing's"),
        "{err}"
    );
    // Versions out of order, a name twice.
    let err = migrate(&pool, &list(&[COLOURS, THINGS]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("versions must increase"), "{err}");
    let twice = Migration {
        version: 102,
        ..THINGS
    };
    let err = migrate(&pool, &list(&[THINGS, twice]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("listed twice"), "{err}");
    let nothing: Option<String> = sqlx::query_scalar("SELECT to_regclass('outbox')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(nothing, None);
}

/// What the earlier runner did: every migration in its own transaction, recorded in
/// `schema_migrations` under the service's own numbering (the shared ones in between).
async fn migrate_the_old_way(pool: &PgPool, old: &[(i64, &str, &'static str)]) {
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(pool)
    .await
    .unwrap();
    for (version, name, sql) in old {
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(*sql).execute(&mut *tx).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES ($1, $2, now() - make_interval(days => 30 - $1::int))",
        )
        .bind(version)
        .bind(name)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_database_migrated_by_the_earlier_runner_is_taken_over_without_running_anything_again() {
    let pool = fresh().await;
    migrate_the_old_way(
        &pool,
        &[
            (1, "outbox_inbox", rz_eventing::MIGRATION_SQL),
            (2, "things", THINGS.sql),
            (3, "outbox_wake", rz_eventing::OUTBOX_WAKE_SQL),
            (4, "outbox_vacuum", rz_eventing::OUTBOX_VACUUM_SQL),
        ],
    )
    .await;
    let old: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT name, applied_at FROM schema_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();

    // The new build, with one migration more: the applied ones are not run again (each would fail
    // on what it created), the new one is.
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    let rows = recorded(&pool).await;
    assert_eq!(versions(&rows), vec![1, 2, 3, 101, 102]);
    for (name, applied_at) in &old {
        let row = rows.iter().find(|r| &r.1 == name).unwrap();
        assert_eq!(&row.2, applied_at, "{name} keeps its time");
    }
    let colour: String = sqlx::query_scalar("SELECT colour FROM things WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(colour, "blue");

    // Taken over once: later runs check the checksums as for any database.
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    assert_eq!(recorded(&pool).await, rows);
    let changed = Migration {
        sql: "CREATE TABLE things (id INT)",
        ..THINGS
    };
    let err = migrate(&pool, &list(&[changed, COLOURS]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has been modified"), "{err}");
}

#[tokio::test]
async fn a_partly_migrated_old_database_gets_the_rest() {
    let pool = fresh().await;
    migrate_the_old_way(
        &pool,
        &[
            (1, "outbox_inbox", rz_eventing::MIGRATION_SQL),
            (2, "things", THINGS.sql),
        ],
    )
    .await;
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    assert_eq!(versions(&recorded(&pool).await), vec![1, 2, 3, 101, 102]);
    let trigger: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'outbox_notify')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!trigger, "outbox_wake ran");
}

#[tokio::test]
async fn an_old_database_with_a_migration_the_build_does_not_know_is_refused() {
    let pool = fresh().await;
    migrate_the_old_way(
        &pool,
        &[
            (1, "outbox_inbox", rz_eventing::MIGRATION_SQL),
            (2, "gadgets", "CREATE TABLE gadgets (id INT)"),
        ],
    )
    .await;
    let err = migrate(&pool, &list(&[THINGS])).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("schema_migrations records migration 2 `gadgets`"),
        "{err}"
    );
    // Nothing was taken over or run.
    let things: Option<String> = sqlx::query_scalar("SELECT to_regclass('things')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(things, None);
}

#[tokio::test]
async fn insert_row_binds_each_value_to_its_column() {
    let pool = fresh().await;
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    let insert = rz_platform::db::InsertRow::new("things")
        .value("colour", "green")
        .value("id", 7_i64);
    assert_eq!(
        insert.sql("RETURNING id"),
        "INSERT INTO things (colour, id) VALUES ($1, $2) RETURNING id"
    );
    insert.query("").unwrap().execute(&pool).await.unwrap();
    let colour: String = sqlx::query_scalar("SELECT colour FROM things WHERE id = 7")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(colour, "green");
}

#[tokio::test]
async fn insert_row_writes_many_rows_with_one_statement() {
    let pool = fresh().await;
    migrate(&pool, &list(&[THINGS, COLOURS])).await.unwrap();
    let insert = rz_platform::db::InsertRow::new("things")
        .value("id", 11_i64)
        .value("colour", "red")
        .next_row()
        .value("id", 12_i64)
        .value("colour", "blue");
    assert_eq!(
        insert.sql(""),
        "INSERT INTO things (id, colour) VALUES ($1, $2), ($3, $4) "
    );
    insert.query("").unwrap().execute(&pool).await.unwrap();
    let colours: Vec<String> =
        sqlx::query_scalar("SELECT colour FROM things WHERE id > 10 ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(colours, ["red", "blue"]);
    // A later row that names another column, or misses one: refused before anything runs.
    let swapped = rz_platform::db::InsertRow::new("things")
        .value("id", 3_i64)
        .value("colour", "red")
        .next_row()
        .value("colour", "blue")
        .value("id", 4_i64);
    assert!(swapped.query("").is_err());
    let short = rz_platform::db::InsertRow::new("things")
        .value("id", 5_i64)
        .value("colour", "red")
        .next_row()
        .value("id", 6_i64);
    assert!(short.query("").is_err());
}
