//! The service's configuration: `[server]`, `[database]`, `[nats]`, `[telemetry]` and
//! `region_file` (the region's catalogue; the built-in Achterhoek file when unset).

use std::path::PathBuf;

rz_platform::service_config! {
    /// The service's configuration (see [`rz_platform::service_config`]).
    pub struct Config {
        pub region_file: Option<PathBuf>,
    }
}
