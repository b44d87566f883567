//! Trace context in gRPC metadata: a server layer that continues the caller's trace, and a client
//! helper that sends the current one.

use std::collections::HashMap;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::global;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Tower layer for a tonic server: every request runs in a `grpc.request` span whose parent is the
/// `traceparent` the caller sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTraceLayer;

impl<S> tower::Layer<S> for GrpcTraceLayer {
    type Service = GrpcTraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcTraceService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcTraceService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcTraceService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let span = tracing::info_span!("grpc.request", rpc.path = %req.uri().path());
        let carrier: HashMap<String, String> = ["traceparent", "tracestate"]
            .iter()
            .filter_map(|k| {
                req.headers()
                    .get(*k)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| ((*k).to_owned(), v.to_owned()))
            })
            .collect();
        if !carrier.is_empty() {
            let cx = global::get_text_map_propagator(|p| p.extract(&carrier));
            let _ = span.set_parent(cx);
        }
        let fut = {
            let _enter = span.enter();
            self.inner.call(req)
        };
        Box::pin(fut.instrument(span))
    }
}

/// Adds the current span's `traceparent` to an outgoing gRPC request.
pub fn inject_grpc<T>(request: &mut tonic::Request<T>) {
    if let Some(tp) = crate::current_traceparent()
        && let Ok(value) = tp.parse()
    {
        request.metadata_mut().insert("traceparent", value);
    }
}
