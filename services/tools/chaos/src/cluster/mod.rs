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
//! Each start generates a test PKI in `<run_dir>/pki` (`rz_pki`): every service gets `[tls]` of its
//! `service-<name>` folder, `[identity]` with the PKI's token key, and `[limits]` far above a
//! test's load; the health checks and the tools ([`Cluster::dial`]) call with mutual TLS.
//!
//! Every process is started with `kill_on_drop`, so dropping a [`Cluster`] (or an error in
//! [`Cluster::start`]) SIGKILLs whatever it started; [`Cluster::stop`] is the graceful way (SIGTERM,
//! then wait). Each service logs (JSON lines) to `<run_dir>/<service>.log`, appended across restarts,
//! and its current pid is in `<run_dir>/<service>.pid` so a wrapping script can clean up after a
//! harness that was itself killed.
//!
//! - this module: the [`Cluster`] and what it does to its processes (kill, restart, health, stop);
//! - [`spec`]: the [`ClusterSpec`] and its validation;
//! - `start`: [`Cluster::start`], each service's environment and the start order;
//! - [`os`]: ports, signals, random bytes, database URLs, log files and the health check.

pub mod os;
pub mod spec;
mod start;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

pub use os::{free_port, peak_rss_mb, random_bytes, signal, with_database};
pub use spec::ClusterSpec;

use os::{health, log_file, tail};
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

/// The date of the Achterhoek seed: the register as the 2022 tender left it (its contracts start
/// on this day). Registration runs on it while [`Cluster::seed`] loads the register.
pub const REGISTER_DATE: &str = "2022-07-01";

/// The file registration reads its date from (`registration.today_file`); absent, the system date.
pub(crate) fn registration_date_file(run_dir: &std::path::Path) -> std::path::PathBuf {
    run_dir.join("registration.today")
}

/// The running services. Dropping it SIGKILLs them.
#[derive(Debug)]
pub struct Cluster {
    spec: ClusterSpec,
    secret: String,
    /// The run's test PKI (`<run_dir>/pki`).
    pki: PathBuf,
    procs: Vec<Proc>,
}

impl Cluster {
    /// The gRPC URL of a service (`registration`, `access@0222`, `assignment`, `reporting`,
    /// `notification`).
    pub fn endpoint(&self, service: &str) -> Option<String> {
        self.find(service)
            .map(|p| format!("http://127.0.0.1:{}", p.port))
    }

    /// The run's test PKI (`<run_dir>/pki`, laid out by `rz_pki::generate`): the services serve
    /// and call with its `service-<name>` certificates, the tools with the others.
    pub fn pki_dir(&self) -> &std::path::Path {
        &self.pki
    }

    /// Channels with mutual TLS as a party of the run's PKI.
    pub fn dial(&self) -> rz_workload::Dial {
        rz_workload::Dial::new(&self.pki)
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
            match health(&self.pki, &url).await {
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
            Some(url) => health(&self.pki, &url).await.unwrap_or(false),
            None => false,
        }
    }

    /// Loads the Achterhoek register: `rzctl seed --endpoint URL --pki <pki> --as operator` from
    /// `bin_dir` (idempotent; registration's writes are the operator's). Its output goes to
    /// `<run_dir>/seed.log`. Registration's date is [`REGISTER_DATE`] while the register loads
    /// (its date rules refuse older history), the system date again afterwards.
    pub async fn seed(&self) -> Result<(), HarnessError> {
        let endpoint = self
            .endpoint("registration")
            .ok_or_else(|| HarnessError::UnknownService("registration".into()))?;
        let date_file = registration_date_file(&self.spec.run_dir);
        std::fs::write(&date_file, REGISTER_DATE)
            .map_err(io(format!("writing {}", date_file.display())))?;
        let loaded = self.run_seed(&endpoint).await;
        let _ = std::fs::remove_file(&date_file);
        loaded
    }

    async fn run_seed(&self, endpoint: &str) -> Result<(), HarnessError> {
        let log = self.spec.run_dir.join("seed.log");
        let pki = self.pki.display().to_string();
        let out = log_file(&log)?;
        let err = out.try_clone().map_err(io("seed log"))?;
        let status = Command::new(self.spec.bin_dir.join("rzctl"))
            .args([
                "seed",
                "--endpoint",
                endpoint,
                "--pki",
                &pki,
                "--as",
                "operator",
            ])
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
