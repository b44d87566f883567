//! `rz-chaos`: care flows and a handover while every service, nats-server and PostgreSQL
//! are SIGKILLed and restarted in turn at random moments; then it lets everything settle and
//! checks the invariants. Prints `flows`, `kills`, `lost`, `duplicated_effects` and
//! `invariant_violations`, writes `<run-dir>/result.json`, and exits non-zero on any violation.
//!
//! Everything runs as in production as far as identities go: the cluster generates a test PKI in
//! `<run-dir>/pki`, every service serves and calls with mutual TLS and authorises every call, and
//! the run calls as the party each call belongs to (the operator for the register, imports and
//! the handover; a municipality at its own access instance; each provider with its own certificate
//! for its starts of care and its webhook subscription). Rate limits are on, far above the load.
//!
//! Normally started by `deploy/chaos.sh` (`make chaos`), which gives it a private PostgreSQL and
//! nats-server and the commands to kill and start them:
//!
//! ```text
//! rz-chaos --database-url URL --nats-url URL [--bin-dir target/debug] [--run-dir var/chaos/run]
//!     [--seconds 150] [--seed N] [--municipalities 0222,1859,...] [--concurrency 4] [--rate 10]
//!     [--clients-per-old-provider 3] [--settle-seconds 180]
//!     [--pg-kill CMD --pg-start CMD] [--nats-kill CMD --nats-start CMD]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rz_chaos::chaos::checks::{Checker, Invariant, Sources};
use rz_chaos::chaos::faults::{self, FaultPlan, FaultReport, Infra, Rng};
use rz_chaos::chaos::flows::{Endpoints, Load, LoadStats};
use rz_chaos::chaos::receiver::Receiver;
use rz_chaos::chaos::webhooks::{self, WebhookReceiver};
use rz_chaos::cluster::{ACHTERHOEK, random_bytes};
use rz_chaos::{Cluster, ClusterSpec};

/// The services' date during the run (see the flows' dates in `chaos::flows`).
const TODAY: &str = "2022-09-01";

#[derive(Debug)]
struct Args {
    bin_dir: PathBuf,
    run_dir: PathBuf,
    database_url: String,
    nats_url: String,
    seconds: u64,
    seed: Option<u64>,
    municipalities: Vec<String>,
    concurrency: usize,
    rate: f64,
    clients_per_old_provider: u32,
    settle_seconds: u64,
    infra: Infra,
}

const USAGE: &str = "usage: rz-chaos --database-url URL --nats-url URL [--bin-dir DIR] [--run-dir DIR] \
[--seconds N] [--seed N] [--municipalities M,M,...] [--concurrency N] [--rate FLOWS_PER_S] [--clients-per-old-provider N] \
[--settle-seconds N] [--pg-kill CMD --pg-start CMD] [--nats-kill CMD --nats-start CMD]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bin_dir: PathBuf::from("target/debug"),
        run_dir: PathBuf::from("var/chaos/run"),
        database_url: std::env::var("DATABASE_URL").unwrap_or_default(),
        nats_url: std::env::var("NATS_URL").unwrap_or_default(),
        seconds: 150,
        seed: None,
        municipalities: ACHTERHOEK.iter().map(|m| (*m).to_owned()).collect(),
        concurrency: 4,
        rate: 10.0,
        clients_per_old_provider: 3,
        settle_seconds: 180,
        infra: Infra::default(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    let number = |k: &str, v: &str| -> Result<u64, String> {
        v.parse()
            .map_err(|_| format!("{k}: `{v}` is not a whole number"))
    };
    while let Some(k) = it.next() {
        if k == "-h" || k == "--help" {
            return Err(USAGE.into());
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{k} needs a value; {USAGE}"))?;
        match k.as_str() {
            "--bin-dir" => a.bin_dir = PathBuf::from(v),
            "--run-dir" => a.run_dir = PathBuf::from(v),
            "--database-url" => a.database_url = v.clone(),
            "--nats-url" => a.nats_url = v.clone(),
            "--seconds" => a.seconds = number(k, v)?,
            "--seed" => a.seed = Some(number(k, v)?),
            "--municipalities" => {
                a.municipalities = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "--concurrency" => a.concurrency = number(k, v)? as usize,
            "--rate" => {
                a.rate = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| format!("--rate: `{v}` is not a number of flows per second"))?
            }
            "--clients-per-old-provider" => a.clients_per_old_provider = number(k, v)? as u32,
            "--settle-seconds" => a.settle_seconds = number(k, v)?,
            "--pg-kill" => a.infra.pg_kill = Some(v.clone()),
            "--pg-start" => a.infra.pg_start = Some(v.clone()),
            "--nats-kill" => a.infra.nats_kill = Some(v.clone()),
            "--nats-start" => a.infra.nats_start = Some(v.clone()),
            _ => return Err(format!("unknown argument {k}; {USAGE}")),
        }
    }
    if a.database_url.is_empty() {
        return Err(format!(
            "--database-url (or DATABASE_URL) is required; {USAGE}"
        ));
    }
    if a.nats_url.is_empty() {
        return Err(format!("--nats-url (or NATS_URL) is required; {USAGE}"));
    }
    if a.concurrency == 0 || a.concurrency > 64 {
        return Err("--concurrency: between 1 and 64".into());
    }
    a.infra.log = a.run_dir.join("infra.log");
    Ok(a)
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rz_chaos=info")),
        )
        .try_init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rz-chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rz-chaos: cannot watch SIGTERM: {e}");
            return ExitCode::from(2);
        }
    };
    // Dropping `run` (on a signal) drops the cluster, which kills every service it started.
    tokio::select! {
        r = run(args) => match r {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("rz-chaos: {e}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("rz-chaos: interrupted");
            ExitCode::from(130)
        }
        _ = term.recv() => {
            eprintln!("rz-chaos: terminated");
            ExitCode::from(143)
        }
    }
}

/// Ok(true) when every invariant held.
async fn run(args: Args) -> Result<bool, String> {
    let t0 = Instant::now();
    let seed = match args.seed {
        Some(s) => s,
        None => random_bytes(8)
            .map_err(|e| e.to_string())?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    };
    let mut rng = Rng::new(seed);
    println!(
        "rz-chaos: seed {seed}, {} s of faults, {} municipalities, {} concurrent flows at most {}/s",
        args.seconds,
        args.municipalities.len(),
        args.concurrency,
        args.rate
    );
    let mut spec = ClusterSpec::new(
        &args.bin_dir,
        &args.run_dir,
        &args.database_url,
        &args.nats_url,
    );
    spec.db_prefix = "chaos".into();
    spec.municipalities = args.municipalities.clone();
    spec.extra_env = vec![
        ("*".into(), "RZ__SERVER__SHUTDOWN_GRACE_SECS=3".into()),
        // The services' date: the flows decide in July and August 2022, care starts on
        // 1 September; the handover (as of 1 July) runs "later", so new providers take over on
        // this day (never retroactively).
        ("access".into(), format!("RZ__ACCESS__TODAY={TODAY}")),
        (
            "assignment".into(),
            format!("RZ__ASSIGNMENT__TODAY={TODAY}"),
        ),
        (
            "notification".into(),
            format!("RZ__NOTIFICATION__TODAY={TODAY}"),
        ),
        // Webhook retries on a scale that settles within the run (the defaults back off to 30 min).
        (
            "notification".into(),
            "RZ__WEBHOOKS__INITIAL_BACKOFF_MS=200".into(),
        ),
        (
            "notification".into(),
            "RZ__WEBHOOKS__MAX_BACKOFF_MS=2000".into(),
        ),
        (
            "notification".into(),
            "RZ__WEBHOOKS__REQUEST_TIMEOUT_MS=2000".into(),
        ),
        ("notification".into(), "RZ__WEBHOOKS__LEASE_MS=5000".into()),
    ];
    let mut cluster = Cluster::start(spec).await.map_err(|e| e.to_string())?;
    let mut seeded = Err(String::new());
    for _ in 0..3 {
        seeded = cluster.seed().await.map_err(|e| e.to_string());
        if seeded.is_ok() {
            break;
        }
    }
    seeded.map_err(|e| format!("seeding the register: {e}"))?;
    println!(
        "  {} services up and the register seeded after {:.1} s",
        cluster.services().len(),
        t0.elapsed().as_secs_f64()
    );

    let endpoint = |s: &str| {
        cluster
            .endpoint(s)
            .ok_or_else(|| format!("no endpoint for {s}"))
    };
    let mut access = BTreeMap::new();
    for m in &args.municipalities {
        access.insert(m.clone(), endpoint(&format!("access@{m}"))?);
    }
    let endpoints = Endpoints {
        registration: endpoint("registration")?,
        assignment: endpoint("assignment")?,
        access,
        dial: cluster.dial(),
    };
    let reporting_endpoint = endpoint("reporting")?;
    let stats = Arc::new(LoadStats::default());
    let load = Arc::new(Load::new(endpoints.clone(), stats.clone()).await?);

    // Every provider subscribes a webhook before the first event.
    let hooks = WebhookReceiver::start()
        .await
        .map_err(|e| format!("webhook receiver: {e}"))?;
    let subscribed = webhooks::subscribe_all(
        &endpoints.dial,
        &hooks,
        &endpoints.registration,
        &endpoint("notification")?,
        &stats.retries,
    )
    .await?;
    println!(
        "  {subscribed} providers subscribed webhooks at http://{}/hook/<agb>",
        hooks.addr()
    );

    // The provider receiver runs from before the first event until the checks.
    let receiver = Arc::new(Receiver::new());
    let receiver_stop = Arc::new(AtomicBool::new(false));
    let receiver_task = {
        let r = receiver.clone();
        let stop = receiver_stop.clone();
        let (url, ns, asg, dial) = (
            args.nats_url.clone(),
            cluster.spec().nats_namespace.clone(),
            endpoints.assignment.clone(),
            endpoints.dial.clone(),
        );
        tokio::spawn(async move { r.run(url, ns, asg, dial, stop).await })
    };

    // The load: care flows, existing care, handover runs; all while the faults go on.
    let stop = Arc::new(AtomicBool::new(false));
    let flows_task = tokio::spawn(load.clone().run_flows(
        args.concurrency,
        args.rate,
        stop.clone(),
    ));
    let import_task = {
        let load = load.clone();
        let per = args.clients_per_old_provider;
        tokio::spawn(async move {
            let r = load.import_existing_care(per).await;
            tracing::info!(at_s = t0.elapsed().as_secs_f64(), "existing care imported");
            r
        })
    };
    let handover_in_flight = Arc::new(AtomicBool::new(false));
    // (durations of completed runs, errors); the task is aborted when the faults end, a run in
    // flight then is simply interrupted (the handover is idempotent; the final runs complete it).
    let handover_log: Arc<std::sync::Mutex<(Vec<f64>, Vec<String>)>> = Arc::default();
    let handover_task = {
        let load = load.clone();
        let in_flight = handover_in_flight.clone();
        let log = handover_log.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let started = Instant::now();
                in_flight.store(true, Ordering::Relaxed);
                let r = load.run_handover().await;
                in_flight.store(false, Ordering::Relaxed);
                if let Ok(mut log) = log.lock() {
                    match r {
                        Ok(_) => log.0.push(started.elapsed().as_secs_f64()),
                        Err(e) => log.1.push(e),
                    }
                }
            }
        })
    };

    let plan = FaultPlan {
        min_gap: Duration::from_millis(500),
        max_gap: Duration::from_millis(2500),
        min_down: Duration::from_millis(100),
        max_down: Duration::from_millis(2000),
        until: Instant::now() + Duration::from_secs(args.seconds),
        handover_in_flight: Some(handover_in_flight.clone()),
    };
    let mut report: FaultReport = faults::run(
        &mut cluster,
        &args.infra,
        &plan,
        &mut rng,
        Arc::new(AtomicBool::new(false)),
        t0,
    )
    .await;
    let chaos_s = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = flows_task.await;
    tracing::info!(at_s = t0.elapsed().as_secs_f64(), "care flows stopped");
    let import_result = import_task.await.map_err(|e| e.to_string()).and_then(|r| r);
    handover_task.abort();
    let _ = handover_task.await;
    let (handover_runs, handover_errors) =
        handover_log.lock().map(|l| l.clone()).unwrap_or_default();
    faults::restart_crashed(&mut cluster, &mut report, t0).await;
    println!(
        "  faults stopped after {chaos_s:.1} s; {} kills; load finished after {:.1} s",
        report.kills.len(),
        t0.elapsed().as_secs_f64()
    );

    // The handover once more, until it reports nothing new.
    let mut final_runs = Vec::new();
    let final_start = Instant::now();
    for _ in 0..10 {
        match load.run_handover().await {
            Ok(r) => {
                let done = r.newly_arranged == 0;
                final_runs.push(r);
                if done {
                    break;
                }
            }
            Err(e) => {
                final_runs.push(Default::default());
                tracing::error!(error = %e, "final handover run failed");
                break;
            }
        }
    }
    let last_handover = final_runs.last().cloned().unwrap_or_default();
    let final_handover_s = final_start.elapsed().as_secs_f64();

    // Settle: relays drained, consumers caught up, the receiver has everything.
    let mut databases = BTreeMap::new();
    for s in cluster.services() {
        if let Some(url) = cluster.database_url(&s) {
            databases.insert(s, url);
        }
    }
    let mut checker = Checker::new(Sources {
        databases,
        reporting: reporting_endpoint,
        nats_url: args.nats_url.clone(),
        namespace: cluster.spec().nats_namespace.clone(),
        dial: cluster.dial(),
    })
    .await?;
    let settle_start = Instant::now();
    let (progress, settled) = checker
        .settle(
            &receiver.state,
            hooks.receipts(),
            Duration::from_secs(args.settle_seconds),
        )
        .await;
    println!(
        "  {} after {:.1} s: {progress:?}",
        if settled { "settled" } else { "NOT settled" },
        settle_start.elapsed().as_secs_f64()
    );
    receiver_stop.store(true, Ordering::Relaxed);
    let receiver_result = receiver_task
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    let crashed_before_checks = cluster.exited();

    let flows: Vec<_> = stats.records.lock().map(|r| r.clone()).unwrap_or_default();
    let state = receiver
        .state
        .lock()
        .map(|s| s.clone())
        .map_err(|_| "receiver state poisoned".to_string())?;
    let hook_state = hooks.receipts().snapshot();
    let contracted_after = load.contracted_on("2022-07-01").await?;
    let mut invariants = checker
        .check(
            &flows,
            &state,
            &hook_state,
            last_handover.not_arranged,
            &contracted_after,
        )
        .await?;

    // The harness' own view: flows that gave up, crashes, restarts that failed.
    let mut harness = Invariant {
        name: "harness_view",
        description: "every flow completed (after retries), no service died unless killed, every restart worked",
        checked: flows.len() + report.kills.len(),
        violations: Vec::new(),
        lost: 0,
    };
    if let Ok(f) = stats.failures.lock() {
        harness.violations.extend(f.iter().cloned());
    }
    for (at, s, status) in &report.crashes {
        harness
            .violations
            .push(format!("{s} exited by itself ({status}) at {at:.1} s"));
    }
    for (s, status) in &crashed_before_checks {
        harness
            .violations
            .push(format!("{s} exited by itself ({status}) while settling"));
    }
    harness.violations.extend(report.failures.iter().cloned());
    harness.violations.extend(
        handover_errors
            .iter()
            .map(|e| format!("handover run failed: {e}")),
    );
    if let Err(e) = &import_result {
        harness.violations.push(format!("import: {e}"));
    }
    if let Err(e) = &receiver_result {
        harness.violations.push(format!("receiver: {e}"));
    }
    if !settled {
        harness.violations.push(format!(
            "did not settle within {} s: {progress:?}",
            args.settle_seconds
        ));
    }
    invariants.push(harness);

    // The report.
    let mut per_target: BTreeMap<String, u32> = BTreeMap::new();
    for k in &report.kills {
        let t = if k.target.starts_with("access@") {
            "access".to_owned()
        } else {
            k.target.clone()
        };
        *per_target.entry(t).or_default() += 1;
    }
    println!("\nkills, in order (seconds since start, target, down ms, back after s):");
    for k in &report.kills {
        println!(
            "  {:>6.1}  {:<14} {:>5}  {:>5.1}  {}{}",
            k.at_s,
            k.target,
            k.down_ms,
            k.back_after_s,
            k.note,
            k.error
                .as_ref()
                .map(|e| format!("  ERROR {e}"))
                .unwrap_or_default()
        );
    }
    println!(
        "handover: {} runs during the faults (longest {:.1} s, {} failed), then {} until nothing new ({:.1} s); last: {:?}",
        handover_runs.len(),
        handover_runs.iter().copied().fold(0.0, f64::max),
        handover_errors.len(),
        final_runs.len(),
        final_handover_s,
        last_handover
    );
    println!(
        "load: {} flows started, {} granted ({} then extended), {} refused, {} failed; {} existing clients imported ({} failed); client retries {:?}",
        stats.flows_started.load(Ordering::Relaxed),
        stats.granted.load(Ordering::Relaxed),
        flows.iter().filter(|f| f.amended).count(),
        stats.refused.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.imported.load(Ordering::Relaxed),
        stats.import_failed.load(Ordering::Relaxed),
        stats.retries.snapshot()
    );
    let rs = &receiver.stats;
    println!(
        "receiver: {} deliveries, {} events applied, {} redeliveries skipped, {} starts already reported, {} resubscriptions, retries {:?}",
        rs.deliveries.load(Ordering::Relaxed),
        state.applied.len(),
        rs.redeliveries.load(Ordering::Relaxed),
        rs.start_already.load(Ordering::Relaxed),
        rs.reconnects.load(Ordering::Relaxed),
        rs.retries.snapshot()
    );
    println!(
        "webhooks: {} POSTs, {} events applied, {} redeliveries skipped, {} bad signatures",
        hooks.receipts().posts(),
        hook_state.received.len(),
        hooks.receipts().redeliveries(),
        hook_state.bad_signatures.len()
    );
    println!("\ninvariants:");
    for inv in &invariants {
        if inv.violations.is_empty() {
            println!(
                "  [ok]        {:<22} {} ({} checked)",
                inv.name, inv.description, inv.checked
            );
        } else {
            println!(
                "  [VIOLATED]  {:<22} {} ({} checked, {} violations)",
                inv.name,
                inv.description,
                inv.checked,
                inv.violations.len()
            );
            for v in inv.violations.iter().take(10) {
                println!("                {v}");
            }
            if inv.violations.len() > 10 {
                println!("                ... and {} more", inv.violations.len() - 10);
            }
        }
    }
    let lost: usize = invariants.iter().map(|i| i.lost).sum();
    let duplicated = state.duplicated.len();
    let violations: usize = invariants.iter().map(|i| i.violations.len()).sum();
    println!();
    println!("flows: {}", flows.len());
    println!("kills: {}", report.kills.len());
    println!("lost: {lost}");
    println!("duplicated_effects: {duplicated}");
    println!("invariant_violations: {violations}");
    println!("took: {:.1} s", t0.elapsed().as_secs_f64());

    let result = serde_json::json!({
        "seed": seed,
        "seconds": args.seconds,
        "municipalities": args.municipalities,
        "flows": flows.len(),
        "flows_failed": stats.failed.load(Ordering::Relaxed),
        "kills": report.kills.len(),
        "kills_per_target": per_target,
        "lost": lost,
        "duplicated_effects": duplicated,
        "invariant_violations": violations,
        "settled": settled,
        "took_s": t0.elapsed().as_secs_f64(),
        "invariants": invariants.iter().map(|i| serde_json::json!({
            "name": i.name,
            "checked": i.checked,
            "violations": i.violations,
        })).collect::<Vec<_>>(),
        "kill_log": report.kills.iter().map(|k| serde_json::json!({
            "at_s": k.at_s, "target": k.target, "down_ms": k.down_ms,
            "back_after_s": k.back_after_s, "error": k.error, "note": k.note,
        })).collect::<Vec<_>>(),
    });
    let path = args.run_dir.join("result.json");
    if let Err(e) = std::fs::write(&path, result.to_string()) {
        eprintln!("rz-chaos: writing {}: {e}", path.display());
    }
    cluster.stop().await;
    Ok(violations == 0)
}
