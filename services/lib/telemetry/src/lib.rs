//! Logs and traces for every regiozorg service.
//!
//! - JSON logs through `tracing` (never personal data: log identifiers of aggregates, not BSNs or names).
//!   A line written inside a span carries that span's `trace_id` and `span_id` (32 and 16 hex
//!   digits, as the trace store shows them), so a log line leads to its trace ([`logs`]).
//! - Spans become OpenTelemetry spans; they are exported over OTLP/gRPC when an endpoint is configured.
//! - W3C trace context (`traceparent`) is read from and written to gRPC metadata ([`GrpcTraceLayer`],
//!   [`inject_grpc`]) and to any text carrier such as NATS headers ([`current_traceparent`],
//!   [`set_parent_from_traceparent`]).

mod grpc;
pub mod logs;

use std::collections::HashMap;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use grpc::{GrpcTraceLayer, GrpcTraceService, TracedBody, inject_grpc, rpc_names};

/// Telemetry settings (`[telemetry]` in a service's configuration).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector endpoint, e.g. `http://otel-collector:4317`. Traces are only exported when set.
    pub otlp_endpoint: Option<String>,
    /// A `tracing` filter such as `info,registration=debug`; `RUST_LOG` wins when set.
    pub log_filter: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes and shuts the tracer provider down when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs JSON logging and OpenTelemetry tracing for a service.
pub fn init(
    service_name: &str,
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    let provider = tracer_provider(service_name, config)?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(config.log_filter.as_deref().unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name.to_owned()));
    let ids = logs::TraceIds::default();
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(ids.hook())
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .map_event_format(|json| ids.format(json)),
        )
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(TelemetryGuard { provider })
}

/// For tests: installs tracing (spans get real trace ids, logs go to the test writer) once per process.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let provider = SdkTracerProvider::builder().build();
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(LevelFilter::INFO);
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(filter),
            )
            .with(otel)
            .try_init();
        global::set_text_map_propagator(TraceContextPropagator::new());
        // Keep the provider alive for the whole test process.
        std::mem::forget(provider);
    });
}

fn tracer_provider(
    service_name: &str,
    config: &TelemetryConfig,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The W3C `traceparent` of the current span, if it belongs to a trace.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes `span` a child of the remote span named by a W3C `traceparent`.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    let cx = global::get_text_map_propagator(|p| p.extract(&carrier));
    set_parent(span, cx);
}

/// Links `span` to the remote span named by a W3C `traceparent` (a batch that processes events of
/// several traces continues one and links the others).
pub fn add_link_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    let cx = global::get_text_map_propagator(|p| p.extract(&carrier));
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.add_link(sc);
    }
}

/// The trace id (32 hex digits) in a W3C `traceparent`, if it is well formed.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32 && trace_id.chars().all(|c| c.is_ascii_hexdigit())).then_some(trace_id)
}

fn set_parent(span: &tracing::Span, cx: Context) {
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace id (32 hex digits) of the current span, if any; for tests and log correlation.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
