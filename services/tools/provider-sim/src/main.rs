//! `provider-sim --endpoint URL --pki DIR [--agb CODE]... [--late-start-every N]`: simulate
//! provider systems answering their assignments with a start of care (every N-th one 10 days
//! late), each calling with its own certificate `DIR/provider-<AGB>/` (`rzctl pki init`).
//! `NATS_URL` and `RZ_NAMESPACE` (default `rz`) say where events are.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rz_platform::Shutdown;
use rz_provider_sim::{SimConfig, Stats};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut endpoint = "http://127.0.0.1:50051".to_owned();
    let mut agb_codes = Vec::new();
    let mut late_start_every = 0;
    let mut pki = std::path::PathBuf::from("var/demo/pki");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--endpoint", Some(v)) => endpoint = v.clone(),
            ("--agb", Some(v)) => agb_codes.push(v.clone()),
            ("--pki", Some(v)) => pki = v.into(),
            ("--late-start-every", Some(v)) if v.parse::<u32>().is_ok() => {
                late_start_every = v.parse().unwrap_or(0)
            }
            _ => {
                eprintln!(
                    "usage: provider-sim --endpoint URL [--pki DIR] [--agb CODE]... [--late-start-every N]"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let config = SimConfig {
        nats_url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        namespace: std::env::var("RZ_NAMESPACE").unwrap_or_else(|_| "rz".into()),
        assignment_endpoint: endpoint,
        pki,
        name: match agb_codes.as_slice() {
            [one] => format!("provider-sim-{one}"),
            _ => "provider-sim".into(),
        },
        agb_codes,
        late_start_every,
    };
    let stats = Arc::new(Stats::default());
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let reporter = {
        let stats = stats.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                println!(
                    "provider-sim: {} assignments received, {} starts of care reported, {} refused",
                    stats.received.load(Ordering::Relaxed),
                    stats.started.load(Ordering::Relaxed),
                    stats.refused.load(Ordering::Relaxed)
                );
            }
        })
    };
    let result = rz_provider_sim::run(config, stats, shutdown).await;
    reporter.abort();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("provider-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
