//! The operating system and network helpers of the harness: peak memory, database URLs,
//! signals, random bytes and free ports, the client-key secret, the databases, log files and the
//! gRPC health check.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::{HarnessError, io};

/// Peak resident set size (VmHWM of `/proc/<pid>/status`) in MiB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The URL with its database name replaced (query kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|j| j + 3).unwrap_or(0);
    let prefix = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// Sends a signal (`TERM`, `KILL`, `STOP`, ...) with kill(1).
pub fn signal(pid: u32, name: &str) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `n` random bytes from the kernel.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, HarnessError> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io("reading /dev/urandom"))?;
    Ok(buf)
}

/// The secret in `<run_dir>/client-key-secret`, created (32 random bytes, hex) when missing, so a
/// cluster restarted on the same run dir and databases keeps producing the same client keys.
pub(super) fn client_key_secret(run_dir: &Path) -> Result<String, HarnessError> {
    let path = run_dir.join("client-key-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_owned();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let secret: String = random_bytes(32)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&path, &secret).map_err(io(format!("writing {}", path.display())))?;
    Ok(secret)
}

/// `<run_dir>/webhook-keys`, notification's `webhooks.secret_keys_file` (one key of 32 random
/// bytes), created when missing and kept beside the databases as the client-key secret is.
pub(super) fn webhook_keys_file(run_dir: &Path) -> Result<std::path::PathBuf, HarnessError> {
    let path = run_dir.join("webhook-keys");
    if !path.exists() {
        let line = rz_workload::webhook::key_file_line("cluster1", &random_bytes(32)?);
        std::fs::write(&path, line).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(path)
}

/// `<run_dir>/personal-data-keys`, the `personal_data.keys_file` of access, assignment and
/// notification (one key of 32 random bytes), created when missing and kept beside the databases.
pub(super) fn personal_keys_file(run_dir: &Path) -> Result<std::path::PathBuf, HarnessError> {
    let path = run_dir.join("personal-data-keys");
    if !path.exists() {
        let line = rz_workload::webhook::key_file_line("pd1", &random_bytes(32)?);
        std::fs::write(&path, line).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(path)
}

pub(super) async fn ensure_databases<'a>(
    admin_url: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), HarnessError> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|source| HarnessError::Database {
            context: "connecting to the server".into(),
            source,
        })?;
    for name in names {
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&mut conn)
                .await
                .map_err(|source| HarnessError::Database {
                    context: format!("looking up {name}"),
                    source,
                })?;
        if exists.is_none() {
            // `name` is validated (prefix of [a-z0-9_], CBS digits).
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .map_err(|source| HarnessError::Database {
                    context: format!("creating {name}"),
                    source,
                })?;
        }
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 in 20000..32000 (below the ephemeral range, like demo.sh), not in
/// `taken`.
pub fn free_port(taken: &mut HashSet<u16>) -> Result<u16, HarnessError> {
    let bytes = random_bytes(2 * 200)?;
    for pair in bytes.chunks_exact(2) {
        let r = u16::from_le_bytes([pair[0], pair[1]]);
        let port = 20000 + r % 12000;
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return Ok(port);
        }
    }
    Err(HarnessError::Command {
        command: "choosing a port".into(),
        detail: "no free port in 20000..32000 after 200 tries".into(),
    })
}

pub(super) fn log_file(path: &Path) -> Result<std::fs::File, HarnessError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))
}

/// The last 20 lines of a log file.
pub(super) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Ok(true) when the service answers SERVING (over mutual TLS, as the operator of `pki`).
pub(super) async fn health(pki: &Path, url: &str) -> Result<bool, String> {
    let endpoint = rz_workload::Dial::new(pki)
        .endpoint(rz_workload::dial::OPERATOR, url)?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2));
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply.into_inner().status == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }

    #[test]
    fn peak_rss_of_this_process_is_positive() {
        let mb = peak_rss_mb(std::process::id());
        assert!(mb.is_some_and(|mb| mb > 0.0), "{mb:?}");
    }
}
