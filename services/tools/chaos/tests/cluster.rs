#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Starts the services as processes from the workspace's `target/debug` (built by
//! `cargo build --workspace --bins`, or by `cargo test --workspace`), checks their health, kills one
//! and restarts it on the same port.

use std::path::PathBuf;

use rz_chaos::{Cluster, ClusterSpec, peak_rss_mb};
use rz_testkit::TestEnv;
use sqlx::Connection;

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RZ_HARNESS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target"));
    target.join("debug")
}

#[tokio::test]
async fn starts_kills_and_restarts_services() {
    let env = TestEnv::load();
    let ns = env.namespace();
    let run_dir = std::env::temp_dir().join(format!("rz-chaos-{ns}"));
    let mut spec = ClusterSpec::new(bin_dir(), &run_dir, &env.admin_url, &env.nats_url);
    spec.db_prefix = format!("rzh_{ns}");
    spec.nats_namespace = ns.clone();
    spec.municipalities = vec!["0222".into(), "1859".into()];
    spec.extra_env = vec![("*".into(), "RZ__SERVER__SHUTDOWN_GRACE_SECS=2".into())];

    let mut cluster = Cluster::start(spec.clone()).await.expect("cluster starts");
    assert_eq!(
        cluster.services(),
        [
            "registration",
            "access@0222",
            "access@1859",
            "assignment",
            "reporting",
            "notification"
        ]
    );
    for s in cluster.services() {
        assert!(cluster.is_healthy(&s).await, "{s} healthy");
        let pid = cluster.pid(&s).expect("running");
        assert!(peak_rss_mb(pid).is_some_and(|mb| mb > 1.0), "{s} rss");
    }
    assert!(cluster.endpoint("access@0197").is_none());
    assert!(
        cluster
            .database_url("access@0222")
            .unwrap()
            .ends_with(&format!("rzh_{ns}_access_0222"))
    );
    assert_eq!(cluster.client_key_secret().len(), 64);

    let endpoint = cluster.endpoint("assignment").unwrap();
    let old_pid = cluster.pid("assignment").unwrap();
    cluster.kill("assignment").await.unwrap();
    assert_eq!(cluster.pid("assignment"), None);
    assert!(!cluster.is_healthy("assignment").await, "killed");
    assert!(
        std::fs::metadata(format!("/proc/{old_pid}")).is_err(),
        "process is gone"
    );
    cluster.restart("assignment").await.unwrap();
    assert_eq!(
        cluster.endpoint("assignment").unwrap(),
        endpoint,
        "same port"
    );
    assert_ne!(cluster.pid("assignment").unwrap(), old_pid);
    assert!(cluster.is_healthy("assignment").await);
    assert!(cluster.exited().is_empty());

    // The register loads through the API.
    cluster.seed().await.expect("seed");

    let pids: Vec<u32> = cluster
        .services()
        .iter()
        .filter_map(|s| cluster.pid(s))
        .collect();
    cluster.stop().await;
    for pid in pids {
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "{pid} stopped"
        );
    }

    // Clean up the databases.
    let mut conn = sqlx::PgConnection::connect(&env.admin_url).await.unwrap();
    let dbs: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(format!("rzh_{ns}_%"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(dbs.len(), 6, "{dbs:?}");
    for db in dbs {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let _ = std::fs::remove_dir_all(&run_dir);
}
