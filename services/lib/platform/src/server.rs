//! The gRPC server every service runs: mutual TLS, trace context from metadata, authorisation
//! (who is calling, may they, within their rate: [`crate::authz`]), the standard health service,
//! and graceful shutdown (health turns NOT_SERVING, no new connections, in-flight calls finish).

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::Router;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;

use crate::Shutdown;

pub type Layered = tower::layer::util::Stack<
    crate::authz::AuthzLayer,
    tower::layer::util::Stack<
        crate::metrics::RpcMetricsLayer,
        tower::layer::util::Stack<rz_telemetry::GrpcTraceLayer, tower::layer::util::Identity>,
    >,
>;

/// A tonic server builder with TLS, the trace and authorisation layers installed and the health
/// service added. Returns the router to add the service's own gRPC services to, and the health
/// reporter. Its RPC metrics go to a registry of its own; see [`router_with_metrics`].
pub fn router(
    tls: ServerTlsConfig,
    authz: crate::authz::Authz,
) -> Result<(Router<Layered>, HealthReporter), tonic::transport::Error> {
    router_with_metrics(tls, authz, crate::metrics::Metrics::new())
}

/// As [`router`], counting the calls into `metrics` (the metrics layer is outside the
/// authorisation, so calls it refuses are counted too, and inside the trace layer, so each
/// latency observation carries its call's trace id as an exemplar).
pub fn router_with_metrics(
    tls: ServerTlsConfig,
    authz: crate::authz::Authz,
    metrics: crate::metrics::Metrics,
) -> Result<(Router<Layered>, HealthReporter), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let router = Server::builder()
        .tls_config(tls)?
        .layer(rz_telemetry::GrpcTraceLayer)
        .layer(crate::metrics::RpcMetricsLayer::new(metrics))
        .layer(crate::authz::AuthzLayer::new(authz))
        .add_service(health);
    Ok((router, reporter))
}

/// Serves until `shutdown` triggers; then reports NOT_SERVING and stops gracefully.
pub async fn serve(
    router: Router<Layered>,
    reporter: HealthReporter,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error> {
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let stop = {
        let shutdown = shutdown.clone();
        let reporter = reporter.clone();
        async move {
            shutdown.wait().await;
            reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
    };
    // Small request/response pairs must not wait for Nagle's algorithm (a 40 ms stall per call).
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn
            && let Err(e) = stream.set_nodelay(true)
        {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        conn
    });
    router.serve_with_incoming_shutdown(incoming, stop).await
}
