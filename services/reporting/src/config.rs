//! The service's configuration: `[server]`, `[database]`, `[nats]` and `[telemetry]`, layered as
//! every service's (defaults, an optional TOML file, `RZ__` environment variables).

use rz_platform::config::{DatabaseConfig, NatsConfig, ServerConfig};
use rz_telemetry::TelemetryConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub telemetry: TelemetryConfig,
}

rz_platform::service_config!(Config);
