//! Trace context in gRPC metadata: a server layer that continues the caller's trace, and a client
//! helper that sends the current one.
//!
//! The server span follows OpenTelemetry's semantic conventions for gRPC: named
//! `<package.Service>/<Method>`, kind `server`, with `rpc.system = "grpc"`, `rpc.service`,
//! `rpc.method` and `rpc.grpc.status_code` (the numeric status, from the response headers of a
//! trailers-only answer or from the trailers). Its status is `ERROR` only for the codes the
//! conventions name for servers (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
//! DATA_LOSS): a refusal such as `PERMISSION_DENIED` is the caller's error, not the server's. No
//! request field is recorded (they may hold personal data).

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use hyper::body::{Body, Frame, SizeHint};
use opentelemetry::global;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Tower layer for a tonic server: every request runs in a `server` span (see the module) whose
/// parent is the `traceparent` the caller sent. The span ends when the call's status is known.
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

/// `(rpc.service, rpc.method)` of a gRPC path `/<package.Service>/<Method>`.
pub fn rpc_names(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    match path.rsplit_once('/') {
        Some((service, method)) => (service, method),
        None => ("", path),
    }
}

/// The numeric gRPC status in a header map (`grpc-status`), if there is one.
fn grpc_status(headers: &http::HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Records the status on the span; the codes the conventions count as a server error set its
/// status to `ERROR`.
fn record_status(span: &tracing::Span, code: i64) {
    span.record("rpc.grpc.status_code", code);
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        span.record("otel.status_code", "ERROR");
    }
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for GrpcTraceService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (service, method) = rpc_names(req.uri().path());
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = format!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
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
        Box::pin(async move {
            match fut.instrument(span.clone()).await {
                Ok(response) => {
                    // A trailers-only response (every error tonic answers) has the status in its
                    // headers; otherwise it comes in the body's trailers.
                    let pending = match grpc_status(response.headers()) {
                        Some(code) => {
                            record_status(&span, code);
                            None
                        }
                        None => Some(span),
                    };
                    Ok(response.map(|inner| TracedBody {
                        inner: Box::pin(inner),
                        span: pending,
                    }))
                }
                Err(e) => {
                    record_status(&span, 2);
                    Err(e)
                }
            }
        })
    }
}

/// A response body that keeps the call's span open until the trailers carry the status (a body
/// that ends without one, or is dropped before, is `UNKNOWN` / `CANCELLED`).
pub struct TracedBody<B> {
    inner: Pin<Box<B>>,
    span: Option<tracing::Span>,
}

impl<B> TracedBody<B> {
    fn finish(&mut self, code: i64) {
        if let Some(span) = self.span.take() {
            record_status(&span, code);
        }
    }
}

impl<B> Drop for TracedBody<B> {
    fn drop(&mut self) {
        self.finish(1);
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
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
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => this.finish(2),
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

/// Adds the current span's `traceparent` to an outgoing gRPC request.
pub fn inject_grpc<T>(request: &mut tonic::Request<T>) {
    if let Some(tp) = crate::current_traceparent()
        && let Ok(value) = tp.parse()
    {
        request.metadata_mut().insert("traceparent", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_path_names_the_service_and_the_method() {
        assert_eq!(
            rpc_names("/regiozorg.access.v1.AccessService/Decide"),
            ("regiozorg.access.v1.AccessService", "Decide")
        );
        assert_eq!(
            rpc_names("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(rpc_names("odd"), ("", "odd"));
    }

    #[test]
    fn the_status_comes_from_the_grpc_status_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("7"));
        assert_eq!(grpc_status(&h), Some(7));
    }
}
