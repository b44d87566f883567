//! The service's configuration: `[server]`, `[database]`, `[nats]` and `[telemetry]`, layered as
//! every service's (defaults, an optional TOML file, `RZ__` environment variables).

rz_platform::service_config! {
    /// The service's configuration (see [`rz_platform::service_config`]).
    pub struct Config {
    }
}
