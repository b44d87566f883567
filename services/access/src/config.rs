//! The service's configuration: `[server]`, `[database]`, `[nats]`, `[telemetry]` as every service
//! has them, and `[access]`: the municipality this instance serves, the region's client-key secret
//! and where the registration service (the catalogue) is.

use serde::Deserialize;

rz_platform::service_config! {
    /// The service's configuration (see [`rz_platform::service_config`]).
    pub struct Config {
        pub access: AccessConfig,
        /// `[personal_data]`: the keys that seal residents' BSNs, names and addresses at rest.
        pub personal_data: rz_platform::sealing::PersonalDataConfig,
    }
}

/// `[access]`.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct AccessConfig {
    /// CBS code of the municipality this instance serves (required, e.g. `0222`).
    pub municipality: String,
    /// The region's secret for the pseudonymous client key (required, non-empty). It never appears
    /// in `Debug` output or logs; set it through `RZ__ACCESS__CLIENT_KEY_SECRET` or a secret file.
    pub client_key_secret: String,
    /// gRPC URL of the registration service, asked once at start-up for the catalogue.
    pub registration_endpoint: String,
    /// Fixes the service's date ("today"); the system date (UTC) when unset. For demos and tests.
    pub today: Option<chrono::NaiveDate>,
    /// A file holding the date ("YYYY-MM-DD"), read on every use; wins over `today`. The demo
    /// moves it to play half a year in minutes. Never set in production.
    pub today_file: Option<std::path::PathBuf>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            municipality: String::new(),
            client_key_secret: String::new(),
            registration_endpoint: "http://127.0.0.1:50051".into(),
            today: None,
            today_file: None,
        }
    }
}

impl std::fmt::Debug for AccessConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessConfig")
            .field("municipality", &self.municipality)
            .field(
                "client_key_secret",
                &if self.client_key_secret.is_empty() {
                    "(unset)"
                } else {
                    "***"
                },
            )
            .field("registration_endpoint", &self.registration_endpoint)
            .field("today", &self.today)
            .field("today_file", &self.today_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let c = AccessConfig {
            municipality: "0222".into(),
            client_key_secret: "very-secret-value".into(),
            ..AccessConfig::default()
        };
        let shown = format!(
            "{:?}",
            Config {
                access: c,
                ..Config::default()
            }
        );
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("0222"));
    }
}
