//! The regiozorg services as separate OS processes, started from a directory of built binaries
//! (`target/debug` or `target/release`) the way `deploy/demo.sh` runs them: registration, one access
//! instance per municipality, assignment, reporting and notification, each with its own database on
//! one PostgreSQL server and a port of its own on 127.0.0.1.
//!
//! ```no_run
//! # async fn run() -> Result<(), rz_chaos::HarnessError> {
//! use rz_chaos::{Cluster, ClusterSpec};
//! let spec = ClusterSpec::new("target/debug", "var/run", "postgres://postgres@127.0.0.1:5432/postgres",
//!     "nats://127.0.0.1:4222");
//! let mut cluster = Cluster::start(spec).await?;
//! cluster.seed().await?;
//! cluster.kill("assignment").await?;
//! cluster.restart("assignment").await?;
//! cluster.stop().await;
//! # Ok(()) }
//! ```
//!
//! Every process is started with `kill_on_drop`, so dropping a [`Cluster`] (or an error in
//! [`Cluster::start`]) SIGKILLs whatever it started; [`Cluster::stop`] is the graceful way (SIGTERM,
//! then wait). Each service logs (JSON lines) to `<run_dir>/<service>.log`, appended across restarts,
//! and its current pid is in `<run_dir>/<service>.pid` so a wrapping script can clean up after a
//! harness that was itself killed.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::process::{Child, Command};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The eight municipalities of the Achterhoek region (CBS codes), as the demo runs them.
pub const ACHTERHOEK: [&str; 8] = [
    "0197", "1859", "1876", "0222", "1955", "1586", "1509", "0294",
];

/// How long a service may take to answer its health check after a (re)start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a service may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database {context}: {source}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("unknown service `{0}`")]
    UnknownService(String),
    #[error("service `{0}` is already running")]
    AlreadyRunning(String),
    #[error("service `{service}` did not become healthy: {reason}; last lines of {log}:\n{tail}")]
    NotHealthy {
        service: String,
        reason: String,
        log: String,
        tail: String,
    },
    #[error("invalid cluster spec: field `{field}`: {rule}")]
    InvalidSpec { field: &'static str, rule: String },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let context = context.into();
    move |source| HarnessError::Io { context, source }
}

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
        }
    }

    fn validate(&self) -> Result<(), HarnessError> {
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
        Ok(())
    }
}

/// One service process.
#[derive(Debug)]
struct Proc {
    /// `registration`, `access@0222`, ...
    name: String,
    /// The binary in `bin_dir`.
    bin: String,
    database: String,
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

/// The running services. Dropping it SIGKILLs them.
#[derive(Debug)]
pub struct Cluster {
    spec: ClusterSpec,
    secret: String,
    procs: Vec<Proc>,
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
            match p.bin.as_str() {
                "access" => {
                    let m = p.name.trim_start_matches("access@").to_owned();
                    env.push(("RZ__ACCESS__MUNICIPALITY".into(), m));
                    env.push(("RZ__ACCESS__CLIENT_KEY_SECRET".into(), secret.clone()));
                    env.push((
                        "RZ__ACCESS__REGISTRATION_ENDPOINT".into(),
                        registration.clone(),
                    ));
                }
                "assignment" => {
                    env.push(("RZ__ASSIGNMENT__CLIENT_KEY_SECRET".into(), secret.clone()));
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

    /// The gRPC URL of a service (`registration`, `access@0222`, `assignment`, `reporting`,
    /// `notification`).
    pub fn endpoint(&self, service: &str) -> Option<String> {
        self.find(service)
            .map(|p| format!("http://127.0.0.1:{}", p.port))
    }

    /// Every service name, in start order.
    pub fn services(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.name.clone()).collect()
    }

    /// The pid of a running service (None when it is not running).
    pub fn pid(&self, service: &str) -> Option<u32> {
        self.find(service)
            .and_then(|p| p.child.as_ref())
            .and_then(Child::id)
    }

    /// The URL of the service's own database.
    pub fn database_url(&self, service: &str) -> Option<String> {
        self.find(service)
            .map(|p| with_database(&self.spec.database_url, &p.database))
    }

    /// The region's client-key secret every access instance and assignment use.
    pub fn client_key_secret(&self) -> &str {
        &self.secret
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Where the service logs.
    pub fn log_path(&self, service: &str) -> PathBuf {
        self.spec.run_dir.join(format!("{service}.log"))
    }

    /// SIGKILLs the service and reaps it.
    pub async fn kill(&mut self, service: &str) -> Result<(), HarnessError> {
        let p = self.find_mut(service)?;
        if let Some(mut child) = p.child.take() {
            // `kill` sends SIGKILL and waits; an already exited child is fine.
            child
                .kill()
                .await
                .map_err(io(format!("killing {service}")))?;
            let _ = std::fs::remove_file(self.spec.run_dir.join(format!("{service}.pid")));
            tracing::info!(service, "killed (SIGKILL)");
        }
        Ok(())
    }

    /// Starts a service that was killed (or exited) again: same port, same database, same
    /// environment; waits until it is healthy. A service that still runs is killed first.
    pub async fn restart(&mut self, service: &str) -> Result<(), HarnessError> {
        let running = {
            let p = self.find_mut(service)?;
            match p.child.as_mut() {
                Some(child) => child
                    .try_wait()
                    .map_err(io(format!("checking {service}")))?
                    .is_none(),
                None => false,
            }
        };
        if running {
            self.kill(service).await?;
        } else if let Ok(p) = self.find_mut(service) {
            p.child = None;
        }
        self.spawn(service)?;
        self.wait_healthy(service, START_TIMEOUT).await?;
        tracing::info!(service, "restarted");
        Ok(())
    }

    /// Services whose process has exited although nobody killed it (a crash), with how it ended.
    /// They stay listed until they are restarted.
    pub fn exited(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in &mut self.procs {
            if let Some(child) = p.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                out.push((p.name.clone(), status.to_string()));
            }
        }
        out
    }

    /// Waits until the service answers its health check with SERVING.
    pub async fn wait_healthy(
        &mut self,
        service: &str,
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        let url = self
            .endpoint(service)
            .ok_or_else(|| HarnessError::UnknownService(service.to_owned()))?;
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            if let Some(child) = self.find_mut(service)?.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(self.not_healthy(service, format!("the process exited ({status})")));
            }
            match health(&url).await {
                Ok(true) => return Ok(()),
                Ok(false) => last = "NOT_SERVING".into(),
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(self.not_healthy(
                    service,
                    format!("no SERVING within {}s ({last})", timeout.as_secs()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// True when the service answers its health check with SERVING now.
    pub async fn is_healthy(&self, service: &str) -> bool {
        match self.endpoint(service) {
            Some(url) => health(&url).await.unwrap_or(false),
            None => false,
        }
    }

    /// Loads the Achterhoek register: `rzctl seed --endpoint URL` from `bin_dir` (idempotent). Its
    /// output goes to `<run_dir>/seed.log`.
    pub async fn seed(&self) -> Result<(), HarnessError> {
        let endpoint = self
            .endpoint("registration")
            .ok_or_else(|| HarnessError::UnknownService("registration".into()))?;
        let log = self.spec.run_dir.join("seed.log");
        let out = log_file(&log)?;
        let err = out.try_clone().map_err(io("seed log"))?;
        let status = Command::new(self.spec.bin_dir.join("rzctl"))
            .args(["seed", "--endpoint", &endpoint])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .status()
            .await
            .map_err(io("running rzctl seed"))?;
        if status.success() {
            Ok(())
        } else {
            Err(HarnessError::Command {
                command: "rzctl seed".into(),
                detail: format!("{status}; last lines of {}:\n{}", log.display(), tail(&log)),
            })
        }
    }

    /// SIGTERM to every service, then waits for each (SIGKILL after 30 s).
    pub async fn stop(mut self) {
        for p in &self.procs {
            if let Some(pid) = p.child.as_ref().and_then(Child::id) {
                signal(pid, "TERM");
            }
        }
        for p in &mut self.procs {
            if let Some(mut child) = p.child.take() {
                match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
                    Ok(_) => {}
                    Err(_) => {
                        tracing::warn!(service = %p.name, "did not stop after SIGTERM, killing it");
                        let _ = child.kill().await;
                    }
                }
                let _ = std::fs::remove_file(self.spec.run_dir.join(format!("{}.pid", p.name)));
            }
        }
    }

    fn find(&self, service: &str) -> Option<&Proc> {
        self.procs.iter().find(|p| p.name == service)
    }

    fn find_mut(&mut self, service: &str) -> Result<&mut Proc, HarnessError> {
        self.procs
            .iter_mut()
            .find(|p| p.name == service)
            .ok_or_else(|| HarnessError::UnknownService(service.to_owned()))
    }

    fn spawn(&mut self, service: &str) -> Result<(), HarnessError> {
        let bin_dir = self.spec.bin_dir.clone();
        let run_dir = self.spec.run_dir.clone();
        let p = self.find_mut(service)?;
        if p.child.is_some() {
            return Err(HarnessError::AlreadyRunning(service.to_owned()));
        }
        let log = run_dir.join(format!("{service}.log"));
        let out = log_file(&log)?;
        let err = out.try_clone().map_err(io(format!("log of {service}")))?;
        let child = Command::new(bin_dir.join(&p.bin))
            .arg("serve")
            .envs(p.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {service}")))?;
        if let Some(pid) = child.id() {
            let _ = std::fs::write(run_dir.join(format!("{service}.pid")), pid.to_string());
        }
        tracing::info!(service, port = p.port, pid = child.id(), "started");
        p.child = Some(child);
        Ok(())
    }

    fn not_healthy(&self, service: &str, reason: String) -> HarnessError {
        let log = self.log_path(service);
        HarnessError::NotHealthy {
            service: service.to_owned(),
            reason,
            tail: tail(&log),
            log: log.display().to_string(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(child) = p.child.as_mut() {
                let _ = child.start_kill();
            }
        }
    }
}

/// Peak resident set size (VmHWM of `/proc/<pid>/status`) in MiB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The URL with its database name replaced (query kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|j| j + 3).unwrap_or(0);
    let prefix = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// Sends a signal (`TERM`, `KILL`, `STOP`, ...) with kill(1).
pub fn signal(pid: u32, name: &str) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `n` random bytes from the kernel.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, HarnessError> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io("reading /dev/urandom"))?;
    Ok(buf)
}

/// The secret in `<run_dir>/client-key-secret`, created (32 random bytes, hex) when missing, so a
/// cluster restarted on the same run dir and databases keeps producing the same client keys.
fn client_key_secret(run_dir: &Path) -> Result<String, HarnessError> {
    let path = run_dir.join("client-key-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_owned();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let secret: String = random_bytes(32)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&path, &secret).map_err(io(format!("writing {}", path.display())))?;
    Ok(secret)
}

async fn ensure_databases<'a>(
    admin_url: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), HarnessError> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|source| HarnessError::Database {
            context: "connecting to the server".into(),
            source,
        })?;
    for name in names {
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&mut conn)
                .await
                .map_err(|source| HarnessError::Database {
                    context: format!("looking up {name}"),
                    source,
                })?;
        if exists.is_none() {
            // `name` is validated (prefix of [a-z0-9_], CBS digits).
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .map_err(|source| HarnessError::Database {
                    context: format!("creating {name}"),
                    source,
                })?;
        }
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 in 20000..32000 (below the ephemeral range, like demo.sh), not in
/// `taken`.
pub fn free_port(taken: &mut HashSet<u16>) -> Result<u16, HarnessError> {
    let bytes = random_bytes(2 * 200)?;
    for pair in bytes.chunks_exact(2) {
        let r = u16::from_le_bytes([pair[0], pair[1]]);
        let port = 20000 + r % 12000;
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return Ok(port);
        }
    }
    Err(HarnessError::Command {
        command: "choosing a port".into(),
        detail: "no free port in 20000..32000 after 200 tries".into(),
    })
}

fn log_file(path: &Path) -> Result<std::fs::File, HarnessError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))
}

/// The last 20 lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Ok(true) when the service answers SERVING.
async fn health(url: &str) -> Result<bool, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2));
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply.into_inner().status == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }

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
    }

    #[test]
    fn peak_rss_of_this_process_is_positive() {
        let mb = peak_rss_mb(std::process::id());
        assert!(mb.is_some_and(|mb| mb > 0.0), "{mb:?}");
    }
}
