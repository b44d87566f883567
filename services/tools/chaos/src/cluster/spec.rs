//! What a cluster starts and where, and the checks on it.

use std::path::PathBuf;

use super::{ACHTERHOEK, HarnessError};

/// What to start and where.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Directory with the built binaries (`registration`, `access`, `assignment`, `reporting`,
    /// `notification`).
    pub bin_dir: PathBuf,
    /// Logs, pid files and the client-key secret go here (created if missing).
    pub run_dir: PathBuf,
    /// A superuser URL of the PostgreSQL server; each service gets a database of its own on it.
    pub database_url: String,
    pub nats_url: String,
    /// Databases are `<prefix>_registration`, `<prefix>_access_0222`, `<prefix>_assignment`,
    /// `<prefix>_reporting`, `<prefix>_notification`, created if missing. Lowercase letters, digits
    /// and `_`.
    pub db_prefix: String,
    /// The NATS namespace (first subject token, stream name prefix) of this cluster.
    pub nats_namespace: String,
    /// CBS codes; one access instance each.
    pub municipalities: Vec<String>,
    /// Extra environment per service: `(selector, "KEY=VALUE")`. The selector is a service name
    /// (`assignment`, `access@0222`), a binary name for all its instances (`access`), or `*` for
    /// every service. Later entries win over earlier ones and over the harness' own settings.
    pub extra_env: Vec<(String, String)>,
    /// An OTLP/gRPC collector (`http://127.0.0.1:4317`) every service exports its spans to
    /// (`[telemetry] otlp_endpoint`); `None`: no export.
    pub otlp_endpoint: Option<String>,
}

impl ClusterSpec {
    /// A spec for the eight Achterhoek municipalities, databases `rz_*` and namespace `rz`.
    pub fn new(
        bin_dir: impl Into<PathBuf>,
        run_dir: impl Into<PathBuf>,
        database_url: impl Into<String>,
        nats_url: impl Into<String>,
    ) -> Self {
        Self {
            bin_dir: bin_dir.into(),
            run_dir: run_dir.into(),
            database_url: database_url.into(),
            nats_url: nats_url.into(),
            db_prefix: "rz".into(),
            nats_namespace: "rz".into(),
            municipalities: ACHTERHOEK.iter().map(|m| (*m).to_owned()).collect(),
            extra_env: Vec::new(),
            otlp_endpoint: None,
        }
    }

    pub(super) fn validate(&self) -> Result<(), HarnessError> {
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !ident(&self.db_prefix) {
            return Err(HarnessError::InvalidSpec {
                field: "db_prefix",
                rule: "non-empty, lowercase letters, digits and `_` only".into(),
            });
        }
        if self.nats_namespace.is_empty()
            || !self
                .nats_namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(HarnessError::InvalidSpec {
                field: "nats_namespace",
                rule: "non-empty, letters, digits, `_` and `-` only".into(),
            });
        }
        if self.municipalities.is_empty() {
            return Err(HarnessError::InvalidSpec {
                field: "municipalities",
                rule: "at least one CBS code".into(),
            });
        }
        for m in &self.municipalities {
            if m.len() != 4 || !m.chars().all(|c| c.is_ascii_digit()) {
                return Err(HarnessError::InvalidSpec {
                    field: "municipalities",
                    rule: format!("`{m}` is not a 4-digit CBS code"),
                });
            }
        }
        for (selector, kv) in &self.extra_env {
            if selector.is_empty() || !kv.contains('=') || kv.starts_with('=') {
                return Err(HarnessError::InvalidSpec {
                    field: "extra_env",
                    rule: format!("`({selector}, {kv})` must be (service, \"KEY=VALUE\")"),
                });
            }
        }
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(HarnessError::InvalidSpec {
                field: "otlp_endpoint",
                rule: format!("`{url}` is not an http:// or https:// URL"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_rejects_bad_fields_by_name() {
        let mut spec = ClusterSpec::new("b", "r", "postgres://x/y", "nats://z");
        assert!(spec.validate().is_ok());
        spec.db_prefix = "Bad-Prefix".into();
        let e = spec.validate().map(|_| ()).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("db_prefix")));
        spec.db_prefix = "ok".into();
        spec.municipalities = vec!["222".into()];
        let e = spec.validate().map(|_| ()).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("municipalities")));
        spec.municipalities = vec!["0222".into()];
        spec.extra_env = vec![("assignment".into(), "NOVALUE".into())];
        let e = spec.validate().map(|_| ()).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("extra_env")));
        spec.extra_env = Vec::new();
        spec.otlp_endpoint = Some("127.0.0.1:4317".into());
        let e = spec.validate().map(|_| ()).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("otlp_endpoint")));
        spec.otlp_endpoint = Some("http://127.0.0.1:4317".into());
        assert!(spec.validate().is_ok());
    }
}
