//! The provider side of the care flow, as a provider's system would run it: a JetStream consumer on
//! `<ns>.assignment.*.*.issued` that records when each assignment arrived and reports the start of
//! care over gRPC; and a watcher that records when the reporting read model shows each started
//! assignment.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_workload::provider::{self, Namespace, Started};
use tokio::sync::{Mutex, Semaphore};

use crate::BenchError;

/// What the provider receiver saw, keyed by granted product id.
#[derive(Debug, Default)]
pub struct Seen {
    /// Receipt instant of the issued event, and the assignment (municipality, number).
    pub received: Mutex<HashMap<String, (Instant, String, u32)>>,
    pub events: AtomicU64,
    pub started: AtomicU64,
    pub start_failed: AtomicU64,
}

/// Receivers started in this process (each gets its own durable consumer).
static RUNS: AtomicU64 = AtomicU64::new(0);

pub struct ProviderReceiver {
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
    stop: Arc<tokio::sync::Notify>,
}

impl ProviderReceiver {
    /// Starts consuming new issued events of namespace `ns` (only those published from now on).
    pub async fn start(
        js: &jetstream::Context,
        ns: &str,
        e: &crate::flow::Endpoints,
        concurrency: usize,
    ) -> Result<Self, BenchError> {
        // Each provider reports its own starts, with its own certificate (one channel each,
        // shared by every run of this process).
        let (dial, assignment) = (e.dial.clone(), e.assignment_url.clone());
        let stream = provider::stream(js, &Namespace::new(ns).map_err(BenchError::Failed)?)
            .await
            .map_err(BenchError::Nats)?;
        // A consumer of its own per run: a second run (the national scale) must not inherit the
        // first one's position and work through the preload's events first.
        let name = format!("bench-provider-{}", RUNS.fetch_add(1, Ordering::Relaxed));
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: 10_000,
                ..provider::durable(&name, provider::issued_filter(ns, None))
            })
            .await
            .map_err(nats)?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(1000)
            .messages()
            .await
            .map_err(nats)?;
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(tokio::sync::Notify::new());
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let task = {
            let seen = seen.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        _ = stop.notified() => break,
                        m = messages.next() => m,
                    };
                    let Some(next) = next else { break };
                    let Ok(message) = next else { continue };
                    let at = Instant::now();
                    seen.events.fetch_add(1, Ordering::Relaxed);
                    let Ok(Some(a)) = provider::assignment(&message.payload) else {
                        let _ = message.ack().await;
                        continue;
                    };
                    seen.received.lock().await.insert(
                        a.granted_product_id.clone(),
                        (at, a.municipality.clone(), a.number),
                    );
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        break;
                    };
                    let seen = seen.clone();
                    let folder = rz_workload::dial::provider(&a.agb_code);
                    let mut client =
                        match dial.shared(&folder, &assignment, Duration::from_secs(30)) {
                            Ok(ch) => AssignmentServiceClient::new(ch),
                            Err(e) => {
                                eprintln!("bench: receiver: no channel for the provider: {e}");
                                seen.start_failed.fetch_add(1, Ordering::Relaxed);
                                let _ = message.ack().await;
                                continue;
                            }
                        };
                    tokio::spawn(async move {
                        let request = provider::start_of_care(&a, provider::first_day(&a));
                        let ack = match provider::report_start(&mut client, request).await {
                            Started::Reported => {
                                seen.started.fetch_add(1, Ordering::Relaxed);
                                AckKind::Ack
                            }
                            Started::AlreadyReported => AckKind::Ack,
                            Started::Failed(s) if s.code() == tonic::Code::Unavailable => {
                                AckKind::Nak(Some(Duration::from_millis(200)))
                            }
                            Started::Failed(_) => {
                                seen.start_failed.fetch_add(1, Ordering::Relaxed);
                                AckKind::Ack
                            }
                        };
                        let _ = message.ack_with(ack).await;
                        drop(permit);
                    });
                }
            })
        };
        Ok(Self { seen, task, stop })
    }

    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// Records, while the flows run, when the reporting read model shows each granted product the
/// provider received as started (`assignments.started_on` set): it polls the read model's database
/// every 5 ms by its primary key (municipality, number), which the receiver learnt from the event.
pub struct ReportWatcher {
    pub visible: Arc<Mutex<HashMap<String, Instant>>>,
    task: tokio::task::JoinHandle<Result<(), BenchError>>,
    stop: Arc<tokio::sync::Notify>,
}

impl ReportWatcher {
    pub async fn start(url: &str, seen: Arc<Seen>) -> Result<Self, BenchError> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        let visible: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = {
            let visible = visible.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    poll(&pool, &seen, &visible).await?;
                    tokio::select! {
                        _ = stop.notified() => break,
                        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    }
                }
                Ok(())
            })
        };
        Ok(Self {
            visible,
            task,
            stop,
        })
    }

    /// Waits until every product of `ids` is visible, `deadline` passes or nothing of `ids` became
    /// visible for `stall`; returns when each became visible.
    pub async fn wait(
        &self,
        ids: &HashSet<String>,
        stall: Duration,
        deadline: Instant,
    ) -> HashMap<String, Instant> {
        let mut count = 0;
        let mut progress = Instant::now();
        loop {
            let got: HashMap<String, Instant> = {
                let v = self.visible.lock().await;
                ids.iter()
                    .filter_map(|id| v.get(id).map(|at| (id.clone(), *at)))
                    .collect()
            };
            if got.len() == ids.len()
                || Instant::now() >= deadline
                || progress.elapsed() >= stall
                || self.task.is_finished()
            {
                return got;
            }
            if got.len() > count {
                count = got.len();
                progress = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) -> Result<(), BenchError> {
        self.stop.notify_one();
        self.task
            .await
            .map_err(|e| BenchError::Failed(format!("report watcher: {e}")))?
    }
}

async fn poll(
    pool: &sqlx::PgPool,
    seen: &Seen,
    visible: &Mutex<HashMap<String, Instant>>,
) -> Result<(), BenchError> {
    let pending: Vec<(String, String, i64)> = {
        let r = seen.received.lock().await;
        let v = visible.lock().await;
        r.iter()
            .filter(|(id, _)| !v.contains_key(*id))
            .map(|(id, (_, m, n))| (id.clone(), m.clone(), i64::from(*n)))
            .collect()
    };
    if pending.is_empty() {
        return Ok(());
    }
    let ms: Vec<String> = pending.iter().map(|p| p.1.clone()).collect();
    let ns: Vec<i64> = pending.iter().map(|p| p.2).collect();
    let found: Vec<(String, i64)> = sqlx::query_as(
        "SELECT a.municipality, a.number FROM assignments a
         JOIN unnest($1::text[], $2::bigint[]) AS k(m, n)
           ON a.municipality = k.m AND a.number = k.n
         WHERE a.started_on IS NOT NULL",
    )
    .bind(&ms)
    .bind(&ns)
    .fetch_all(pool)
    .await?;
    let now = Instant::now();
    let by_key: HashMap<(String, i64), String> =
        pending.into_iter().map(|(id, m, n)| ((m, n), id)).collect();
    let mut v = visible.lock().await;
    for key in found {
        if let Some(id) = by_key.get(&key) {
            v.entry(id.clone()).or_insert(now);
        }
    }
    Ok(())
}

fn nats(e: impl std::fmt::Display) -> BenchError {
    BenchError::Nats(e.to_string())
}
