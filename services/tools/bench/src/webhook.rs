//! Webhook delivery: a local HTTP receiver (rz-workload's [`WebhookReceiver`]) that checks each
//! POST's signature and records when each CloudEvent id arrived; subscriptions made through the notification gRPC API; assignment
//! events addressed to the subscribed providers published on the assignment stream as the outbox
//! relay publishes them (CloudEvents headers, `Nats-Msg-Id`, protobuf `AssignmentMessage`). The
//! event's commit is the instant its publish was acknowledged by JetStream.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prost::Message;
use rz_proto::assignment::v1 as apb;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
use rz_workload::webhook::{Receipts, WebhookReceiver};
use serde_json::json;
use uuid::Uuid;

use crate::BenchError;
use crate::flow::BENCH;
use crate::report::Report;
use crate::stats::{percentile_ms, rate};

pub struct WebhookSpec {
    pub nats_namespace: String,
    /// Events of the throughput phase.
    pub events: u64,
    pub providers: usize,
    /// Seconds of the paced latency phase.
    pub latency_secs: u64,
}

pub async fn run(
    dial: &rz_workload::Dial,
    notification: &str,
    js: &async_nats::jetstream::Context,
    spec: &WebhookSpec,
    report: &mut Report,
) -> Result<(), BenchError> {
    // The receiver first: the subscriptions need its URL, it needs their secrets.
    let receiver = WebhookReceiver::start().await?;
    let agbs: Vec<String> = (0..spec.providers.max(1))
        .map(|i| format!("{:08}", 99_000_001 + i))
        .collect();
    for agb in &agbs {
        // A subscription is the provider's own: each subscribes with its own certificate.
        let folder = rz_workload::dial::provider(agb);
        let mut api = NotificationServiceClient::new(
            crate::flow::channel(dial, &folder, notification).await?,
        );
        let s = api
            .create_subscription(BENCH.subscription(agb, receiver.url(agb)))
            .await
            .map_err(|s| {
                BenchError::Failed(format!(
                    "CreateSubscription: {:?} {}",
                    s.code(),
                    s.message()
                ))
            })?
            .into_inner();
        receiver.add_secret(agb, s.secret);
    }
    eprintln!("bench: webhook receiver on http://{}", receiver.addr());
    let receipts = receiver.receipts();
    let publisher = Publisher {
        js: js.clone(),
        ns: spec.nats_namespace.clone(),
        agbs,
    };

    // Throughput: every event published at once (async acks), deliveries counted as they arrive.
    eprintln!("bench: webhooks: {} events at once", spec.events);
    let before = receipts.fresh();
    let commits = publisher.burst(0, spec.events).await?;
    let got = wait_for(receipts, &commits, before, Duration::from_secs(15)).await;
    let first = commits.values().min().copied();
    let last = got.values().max().copied();
    let delivered = got.len() as u64;
    let per_s = match (first, last) {
        (Some(f), Some(l)) if delivered > 0 => rate(delivered, l.saturating_duration_since(f)),
        _ => None,
    };
    match per_s {
        Some(r) => report.measured("webhook_per_s", r),
        None => report.not_measured("webhook_per_s", "no webhook was delivered"),
    }
    // How fast the events themselves went in: the delivery rate cannot show more than this.
    let published_per_s = match (first, commits.values().max().copied()) {
        (Some(f), Some(l)) => rate(commits.len() as u64, l.saturating_duration_since(f)),
        _ => None,
    };
    let mut burst_lat = latencies(&commits, &got);
    report.detail(
        "webhook_throughput",
        json!({
            "events": commits.len(),
            "delivered": delivered,
            "providers_subscribed": publisher.agbs.len(),
            "published_per_s": published_per_s,
            "latency_p50_ms_in_burst": percentile_ms(&mut burst_lat, 50.0),
            "latency_p99_ms_in_burst": percentile_ms(&mut burst_lat, 99.0),
        }),
    );

    // Latency: events paced at half the measured delivery rate.
    let Some(per_s) = per_s else {
        return Err(BenchError::Failed(
            "no delivery rate, so no latency phase".into(),
        ));
    };
    let paced = (per_s / 2.0).max(1.0);
    let n = ((paced * spec.latency_secs as f64) as u64).clamp(100, 50_000);
    eprintln!("bench: webhooks: {n} events at {paced:.0}/s");
    let before = receipts.fresh();
    let commits = publisher.paced(spec.events, n, paced).await?;
    let got = wait_for(receipts, &commits, before, Duration::from_secs(15)).await;
    let mut lat = latencies(&commits, &got);
    let none = "no webhook of the paced phase was delivered";
    report.maybe("webhook_p50_ms", percentile_ms(&mut lat, 50.0), none);
    report.maybe("webhook_p99_ms", percentile_ms(&mut lat, 99.0), none);
    report.detail(
        "webhook_latency",
        json!({
            "rate_per_s": paced,
            "events": commits.len(),
            "delivered": got.len(),
            "p95_ms": percentile_ms(&mut lat, 95.0),
            "max_ms": lat.iter().max().map(|d| d.as_secs_f64() * 1000.0),
            "commit_instant": "the JetStream ack of the event's publish (the relay marks the outbox row sent then)",
        }),
    );
    report.detail(
        "webhook_receiver",
        json!({
            "posts": receipts.posts(),
            "bad_signatures": receipts.bad_signatures(),
            "duplicates": receipts.redeliveries(),
        }),
    );
    Ok(())
}

fn latencies(commits: &HashMap<String, Instant>, got: &HashMap<String, Instant>) -> Vec<Duration> {
    commits
        .iter()
        .filter_map(|(id, c)| got.get(id).map(|r| r.saturating_duration_since(*c)))
        .collect()
}

/// Waits until every id of `commits` was received or nothing new arrived for `stall`. `before` is
/// the receiver's count of fresh ids before these events were published: the ids are matched
/// (under the receiver's lock, which the deliveries being measured also take) only once that
/// count says they may all be in, so the wait costs the machine next to nothing meanwhile.
async fn wait_for(
    receipts: &Receipts,
    commits: &HashMap<String, Instant>,
    before: u64,
    stall: Duration,
) -> HashMap<String, Instant> {
    let collect = || receipts.arrivals(commits.keys());
    let mut last_count = 0;
    let mut progress = Instant::now();
    loop {
        let count = receipts.fresh().saturating_sub(before);
        if count >= commits.len() as u64 {
            let got = collect();
            if got.len() == commits.len() {
                return got;
            }
        }
        if progress.elapsed() > stall {
            return collect();
        }
        if count > last_count {
            last_count = count;
            progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Publisher {
    js: async_nats::jetstream::Context,
    ns: String,
    agbs: Vec<String>,
}

impl Publisher {
    /// One assignment event addressed to provider `i % agbs`; returns its subject, headers, body, id.
    fn event(&self, i: u64) -> (String, async_nats::HeaderMap, Bytes, String) {
        let agb = &self.agbs[(i as usize) % self.agbs.len()];
        let m = "0222";
        let id = Uuid::now_v7().to_string();
        let number = (i % 900_000_000) as u32 + 1;
        let msg = apb::AssignmentMessage {
            assignment: Some(apb::Assignment {
                number,
                municipality: m.into(),
                client_key: "bench".into(),
                agb_code: agb.clone(),
                segment_code: "JGB".into(),
                subsegment_code: "JGB01".into(),
                period: Some(rz_proto::types::v1::Period {
                    start: "2022-09-01".into(),
                    end: "2023-08-31".into(),
                }),
                assigned_on: "2022-08-15".into(),
                ..Default::default()
            }),
            client: None,
        };
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", id.as_str());
        h.insert("ce-specversion", "1.0");
        h.insert("ce-id", id.as_str());
        h.insert("ce-type", rz_proto::events::assignment::ISSUED.ce_type);
        h.insert("ce-source", "regiozorg/assignment");
        h.insert("ce-subject", format!("assignment/{m}/{number}").as_str());
        h.insert(
            "ce-time",
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_str(),
        );
        h.insert("content-type", "application/protobuf");
        let subject = format!("{}.assignment.{m}.{agb}.issued", self.ns);
        (subject, h, Bytes::from(msg.encode_to_vec()), id)
    }

    /// Publishes events `first..first + n` with up to 512 acks in flight; returns each event's ack
    /// instant.
    async fn burst(&self, first: u64, n: u64) -> Result<HashMap<String, Instant>, BenchError> {
        let mut pending = FuturesUnordered::new();
        let mut commits = HashMap::with_capacity(n as usize);
        for i in first..first + n {
            let (subject, h, body, id) = self.event(i);
            let ack = self
                .js
                .publish_with_headers(subject, h, body)
                .await
                .map_err(|e| BenchError::Nats(e.to_string()))?;
            pending.push(async move { (id, ack.into_future().await) });
            while pending.len() >= 512 {
                if let Some((id, r)) = pending.next().await {
                    r.map_err(|e| BenchError::Nats(e.to_string()))?;
                    commits.insert(id, Instant::now());
                }
            }
        }
        while let Some((id, r)) = pending.next().await {
            r.map_err(|e| BenchError::Nats(e.to_string()))?;
            commits.insert(id, Instant::now());
        }
        Ok(commits)
    }

    /// Publishes `n` events at `per_s`, each awaited (so its ack instant is exact).
    async fn paced(
        &self,
        first: u64,
        n: u64,
        per_s: f64,
    ) -> Result<HashMap<String, Instant>, BenchError> {
        let gap = Duration::from_secs_f64(1.0 / per_s);
        let t0 = Instant::now();
        let mut tasks = FuturesUnordered::new();
        let mut commits = HashMap::with_capacity(n as usize);
        for k in 0..n {
            tokio::time::sleep_until((t0 + gap.mul_f64(k as f64)).into()).await;
            let (subject, h, body, id) = self.event(first + k);
            let ack = self
                .js
                .publish_with_headers(subject, h, body)
                .await
                .map_err(|e| BenchError::Nats(e.to_string()))?;
            tasks.push(async move {
                let r = ack.into_future().await;
                (id, r.map(|_| Instant::now()))
            });
            // Collect finished acks without blocking the pace.
            while let Some(Some((id, r))) = futures::FutureExt::now_or_never(tasks.next()) {
                commits.insert(id, r.map_err(|e| BenchError::Nats(e.to_string()))?);
            }
        }
        while let Some((id, r)) = tasks.next().await {
            commits.insert(id, r.map_err(|e| BenchError::Nats(e.to_string()))?);
        }
        Ok(commits)
    }
}
