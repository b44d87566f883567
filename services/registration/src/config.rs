//! The service's configuration: `[server]`, `[database]`, `[nats]`, `[telemetry]` and
//! `region_file` (the region's catalogue; the built-in Achterhoek file when unset).

use std::path::PathBuf;

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
    pub region_file: Option<PathBuf>,
}

rz_platform::service_config!(Config);
