//! `rzctl seed` and `rzctl landscape` against a real registration service (fresh database, own
//! NATS namespace, its own test PKI): the built-in Achterhoek seed loads as the operator, a second
//! load changes nothing, and the landscape is the one the demo prints.

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
    let pki_dir = std::env::temp_dir().join(format!("rzctl-seed-pki-{}", std::process::id()));
    let pki_arg = pki_dir.to_str().unwrap().to_owned();
    let o = Command::new(env!("CARGO_BIN_EXE_rzctl"))
        .args(["pki", "init", "--dir", &pki_arg])
        .args(["--providers", "03010028", "--municipalities", "0222"])
        .output()
        .expect("rzctl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pki = rz_pki::Pki::open(&pki_dir).expect("the PKI opens");
    let mut config = Config {
        tls: pki.tls("service-registration"),
        // The seed makes many calls in a row: no rate limit in this test.
        limits: rz_platform::authz::LimitsConfig {
            provider_per_second: 0,
            provider_burst: 0,
            municipality_per_second: 0,
            municipality_burst: 0,
            operator_per_second: 0,
            operator_burst: 0,
        },
        ..Config::default()
    };
    config.identity.token_keys = vec![pki.token_key_pub()];
    // The seed is the register as the 2022 tender left it: registration's date rules refuse
    // history older than a year, so the register is loaded on that day.
    config.registration.today = Some("2022-07-01".parse().unwrap());
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

    let (e, p) = (endpoint.clone(), pki_arg.clone());
    let first =
        tokio::task::spawn_blocking(move || rzctl(&["seed", "--endpoint", &e, "--pki", &p]))
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
    let (e, p) = (endpoint.clone(), pki_arg.clone());
    let second =
        tokio::task::spawn_blocking(move || rzctl(&["seed", "--endpoint", &e, "--pki", &p]))
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

    let (e, p) = (endpoint.clone(), pki_arg.clone());
    let landscape =
        tokio::task::spawn_blocking(move || rzctl(&["landscape", "--endpoint", &e, "--pki", &p]))
            .await
            .unwrap();
    assert_eq!(landscape, include_str!("achterhoek-landscape.txt"));

    // A provider may read the register but not write it.
    let (e, p) = (endpoint.clone(), pki_arg.clone());
    let refused = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rzctl"))
            .args([
                "seed",
                "--endpoint",
                &e,
                "--pki",
                &p,
                "--as",
                "provider-03010028",
            ])
            .output()
            .expect("rzctl runs")
    })
    .await
    .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("PermissionDenied"), "{err}");

    shutdown.trigger();
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&pki_dir);
}
