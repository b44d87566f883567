//! `rzctl seed` and `rzctl landscape` against a real registration service (fresh database, own
//! NATS namespace): the built-in Achterhoek seed loads, a second load changes nothing, and the
//! landscape is the one the demo prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use registration::{App, Config};
use rz_platform::Shutdown;
use rz_testkit::TestEnv;

fn rzctl(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_rzctl"))
        .args(args)
        .output()
        .expect("rzctl runs");
    assert!(
        o.status.success(),
        "rzctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_achterhoek_seed_loads_once_and_shows_its_landscape() {
    let env = TestEnv::load();
    let mut config = Config::default();
    config.database.url = env.fresh_database().await;
    config.database.max_connections = 5;
    config.nats.url = env.nats_url.clone();
    config.nats.namespace = env.namespace();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 5;
    let app = App::build(config).await.expect("registration builds");
    let endpoint = format!("http://{}", app.local_addr());
    let pool = app.pool().clone();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));

    let e = endpoint.clone();
    let first = tokio::task::spawn_blocking(move || rzctl(&["seed", "--endpoint", &e]))
        .await
        .unwrap();
    assert!(
        first.contains("tender contracts: 64 for 60 distinct providers"),
        "{first}"
    );
    assert!(
        first.contains("providers: 123 organisations (40 formerly contracted), 3 consortia"),
        "{first}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM providers").await, 126);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM contracts").await,
        43 + 64 + 15
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM contract_budgets").await,
        730
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM contract_tariffs").await,
        34
    );
    let keys = count(&pool, "SELECT count(*) FROM idempotency_keys").await;
    let extensions = count(&pool, "SELECT sum(extensions) FROM contracts").await;

    // Again: every command is a replay or not needed.
    let e = endpoint.clone();
    let second = tokio::task::spawn_blocking(move || rzctl(&["seed", "--endpoint", &e]))
        .await
        .unwrap();
    assert!(
        second.contains("seed loaded (0 state changes without idempotency key in this run)"),
        "{second}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM idempotency_keys").await,
        keys
    );
    assert_eq!(
        count(&pool, "SELECT sum(extensions) FROM contracts").await,
        extensions
    );

    let e = endpoint.clone();
    let landscape = tokio::task::spawn_blocking(move || rzctl(&["landscape", "--endpoint", &e]))
        .await
        .unwrap();
    assert_eq!(landscape, include_str!("achterhoek-landscape.txt"));

    shutdown.trigger();
    server.await.unwrap().unwrap();
}
