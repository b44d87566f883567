//! `rz-bench`: the figures that decide where the project stands, measured in one run on one
//! machine so that their ratios hold: the machine's limits (PostgreSQL insert commits, JetStream
//! publishes), the care flow end to end, webhook delivery and the handover, with peak memory per
//! service. Prints a table and writes `var/bench/result.json`; a figure that was not measured is
//! `null` there, with the reason under `not_measured`.
//!
//! `make bench` runs it (after a release build) with `DATABASE_URL` and `NATS_URL` of the local
//! stack. `rz-bench --help` lists the flags (`--only` runs a subset).

mod floor;
mod flow;
mod limits;
mod preload;
mod receiver;
mod report;
mod services;
mod statements;
mod stats;
mod tls;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("missing: {0}")]
    Missing(String),
    #[error("failed: {0}")]
    Failed(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("nats: {0}")]
    Nats(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

const SECTIONS: &[&str] = &[
    "limits", "tls", "floor", "flow", "webhook", "national", "handover",
];

/// The figures of the `tls` section.
const TLS_KEYS: &[&str] = &[
    "rpc_plain_p50_ms",
    "rpc_plain_p99_ms",
    "rpc_mtls_p50_ms",
    "rpc_mtls_p99_ms",
    "rpc_checked_p50_ms",
    "rpc_checked_p99_ms",
    "rpc_plain_per_s",
    "rpc_mtls_per_s",
    "rpc_checked_per_s",
    "rpc_checks_cost_p50_ms",
    "tls_connect_ms",
];

const USAGE: &str =
    "usage: rz-bench [--only limits,tls,floor,flow,webhook,national,handover] [--out FILE]
         [--bin-dir DIR] [--work-dir DIR] [--pgbench PATH] [--pgbench-secs N]
         [--js-messages N] [--flow-secs N] [--clients N] [--webhook-events N]
         [--national-clients N] [--handover-clients N] [--floor-flows N] [--tls-calls N]
         [--quick]
  --floor-flows N       flows of the floor section (default 5000; see floor.rs)
  --tls-calls N         calls one at a time per way of the tls section (default 5000; tls.rs)
  --clients N           clients in care at region scale (default 20000)
  --national-clients N  clients in care for the national figures (default 1500000)
  --handover-clients N  clients of ended contracts handed over (default 100000 with the
                        national section, else --clients)
Reads DATABASE_URL and NATS_URL (make bench sets them from var/bench-stack.env).";

#[derive(Debug, Clone)]
pub struct Args {
    pub only: Vec<String>,
    pub out: PathBuf,
    pub bin_dir: PathBuf,
    pub work_dir: PathBuf,
    pub pgbench: PathBuf,
    pub pgbench_secs: u32,
    pub js_messages: u64,
    pub flow_secs: u64,
    pub flow_cases: u32,
    pub floor_flows: u32,
    pub tls_calls: usize,
    pub clients: u64,
    pub national_clients: u64,
    pub handover_clients: u64,
    pub keep: bool,
    pub quick: bool,
    pub extra_env: Vec<(String, String)>,
    pub webhook_events: u64,
    pub database_url: String,
    pub nats_url: String,
}

/// The arguments, with `DATABASE_URL` and `NATS_URL` as given (`main` reads them from the
/// environment; tests pass their own, so that no test changes the process environment).
fn parse_args(argv: &[String], database_url: String, nats_url: String) -> Result<Args, BenchError> {
    let mut a = Args {
        only: SECTIONS.iter().map(|s| (*s).to_owned()).collect(),
        out: PathBuf::from("var/bench/result.json"),
        bin_dir: PathBuf::from("target/release"),
        work_dir: PathBuf::from("var/bench"),
        pgbench: PathBuf::from("/usr/bin/pgbench"),
        pgbench_secs: 10,
        js_messages: 200_000,
        flow_secs: 20,
        flow_cases: 1_000,
        floor_flows: 5_000,
        tls_calls: 5_000,
        clients: 20_000,
        national_clients: 1_500_000,
        handover_clients: 100_000,
        keep: false,
        quick: false,
        extra_env: Vec::new(),
        webhook_events: 20_000,
        database_url,
        nats_url,
    };
    let mut it = argv.iter();
    let num = |k: &str, v: Option<&String>| -> Result<u64, BenchError> {
        v.and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| BenchError::Usage(format!("{k} takes a whole number\n{USAGE}")))
    };
    while let Some(k) = it.next() {
        match k.as_str() {
            "--help" | "-h" => return Err(BenchError::Usage(USAGE.into())),
            "--quick" => {
                a.quick = true;
                a.pgbench_secs = 5;
                a.js_messages = 50_000;
                a.flow_secs = 8;
                a.flow_cases = 300;
                a.floor_flows = 2_000;
                a.tls_calls = 1_000;
                a.clients = 2_000;
                a.national_clients = 50_000;
                a.handover_clients = 5_000;
                a.webhook_events = 5_000;
            }
            "--only" => {
                let v = it
                    .next()
                    .ok_or_else(|| BenchError::Usage(format!("--only needs a list\n{USAGE}")))?;
                let only: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
                if let Some(bad) = only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(BenchError::Usage(format!(
                        "--only: unknown section `{bad}` (known: {})",
                        SECTIONS.join(",")
                    )));
                }
                a.only = only;
            }
            "--out" | "--bin-dir" | "--work-dir" | "--pgbench" => {
                let v = it
                    .next()
                    .ok_or_else(|| BenchError::Usage(format!("{k} needs a path\n{USAGE}")))?;
                let p = PathBuf::from(v);
                match k.as_str() {
                    "--out" => a.out = p,
                    "--bin-dir" => a.bin_dir = p,
                    "--work-dir" => a.work_dir = p,
                    _ => a.pgbench = p,
                }
            }
            "--pgbench-secs" => {
                a.pgbench_secs = u32::try_from(num(k, it.next())?)
                    .map_err(|_| BenchError::Usage("--pgbench-secs is too large".into()))?
            }
            "--js-messages" => a.js_messages = num(k, it.next())?,
            "--flow-cases" => {
                a.flow_cases = u32::try_from(num(k, it.next())?)
                    .map_err(|_| BenchError::Usage("--flow-cases is too large".into()))?
            }
            "--floor-flows" => {
                a.floor_flows = u32::try_from(num(k, it.next())?)
                    .map_err(|_| BenchError::Usage("--floor-flows is too large".into()))?
            }
            "--tls-calls" => {
                a.tls_calls = usize::try_from(num(k, it.next())?)
                    .map_err(|_| BenchError::Usage("--tls-calls is too large".into()))?
            }
            "--keep" => a.keep = true,
            "--env" => {
                let v = it.next().ok_or_else(|| {
                    BenchError::Usage(format!("--env needs SERVICE:KEY=VALUE\n{USAGE}"))
                })?;
                match v.split_once(':') {
                    Some((svc, kv)) if !svc.is_empty() && kv.contains('=') => {
                        a.extra_env.push((svc.to_owned(), kv.to_owned()))
                    }
                    _ => {
                        return Err(BenchError::Usage(format!(
                            "--env `{v}`: must be SERVICE:KEY=VALUE"
                        )));
                    }
                }
            }
            "--flow-secs" => a.flow_secs = num(k, it.next())?,
            "--clients" => a.clients = num(k, it.next())?,
            "--national-clients" => a.national_clients = num(k, it.next())?,
            "--handover-clients" => a.handover_clients = num(k, it.next())?,
            "--webhook-events" => a.webhook_events = num(k, it.next())?,
            other => {
                return Err(BenchError::Usage(format!(
                    "unknown argument `{other}`\n{USAGE}"
                )));
            }
        }
    }
    if a.database_url.is_empty() || a.nats_url.is_empty() {
        return Err(BenchError::Usage(format!(
            "DATABASE_URL and NATS_URL must be set\n{USAGE}"
        )));
    }
    if a.pgbench_secs == 0 || a.js_messages == 0 || a.flow_secs == 0 {
        return Err(BenchError::Usage(
            "--pgbench-secs, --js-messages and --flow-secs must be above 0".into(),
        ));
    }
    Ok(a)
}

impl Args {
    fn runs(&self, section: &str) -> bool {
        self.only.iter().any(|s| s == section)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(
        &argv,
        std::env::var("DATABASE_URL").unwrap_or_default(),
        std::env::var("NATS_URL").unwrap_or_default(),
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rz-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut report = Report::new();
    let skipped = "not selected (--only)";

    if args.runs("limits") {
        let phase = Instant::now();
        eprintln!(
            "bench: PostgreSQL insert commits (pgbench, 32 clients, {} s)",
            args.pgbench_secs
        );
        let spec = limits::PgbenchSpec {
            pgbench: &args.pgbench,
            admin_url: &args.database_url,
            clients: 32,
            threads: 2,
            seconds: args.pgbench_secs,
            work_dir: &args.work_dir,
        };
        if let Err(e) = limits::pgbench(&spec, &mut report).await {
            eprintln!("bench: pgbench: {e}");
            report.not_measured("pg_insert_tps", &e.to_string());
        }
        eprintln!(
            "bench: JetStream publishes ({} messages, async acks)",
            args.js_messages
        );
        let spec = limits::PublishSpec {
            nats_url: &args.nats_url,
            messages: args.js_messages,
            payload_bytes: 300,
            window: 512,
        };
        if let Err(e) = limits::jetstream_publish(&spec, &mut report).await {
            eprintln!("bench: jetstream publish: {e}");
            report.not_measured("js_publish_per_s", &e.to_string());
        }
        report.phase("limits (pgbench, JetStream)", phase);
    } else {
        report.not_measured("pg_insert_tps", skipped);
        report.not_measured("js_publish_per_s", skipped);
    }

    if args.runs("tls") {
        let phase = Instant::now();
        let spec = tls::TlsSpec {
            calls: args.tls_calls,
            concurrent_calls: args.tls_calls * 4,
            connections: (args.tls_calls / 50).max(10),
        };
        if let Err(e) = tls::run(&args.work_dir, &spec, &mut report).await {
            eprintln!("bench: tls: {e}");
            for k in TLS_KEYS {
                report.not_measured(k, &e.to_string());
            }
        }
        report.phase("tls", phase);
    } else {
        for k in TLS_KEYS {
            report.not_measured(k, skipped);
        }
    }

    if args.runs("floor") {
        let phase = Instant::now();
        eprintln!(
            "bench: the floor of a care flow ({} flows, 64 decisions in flight)",
            args.floor_flows
        );
        let spec = floor::FloorSpec {
            work_dir: &args.work_dir,
            admin_url: &args.database_url,
            nats_url: &args.nats_url,
            flows: args.floor_flows,
            in_flight: 64,
        };
        if let Err(e) = floor::floor(&spec, &mut report).await {
            eprintln!("bench: floor: {e}");
            report.not_measured("floor_flows_per_s", &e.to_string());
        }
        report.phase("floor", phase);
    } else {
        report.not_measured("floor_flows_per_s", skipped);
    }

    if ["flow", "webhook", "national", "handover"]
        .iter()
        .any(|s| args.runs(s))
    {
        services::run(&args, &mut report).await;
    }
    for (section, keys, prefix) in [
        ("flow", services::FLOW_KEYS, ""),
        ("webhook", services::WEBHOOK_KEYS, ""),
        ("handover", &["handover_per_s", "handover_clients"][..], ""),
        ("national", services::NATIONAL_KEYS, "national_"),
    ] {
        if !args.runs(section) {
            for k in keys {
                report.not_measured(&format!("{prefix}{k}"), skipped);
            }
        }
    }
    report.finish();

    let meta = serde_json::json!({
        "started_at": started_at.to_rfc3339(),
        "seconds": started.elapsed().as_secs_f64(),
        "sections": args.only,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "clients_in_care_requested": args.clients,
        "national_clients_requested": args.runs("national").then_some(args.national_clients),
        "flow_cases": args.flow_cases,
        "floor_flows": args.runs("floor").then_some(args.floor_flows),
        "tls_calls": args.runs("tls").then_some(args.tls_calls),
        "extra_env": args.extra_env.iter().map(|(s, kv)| format!("{s}:{kv}")).collect::<Vec<_>>(),
    });
    let json = report.to_json(meta);
    println!("{}", report.table());
    let written = args
        .out
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            serde_json::to_vec_pretty(&json)
                .map_err(std::io::Error::other)
                .and_then(|b| std::fs::write(&args.out, b))
        });
    match written {
        Ok(()) => {
            println!("written to {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rz-bench: cannot write {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn parse_args(argv: &[String]) -> Result<Args, BenchError> {
        super::parse_args(
            argv,
            "postgres://x@h:1/postgres".into(),
            "nats://h:2".into(),
        )
    }

    #[test]
    fn flags() {
        let a = parse_args(&argv("--only limits,flow --flow-secs 5")).unwrap();
        assert!(a.runs("limits") && a.runs("flow") && !a.runs("webhook"));
        assert_eq!(a.flow_secs, 5);
        assert!(!a.runs("floor"));
        let a = parse_args(&argv("--only floor --floor-flows 300")).unwrap();
        assert!(a.runs("floor") && !a.runs("flow"));
        assert_eq!(a.floor_flows, 300);
        assert!(parse_args(&argv("--floor-flows x")).is_err());
        assert!(parse_args(&argv("--only nothing")).is_err());
        assert!(parse_args(&argv("--clients many")).is_err());
        assert!(parse_args(&argv("--flow-secs 0")).is_err());
        assert_eq!(parse_args(&argv("--quick")).unwrap().clients, 2_000);
        let a = parse_args(&argv("--only tls --tls-calls 200")).unwrap();
        assert!(a.runs("tls") && !a.runs("floor"));
        assert_eq!(a.tls_calls, 200);
    }
}
