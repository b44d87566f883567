//! Layered configuration: built-in defaults, then an optional TOML file, then environment variables
//! with the `RZ__` prefix and `__` between levels (`RZ__DATABASE__URL`, `RZ__NATS__NAMESPACE`).

use std::net::SocketAddr;
use std::path::Path;

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
            .try_parsing(true),
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
