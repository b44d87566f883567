//! Starting a cluster: databases, ports, each service's environment, and the start order.

use std::collections::HashSet;

use std::path::{Path, PathBuf};

use super::os::{
    client_key_secret, ensure_databases, free_port, personal_keys_file, webhook_keys_file,
    with_database,
};
use super::{Cluster, ClusterSpec, HarnessError, Proc, START_TIMEOUT, io};

/// The run's own test PKI in `<run_dir>/pki`: the CA, a certificate per municipality, the
/// operator's and one per service (server and client); providers' are issued when a tool first
/// calls as one ([`rz_workload::Dial`]). A new one each start: nothing of an earlier run is trusted.
fn generate_pki(spec: &ClusterSpec) -> Result<PathBuf, HarnessError> {
    let dir = spec.run_dir.join("pki");
    let _ = std::fs::remove_dir_all(&dir);
    let municipalities: Vec<&str> = spec.municipalities.iter().map(String::as_str).collect();
    rz_pki::generate(&dir, &rz_pki::PkiSpec::region(&[], &municipalities)).map_err(|e| {
        HarnessError::Command {
            command: "rz_pki::generate".into(),
            detail: e.to_string(),
        }
    })?;
    Ok(dir)
}

/// The calls per second (and burst) per caller kind the services allow here: far above what the
/// load sends, so that a limit never shapes a run (the tools' callers are one organisation each).
pub const LIMITS: [(&str, u32); 6] = [
    ("PROVIDER_PER_SECOND", 5_000),
    ("PROVIDER_BURST", 20_000),
    ("MUNICIPALITY_PER_SECOND", 10_000),
    ("MUNICIPALITY_BURST", 50_000),
    ("OPERATOR_PER_SECOND", 10_000),
    ("OPERATOR_BURST", 50_000),
];

/// `[tls]` of the service's own folder (`service-<bin>`), `[identity]` with the PKI's token key
/// (the JWKS file: a list such as `token_keys` cannot come from one environment variable), and
/// `[limits]` ([`LIMITS`]; a test can lower them through `extra_env`).
fn security_env(pki: &Path, bin: &str) -> Vec<(String, String)> {
    let folder = pki.join(format!("service-{bin}"));
    let path = |p: PathBuf| p.display().to_string();
    let mut env = vec![
        ("RZ__TLS__CA".to_owned(), path(pki.join("ca.crt"))),
        ("RZ__TLS__CERT".to_owned(), path(folder.join("tls.crt"))),
        ("RZ__TLS__KEY".to_owned(), path(folder.join("tls.key"))),
        (
            "RZ__IDENTITY__TOKEN_JWKS".to_owned(),
            path(pki.join("jwks.json")),
        ),
    ];
    for (k, v) in LIMITS {
        env.push((format!("RZ__LIMITS__{k}"), v.to_string()));
    }
    env
}

impl Cluster {
    /// Creates the databases, starts every service and waits until each answers its gRPC health
    /// check with SERVING. Registration comes first (access asks it for the catalogue at start-up),
    /// then the access instances, then assignment, reporting and notification.
    pub async fn start(spec: ClusterSpec) -> Result<Cluster, HarnessError> {
        spec.validate()?;
        for bin in [
            "registration",
            "access",
            "assignment",
            "reporting",
            "notification",
        ] {
            let path = spec.bin_dir.join(bin);
            if !path.is_file() {
                return Err(HarnessError::InvalidSpec {
                    field: "bin_dir",
                    rule: format!(
                        "{} does not exist (build with `cargo build --workspace --bins`)",
                        path.display()
                    ),
                });
            }
        }
        std::fs::create_dir_all(&spec.run_dir)
            .map_err(io(format!("creating {}", spec.run_dir.display())))?;
        let secret = client_key_secret(&spec.run_dir)?;
        let webhook_keys = webhook_keys_file(&spec.run_dir)?;
        let personal_keys = personal_keys_file(&spec.run_dir)?.display().to_string();
        let pki = generate_pki(&spec)?;

        let mut names: Vec<(String, String, String)> = Vec::new(); // (name, bin, database)
        names.push((
            "registration".into(),
            "registration".into(),
            format!("{}_registration", spec.db_prefix),
        ));
        for m in &spec.municipalities {
            names.push((
                format!("access@{m}"),
                "access".into(),
                format!("{}_access_{m}", spec.db_prefix),
            ));
        }
        for s in ["assignment", "reporting", "notification"] {
            names.push((s.into(), s.into(), format!("{}_{s}", spec.db_prefix)));
        }

        ensure_databases(
            &spec.database_url,
            names.iter().map(|(_, _, db)| db.as_str()),
        )
        .await?;

        let mut taken = HashSet::new();
        let mut procs = Vec::new();
        for (name, bin, database) in names {
            let port = free_port(&mut taken)?;
            procs.push(Proc {
                name,
                bin,
                database,
                port,
                env: Vec::new(),
                child: None,
            });
        }
        let endpoint_of = |procs: &[Proc], name: &str| {
            procs
                .iter()
                .find(|p| p.name == name)
                .map(|p| format!("http://127.0.0.1:{}", p.port))
                .unwrap_or_default()
        };
        let registration = endpoint_of(&procs, "registration");
        let assignment = endpoint_of(&procs, "assignment");
        let access_endpoints: Vec<(String, String)> = spec
            .municipalities
            .iter()
            .map(|m| (m.clone(), endpoint_of(&procs, &format!("access@{m}"))))
            .collect();
        for p in &mut procs {
            let mut env = vec![
                (
                    "RZ__DATABASE__URL".to_owned(),
                    with_database(&spec.database_url, &p.database),
                ),
                ("RZ__NATS__URL".to_owned(), spec.nats_url.clone()),
                (
                    "RZ__NATS__NAMESPACE".to_owned(),
                    spec.nats_namespace.clone(),
                ),
                (
                    "RZ__SERVER__LISTEN".to_owned(),
                    format!("127.0.0.1:{}", p.port),
                ),
            ];
            env.extend(security_env(&pki, &p.bin));
            if let Some(url) = &spec.otlp_endpoint {
                env.push(("RZ__TELEMETRY__OTLP_ENDPOINT".into(), url.clone()));
            }
            match p.bin.as_str() {
                "registration" => env.push((
                    "RZ__REGISTRATION__TODAY_FILE".into(),
                    super::registration_date_file(&spec.run_dir)
                        .display()
                        .to_string(),
                )),
                "access" => {
                    let m = p.name.trim_start_matches("access@").to_owned();
                    env.push(("RZ__ACCESS__MUNICIPALITY".into(), m));
                    env.push(("RZ__ACCESS__CLIENT_KEY_SECRET".into(), secret.clone()));
                    env.push(("RZ__PERSONAL_DATA__KEYS_FILE".into(), personal_keys.clone()));
                    env.push((
                        "RZ__ACCESS__REGISTRATION_ENDPOINT".into(),
                        registration.clone(),
                    ));
                }
                "assignment" => {
                    env.push(("RZ__ASSIGNMENT__CLIENT_KEY_SECRET".into(), secret.clone()));
                    env.push(("RZ__PERSONAL_DATA__KEYS_FILE".into(), personal_keys.clone()));
                    env.push((
                        "RZ__ASSIGNMENT__REGISTRATION_ENDPOINT".into(),
                        registration.clone(),
                    ));
                    for (m, url) in &access_endpoints {
                        env.push((
                            format!("RZ__ASSIGNMENT__ACCESS_ENDPOINTS__{m}"),
                            url.clone(),
                        ));
                    }
                }
                "notification" => {
                    for (m, url) in &access_endpoints {
                        env.push((
                            format!("RZ__NOTIFICATION__ACCESS_ENDPOINTS__{m}"),
                            url.clone(),
                        ));
                    }
                    env.push((
                        "RZ__NOTIFICATION__ASSIGNMENT_ENDPOINT".into(),
                        assignment.clone(),
                    ));
                    // The receivers of the bench and the chaos run listen on loopback over
                    // http: allowed here, as nowhere in production.
                    env.push((
                        "RZ__WEBHOOKS__SECRET_KEYS_FILE".into(),
                        webhook_keys.display().to_string(),
                    ));
                    env.push(("RZ__WEBHOOKS__REQUIRE_HTTPS".into(), "false".into()));
                    env.push((
                        "RZ__WEBHOOKS__ALLOW_CIDRS".into(),
                        "127.0.0.0/8,::1/128".into(),
                    ));
                }
                _ => {}
            }
            for (selector, kv) in &spec.extra_env {
                if (selector == "*" || *selector == p.name || *selector == p.bin)
                    && let Some((k, v)) = kv.split_once('=')
                {
                    env.retain(|(key, _)| key != k);
                    env.push((k.to_owned(), v.to_owned()));
                }
            }
            p.env = env;
        }

        let mut cluster = Cluster {
            spec,
            secret,
            pki,
            procs,
        };
        // On any error below, `cluster` is dropped and kills what it started.
        let groups: Vec<Vec<String>> = vec![
            vec!["registration".into()],
            cluster
                .procs
                .iter()
                .filter(|p| p.bin == "access")
                .map(|p| p.name.clone())
                .collect(),
            vec![
                "assignment".into(),
                "reporting".into(),
                "notification".into(),
            ],
        ];
        for group in groups {
            for name in &group {
                cluster.spawn(name)?;
            }
            for name in &group {
                cluster.wait_healthy(name, START_TIMEOUT).await?;
            }
        }
        tracing::info!(services = cluster.procs.len(), "cluster started");
        Ok(cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_gets_its_own_certificate_the_token_keys_and_limits() {
        let env = security_env(Path::new("/run/pki"), "access");
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("RZ__TLS__CA"), Some("/run/pki/ca.crt"));
        assert_eq!(
            get("RZ__TLS__CERT"),
            Some("/run/pki/service-access/tls.crt")
        );
        assert_eq!(get("RZ__TLS__KEY"), Some("/run/pki/service-access/tls.key"));
        assert_eq!(get("RZ__IDENTITY__TOKEN_JWKS"), Some("/run/pki/jwks.json"));
        for (k, v) in LIMITS {
            assert!(v > 0, "{k}: limits stay on");
            assert_eq!(
                get(&format!("RZ__LIMITS__{k}")),
                Some(v.to_string().as_str())
            );
        }
    }
}
