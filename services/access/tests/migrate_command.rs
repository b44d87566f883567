//! `access migrate` as the Kubernetes Job runs it (the binary, exit codes a script relies on) and
//! `serve` with `[database] migrate = false` on a database the Job has not migrated yet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::{MUNICIPALITY, bsn, resident_request};
use rz_platform::Shutdown;
use rz_platform::db::Migration;
use rz_platform::runner::Service;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_stack::{RUNTIME_ROLE, Stack, TestEnv, with_user};

/// `access migrate ARGS` with `[database] url` = `url` (environment only, no file).
fn migrate(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_access"))
        .arg("migrate")
        .args(args)
        .env("RZ__DATABASE__URL", url)
        .env("RZ__DATABASE__MAX_CONNECTIONS", "2")
        .output()
        .expect("runs the access binary")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn the_job_migrates_and_grants_then_the_check_passes_for_the_runtime_role() {
    let env = TestEnv::load();
    let owner = env.fresh_database().await;
    let runtime = with_user(&owner, RUNTIME_ROLE, RUNTIME_ROLE);
    // The role exists on the server (the stack makes it; an administrator would).
    let _ = rz_stack::runtime_database(&env, &[]).await;

    // Before the Job: pending (exit 3), and the message says what to run.
    let out = migrate(&owner, &["--check"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("run `access migrate`"),
        "{}",
        text(&out)
    );

    // The Job: migrates as the owner and grants the runtime role.
    let out = migrate(&owner, &["--grant-to", RUNTIME_ROLE]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("access: schema at version"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("runtime role rz_app"), "{}", text(&out));

    // The pods' initContainer: the runtime role sees every migration applied.
    let out = migrate(&runtime, &["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A second Job run changes nothing and still succeeds.
    let out = migrate(&owner, &["--grant-to", RUNTIME_ROLE]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test]
async fn bad_arguments_fail_with_their_own_exit_codes() {
    let env = TestEnv::load();
    let owner = env.fresh_database().await;
    // A role name that would be joined into SQL: refused (exit 1), named, nothing granted.
    let out = migrate(&owner, &["--grant-to", "Bad; DROP TABLE x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--grant-to"), "{}", text(&out));
    // --check changes nothing, so it cannot grant: a usage error (exit 2).
    let out = migrate(&owner, &["--check", "--grant-to", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // An unknown flag: usage error.
    let out = migrate(&owner, &["--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // A database that does not answer: exit 1, the database named.
    let out = migrate("postgres://nobody@127.0.0.1:1/none", &["--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("database"), "{}", text(&out));
}

#[tokio::test]
async fn serve_without_migrating_refuses_a_database_the_job_has_not_migrated() {
    let stack = Stack::builder().registration().start().await;
    let mut config = stack.access_config("0222").await;
    // A database nobody migrated, as the runtime role.
    let fresh = stack.env.fresh_database().await;
    config.database.url = with_user(&fresh, RUNTIME_ROLE, RUNTIME_ROLE);
    assert!(
        !config.database.migrate,
        "the stack runs services as on Kubernetes"
    );
    let err = match access::App::build(config).await {
        Ok(_) => panic!("access started on an unmigrated database"),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with("schema: "), "{err}");
    assert!(err.contains("run `access migrate`"), "{err}");
}

/// The expand step of a next release: a new nullable column and a new table. Release N keeps
/// serving on it (it never names them); release N+2 would drop what N+1 stopped using (contract).
const NEXT_RELEASE_EXPAND: Migration = Migration {
    version: 9001,
    name: "next_release_expand",
    sql: "ALTER TABLE residents ADD COLUMN preferred_language TEXT;
          CREATE TABLE resident_languages (code TEXT PRIMARY KEY);",
};

#[tokio::test]
async fn this_release_keeps_serving_while_and_after_the_next_release_expands_the_schema() {
    let stack = Stack::builder()
        .registration()
        .municipalities(&[MUNICIPALITY])
        .start()
        .await;
    let config = stack.access_config(MUNICIPALITY).await;
    let runtime_url = config.database.url.clone();
    let app = access::App::build(config).await.expect("access builds");
    let endpoint = format!("http://{}", app.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let mut client =
        AccessServiceClient::new(stack.as_municipality(MUNICIPALITY).channel(&endpoint));
    client
        .register_resident(resident_request(&bsn(11), "1980-01-01"))
        .await
        .expect("registers before the upgrade");

    // The next release's Job runs while this release serves: as the owner, this release's
    // migrations and the next one's expand step.
    let database = runtime_url.rsplit('/').next().unwrap();
    let owner_url = rz_stack::with_database(&stack.env.admin_url, database);
    let owner = sqlx::PgPool::connect(&owner_url).await.unwrap();
    let mut next: Vec<Migration> = <access::App as Service>::MIGRATIONS.to_vec();
    next.push(NEXT_RELEASE_EXPAND);
    rz_platform::db::migrate(&owner, &next).await.unwrap();
    rz_platform::db::grant_runtime(&owner, RUNTIME_ROLE)
        .await
        .unwrap();

    // This release, still running, reads and writes as before.
    client
        .register_resident(resident_request(&bsn(12), "1981-01-01"))
        .await
        .expect("registers on the expanded schema");
    // A pod of this release restarting during the rollout starts (the newer migration is
    // accepted, not refused) and serves.
    shutdown.trigger();
    server.await.unwrap().unwrap();
    let config = {
        let mut c = stack.access_config(MUNICIPALITY).await;
        c.database.url = runtime_url.clone();
        c
    };
    let app = access::App::build(config)
        .await
        .expect("this release starts on the next release's expanded schema");
    let endpoint = format!("http://{}", app.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let mut client =
        AccessServiceClient::new(stack.as_municipality(MUNICIPALITY).channel(&endpoint));
    client
        .register_resident(resident_request(&bsn(13), "1982-01-01"))
        .await
        .expect("registers after restarting on the expanded schema");
    let residents: i64 = sqlx::query_scalar("SELECT count(*) FROM residents")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(residents, 3);
    // And the runtime role can use what the expand step added (default privileges).
    let runtime = sqlx::PgPool::connect(&runtime_url).await.unwrap();
    sqlx::query("INSERT INTO resident_languages VALUES ('nl')")
        .execute(&runtime)
        .await
        .expect("the runtime role writes the new table");
    shutdown.trigger();
    server.await.unwrap().unwrap();
}
