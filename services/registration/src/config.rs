//! The service's configuration: `[server]`, `[database]`, `[nats]`, `[telemetry]` as every service
//! has them, and `[registration]`: the region's catalogue file and the service's date.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde::Deserialize;

rz_platform::service_config! {
    /// The service's configuration (see [`rz_platform::service_config`]).
    pub struct Config {
        pub registration: RegistrationConfig,
    }
}

/// `[registration]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RegistrationConfig {
    /// The region's catalogue (lots, segments, subsegments, municipalities); the built-in
    /// Achterhoek file when unset.
    pub region_file: Option<PathBuf>,
    /// Fixes the service's date ("today"); the system date (UTC) when unset. For demos and tests.
    /// The date decides a contract's status and the date rules (`tender.contract_start_recent`,
    /// `contract.extend_recently_ended`).
    pub today: Option<NaiveDate>,
    /// A file holding the date ("YYYY-MM-DD"), read on every use; wins over `today`. The demo
    /// moves it to play half a year in minutes. Never set in production.
    pub today_file: Option<PathBuf>,
}
