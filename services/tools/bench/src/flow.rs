//! The care flow end to end on the running services: existing care preloaded (the region's clients
//! in care, later handed over), then granted decisions committed in access -> assignment issued ->
//! the provider receiver gets the event -> start of care -> the reporting read model shows the
//! client in care. Saturation first (flows/s), then latency percentiles at a tenth of that rate.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::reporting::v1 as rep;
use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use rz_proto::types::v1 as types;
pub use rz_workload::Sub;
use rz_workload::{Dial, Driver, catalogue, flow};
use serde_json::json;
use tonic::transport::Channel;

use crate::BenchError;
use crate::receiver::{ProviderReceiver, ReportWatcher};
use crate::report::Report;
use crate::stats::{percentile_ms, rate};

/// The channels to the running services, each with mutual TLS as the party that makes the calls:
/// the operator for the register, imports, the handover and reporting, a municipality at its own
/// access instance; providers (the receiver's starts of care) through `dial`.
#[derive(Clone)]
pub struct Endpoints {
    pub registration: Channel,
    pub assignment: Channel,
    pub reporting: Channel,
    pub access: HashMap<String, Channel>,
    /// Assignment's URL, for the providers' own channels.
    pub assignment_url: String,
    pub dial: Dial,
}

/// A connected channel to `url` as `folder` of the PKI (an hour per call at most: the handover
/// of the national volume is one call).
pub async fn channel(dial: &Dial, folder: &str, url: &str) -> Result<Channel, BenchError> {
    dial.connect(folder, url, Duration::from_secs(3_600))
        .await
        .map_err(BenchError::Failed)
}

fn status(what: &'static str) -> impl Fn(tonic::Status) -> BenchError {
    move |s| BenchError::Failed(format!("{what}: {:?} {}", s.code(), s.message()))
}

/// The benchmarks' requests (idempotency keys `bench-<step>-<n>`).
pub const BENCH: Driver = Driver::new("bench");

/// The catalogue's subsegments of the joint contracts.
pub async fn catalogue(e: &Endpoints) -> Result<Vec<Sub>, BenchError> {
    catalogue::fetch(&mut RegistrationServiceClient::new(e.registration.clone()))
        .await
        .map_err(status("GetCatalogue"))
}

/// Waits until the reporting read model says it has caught up with the streams.
pub async fn reporting_caught_up(e: &Endpoints, timeout: Duration) -> Result<bool, BenchError> {
    let mut r = ReportingServiceClient::new(e.reporting.clone());
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if r.get_status(rep::GetStatusRequest {})
            .await
            .map_err(status("GetStatus"))?
            .into_inner()
            .caught_up
        {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(false)
}

/// A case opened and ready for its decision.
#[derive(Clone, Debug)]
struct Ready {
    municipality: String,
    case_id: String,
    sub: Sub,
    day: u32,
}

/// Registers residents and opens Jeugdwet applications for them (not timed).
async fn prepare(
    e: &Endpoints,
    combos: &[(String, Sub)],
    first: u32,
    count: u32,
) -> Result<Vec<Ready>, BenchError> {
    let results: Vec<Result<Ready, BenchError>> = stream::iter(first..first + count)
        .map(|n| {
            let (m, sub) = combos[(n as usize) % combos.len()].clone();
            let ch = e.access.get(&m).cloned();
            async move {
                let ch = ch.ok_or_else(|| BenchError::Failed(format!("no access for {m}")))?;
                let mut ac = AccessServiceClient::new(ch);
                let day = 1 + n % 28;
                let case = BENCH
                    .open(&mut ac, n, &m, &sub, format!("2022-07-{day:02}"))
                    .await
                    .map_err(BenchError::Failed)?;
                Ok(Ready {
                    municipality: m,
                    case_id: case.id,
                    sub,
                    day,
                })
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut ready = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results {
        match r {
            Ok(x) => ready.push(x),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (ready.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(ready),
    }
}

/// Decides one case (granting one product); returns the granted product id and the instant the
/// decision was committed (its reply arrived).
async fn decide(e: &Endpoints, r: &Ready) -> Result<(String, Instant), BenchError> {
    let ch = e
        .access
        .get(&r.municipality)
        .cloned()
        .ok_or_else(|| BenchError::Failed(format!("no access for {}", r.municipality)))?;
    let case = AccessServiceClient::new(ch)
        .decide(flow::decision(
            r.case_id.clone(),
            format!("2022-08-{:02}", r.day),
            vec![catalogue::product(&r.sub, "2022-09-01", "2023-08-31")],
        ))
        .await
        .map_err(status("Decide"))?
        .into_inner();
    let at = Instant::now();
    let id = case
        .products
        .first()
        .map(|p| p.id.clone())
        .ok_or_else(|| BenchError::Failed("Decide granted no product".into()))?;
    Ok((id, at))
}

pub struct FlowSpec {
    pub nats_namespace: String,
    pub reporting_db: String,
    /// Decisions for the saturation phase.
    pub saturation_flows: u32,
    /// Seconds of the moderate-rate phase.
    pub moderate_secs: u64,
    /// Decisions of the moderate phase at least (for the percentiles), however low the rate.
    pub moderate_min: u32,
    /// Added to the client numbers of the residents this run registers, so that a second run on the
    /// same services (the national scale after the region) gets residents of its own.
    pub client_offset: u32,
}

/// Runs the warm-up, the saturation and the moderate phase; records the figures.
pub async fn run(
    e: &Endpoints,
    js: &async_nats::jetstream::Context,
    subs: &[Sub],
    spec: &FlowSpec,
    report: &mut Report,
) -> Result<(), BenchError> {
    let receiver = ProviderReceiver::start(js, &spec.nats_namespace, e, 128).await?;
    let watcher = match ReportWatcher::start(&spec.reporting_db, receiver.seen.clone()).await {
        Ok(w) => w,
        Err(err) => {
            receiver.stop().await;
            return Err(err);
        }
    };
    let result = phases(e, subs, spec, &receiver, &watcher, report).await;
    let stopped = watcher.stop().await;
    receiver.stop().await;
    result.and(stopped)
}

async fn phases(
    e: &Endpoints,
    subs: &[Sub],
    spec: &FlowSpec,
    receiver: &ProviderReceiver,
    watcher: &ReportWatcher,
    report: &mut Report,
) -> Result<(), BenchError> {
    let seen = receiver.seen.clone();
    // Warm-up: every (municipality, Jeugdwet subsegment) once; keep those a provider got.
    let mut combos: Vec<(String, Sub)> = Vec::new();
    let mut munis: Vec<&String> = e.access.keys().collect();
    munis.sort();
    for s in subs.iter().filter(|s| s.law == types::Law::Jeugdwet as i32) {
        for m in &munis {
            if s.municipalities.contains(m) {
                combos.push(((*m).clone(), s.clone()));
            }
        }
    }
    if combos.is_empty() {
        return Err(BenchError::Failed(
            "no Jeugdwet subsegment in the catalogue".into(),
        ));
    }
    eprintln!(
        "bench: flow warm-up over {} municipality/subsegment pairs",
        combos.len()
    );
    let warm = prepare(e, &combos, spec.client_offset + 10_000, combos.len() as u32).await?;
    let mut warm_ids: HashMap<String, (String, String)> = HashMap::new();
    for r in &warm {
        if let Ok((id, _)) = decide(e, r).await {
            warm_ids.insert(id, (r.municipality.clone(), r.sub.code.clone()));
        }
    }
    let ids: HashSet<String> = warm_ids.keys().cloned().collect();
    watcher
        .wait(
            &ids,
            Duration::from_secs(10),
            Instant::now() + Duration::from_secs(30),
        )
        .await;
    let assigned: HashSet<(String, String)> = {
        let r = seen.received.lock().await;
        warm_ids
            .iter()
            .filter(|(id, _)| r.contains_key(*id))
            .map(|(_, k)| k.clone())
            .collect()
    };
    combos.retain(|(m, s)| assigned.contains(&(m.clone(), s.code.clone())));
    report.detail(
        "flow_warmup",
        json!({"pairs_decided": warm_ids.len(), "pairs_with_a_provider": combos.len()}),
    );
    if combos.is_empty() {
        return Err(BenchError::Failed(
            "no warm-up decision reached a provider (no assignment issued)".into(),
        ));
    }

    // Saturation: every prepared decision as fast as the services take them.
    eprintln!(
        "bench: preparing {} cases for the saturation phase",
        spec.saturation_flows
    );
    let sat = prepare(
        e,
        &combos,
        spec.client_offset + 20_000,
        spec.saturation_flows,
    )
    .await?;
    eprintln!(
        "bench: saturation: deciding {} cases, 64 in flight",
        sat.len()
    );
    let started = Instant::now();
    let decided: Vec<Result<(String, Instant), BenchError>> = stream::iter(sat.iter())
        .map(|r| decide(e, r))
        .buffer_unordered(64)
        .collect()
        .await;
    let decide_secs = started.elapsed();
    let commits: HashMap<String, Instant> = decided.into_iter().filter_map(Result::ok).collect();
    let ids: HashSet<String> = commits.keys().cloned().collect();
    let visible = watcher
        .wait(
            &ids,
            Duration::from_secs(15),
            Instant::now() + Duration::from_secs(180),
        )
        .await;
    let first = commits.values().min().copied().unwrap_or(started);
    let last = visible.values().max().copied().unwrap_or(first);
    let flows = visible.len() as u64;
    let window = last.saturating_duration_since(first);
    let received = count_received(&seen, &ids).await;
    let flows_per_s = rate(flows, window);
    match flows_per_s {
        Some(f) if flows > 0 => report.measured("flows_per_s", f),
        _ => report.not_measured("flows_per_s", "no flow of the saturation phase completed"),
    }
    report.detail(
        "flow_saturation",
        json!({
            "decisions": commits.len(),
            "decisions_per_s": rate(commits.len() as u64, decide_secs),
            "provider_received": received,
            "visible_in_report": flows,
            "seconds_first_decision_to_last_visible": window.as_secs_f64(),
            "decisions_in_flight": 64,
        }),
    );
    let Some(sat_rate) = flows_per_s.filter(|_| flows > 0) else {
        return Err(BenchError::Failed(
            "saturation gave no rate, so no moderate phase".into(),
        ));
    };

    // Moderate rate: a tenth of saturation, decisions paced open-loop.
    let moderate = (sat_rate / 10.0).max(1.0);
    let n = ((moderate * spec.moderate_secs as f64) as u32)
        .clamp(spec.moderate_min.max(1), 20_000.max(spec.moderate_min));
    eprintln!("bench: preparing {n} cases for the moderate phase ({moderate:.1}/s)");
    let modr = prepare(
        e,
        &combos,
        spec.client_offset + 20_000 + spec.saturation_flows,
        n,
    )
    .await?;
    eprintln!(
        "bench: moderate phase: {} decisions at {moderate:.1}/s",
        modr.len()
    );
    let gap = Duration::from_secs_f64(1.0 / moderate);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(modr.len());
    for (i, r) in modr.into_iter().enumerate() {
        tokio::time::sleep_until((t0 + gap * i as u32).into()).await;
        let e = e.clone();
        tasks.push(tokio::spawn(async move { decide(&e, &r).await }));
    }
    let mut commits: HashMap<String, Instant> = HashMap::new();
    for t in tasks {
        if let Ok(Ok((id, at))) = t.await {
            commits.insert(id, at);
        }
    }
    let ids: HashSet<String> = commits.keys().cloned().collect();
    let visible = watcher
        .wait(
            &ids,
            Duration::from_secs(15),
            Instant::now() + Duration::from_secs(120),
        )
        .await;
    let mut to_provider = Vec::new();
    {
        let r = seen.received.lock().await;
        for (id, at) in &commits {
            if let Some((got, _, _)) = r.get(id) {
                to_provider.push(got.saturating_duration_since(*at));
            }
        }
    }
    let mut to_report: Vec<Duration> = commits
        .iter()
        .filter_map(|(id, at)| visible.get(id).map(|v| v.saturating_duration_since(*at)))
        .collect();
    let none = "no flow of the moderate phase reached this point";
    report.maybe(
        "decision_to_provider_p50_ms",
        percentile_ms(&mut to_provider, 50.0),
        none,
    );
    report.maybe(
        "decision_to_provider_p95_ms",
        percentile_ms(&mut to_provider, 95.0),
        none,
    );
    report.maybe(
        "decision_to_provider_p99_ms",
        percentile_ms(&mut to_provider, 99.0),
        none,
    );
    report.maybe(
        "decision_to_report_p50_ms",
        percentile_ms(&mut to_report, 50.0),
        none,
    );
    report.maybe(
        "decision_to_report_p95_ms",
        percentile_ms(&mut to_report, 95.0),
        none,
    );
    report.maybe(
        "decision_to_report_p99_ms",
        percentile_ms(&mut to_report, 99.0),
        none,
    );
    report.detail(
        "flow_moderate",
        json!({
            "rate_per_s": moderate,
            "decisions": commits.len(),
            "provider_received": to_provider.len(),
            "visible_in_report": to_report.len(),
            "decision_to_provider_max_ms": to_provider.iter().max().map(|d| d.as_secs_f64() * 1000.0),
            "decision_to_report_max_ms": to_report.iter().max().map(|d| d.as_secs_f64() * 1000.0),
            "report_poll_interval_ms": 5,
            "commit_instant": "when the Decide reply arrived (the commit precedes it)",
        }),
    );
    // The report API must show them: clients in care in September 2022 over all municipalities.
    let rows = ReportingServiceClient::new(e.reporting.clone())
        .monthly_figures(rep::MonthlyFiguresRequest {
            from_month: "2022-09".into(),
            to_month: "2022-09".into(),
            ..Default::default()
        })
        .await
        .map_err(status("MonthlyFigures"))?
        .into_inner()
        .rows;
    let in_care: u64 = rows.iter().map(|r| u64::from(r.clients_in_care)).sum();
    let new: u64 = rows.iter().map(|r| u64::from(r.new_clients)).sum();
    report.detail(
        "report_api_2022_09",
        json!({"clients_in_care": in_care, "new_clients": new}),
    );
    Ok(())
}

async fn count_received(seen: &crate::receiver::Seen, ids: &HashSet<String>) -> usize {
    let r = seen.received.lock().await;
    ids.iter().filter(|id| r.contains_key(*id)).count()
}
