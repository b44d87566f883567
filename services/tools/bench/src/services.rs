//! The sections that need the services running: the cluster (release binaries, one access per
//! municipality) is started once, on databases and a NATS namespace of this run, seeded with the
//! Achterhoek register, preloaded with the region's clients in care; then the care flow, webhook
//! delivery and the handover are measured, peak memory per service is read, and everything this run
//! created (processes, databases, streams) is removed.

use std::time::{Duration, Instant};

use rz_chaos::cluster::{Cluster, ClusterSpec, peak_rss_mb};
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use serde_json::json;
use sqlx::Connection;

use rz_workload::dial::{OPERATOR, municipality};

use crate::flow::{self, Endpoints};
use crate::preload::{self, PreloadSpec};
use crate::report::Report;
use crate::stats::rate;
use crate::{Args, BenchError, statements, webhook};

pub(crate) const FLOW_KEYS: &[&str] = &[
    "flows_per_s",
    "decision_to_provider_p50_ms",
    "decision_to_provider_p95_ms",
    "decision_to_provider_p99_ms",
    "decision_to_report_p50_ms",
    "decision_to_report_p95_ms",
    "decision_to_report_p99_ms",
];
pub(crate) const WEBHOOK_KEYS: &[&str] = &["webhook_per_s", "webhook_p50_ms", "webhook_p99_ms"];
/// Keys of the national section, without their `national_` prefix.
pub(crate) const NATIONAL_KEYS: &[&str] = &[
    "clients_in_care",
    "flows_per_s",
    "decision_to_provider_p99_ms",
    "decision_to_report_p99_ms",
];

pub async fn run(args: &Args, report: &mut Report) {
    let ns = format!("rzb{}", std::process::id());
    let mut spec = ClusterSpec::new(
        &args.bin_dir,
        args.work_dir.join("run"),
        &args.database_url,
        &args.nats_url,
    );
    spec.db_prefix = ns.clone();
    spec.nats_namespace = ns.clone();
    spec.extra_env = args.extra_env.clone();
    // Assignment's date comes from a file the handover section sets to the handover's date (a
    // handover never starts care in the past); while the file is absent it is the system date.
    let today_file = today_file(args);
    let _ = std::fs::remove_file(&today_file);
    spec.extra_env.push((
        "assignment".into(),
        format!("RZ__ASSIGNMENT__TODAY_FILE={}", today_file.display()),
    ));
    eprintln!(
        "bench: starting the services from {}",
        args.bin_dir.display()
    );
    let started = Instant::now();
    let cluster = match Cluster::start(spec).await {
        Ok(c) => c,
        Err(e) => {
            let why = format!("the services did not start: {e}");
            eprintln!("bench: {why}");
            fail_all(args, report, &why);
            cleanup(args, &ns).await;
            return;
        }
    };
    report.detail(
        "cluster_start_seconds",
        json!(started.elapsed().as_secs_f64()),
    );
    if let Err(e) = sections(args, &cluster, &ns, report).await {
        eprintln!("bench: {e}");
        fail_all(args, report, &e.to_string());
    }
    for service in cluster.services() {
        if let Some(mb) = cluster.pid(&service).and_then(peak_rss_mb) {
            report.peak_rss(&service, mb);
        }
    }
    cluster.stop().await;
    if !args.keep {
        cleanup(args, &ns).await;
    }
}

fn fail_all(args: &Args, report: &mut Report, why: &str) {
    if args.runs("flow") {
        for k in FLOW_KEYS {
            report.not_measured(k, why);
        }
    }
    if args.runs("webhook") {
        for k in WEBHOOK_KEYS {
            report.not_measured(k, why);
        }
    }
    if args.runs("handover") {
        report.not_measured("handover_per_s", why);
    }
    if args.runs("national") {
        for k in NATIONAL_KEYS {
            report.not_measured(&format!("national_{k}"), why);
        }
    }
}

async fn sections(
    args: &Args,
    cluster: &Cluster,
    ns: &str,
    report: &mut Report,
) -> Result<(), BenchError> {
    cluster
        .seed()
        .await
        .map_err(|e| BenchError::Failed(format!("seed: {e}")))?;
    let url = |s: &str| {
        cluster
            .endpoint(s)
            .ok_or_else(|| BenchError::Failed(format!("no endpoint for {s}")))
    };
    // Every call with mutual TLS as the party that makes it (the cluster's own PKI; the services
    // run with authorisation and their rate limits on, set far above this load).
    let dial = cluster.dial();
    let mut access = std::collections::HashMap::new();
    for m in &cluster.spec().municipalities {
        access.insert(
            m.clone(),
            flow::channel(&dial, &municipality(m), &url(&format!("access@{m}"))?).await?,
        );
    }
    let e = Endpoints {
        registration: flow::channel(&dial, OPERATOR, &url("registration")?).await?,
        assignment: flow::channel(&dial, OPERATOR, &url("assignment")?).await?,
        reporting: flow::channel(&dial, OPERATOR, &url("reporting")?).await?,
        access,
        assignment_url: url("assignment")?,
        dial: dial.clone(),
    };
    let (nats, js) = {
        let c = async_nats::connect(&args.nats_url)
            .await
            .map_err(|e| BenchError::Nats(e.to_string()))?;
        (c.clone(), async_nats::jetstream::new(c))
    };
    let subs = flow::catalogue(&e).await?;

    let mut loaded = 0;
    let mut next_client = 0;
    if args.runs("flow") || args.runs("handover") || args.runs("national") {
        eprintln!(
            "bench: preloading {} clients in care (existing care of ended contracts)",
            args.clients
        );
        let phase = Instant::now();
        let l = preload::bulk(
            &e,
            &subs,
            &PreloadSpec {
                first: 0,
                ended: args.clients,
                ongoing: 0,
            },
            "region preload",
        )
        .await?;
        report.detail("preload", l.json());
        report.phase("region preload (ImportAssignments)", phase);
        loaded = l.imported + l.replayed;
        next_client = l.next;
        let phase = Instant::now();
        let caught_up = flow::reporting_caught_up(&e, Duration::from_secs(300)).await?;
        report.detail("preload_reporting_caught_up", json!(caught_up));
        report.phase("region preload: reporting catches up", phase);
    }
    report.detail("clients_in_care_preloaded", json!(loaded));
    let reporting_db = cluster
        .database_url("reporting")
        .ok_or_else(|| BenchError::Failed("no reporting database".into()))?;
    let assignment_db = cluster
        .database_url("assignment")
        .ok_or_else(|| BenchError::Failed("no assignment database".into()))?;
    if loaded > 0 {
        let phase = Instant::now();
        let drained = outbox_drained(&assignment_db, Duration::from_secs(600)).await?;
        report.detail("preload_outbox_drained", json!(drained));
        report.phase("region preload: assignment's outbox drains", phase);
    }

    if args.runs("flow") {
        let phase = Instant::now();
        let spec = flow_spec(args, ns, &reporting_db, 0);
        let profiled = profile_start(args).await;
        if let Err(err) = flow::run(&e, &js, &subs, &spec, report).await {
            eprintln!("bench: flow: {err}");
            for k in FLOW_KEYS {
                report.not_measured(k, &err.to_string());
            }
        }
        profile_end(args, ns, profiled, "flow_statements", report).await;
        report.phase("flow", phase);
    }

    if args.runs("webhook") {
        let phase = Instant::now();
        let spec = webhook::WebhookSpec {
            nats_namespace: ns.to_owned(),
            events: args.webhook_events,
            providers: 20,
            latency_secs: 10,
        };
        let notification = url("notification")?;
        let profiled = profile_start(args).await;
        if let Err(err) = webhook::run(&dial, &notification, &js, &spec, report).await {
            eprintln!("bench: webhook: {err}");
            for k in WEBHOOK_KEYS {
                report.not_measured(k, &err.to_string());
            }
        }
        profile_end(args, ns, profiled, "webhook_statements", report).await;
        report.phase("webhook", phase);
    }

    if args.runs("national") {
        let extra_ended = args.handover_clients.saturating_sub(loaded);
        let extra_ongoing = args.national_clients.saturating_sub(loaded + extra_ended);
        report.set_prefix("national_");
        let profiled = profile_start(args).await;
        match national(
            args,
            &e,
            &js,
            &subs,
            ns,
            (&reporting_db, &assignment_db),
            &mut loaded,
            PreloadSpec {
                first: next_client,
                ended: extra_ended,
                ongoing: extra_ongoing,
            },
            report,
        )
        .await
        {
            Ok(()) => {}
            Err(err) => {
                eprintln!("bench: national: {err}");
                for k in NATIONAL_KEYS {
                    report.not_measured(k, &err.to_string());
                }
            }
        }
        profile_end(args, ns, profiled, "flow_statements", report).await;
        report.set_prefix("");
    }

    if args.runs("handover") {
        let phase = Instant::now();
        if let Err(err) = handover(&e, loaded, &today_file(args), report).await {
            eprintln!("bench: handover: {err}");
            report.not_measured("handover_per_s", &err.to_string());
        }
        report.phase("handover", phase);
    }
    let _ = nats.flush().await;
    Ok(())
}

/// The care flow as `--flow-cases` and `--flow-secs` ask; `client_offset` keeps the residents of
/// a second run apart from the first's.
fn flow_spec(args: &Args, ns: &str, reporting_db: &str, client_offset: u32) -> flow::FlowSpec {
    flow::FlowSpec {
        nats_namespace: ns.to_owned(),
        reporting_db: reporting_db.to_owned(),
        saturation_flows: args.flow_cases,
        moderate_secs: args.flow_secs,
        moderate_min: if args.quick { 50 } else { 100 },
        client_offset,
    }
}

/// The file assignment reads its date from.
fn today_file(args: &Args) -> std::path::PathBuf {
    let dir = std::path::absolute(&args.work_dir).unwrap_or_else(|_| args.work_dir.clone());
    dir.join("assignment-today")
}

/// Waits until assignment's outbox is drained (every event of a preload published), at most
/// `timeout`; whether it drained. Reporting being caught up says nothing of events not yet
/// published: a preload faster than the relay leaves a backlog the next flow would queue behind.
async fn outbox_drained(assignment_db: &str, timeout: Duration) -> Result<bool, BenchError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(assignment_db)
        .await
        .map_err(|e| BenchError::Failed(format!("assignment database: {e}")))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| BenchError::Failed(format!("assignment outbox: {e}")))?;
        if pending == 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(false)
}

/// Resets the statement counters before a section; the reason when there is no profile.
async fn profile_start(args: &Args) -> Result<(), String> {
    statements::reset(&args.database_url)
        .await
        .map_err(|e| format!("pg_stat_statements not available: {e}"))
}

/// Records the heaviest statements of the section under `key` (or why there is no profile).
async fn profile_end(
    args: &Args,
    ns: &str,
    started: Result<(), String>,
    key: &str,
    report: &mut Report,
) {
    let value = match started {
        Ok(()) => match statements::top(&args.database_url, &format!("{ns}_"), 15).await {
            Ok(v) => v,
            Err(e) => json!({ "not_available": e.to_string() }),
        },
        Err(why) => json!({ "not_available": why }),
    };
    report.detail(key, value);
}

/// Tops the region's clients in care up to the national volume, waits until reporting has taken
/// them in, and measures the care flow again (figures under `national_`). `loaded` (the clients of
/// ended contracts, for the handover) grows by the top-up's.
#[allow(clippy::too_many_arguments)]
async fn national(
    args: &Args,
    e: &Endpoints,
    js: &async_nats::jetstream::Context,
    subs: &[flow::Sub],
    ns: &str,
    (reporting_db, assignment_db): (&str, &str),
    loaded: &mut u64,
    top_up: PreloadSpec,
    report: &mut Report,
) -> Result<(), BenchError> {
    let region_loaded = *loaded;
    eprintln!(
        "bench: national scale: loading {} more clients in care ({} of ended contracts)",
        top_up.ended + top_up.ongoing,
        top_up.ended
    );
    let phase = Instant::now();
    let l = preload::bulk(e, subs, &top_up, "national preload").await?;
    report.detail("preload", l.json());
    report.phase("national preload (ImportAssignments)", phase);
    *loaded += top_up.ended;
    let phase = Instant::now();
    let drained = outbox_drained(assignment_db, Duration::from_secs(3_600)).await?;
    report.detail("preload_outbox_drained", json!(drained));
    report.phase("national preload: assignment's outbox drains", phase);
    let started = Instant::now();
    let caught_up = flow::reporting_caught_up(e, Duration::from_secs(3_600)).await?;
    report.phase("national preload: reporting catches up", started);
    report.detail(
        "preload_reporting",
        json!({"caught_up": caught_up, "seconds_after_the_last_import": started.elapsed().as_secs_f64()}),
    );
    if !caught_up {
        return Err(BenchError::Failed(
            "reporting did not take in the national preload within an hour".into(),
        ));
    }
    report.measured(
        "clients_in_care",
        (region_loaded + l.imported + l.replayed) as f64,
    );
    let spec = flow_spec(args, ns, reporting_db, 100_000);
    let phase = Instant::now();
    let flow = flow::run(e, js, subs, &spec, report).await;
    report.phase("national flow", phase);
    flow
}

/// RunHandover over every municipality for the preloaded clients; `handover_per_s` is the clients
/// newly arranged per second of the call.
async fn handover(
    e: &Endpoints,
    loaded: u64,
    today: &std::path::Path,
    report: &mut Report,
) -> Result<(), BenchError> {
    eprintln!("bench: handover of the {loaded} preloaded clients of ended contracts");
    let mut a = AssignmentServiceClient::new(e.assignment.clone());
    // The run happens on its day, 2022-07-01, as in the region's story.
    std::fs::write(today, "2022-07-01\n")?;
    let started = Instant::now();
    let r = a
        .run_handover(asg::RunHandoverRequest {
            as_of: "2022-07-01".into(),
            municipality: String::new(),
        })
        .await;
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(today);
    let r = r
        .map_err(|s| BenchError::Failed(format!("RunHandover: {:?} {}", s.code(), s.message())))?
        .into_inner();
    match rate(u64::from(r.newly_arranged), elapsed) {
        Some(v) if r.newly_arranged > 0 => {
            report.measured("handover_per_s", v);
            report.measured("handover_clients", f64::from(r.newly_arranged));
        }
        _ => report.not_measured("handover_per_s", "the handover arranged no client"),
    }
    report.detail(
        "handover",
        json!({
            "examined": r.examined,
            "newly_arranged": r.newly_arranged,
            "already_arranged": r.already_arranged,
            "not_arranged": r.not_arranged,
            "seconds": elapsed.as_secs_f64(),
        }),
    );
    Ok(())
}

/// Drops this run's databases and deletes its streams.
async fn cleanup(args: &Args, ns: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(&args.database_url).await {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
                .bind(format!("{ns}_"))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
        for db in names {
            // The names come from pg_database and start with this run's prefix ([a-z0-9_]).
            if db
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
            }
        }
    }
    if let Ok(client) = async_nats::connect(&args.nats_url).await {
        let js = async_nats::jetstream::new(client);
        let prefix = format!("{}_", ns.to_ascii_uppercase());
        let mut names = js.stream_names();
        let mut mine = Vec::new();
        while let Some(Ok(name)) = futures::StreamExt::next(&mut names).await {
            if name.starts_with(&prefix) {
                mine.push(name);
            }
        }
        for name in mine {
            let _ = js.delete_stream(&name).await;
        }
    }
}
