//! The service's configuration: `[server]`, `[database]`, `[nats]`, `[telemetry]` and
//! `[assignment]` (where registration and each municipality's access instance answer, and the
//! region's client-key secret).

use std::collections::HashMap;
use std::fmt;

use chrono::NaiveDate;
use serde::Deserialize;

rz_platform::service_config! {
    /// The service's configuration (see [`rz_platform::service_config`]).
    pub struct Config {
        pub assignment: AssignmentConfig,
        /// `[personal_data]`: the keys that seal BSNs and the provider messages at rest.
        pub personal_data: rz_platform::sealing::PersonalDataConfig,
    }
}

/// `[assignment]`.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct AssignmentConfig {
    /// gRPC URL of the regional contract register.
    pub registration_endpoint: String,
    /// CBS municipality code -> gRPC URL of that municipality's access instance.
    pub access_endpoints: HashMap<String, String>,
    /// The region's secret that turns a BSN into the pseudonymous client key (the same secret
    /// every access instance uses). Set it through `RZ__ASSIGNMENT__CLIENT_KEY_SECRET`.
    pub client_key_secret: String,
    /// Seconds a call to registration or access may take.
    pub upstream_timeout_secs: u64,
    /// Fixes the service's date ("today"); the system date (UTC) when unset. For demos and tests.
    pub today: Option<NaiveDate>,
    /// A file holding the date ("YYYY-MM-DD"), read on every use; wins over `today`. The demo
    /// moves it to play half a year in minutes. Never set in production.
    pub today_file: Option<std::path::PathBuf>,
}

impl Default for AssignmentConfig {
    fn default() -> Self {
        Self {
            registration_endpoint: "http://127.0.0.1:50051".into(),
            access_endpoints: HashMap::new(),
            client_key_secret: String::new(),
            upstream_timeout_secs: 10,
            today: None,
            today_file: None,
        }
    }
}

/// The secret is never printed.
impl fmt::Debug for AssignmentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssignmentConfig")
            .field("registration_endpoint", &self.registration_endpoint)
            .field("access_endpoints", &self.access_endpoints)
            .field("client_key_secret", &"***")
            .field("upstream_timeout_secs", &self.upstream_timeout_secs)
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
        let mut c = Config::default();
        c.assignment.client_key_secret = "very-secret-value".into();
        c.assignment
            .access_endpoints
            .insert("0222".into(), "http://access-0222:50051".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("access-0222"));
    }

    #[test]
    fn environment_sets_access_endpoints_per_cbs_code() {
        // A prefix of its own: tests run in parallel and share the process environment.
        // SAFETY: no other thread of this test binary reads these variables.
        unsafe {
            std::env::set_var(
                "RZASGTEST__ASSIGNMENT__ACCESS_ENDPOINTS__0222",
                "http://127.0.0.1:7001",
            );
            std::env::set_var(
                "RZASGTEST__ASSIGNMENT__ACCESS_ENDPOINTS__1859",
                "http://127.0.0.1:7002",
            );
            std::env::set_var("RZASGTEST__ASSIGNMENT__UPSTREAM_TIMEOUT_SECS", "3");
            std::env::set_var("RZASGTEST__ASSIGNMENT__TODAY", "2022-06-27");
        }
        let c: Config = rz_platform::config::load_with_env(None, "RZASGTEST").unwrap_or_default();
        let a = &c.assignment;
        assert_eq!(
            a.access_endpoints.get("0222").map(String::as_str),
            Some("http://127.0.0.1:7001")
        );
        assert_eq!(a.access_endpoints.len(), 2);
        assert_eq!(a.upstream_timeout_secs, 3);
        assert_eq!(a.today, NaiveDate::from_ymd_opt(2022, 6, 27));
        assert_eq!(a.registration_endpoint, "http://127.0.0.1:50051");
    }
}
