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
    /// `true` (the default: local stack, tests): the service runs its migrations at start, as the
    /// role of `url`, which must therefore be allowed to change the schema. `false` (Kubernetes):
    /// the service only checks at start that every migration it knows was applied (by
    /// `<service> migrate`, run as the migration role) and refuses to start otherwise, so `url`
    /// can name a role that cannot change the schema. Migrations of a newer release are accepted
    /// (expand, then contract: see `docs/operations/upgrade-with-migration.md`).
    pub migrate: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            max_connections: 16,
            migrate: true,
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
    /// JetStream stream replicas of every stream, the dead-letter stream included (3 in a
    /// clustered production deployment). An existing stream is brought to it at start.
    pub replicas: usize,
    /// Days a stream of events without personal data keeps them (registration, access).
    pub max_age_days: u32,
    /// Days a stream of events with personal data keeps them (assignment's events addressed to a
    /// provider carry the client's BSN, name and address; `rz_eventing::PERSONAL_DATA_CONTEXTS`).
    pub personal_max_age_days: u32,
    /// Days the dead-letter stream keeps a dead letter (time for an operator to look and replay).
    pub dead_letter_max_age_days: u32,
    /// At most this many bytes per stream; a full stream refuses new events (the outbox keeps
    /// them and retries) rather than dropping old ones. Unset: no limit.
    pub max_bytes: Option<i64>,
    /// The service's nkey seed file (`rzctl nats config` writes `<pki>/service-<name>/nats.nk`);
    /// its reply inbox is then `_INBOX.<namespace>.service-<name>`, as its permissions allow.
    /// Unset with `creds_file`: no credentials (an open NATS, the local stack's today).
    pub nkey_seed_file: Option<std::path::PathBuf>,
    /// A `.creds` file (user JWT and seed) instead of an nkey seed.
    pub creds_file: Option<std::path::PathBuf>,
    /// The CA of the NATS server's certificate; set, the connection requires TLS.
    pub tls_ca: Option<std::path::PathBuf>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        let streams = rz_eventing::StreamSettings::default();
        let days = |d: std::time::Duration| (d.as_secs() / 86_400) as u32;
        Self {
            url: "nats://127.0.0.1:4222".into(),
            namespace: "rz".into(),
            replicas: streams.replicas,
            max_age_days: days(streams.max_age),
            personal_max_age_days: days(streams.personal_max_age),
            dead_letter_max_age_days: days(streams.dead_letter_max_age),
            max_bytes: streams.max_bytes,
            nkey_seed_file: None,
            creds_file: None,
            tls_ca: None,
        }
    }
}

impl NatsConfig {
    /// The credentials and TLS settings of service `name` (see `rz_eventing::auth`).
    pub fn auth(&self, ns: &rz_eventing::Namespace, name: &str) -> rz_eventing::auth::NatsAuth {
        let mut auth = rz_eventing::auth::NatsAuth {
            nkey_seed_file: self.nkey_seed_file.clone(),
            creds_file: self.creds_file.clone(),
            tls_ca: self.tls_ca.clone(),
            ..Default::default()
        };
        if auth.has_credentials() {
            auth.inbox_prefix = Some(rz_eventing::auth::inbox_prefix(
                ns,
                &format!("service-{name}"),
            ));
        }
        auth
    }

    /// The streams' replicas and retention; an error names the setting that is out of range.
    pub fn streams(&self) -> Result<rz_eventing::StreamSettings, String> {
        let days = |name: &str, d: u32| {
            if d == 0 {
                Err(format!("nats.{name} must be at least 1 day"))
            } else {
                Ok(std::time::Duration::from_secs(u64::from(d) * 86_400))
            }
        };
        if self.replicas == 0 || self.replicas > 5 {
            return Err("nats.replicas must be 1 to 5".into());
        }
        if let Some(b) = self.max_bytes
            && b <= 0
        {
            return Err("nats.max_bytes must be positive (leave it unset for no limit)".into());
        }
        Ok(rz_eventing::StreamSettings {
            replicas: self.replicas,
            max_age: days("max_age_days", self.max_age_days)?,
            personal_max_age: days("personal_max_age_days", self.personal_max_age_days)?,
            dead_letter_max_age: days("dead_letter_max_age_days", self.dead_letter_max_age_days)?,
            max_bytes: self.max_bytes,
        })
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
