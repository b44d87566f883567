//! The faults: SIGKILL and restart, at random moments, each service in turn (a random access
//! instance when it is access' turn), then nats-server, then PostgreSQL, round and round, one
//! fault at a time. A service that exits by itself meanwhile is a crash: recorded and restarted.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::cluster::Cluster;

/// A small deterministic generator (xorshift64*), so a run can be repeated with `--seed`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
        Duration::from_millis(lo + self.next_u64() % (hi.saturating_sub(lo) + 1))
    }

    pub fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % (len.max(1) as u64)) as usize
    }
}

/// How to kill and start the servers (shell commands; from deploy/chaos.sh).
#[derive(Debug, Clone, Default)]
pub struct Infra {
    pub pg_kill: Option<String>,
    pub pg_start: Option<String>,
    pub nats_kill: Option<String>,
    pub nats_start: Option<String>,
    /// Their output goes here.
    pub log: PathBuf,
}

#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Time between the end of one fault and the next kill.
    pub min_gap: Duration,
    pub max_gap: Duration,
    /// How long a killed process stays down.
    pub min_down: Duration,
    pub max_down: Duration,
    /// Faults stop after this moment (a started round is finished first).
    pub until: Instant,
    /// Set while a RunHandover call is in flight: assignment's kill waits (a while) for one, so
    /// the handover is interrupted halfway at least once a round.
    pub handover_in_flight: Option<Arc<AtomicBool>>,
}

/// One kill.
#[derive(Debug, Clone)]
pub struct Kill {
    /// Seconds since the start of the run.
    pub at_s: f64,
    pub target: String,
    pub down_ms: u64,
    /// Seconds until it answered again after the restart.
    pub back_after_s: f64,
    pub error: Option<String>,
    /// What else was going on (e.g. "during RunHandover").
    pub note: String,
}

#[derive(Debug, Default, Clone)]
pub struct FaultReport {
    pub kills: Vec<Kill>,
    /// Services that exited by themselves: (seconds since start, service, exit status).
    pub crashes: Vec<(f64, String, String)>,
    /// Restarts that failed (the run cannot trust the rest then).
    pub failures: Vec<String>,
}

async fn shell(cmd: &str, log: &PathBuf) -> Result<(), String> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .await
        .map_err(|e| format!("`{cmd}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd}` failed: {status}"))
    }
}

/// Restarts services that exited by themselves; records them as crashes.
pub async fn restart_crashed(cluster: &mut Cluster, report: &mut FaultReport, t0: Instant) {
    for (service, status) in cluster.exited() {
        tracing::warn!(%service, %status, "service exited by itself; restarting it");
        report
            .crashes
            .push((t0.elapsed().as_secs_f64(), service.clone(), status));
        if let Err(e) = cluster.restart(&service).await {
            report
                .failures
                .push(format!("restart of crashed {service}: {e}"));
        }
    }
}

/// Waits until every service answers its health check again (after a server came back).
async fn all_healthy(cluster: &mut Cluster, timeout: Duration) -> Result<(), String> {
    for s in cluster.services() {
        cluster
            .wait_healthy(&s, timeout)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Injects faults until `plan.until` (finishing the round it is in) or `stop`.
pub async fn run(
    cluster: &mut Cluster,
    infra: &Infra,
    plan: &FaultPlan,
    rng: &mut Rng,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> FaultReport {
    let mut report = FaultReport::default();
    let mut targets: Vec<String> = vec![
        "registration".into(),
        "access".into(),
        "assignment".into(),
        "reporting".into(),
        "notification".into(),
    ];
    if infra.nats_kill.is_some() && infra.nats_start.is_some() {
        targets.push("nats".into());
    }
    if infra.pg_kill.is_some() && infra.pg_start.is_some() {
        targets.push("postgres".into());
    }
    let access: Vec<String> = cluster
        .services()
        .into_iter()
        .filter(|s| s.starts_with("access@"))
        .collect();
    let mut turn = 0usize;
    loop {
        if stop.load(Ordering::Relaxed)
            || (Instant::now() >= plan.until && turn.is_multiple_of(targets.len()))
        {
            break;
        }
        tokio::time::sleep(rng.millis(plan.min_gap, plan.max_gap)).await;
        restart_crashed(cluster, &mut report, t0).await;
        let mut target = targets[turn % targets.len()].clone();
        turn += 1;
        if target == "access" {
            target = access[rng.index(access.len())].clone();
        }
        let mut note = String::new();
        if target == "assignment"
            && let Some(flag) = &plan.handover_in_flight
        {
            let wait_until = Instant::now() + Duration::from_secs(8);
            while !flag.load(Ordering::Relaxed) && Instant::now() < wait_until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if flag.load(Ordering::Relaxed) {
                tokio::time::sleep(rng.millis(Duration::ZERO, Duration::from_millis(300))).await;
                if flag.load(Ordering::Relaxed) {
                    note = "during RunHandover".into();
                }
            }
        }
        let down = rng.millis(plan.min_down, plan.max_down);
        let at_s = t0.elapsed().as_secs_f64();
        let killed_at = Instant::now();
        tracing::info!(%target, down_ms = down.as_millis() as u64, "fault: SIGKILL");
        let outcome: Result<(), String> = match target.as_str() {
            "nats" | "postgres" => {
                let (kill, start) = if target == "nats" {
                    (&infra.nats_kill, &infra.nats_start)
                } else {
                    (&infra.pg_kill, &infra.pg_start)
                };
                let (Some(kill), Some(start)) = (kill, start) else {
                    continue;
                };
                let mut r = shell(kill, &infra.log).await;
                if r.is_ok() {
                    tokio::time::sleep(down).await;
                    r = shell(start, &infra.log).await;
                }
                r
            }
            service => match cluster.kill(service).await {
                Ok(()) => {
                    tokio::time::sleep(down).await;
                    cluster.restart(service).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            },
        };
        let mut error = outcome.err();
        if error.is_none() {
            // every service must come back to SERVING (a server fault touches them all)
            restart_crashed(cluster, &mut report, t0).await;
            if let Err(e) = all_healthy(cluster, Duration::from_secs(60)).await {
                error = Some(e);
            }
        }
        if let Some(e) = &error {
            tracing::error!(%target, error = %e, "restart after the fault failed");
            report.failures.push(format!("{target}: {e}"));
        }
        report.kills.push(Kill {
            at_s,
            target,
            down_ms: down.as_millis() as u64,
            back_after_s: killed_at.elapsed().as_secs_f64(),
            error,
            note,
        });
    }
    report
}
