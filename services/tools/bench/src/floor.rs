//! The floor of a care flow: the least work the project's shape asks of one flow, with none of the
//! product's rules, measured on the same servers and in the same run as `pg_insert_tps`.
//!
//! A floor flow has the steps the real flow cannot do without, each as cheap as it can be:
//! 1. a unary gRPC call (the decision; the standard health `Check` of a server in this process),
//!    then its state change and outbox row in one statement (one commit);
//! 2. a relay claims pending outbox rows in batches, publishes them to JetStream with the event id
//!    as `Nats-Msg-Id`, waits for the acks and marks them published (as `rz_eventing`'s relay);
//! 3. a consumer takes the decisions in batches of up to 64 and applies each batch, inbox rows
//!    included, with one statement (the assignment and its event), then acks;
//! 4. the provider side receives each assignment, makes a unary gRPC call (the start of care) and
//!    writes the start and its outbox row with one statement, then acks;
//! 5. a consumer applies the starts in batches with their inbox rows (the read model), then acks.
//!
//! So a floor flow is 2 gRPC calls, 2 single-statement commits, 2 shares of a batched commit, 3
//! events published and consumed, and the relay's share. The real flow does more per step (access
//! checks the case and the resident, assignment chooses a provider by caseload and writes the iJw
//! message, notification writes letters and webhooks, reporting keeps cases and products), but no
//! flow in this shape can do less. `floor_flows_per_s / pg_insert_tps` is therefore the highest
//! `flow_to_pg_ratio` the shape allows on this machine.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt, stream};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};
use tokio::sync::{Mutex, Notify, Semaphore};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::BenchError;
use crate::limits::{bench_stream, with_database};
use crate::report::Report;
use crate::stats::rate;

pub struct FloorSpec<'a> {
    /// The bench's test PKI goes to `<work_dir>/pki`.
    pub work_dir: &'a std::path::Path,
    pub admin_url: &'a str,
    pub nats_url: &'a str,
    pub flows: u32,
    /// Decisions in flight at once (as the flow section: 64).
    pub in_flight: usize,
}

const SCHEMA: &str = "
CREATE TABLE decisions (id UUID PRIMARY KEY, payload BYTEA NOT NULL);
CREATE TABLE assignments (id UUID PRIMARY KEY, started BOOLEAN NOT NULL DEFAULT false);
CREATE TABLE report (id UUID PRIMARY KEY);
CREATE TABLE outbox (id UUID PRIMARY KEY, subject TEXT NOT NULL, payload BYTEA NOT NULL,
                     published_at TIMESTAMPTZ);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE TABLE inbox (consumer TEXT NOT NULL, event_id UUID NOT NULL,
                    PRIMARY KEY (consumer, event_id));
";

/// Rows a relay claim takes at most (as `rz_eventing`'s relay).
const RELAY_BATCH: usize = 512;

/// Filler so that an event is about as large as the real ones (a few hundred bytes).
const PADDING: usize = 300;

fn nats(e: impl std::fmt::Display) -> BenchError {
    BenchError::Nats(e.to_string())
}

fn failed(what: &str) -> impl Fn(tonic::Status) -> BenchError + '_ {
    move |s| BenchError::Failed(format!("{what}: {:?} {}", s.code(), s.message()))
}

/// The flow id an event is about: its payload's first 16 bytes.
fn flow_of(payload: &[u8]) -> Option<Uuid> {
    payload.get(..16).and_then(|b| Uuid::from_slice(b).ok())
}

/// Runs the floor flows and records `floor_flows_per_s`.
pub async fn floor(spec: &FloorSpec<'_>, report: &mut Report) -> Result<(), BenchError> {
    // Names of this run's own (a test may run beside a bench on the same servers).
    let unique = Uuid::now_v7().simple().to_string();
    let unique = unique.get(20..).unwrap_or(&unique);
    let tag = format!("rzfloor{unique}");
    let db = format!("rz_bench_floor_{unique}");
    let mut admin = sqlx::PgConnection::connect(spec.admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await?;
    let client = async_nats::connect(spec.nats_url).await.map_err(nats)?;
    let js = jetstream::new(client.clone());
    let stream_name = tag.to_ascii_uppercase();
    let result = async {
        let pool = PgPoolOptions::new()
            .max_connections(24)
            .connect(&with_database(spec.admin_url, &db))
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        let stream = bench_stream(&js, &tag).await?;
        run(spec, &tag, &pool, &js, &stream).await
    }
    .await;
    let _ = js.delete_stream(&stream_name).await;
    let _ = client.flush().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let (visible, window, decide_secs) = result?;
    let flows_per_s = rate(visible, window)
        .filter(|_| visible > 0)
        .ok_or_else(|| BenchError::Failed("no floor flow completed".into()))?;
    if visible < u64::from(spec.flows) {
        return Err(BenchError::Failed(format!(
            "only {visible} of {} floor flows completed",
            spec.flows
        )));
    }
    report.measured("floor_flows_per_s", flows_per_s);
    report.detail(
        "floor",
        serde_json::json!({
            "flows": visible,
            "decisions_in_flight": spec.in_flight,
            "seconds_first_decision_to_last_visible": window.as_secs_f64(),
            "decisions_per_s": rate(visible, decide_secs),
            "per_flow": "2 unary gRPC calls, 2 single-statement commits, 2 batched consumer commits \
                         (up to 64 events), 3 events through the outbox relay and JetStream",
        }),
    );
    Ok(())
}

/// What the stages share: completion instants by flow id.
struct Shared {
    visible: Mutex<HashMap<Uuid, Instant>>,
    all_visible: Notify,
    expected: usize,
    relay_wake: Notify,
}

async fn run(
    spec: &FloorSpec<'_>,
    tag: &str,
    pool: &PgPool,
    js: &jetstream::Context,
    stream: &jetstream::stream::Stream,
) -> Result<(u64, Duration, Duration), BenchError> {
    // The services' own server: mutual TLS and the authorisation layer, as on every real hop
    // (the health check the floor calls is not authorised, only authenticated).
    let dial = crate::tls::bench_pki(spec.work_dir)?;
    let tls = dial
        .tls(&rz_workload::dial::service("assignment"))
        .server()
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let (router, reporter) = rz_platform::server::router(tls, crate::tls::bench_authz(&dial)?)
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = rz_platform::Shutdown::new();
    let server = tokio::spawn(rz_platform::server::serve(
        router,
        reporter,
        listener,
        stop.clone(),
    ));
    let channel = crate::flow::channel(
        &dial,
        &rz_workload::dial::provider("12345678"),
        &format!("http://{addr}"),
    )
    .await?;
    let shared = Arc::new(Shared {
        visible: Mutex::new(HashMap::new()),
        all_visible: Notify::new(),
        expected: spec.flows as usize,
        relay_wake: Notify::new(),
    });
    let consumer = |name: &str, subject: String| {
        let name = format!("{name}-{tag}");
        async move {
            stream
                .create_consumer(pull::Config {
                    durable_name: Some(name),
                    filter_subject: subject,
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    max_ack_pending: 10_000,
                    ..Default::default()
                })
                .await
                .map_err(nats)
        }
    };
    let assign = consumer("assign", format!("{tag}.decided")).await?;
    let provider = consumer("provider", format!("{tag}.assigned")).await?;
    let reporting = consumer("reporting", format!("{tag}.started")).await?;

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(relay(pool.clone(), js.clone(), shared.clone()));
    tasks.spawn(assign_stage(
        pool.clone(),
        assign,
        tag.to_owned(),
        shared.clone(),
    ));
    tasks.spawn(provider_stage(
        pool.clone(),
        provider,
        channel.clone(),
        tag.to_owned(),
        shared.clone(),
    ));
    tasks.spawn(reporting_stage(pool.clone(), reporting, shared.clone()));

    let padding = vec![b'p'; PADDING];
    let started = Instant::now();
    let decided: Vec<Result<Instant, BenchError>> = stream::iter(0..spec.flows)
        .map(|_| decide(pool, channel.clone(), tag, &padding, &shared))
        .buffer_unordered(spec.in_flight.max(1))
        .collect()
        .await;
    let decide_secs = started.elapsed();
    let mut first = None;
    for d in decided {
        let at = d?;
        first = Some(first.map_or(at, |f: Instant| f.min(at)));
    }
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let notified = shared.all_visible.notified();
            if shared.visible.lock().await.len() >= shared.expected {
                break;
            }
            notified.await;
        }
    })
    .await;
    tasks.abort_all();
    stop.trigger();
    let _ = server.await;
    if waited.is_err() {
        eprintln!("bench: floor: not every flow completed within 120 s");
    }
    let visible = shared.visible.lock().await;
    let first = first.unwrap_or(started);
    let last = visible.values().max().copied().unwrap_or(first);
    Ok((
        visible.len() as u64,
        last.saturating_duration_since(first),
        decide_secs,
    ))
}

/// Step 1: a gRPC call, then the decision and its event in one statement. Returns the commit.
async fn decide(
    pool: &PgPool,
    channel: Channel,
    tag: &str,
    padding: &[u8],
    shared: &Shared,
) -> Result<Instant, BenchError> {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map_err(failed("decide"))?;
    let flow = Uuid::now_v7();
    let mut payload = flow.as_bytes().to_vec();
    payload.extend_from_slice(padding);
    sqlx::query(
        "WITH d AS (INSERT INTO decisions (id, payload) VALUES ($1, $3))
         INSERT INTO outbox (id, subject, payload) VALUES ($2, $4, $3)",
    )
    .bind(flow)
    .bind(Uuid::now_v7())
    .bind(&payload)
    .bind(format!("{tag}.decided"))
    .execute(pool)
    .await?;
    let at = Instant::now();
    shared.relay_wake.notify_one();
    Ok(at)
}

/// Step 2: claims, publishes and marks pending outbox rows in batches, as the real relay does.
async fn relay(pool: PgPool, js: jetstream::Context, shared: Arc<Shared>) {
    loop {
        let claimed = publish_batch(&pool, &js).await.unwrap_or(0);
        if claimed < RELAY_BATCH {
            let _ = tokio::time::timeout(Duration::from_millis(100), shared.relay_wake.notified())
                .await;
        }
    }
}

async fn publish_batch(pool: &PgPool, js: &jetstream::Context) -> Result<usize, BenchError> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, subject, payload FROM outbox WHERE published_at IS NULL
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(RELAY_BATCH as i64)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut acks = FuturesUnordered::new();
    for (id, subject, payload) in &rows {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", id.to_string().as_str());
        let ack = js
            .publish_with_headers(subject.clone(), h, payload.clone().into())
            .await
            .map_err(nats)?;
        acks.push(ack.into_future());
    }
    while let Some(a) = acks.next().await {
        a.map_err(nats)?;
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// The messages that have arrived: waits for one, then takes what is there, up to `max`.
async fn next_batch(messages: &mut pull::Stream, max: usize) -> Option<Vec<jetstream::Message>> {
    let mut batch = Vec::with_capacity(max);
    match messages.next().await {
        Some(Ok(m)) => batch.push(m),
        Some(Err(_)) => return Some(batch),
        None => return None,
    }
    while batch.len() < max {
        match messages.next().now_or_never() {
            Some(Some(Ok(m))) => batch.push(m),
            _ => break,
        }
    }
    Some(batch)
}

fn event_id(m: &jetstream::Message) -> Option<Uuid> {
    m.headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .and_then(|v| Uuid::parse_str(v.as_str()).ok())
}

/// Step 3: the decisions in batches; per batch one statement writes the inbox rows, the
/// assignments and their events.
async fn assign_stage(
    pool: PgPool,
    consumer: jetstream::consumer::PullConsumer,
    tag: String,
    shared: Arc<Shared>,
) {
    let Ok(mut messages) = consumer.messages().await else {
        return;
    };
    let subject = format!("{tag}.assigned");
    while let Some(batch) = next_batch(&mut messages, 64).await {
        let mut events = Vec::with_capacity(batch.len());
        let mut flows = Vec::with_capacity(batch.len());
        let mut next = Vec::with_capacity(batch.len());
        let mut payloads = Vec::with_capacity(batch.len());
        for m in &batch {
            if let (Some(e), Some(f)) = (event_id(m), flow_of(&m.payload)) {
                events.push(e);
                flows.push(f);
                next.push(Uuid::now_v7());
                payloads.push(m.payload.to_vec());
            }
        }
        let applied = sqlx::query(
            "WITH ev AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bytea[])
                         AS e(event_id, flow, next_id, payload)),
             fresh AS (INSERT INTO inbox (consumer, event_id) SELECT 'assign', event_id FROM ev
                       ON CONFLICT DO NOTHING RETURNING event_id),
             a AS (INSERT INTO assignments (id) SELECT ev.flow FROM ev JOIN fresh USING (event_id)
                   ON CONFLICT DO NOTHING)
             INSERT INTO outbox (id, subject, payload)
             SELECT ev.next_id, $5, ev.payload FROM ev JOIN fresh USING (event_id)",
        )
        .bind(&events)
        .bind(&flows)
        .bind(&next)
        .bind(&payloads)
        .bind(&subject)
        .execute(&pool)
        .await;
        if applied.is_ok() {
            shared.relay_wake.notify_one();
            for m in &batch {
                let _ = m.ack().await;
            }
        }
    }
}

/// Step 4: each assignment as a provider's system reports its start: a gRPC call, then the start
/// and its event in one statement.
async fn provider_stage(
    pool: PgPool,
    consumer: jetstream::consumer::PullConsumer,
    channel: Channel,
    tag: String,
    shared: Arc<Shared>,
) {
    let Ok(mut messages) = consumer.messages().await else {
        return;
    };
    let subject = format!("{tag}.started");
    let permits = Arc::new(Semaphore::new(128));
    while let Some(Ok(m)) = messages.next().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (pool, channel, subject, shared) = (
            pool.clone(),
            channel.clone(),
            subject.clone(),
            shared.clone(),
        );
        tokio::spawn(async move {
            let Some(flow) = flow_of(&m.payload) else {
                return;
            };
            if HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .is_err()
            {
                return;
            }
            let started = sqlx::query(
                "WITH s AS (UPDATE assignments SET started = true WHERE id = $1)
                 INSERT INTO outbox (id, subject, payload) VALUES ($2, $3, $4)",
            )
            .bind(flow)
            .bind(Uuid::now_v7())
            .bind(&subject)
            .bind(m.payload.to_vec())
            .execute(&pool)
            .await;
            if started.is_ok() {
                shared.relay_wake.notify_one();
                let _ = m.ack().await;
            }
            drop(permit);
        });
    }
}

/// Step 5: the starts in batches into the read model, with their inbox rows, in one statement.
async fn reporting_stage(
    pool: PgPool,
    consumer: jetstream::consumer::PullConsumer,
    shared: Arc<Shared>,
) {
    let Ok(mut messages) = consumer.messages().await else {
        return;
    };
    while let Some(batch) = next_batch(&mut messages, 64).await {
        let mut events = Vec::with_capacity(batch.len());
        let mut flows = Vec::with_capacity(batch.len());
        for m in &batch {
            if let (Some(e), Some(f)) = (event_id(m), flow_of(&m.payload)) {
                events.push(e);
                flows.push(f);
            }
        }
        let applied = sqlx::query(
            "WITH ev AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS e(event_id, flow)),
             fresh AS (INSERT INTO inbox (consumer, event_id) SELECT 'report', event_id FROM ev
                       ON CONFLICT DO NOTHING RETURNING event_id)
             INSERT INTO report (id) SELECT ev.flow FROM ev JOIN fresh USING (event_id)
             ON CONFLICT DO NOTHING",
        )
        .bind(&events)
        .bind(&flows)
        .execute(&pool)
        .await;
        if applied.is_err() {
            continue;
        }
        let at = Instant::now();
        for m in &batch {
            let _ = m.ack().await;
        }
        let mut visible = shared.visible.lock().await;
        for f in flows {
            visible.entry(f).or_insert(at);
        }
        if visible.len() >= shared.expected {
            shared.all_visible.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every floor flow completes, through the real PostgreSQL and NATS, and the figure is measured;
    /// the run leaves no database behind.
    #[tokio::test]
    async fn every_floor_flow_completes_and_is_measured() {
        let env = rz_testkit::TestEnv::load();
        let mut report = Report::new();
        let work_dir = std::env::temp_dir().join(format!("rz-bench-floor-{}", env.namespace()));
        let spec = FloorSpec {
            work_dir: &work_dir,
            admin_url: &env.admin_url,
            nats_url: &env.nats_url,
            flows: 300,
            in_flight: 16,
        };
        floor(&spec, &mut report).await.unwrap();
        assert!(report.get("floor_flows_per_s").unwrap() > 0.0);
        let mut admin = sqlx::PgConnection::connect(&env.admin_url).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'rz_bench_floor_%'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(left, 0);
        let _ = std::fs::remove_dir_all(&work_dir);
    }

    #[test]
    fn a_flow_id_is_read_from_the_payload() {
        let f = Uuid::now_v7();
        let mut p = f.as_bytes().to_vec();
        p.extend_from_slice(b"padding");
        assert_eq!(flow_of(&p), Some(f));
        assert_eq!(flow_of(b"short"), None);
    }
}
