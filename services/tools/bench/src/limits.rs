//! The machine's limits, measured on the same servers the services use: PostgreSQL single-row
//! INSERT commits per second (pgbench, 32 clients, in a bench database created and dropped here)
//! and JetStream publishes per second with async acks on a file-storage stream.

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use std::future::IntoFuture;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sqlx::Connection;

use crate::BenchError;
use crate::report::Report;

pub struct PgbenchSpec<'a> {
    pub pgbench: &'a Path,
    pub admin_url: &'a str,
    pub clients: u32,
    pub threads: u32,
    pub seconds: u32,
    pub work_dir: &'a Path,
}

/// The URL with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // postgres://user@host:port/db: the database is after the first '/' past the authority.
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Runs pgbench with single-row INSERT transactions and records `pg_insert_tps`.
pub async fn pgbench(spec: &PgbenchSpec<'_>, report: &mut Report) -> Result<(), BenchError> {
    if !spec.pgbench.is_file() {
        return Err(BenchError::Missing(format!(
            "pgbench not found at {}",
            spec.pgbench.display()
        )));
    }
    let db = format!("rz_bench_pgbench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(spec.admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
        .execute(&mut admin)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await?;
    let url = with_database(spec.admin_url, &db);
    let result = run_pgbench(spec, &url).await;
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let (tps, settings) = result?;
    dropped?;
    report.measured("pg_insert_tps", tps);
    report.detail("pgbench", settings);
    Ok(())
}

async fn run_pgbench(
    spec: &PgbenchSpec<'_>,
    url: &str,
) -> Result<(f64, serde_json::Value), BenchError> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(
        "CREATE TABLE bench_insert (id BIGSERIAL PRIMARY KEY, client INT NOT NULL,
                                    at TIMESTAMPTZ NOT NULL DEFAULT now(), payload TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting FROM pg_settings
         WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections', 'wal_level')
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    std::fs::create_dir_all(spec.work_dir)?;
    let script = spec.work_dir.join("pgbench-insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO bench_insert (client, payload) VALUES (:client_id, repeat('x', 200));\n",
    )?;
    let args = vec![
        "-n".to_owned(),
        "-M".to_owned(),
        "prepared".to_owned(),
        "-c".to_owned(),
        spec.clients.to_string(),
        "-j".to_owned(),
        spec.threads.to_string(),
        "-T".to_owned(),
        spec.seconds.to_string(),
        "-f".to_owned(),
        script.display().to_string(),
        url.to_owned(),
    ];
    let program = spec.pgbench.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program).args(&args).output()
    })
    .await
    .map_err(|e| BenchError::Failed(format!("pgbench task: {e}")))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::Failed(format!(
            "pgbench exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )));
    }
    let tps = parse_pgbench_tps(&stdout)
        .ok_or_else(|| BenchError::Failed("pgbench printed no `tps =` line".into()))?;
    let mut s = serde_json::Map::new();
    for (k, v) in settings {
        s.insert(k, serde_json::Value::String(v));
    }
    let details = serde_json::json!({
        "clients": spec.clients,
        "threads": spec.threads,
        "seconds": spec.seconds,
        "transaction": "one INSERT of a 200-byte row (prepared), autocommit",
        "server_settings": s,
        "output": stdout.lines().filter(|l| l.contains('=')).collect::<Vec<_>>(),
    });
    Ok((tps, details))
}

/// `tps = 18123.456 (without initial connection time)` -> 18123.456.
pub fn parse_pgbench_tps(out: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("tps = "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
}

pub struct PublishSpec<'a> {
    pub nats_url: &'a str,
    pub messages: u64,
    pub payload_bytes: usize,
    /// Acks awaited at once.
    pub window: usize,
}

/// Publishes `messages` to a fresh file-storage stream with async acks and records
/// `js_publish_per_s` (acknowledged publishes over the time from the first publish to the last ack).
pub async fn jetstream_publish(
    spec: &PublishSpec<'_>,
    report: &mut Report,
) -> Result<(), BenchError> {
    let client = async_nats::connect(spec.nats_url)
        .await
        .map_err(|e| BenchError::Nats(e.to_string()))?;
    let js = jetstream::new(client.clone());
    let tag = format!("rzbench{}", std::process::id());
    let stream_name = tag.to_ascii_uppercase();
    bench_stream(&js, &tag).await?;
    let result = publish_all(&js, &tag, spec).await;
    let deleted = js.delete_stream(&stream_name).await;
    let _ = client.flush().await;
    let (acked, elapsed) = result?;
    deleted.map_err(|e| BenchError::Nats(e.to_string()))?;
    if acked < spec.messages {
        return Err(BenchError::Failed(format!(
            "only {acked} of {} publishes acknowledged",
            spec.messages
        )));
    }
    let rate = crate::stats::rate(acked, elapsed)
        .ok_or_else(|| BenchError::Failed("publish took no time".into()))?;
    report.measured("js_publish_per_s", rate);
    report.detail(
        "jetstream_publish",
        serde_json::json!({
            "messages": acked,
            "payload_bytes": spec.payload_bytes,
            "acks_in_flight": spec.window,
            "with_nats_msg_id": true,
            "seconds": elapsed.as_secs_f64(),
        }),
    );
    Ok(())
}

/// A file-storage stream of the bench's own for the subjects `<tag>.>`, named `<TAG>` (one left
/// by an earlier run is replaced), with the outbox relay's duplicate window.
pub async fn bench_stream(
    js: &jetstream::Context,
    tag: &str,
) -> Result<jetstream::stream::Stream, BenchError> {
    let name = tag.to_ascii_uppercase();
    let _ = js.delete_stream(&name).await;
    js.create_stream(jetstream::stream::Config {
        name,
        subjects: vec![format!("{tag}.>")],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| BenchError::Nats(e.to_string()))
}

async fn publish_all(
    js: &jetstream::Context,
    tag: &str,
    spec: &PublishSpec<'_>,
) -> Result<(u64, Duration), BenchError> {
    let payload = bytes::Bytes::from(vec![b'e'; spec.payload_bytes]);
    let mut pending = FuturesUnordered::new();
    let mut acked = 0u64;
    let started = Instant::now();
    for i in 0..spec.messages {
        // As the outbox relay publishes: a Nats-Msg-Id per message (the duplicate window applies).
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("{tag}-{i}").as_str());
        let ack = js
            .publish_with_headers(format!("{tag}.event.{}", i % 16), h, payload.clone())
            .await
            .map_err(|e| BenchError::Nats(e.to_string()))?;
        pending.push(ack.into_future());
        while pending.len() >= spec.window {
            if let Some(r) = pending.next().await {
                r.map_err(|e| BenchError::Nats(e.to_string()))?;
                acked += 1;
            }
        }
    }
    while let Some(r) = pending.next().await {
        r.map_err(|e| BenchError::Nats(e.to_string()))?;
        acked += 1;
    }
    Ok((acked, started.elapsed()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_pgbench_tps() {
        let out = "number of transactions actually processed: 180000\nlatency average = 1.7 ms\ntps = 18123.456789 (without initial connection time)\n";
        assert_eq!(parse_pgbench_tps(out), Some(18123.456789));
        assert_eq!(parse_pgbench_tps("no figures"), None);
    }

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1/db?sslmode=disable", "y"),
            "postgres://u@h:1/y?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "z"), "postgres://u@h:1/z");
    }
}
