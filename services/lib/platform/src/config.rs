//! Layered configuration: built-in defaults, then an optional TOML file, then environment variables
//! with the `RZ__` prefix and `__` between levels (`RZ__DATABASE__URL`, `RZ__NATS__NAMESPACE`).

use std::net::SocketAddr;
use std::path::Path;

pub use rz_telemetry::TelemetryConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// Loads `T` from `file` (if given) and the environment.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_with_env(file, "RZ")
}

/// As [`load`], with another environment prefix (tests use their own to stay isolated).
pub fn load_with_env<T: DeserializeOwned>(
    file: Option<&Path>,
    prefix: &str,
) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(config::File::from(path).required(true));
    }
    builder = builder.add_source(
        config::Environment::with_prefix(prefix)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(false),
    );
    Ok(builder.build()?.try_deserialize()?)
}

/// `[server]`: where the gRPC server listens and how long shutdown may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            shutdown_grace_secs: 20,
        }
    }
}

/// `[database]`: the service's own PostgreSQL database.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            max_connections: 16,
        }
    }
}

/// `[nats]`: the NATS server and the namespace (first subject token, stream name prefix) this
/// deployment uses, so several regions or test runs can share one NATS cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NatsConfig {
    pub url: String,
    pub namespace: String,
    /// JetStream stream replicas (3 in a clustered production deployment).
    pub replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            namespace: "rz".into(),
            replicas: 1,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint (`GET /metrics`, see [`crate::metrics`]). Off unless
/// `listen` is set (`listen = "127.0.0.1:9464"`; port 0 takes a free port, logged at start).
/// The service records its metrics either way.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
    /// Seconds between samples of what is read rather than counted: outbox rows pending and the
    /// age of the oldest, the consumers' JetStream lag, the dead-letter stream, the pool.
    pub sample_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            sample_secs: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Sample {
        database: DatabaseConfig,
        server: ServerConfig,
        code: String,
    }

    #[test]
    fn environment_overrides_keep_leading_zeros_and_parse_numbers() {
        // A prefix of its own: tests run in parallel and share the process environment.
        // SAFETY: no other thread of this test binary reads these variables.
        unsafe {
            std::env::set_var("RZCFGTEST__CODE", "0197");
            std::env::set_var("RZCFGTEST__DATABASE__MAX_CONNECTIONS", "7");
            std::env::set_var("RZCFGTEST__SERVER__LISTEN", "127.0.0.1:0");
        }
        let s: Sample = load_with_env(None, "RZCFGTEST").unwrap();
        assert_eq!(s.code, "0197");
        assert_eq!(s.database.max_connections, 7);
        assert_eq!(s.server.listen.port(), 0);
        assert_eq!(s.database.url, DatabaseConfig::default().url);
    }
}
