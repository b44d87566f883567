//! Prometheus metrics: what every service counts, the tower layer that counts its RPCs, the sampler
//! of what is read rather than counted, and the `/metrics` endpoint.
//!
//! Every service records these (the runner installs them); it serves them over HTTP only when
//! `[metrics] listen` is set (see [`crate::config::MetricsConfig`]). The text is OpenMetrics
//! (`prometheus-client`): counters end in `_total`, the latency histogram in `_bucket`, `_sum` and
//! `_count`.
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `rz_rpc_requests_total` | `service`, `method`, `code` | RPCs answered, by gRPC status (`OK`, `INVALID_ARGUMENT`, ...) |
//! | `rz_rpc_duration_seconds` | `service`, `method`, `code` | from the request to its status |
//! | `rz_outbox_pending` | | outbox rows not yet acknowledged by JetStream (sampled) |
//! | `rz_outbox_oldest_pending_age_seconds` | | how long the oldest of them has waited (sampled; 0 when none) |
//! | `rz_outbox_published_total` | | events the relay published |
//! | `rz_outbox_dead_lettered_total` | | events the relay could never publish (dead-lettered) |
//! | `rz_consumer_delivered_total` | `consumer` | deliveries taken from JetStream |
//! | `rz_consumer_redelivered_total` | `consumer` | of those, deliveries of an event delivered before |
//! | `rz_consumer_dead_lettered_total` | `consumer` | events the consumer gave up on |
//! | `rz_consumer_pending` | `consumer` | JetStream's lag: events in the stream not yet delivered (sampled) |
//! | `rz_consumer_ack_pending` | `consumer` | delivered, not yet acknowledged (sampled) |
//! | `rz_dlq_messages` | | messages in the namespace's dead-letter stream (sampled) |
//! | `rz_db_pool_connections`, `rz_db_pool_idle`, `rz_db_pool_max_connections` | | the PostgreSQL pool |
//!
//! No label carries personal data: method names come from the API descriptors (an unknown path is
//! counted as `unknown`), status codes are gRPC's names and consumer names are the durable names.
//!
//! A service adds metrics of its own ([`Metrics::gauges`], [`Metrics::counters`],
//! [`Metrics::seconds_histogram`]) and samplers of its own tables ([`Metrics::sample_with`]),
//! run by the same sampler every `[metrics] sample_secs`. Their label values must be bounded and
//! never personal data (a state, an outcome, a kind, a 4-digit municipality code). The services'
//! own metrics:
//!
//! | metric | labels | service | what |
//! | --- | --- | --- | --- |
//! | `rz_webhook_deliveries` | `state` (`pending`, `retrying`, `failed`) | notification | webhook deliveries waiting for a first attempt, waiting for a retry, given up (sampled) |
//! | `rz_webhook_oldest_pending_age_seconds` | | notification | how long the oldest delivery not yet delivered has waited (sampled; 0 when none) |
//! | `rz_webhook_delivery_attempts_total` | `outcome` (`ok`, `retry`, `gave_up`) | notification | POSTs of a delivery, by what came of them |
//! | `rz_webhook_delivery_latency_seconds` | | notification | from queueing a delivery (the event's arrival) to its recorded success |
//! | `rz_letters` | `state` (`pending`, `retrying`, `failed`) | notification | residents' letters not yet sent, waiting for a retry, given up (sampled) |
//! | `rz_letter_attempts_total` | `outcome` (`ok`, `retry`, `gave_up`) | notification | attempts to send a letter through the channel |
//! | `rz_deadlines_open` | `municipality`, `kind` | access, assignment | deadlines not met yet, overdue included (sampled) |
//! | `rz_deadlines_overdue` | `municipality`, `kind` | access, assignment | of those, the ones whose due date has passed (sampled) |
//! | `rz_handover_replacements` | `municipality`, `state` (`waiting_for_start`, `handed_over`) | assignment | handover replacements whose care has not started yet / has started (sampled) |
//! | `rz_handover_assignments_total` | `outcome` (`arranged`, `already_arranged`, `not_arranged`) | assignment | assignments of a provider without a contract, by what handover runs did with them |
//! | `rz_handover_runs_total` | | assignment | handover runs completed |
//!
//! Deadline kinds: access' statutory ones `investigation` (6 weeks after the report) and
//! `decision` (2 or 8 weeks after the application); assignment's chain deadlines
//! `start_of_care` (5 working days after an assignment's start) and `request_answer` (5 working
//! days after a provider's request). A deadline is overdue once its due date is before the
//! service's today.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use rz_eventing::Namespace;
use rz_eventing::consumer::ConsumerMetrics;
use rz_eventing::nats::jetstream;
use rz_eventing::relay::RelayMetrics;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::Shutdown;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    service: &'static str,
    method: &'static str,
    code: &'static str,
}

/// The exemplar of an RPC's latency observation: the call's trace id (32 hex digits), so that a
/// latency panel's point opens the trace (not personal data).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceLabel {
    trace_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    consumer: String,
}

type HistogramFamily = Family<
    RpcLabels,
    HistogramWithExemplars<TraceLabel>,
    fn() -> HistogramWithExemplars<TraceLabel>,
>;

fn latency_histogram() -> HistogramWithExemplars<TraceLabel> {
    // 1 ms .. ~16 s.
    HistogramWithExemplars::new(exponential_buckets(0.001, 2.0, 15))
}

/// A service's metrics: cheap to clone (shared counters), one registry per service.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

/// A service's own sampler (see [`Metrics::sample_with`]).
type Sampler = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Inner {
    /// Behind a lock so that a service can add its own metrics after the start.
    registry: Mutex<Registry>,
    samplers: Mutex<Vec<Sampler>>,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_duration: HistogramFamily,
    outbox_pending: Gauge,
    outbox_oldest_age: Gauge<f64, AtomicU64>,
    relay: RelayMetrics,
    consumer_delivered: Family<ConsumerLabels, Counter>,
    consumer_redelivered: Family<ConsumerLabels, Counter>,
    consumer_dead_lettered: Family<ConsumerLabels, Counter>,
    consumer_pending: Family<ConsumerLabels, Gauge>,
    consumer_ack_pending: Family<ConsumerLabels, Gauge>,
    dlq_messages: Gauge,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        registry.register(
            "rz_rpc_requests",
            "gRPC calls answered, by method and status code",
            rpc_requests.clone(),
        );
        let rpc_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "rz_rpc_duration",
            "gRPC call latency from the request to its status",
            Unit::Seconds,
            rpc_duration.clone(),
        );
        let outbox_pending = Gauge::default();
        registry.register(
            "rz_outbox_pending",
            "Outbox rows not yet acknowledged by JetStream",
            outbox_pending.clone(),
        );
        let outbox_oldest_age = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "rz_outbox_oldest_pending_age",
            "How long the oldest pending outbox row has waited (0 when none)",
            Unit::Seconds,
            outbox_oldest_age.clone(),
        );
        let relay = RelayMetrics::default();
        registry.register(
            "rz_outbox_published",
            "Events the outbox relay published",
            relay.published.clone(),
        );
        registry.register(
            "rz_outbox_dead_lettered",
            "Events the outbox relay could never publish and dead-lettered",
            relay.dead_lettered.clone(),
        );
        let consumer_delivered = Family::<ConsumerLabels, Counter>::default();
        registry.register(
            "rz_consumer_delivered",
            "Deliveries an event consumer took from JetStream",
            consumer_delivered.clone(),
        );
        let consumer_redelivered = Family::<ConsumerLabels, Counter>::default();
        registry.register(
            "rz_consumer_redelivered",
            "Deliveries of an event delivered to the consumer before",
            consumer_redelivered.clone(),
        );
        let consumer_dead_lettered = Family::<ConsumerLabels, Counter>::default();
        registry.register(
            "rz_consumer_dead_lettered",
            "Events the consumer gave up on and put in the dead-letter stream",
            consumer_dead_lettered.clone(),
        );
        let consumer_pending = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "rz_consumer_pending",
            "JetStream consumer lag: events in the stream not yet delivered",
            consumer_pending.clone(),
        );
        let consumer_ack_pending = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "rz_consumer_ack_pending",
            "Events delivered to the consumer and not yet acknowledged",
            consumer_ack_pending.clone(),
        );
        let dlq_messages = Gauge::default();
        registry.register(
            "rz_dlq_messages",
            "Messages in the namespace's dead-letter stream",
            dlq_messages.clone(),
        );
        let pool_connections = Gauge::default();
        registry.register(
            "rz_db_pool_connections",
            "Open PostgreSQL connections of the pool",
            pool_connections.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "rz_db_pool_idle",
            "Idle PostgreSQL connections of the pool",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "rz_db_pool_max_connections",
            "The pool's maximum number of connections",
            pool_max.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                samplers: Mutex::new(Vec::new()),
                rpc_requests,
                rpc_duration,
                outbox_pending,
                outbox_oldest_age,
                relay,
                consumer_delivered,
                consumer_redelivered,
                consumer_dead_lettered,
                consumer_pending,
                consumer_ack_pending,
                dlq_messages,
                pool_connections,
                pool_idle,
                pool_max,
            }),
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry())?;
        Ok(out)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the service's gauge `name` with the labels `labels` (their values set by
    /// [`GaugeVec::set`]). A series appears once set; set every value the dashboards read, 0
    /// included.
    pub fn gauges(&self, name: &str, help: &str, labels: &'static [&'static str]) -> GaugeVec {
        let family = Family::<OwnLabels, Gauge>::default();
        self.registry().register(name, help, family.clone());
        GaugeVec { family, labels }
    }

    /// Registers the service's gauge `name` in seconds (served as `<name>_seconds`), without
    /// labels; served as 0 until set.
    pub fn seconds_gauge(&self, name: &str, help: &str) -> SecondsGauge {
        let gauge = SecondsGauge::default();
        self.registry()
            .register_with_unit(name, help, Unit::Seconds, gauge.clone());
        gauge
    }

    /// Registers the service's counter `name` (served as `<name>_total`) with the labels
    /// `labels`. Each combination of `initial` is created at once, so it is served as 0 before
    /// the first count.
    pub fn counters(
        &self,
        name: &str,
        help: &str,
        labels: &'static [&'static str],
        initial: &[&[&str]],
    ) -> CounterVec {
        let family = Family::<OwnLabels, Counter>::default();
        self.registry().register(name, help, family.clone());
        let counters = CounterVec { family, labels };
        for values in initial {
            counters.get(values);
        }
        counters
    }

    /// Registers the service's counter `name` (served as `<name>_total`) without labels; served
    /// as 0 until counted.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        self.registry().register(name, help, counter.clone());
        counter
    }

    /// Registers the service's histogram `name` in seconds (served as `<name>_seconds_bucket`,
    /// `_sum`, `_count`) with the upper bounds `buckets`.
    pub fn seconds_histogram(
        &self,
        name: &str,
        help: &str,
        buckets: impl Iterator<Item = f64>,
    ) -> Histogram {
        let histogram = Histogram::new(buckets);
        self.registry()
            .register_with_unit(name, help, Unit::Seconds, histogram.clone());
        histogram
    }

    /// Runs `sample` with every round of the sampler (every `[metrics] sample_secs`, from the
    /// moment the service serves): for gauges read from the service's own tables, one cheap query
    /// each. A sampler that takes longer than 10 s is abandoned for that round; on an error it
    /// should keep the previous values and log at debug level.
    pub fn sample_with<F, Fut>(&self, sample: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let sampler: Sampler = Arc::new(move || Box::pin(sample()));
        self.inner
            .samplers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sampler);
    }

    /// Runs the service's samplers once now (the sampler does this every round).
    pub async fn sample_own(&self) {
        let samplers: Vec<Sampler> = self
            .inner
            .samplers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for sampler in samplers {
            if tokio::time::timeout(Duration::from_secs(10), sampler())
                .await
                .is_err()
            {
                tracing::debug!("a metrics sampler took longer than 10 s");
            }
        }
    }

    /// The outbox relay's counters.
    pub fn relay(&self) -> RelayMetrics {
        self.inner.relay.clone()
    }

    /// The counters of the consumer `name` (its durable name).
    pub fn consumer(&self, name: &str) -> ConsumerMetrics {
        let labels = ConsumerLabels {
            consumer: name.to_owned(),
        };
        ConsumerMetrics {
            delivered: self.inner.consumer_delivered.get_or_create_owned(&labels),
            redelivered: self.inner.consumer_redelivered.get_or_create_owned(&labels),
            dead_lettered: self
                .inner
                .consumer_dead_lettered
                .get_or_create_owned(&labels),
        }
    }

    /// Records one answered RPC; `trace_id` (the call's trace, when it has a valid one) becomes
    /// the exemplar of the latency bucket it falls in.
    fn rpc(&self, method: Method, code: &'static str, elapsed: Duration, trace_id: Option<String>) {
        let labels = RpcLabels {
            service: method.service,
            method: method.method,
            code,
        };
        self.inner.rpc_requests.get_or_create(&labels).inc();
        let exemplar = trace_id.map(|trace_id| TraceLabel { trace_id });
        self.inner.rpc_duration.get_or_create(&labels).observe(
            elapsed.as_secs_f64(),
            exemplar,
            Some(std::time::SystemTime::now()),
        );
    }

    fn set_pool(&self, pool: &PgPool) {
        self.inner.pool_connections.set(i64::from(pool.size()));
        self.inner.pool_idle.set(pool.num_idle() as i64);
    }

    /// Records the pool's configured maximum.
    pub fn set_pool_max(&self, max: u32) {
        self.inner.pool_max.set(i64::from(max));
    }
}

// ---------------------------------------------------------------- a service's own metrics

/// The label set of a service's own metric: (name, value) pairs in the registered order.
type OwnLabels = Vec<(&'static str, String)>;

fn own_labels(names: &'static [&'static str], values: &[&str]) -> OwnLabels {
    names
        .iter()
        .zip(values.iter().chain(std::iter::repeat(&"")))
        .map(|(n, v)| (*n, (*v).to_owned()))
        .collect()
}

/// A service's gauge with labels (see [`Metrics::gauges`]).
#[derive(Clone)]
pub struct GaugeVec {
    family: Family<OwnLabels, Gauge>,
    labels: &'static [&'static str],
}

impl GaugeVec {
    /// Sets the series of the label values `values` (in the registered order) to `value`.
    pub fn set(&self, values: &[&str], value: i64) {
        self.family
            .get_or_create(&own_labels(self.labels, values))
            .set(value);
    }
}

impl std::fmt::Debug for GaugeVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaugeVec")
            .field("labels", &self.labels)
            .finish()
    }
}

/// A service's gauge in seconds (see [`Metrics::seconds_gauge`]): `set(f64)`.
pub type SecondsGauge = Gauge<f64, AtomicU64>;

/// A service's counter with labels (see [`Metrics::counters`]).
#[derive(Clone)]
pub struct CounterVec {
    family: Family<OwnLabels, Counter>,
    labels: &'static [&'static str],
}

impl CounterVec {
    /// The counter of the label values `values` (in the registered order).
    pub fn get(&self, values: &[&str]) -> Counter {
        self.family
            .get_or_create_owned(&own_labels(self.labels, values))
    }

    /// Adds `n` to the counter of `values`.
    pub fn inc_by(&self, values: &[&str], n: u64) {
        self.get(values).inc_by(n);
    }

    /// Adds 1 to the counter of `values`.
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1);
    }
}

impl std::fmt::Debug for CounterVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterVec")
            .field("labels", &self.labels)
            .finish()
    }
}

/// A service's histogram (see [`Metrics::seconds_histogram`]); buckets e.g. from
/// [`exponential_buckets`].
pub use prometheus_client::metrics::histogram::Histogram as SecondsHistogram;
pub use prometheus_client::metrics::histogram::exponential_buckets;

// ---------------------------------------------------------------- the RPC layer

/// A method label pair, from the API descriptors (bounded: an unknown path is `unknown`).
#[derive(Debug, Clone, Copy)]
struct Method {
    service: &'static str,
    method: &'static str,
}

const UNKNOWN: Method = Method {
    service: "unknown",
    method: "unknown",
};

/// Every method path of the regiozorg APIs and the health service, with its labels (made once
/// per process).
fn methods() -> &'static HashMap<String, Method> {
    static METHODS: OnceLock<HashMap<String, Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut out = HashMap::new();
        let mut add = |service: &str, method: &str| {
            let service: &'static str = Box::leak(service.to_owned().into_boxed_str());
            let method: &'static str = Box::leak(method.to_owned().into_boxed_str());
            out.insert(format!("/{service}/{method}"), Method { service, method });
        };
        if let Ok(pool) = crate::authz::descriptors() {
            for service in pool.services() {
                for method in service.methods() {
                    add(service.full_name(), method.name());
                }
            }
        }
        add("grpc.health.v1.Health", "Check");
        add("grpc.health.v1.Health", "Watch");
        out
    })
}

fn method_of(path: &str) -> Method {
    methods().get(path).copied().unwrap_or(UNKNOWN)
}

/// gRPC's name of a status code.
fn code_name(code: &[u8]) -> &'static str {
    match code {
        b"0" => "OK",
        b"1" => "CANCELLED",
        b"2" => "UNKNOWN",
        b"3" => "INVALID_ARGUMENT",
        b"4" => "DEADLINE_EXCEEDED",
        b"5" => "NOT_FOUND",
        b"6" => "ALREADY_EXISTS",
        b"7" => "PERMISSION_DENIED",
        b"8" => "RESOURCE_EXHAUSTED",
        b"9" => "FAILED_PRECONDITION",
        b"10" => "ABORTED",
        b"11" => "OUT_OF_RANGE",
        b"12" => "UNIMPLEMENTED",
        b"13" => "INTERNAL",
        b"14" => "UNAVAILABLE",
        b"15" => "DATA_LOSS",
        b"16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<&'static str> {
    headers.get("grpc-status").map(|v| code_name(v.as_bytes()))
}

/// Tower layer for the gRPC server: counts every call by method and status code and observes its
/// latency (from the request to the status, which for a successful call is in the trailers).
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    metrics: Metrics,
}

impl RpcMetricsLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for RpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body,
{
    type Response = http::Response<RpcBody<ResBody>>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let call = Call {
            metrics: self.metrics.clone(),
            method: method_of(req.uri().path()),
            start: Instant::now(),
            // The trace layer is outside this one: its server span is the current span here.
            trace_id: rz_telemetry::current_trace_id(),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            match fut.await {
                Ok(response) => {
                    // A trailers-only response (every error tonic answers) has the status in its
                    // headers; otherwise it comes in the body's trailers.
                    let pending = match grpc_status(response.headers()) {
                        Some(code) => {
                            call.done(code);
                            None
                        }
                        None => Some(call),
                    };
                    Ok(response.map(|inner| RpcBody {
                        inner: Box::pin(inner),
                        pending,
                    }))
                }
                Err(e) => {
                    call.done("UNKNOWN");
                    Err(e)
                }
            }
        })
    }
}

/// One call whose status is not known yet.
struct Call {
    metrics: Metrics,
    method: Method,
    start: Instant,
    /// The trace id of the call's server span (none without a valid span context).
    trace_id: Option<String>,
}

impl Call {
    fn done(self, code: &'static str) {
        self.metrics
            .rpc(self.method, code, self.start.elapsed(), self.trace_id);
    }
}

/// A response body that records its call when the trailers carry the status (or, dropped before
/// that, as `CANCELLED`).
pub struct RpcBody<B> {
    inner: std::pin::Pin<Box<B>>,
    pending: Option<Call>,
}

impl<B> RpcBody<B> {
    fn finish(&mut self, code: &'static str) {
        if let Some(call) = self.pending.take() {
            call.done(code);
        }
    }
}

impl<B> Drop for RpcBody<B> {
    fn drop(&mut self) {
        self.finish("CANCELLED");
    }
}

impl<B: Body> Body for RpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    this.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => this.finish("UNKNOWN"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------- the sampler

/// What the sampler reads: the service's pool (and its outbox), and its consumers' lag.
pub(crate) struct Sampled {
    pub pool: PgPool,
    pub js: jetstream::Context,
    pub ns: Namespace,
    /// (stream, durable name) of each consumer.
    pub consumers: Vec<(String, String)>,
}

impl Metrics {
    /// Samples every `every` until `shutdown`: the outbox, the consumers' lag, the dead-letter
    /// stream and the pool. A failed read keeps the previous value and is logged at debug level.
    pub(crate) async fn sample(self, what: Sampled, every: Duration, shutdown: Shutdown) {
        let every = every.max(Duration::from_millis(100));
        loop {
            self.sample_once(&what).await;
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    async fn sample_once(&self, what: &Sampled) {
        self.set_pool(&what.pool);
        match sqlx::query_as::<_, (i64, f64)>(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(occurred_at))::float8, 0)
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&what.pool)
        .await
        {
            Ok((pending, age)) => {
                self.inner.outbox_pending.set(pending);
                self.inner.outbox_oldest_age.set(age.max(0.0));
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample the outbox"),
        }
        for (stream, name) in &what.consumers {
            let info = match what.js.get_stream_no_info(stream).await {
                Ok(s) => s.consumer_info(name).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match info {
                Ok(info) => {
                    let labels = ConsumerLabels {
                        consumer: name.clone(),
                    };
                    self.inner
                        .consumer_pending
                        .get_or_create(&labels)
                        .set(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
                    self.inner
                        .consumer_ack_pending
                        .get_or_create(&labels)
                        .set(i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX));
                }
                Err(e) => tracing::debug!(consumer = %name, error = %e, "cannot sample a consumer"),
            }
        }
        match rz_eventing::dlq::count(&what.js, &what.ns).await {
            Ok(n) => {
                self.inner
                    .dlq_messages
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample the dead-letter stream"),
        }
        self.sample_own().await;
    }
}

// ---------------------------------------------------------------- the endpoint

/// Binds the metrics listener of `[metrics] listen`, if set.
pub(crate) async fn bind(
    config: &crate::config::MetricsConfig,
) -> Result<Option<(TcpListener, SocketAddr)>, std::io::Error> {
    let Some(listen) = config.listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok(Some((listener, addr)))
}

/// What `/readyz` looks at: the database, the NATS connection and whether the service is
/// stopping (a stopping service is taken out of rotation before its port closes).
#[derive(Clone)]
pub(crate) struct Readiness {
    pub pool: PgPool,
    pub nats: rz_eventing::nats::Client,
    pub stopping: Shutdown,
}

impl Readiness {
    /// `Ok` when the service can do its work now, else why not (no personal data: states only).
    async fn check(&self) -> Result<(), String> {
        if self.stopping.is_triggered() {
            return Err("stopping".into());
        }
        let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool);
        match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("database: {e}")),
            Err(_) => return Err("database: no answer within 1 s".into()),
        }
        match self.nats.connection_state() {
            rz_eventing::nats::connection::State::Connected => Ok(()),
            other => Err(format!("nats: {other:?}")),
        }
    }
}

/// Serves on `listener` until `shutdown`: `GET /metrics` (Prometheus), `GET /livez` (200 while the
/// process serves) and `GET /readyz` (200 when the database answers within a second and NATS is
/// connected, 503 with the reason otherwise or once the service is stopping): plain HTTP, for
/// Prometheus and kubelet probes (the gRPC port speaks mutual TLS only). Anything else: 404.
pub(crate) async fn serve(
    metrics: Metrics,
    readiness: Readiness,
    listener: TcpListener,
    shutdown: Shutdown,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let metrics = metrics.clone();
                let readiness = readiness.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(respond(&metrics, &readiness, &req).await)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics endpoint: connection failed");
            }
        });
    }
}

fn plain(status: http::StatusCode, text: impl Into<Bytes>) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(text.into()));
    *r.status_mut() = status;
    r
}

async fn respond<B>(
    metrics: &Metrics,
    readiness: &Readiness,
    req: &http::Request<B>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(path, "/metrics" | "/livez" | "/readyz") {
        return plain(
            http::StatusCode::NOT_FOUND,
            "not found: GET /metrics, /livez or /readyz\n",
        );
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return plain(http::StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match path {
        "/livez" => plain(http::StatusCode::OK, "ok\n"),
        "/readyz" => match readiness.check().await {
            Ok(()) => plain(http::StatusCode::OK, "ready\n"),
            Err(why) => {
                tracing::debug!(reason = %why, "not ready");
                plain(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                )
            }
        },
        _ => match metrics.encode() {
            Ok(text) => {
                let mut r = http::Response::new(Full::new(Bytes::from(text)));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(CONTENT_TYPE),
                );
                r
            }
            Err(_) => plain(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_has_its_name_and_unknown_paths_share_one_label() {
        assert_eq!(code_name(b"0"), "OK");
        assert_eq!(code_name(b"3"), "INVALID_ARGUMENT");
        assert_eq!(code_name(b"16"), "UNAUTHENTICATED");
        assert_eq!(code_name(b"99"), "UNKNOWN");
        let m = method_of("/grpc.health.v1.Health/Check");
        assert_eq!((m.service, m.method), ("grpc.health.v1.Health", "Check"));
        let m = method_of("/regiozorg.access.v1.AccessService/RegisterResident");
        assert_eq!(
            (m.service, m.method),
            ("regiozorg.access.v1.AccessService", "RegisterResident")
        );
        let m = method_of("/regiozorg.access.v1.AccessService/123456782");
        assert_eq!((m.service, m.method), ("unknown", "unknown"));
    }

    #[test]
    fn counters_and_the_histogram_are_encoded_with_their_labels() {
        let metrics = Metrics::new();
        metrics.rpc(
            method_of("/grpc.health.v1.Health/Check"),
            "OK",
            Duration::from_millis(3),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        );
        metrics.consumer("reporting-access").delivered.inc();
        let text = metrics.encode().unwrap();
        assert!(text.contains(
            "rz_rpc_requests_total{service=\"grpc.health.v1.Health\",method=\"Check\",code=\"OK\"} 1"
        ));
        assert!(text.contains(
            "rz_rpc_duration_seconds_count{service=\"grpc.health.v1.Health\",method=\"Check\",code=\"OK\"} 1"
        ));
        // The 4 ms bucket (the first that holds 3 ms) carries the exemplar, OpenMetrics style.
        let bucket = text
            .lines()
            .find(|l| {
                l.starts_with("rz_rpc_duration_seconds_bucket{")
                    && l.contains("le=\"0.004\"")
                    && l.contains("method=\"Check\"")
            })
            .unwrap();
        assert!(
            bucket.contains(" # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.003 "),
            "{bucket}"
        );
        assert!(text.contains("rz_consumer_delivered_total{consumer=\"reporting-access\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
