//! What mutual TLS and the authorisation checks cost a call, on one in-process server so that
//! nothing else differs: the same unary RPC (`AssignmentService/ListProviderAssignments`, answered
//! with an empty list) served three ways and called by a provider with its own certificate:
//!
//! - `plain`: h2c, no TLS, no layers (what every call cost before the services had TLS);
//! - `mtls`: mutual TLS (the provider's certificate checked against the region's CA), no layers;
//! - `checked`: the services' own server (`rz_platform::server::router`): mutual TLS, the trace
//!   layer and the authorisation layer: the caller's organisation from its certificate's
//!   `urn:regiozorg` SAN, the policy table, the provider's rate limit (on, far above this load)
//!   and the request's `agb_code` decoded and compared with the certificate's.
//!
//! Each way: calls one at a time on one connection (latency percentiles), calls 64 in flight
//! (calls/s), and new connections each with one call (what a handshake costs). The figures are the
//! three ways side by side; the decision-to-provider latency of the care flow (flow.rs) is measured
//! with all of this on, on every hop.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use rz_platform::authz::{Authz, LimitsConfig};
use rz_platform::identity::{Identities, IdentityConfig};
use rz_proto::assignment::v1 as pb;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_workload::Dial;
use serde_json::json;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::transport::{Channel, Endpoint, Server};

use crate::BenchError;
use crate::report::Report;
use crate::stats::{percentile_ms, rate};

/// The provider that calls (its certificate is in the bench's PKI).
const AGB: &str = "12345678";

pub struct TlsSpec {
    /// Sequential calls per way.
    pub calls: usize,
    /// Calls per way with 64 in flight.
    pub concurrent_calls: usize,
    /// New connections per way.
    pub connections: usize,
}

/// A test PKI for the sections that run their own servers (`<work_dir>/pki`): the five
/// services, municipality 0222, the operator and provider [`AGB`].
pub fn bench_pki(work_dir: &Path) -> Result<Dial, BenchError> {
    let dir = work_dir.join("pki");
    rz_pki::generate(&dir, &rz_pki::PkiSpec::region(&[AGB], &["0222"]))
        .map_err(|e| BenchError::Failed(format!("test PKI: {e}")))?;
    Ok(Dial::new(dir))
}

/// The authorisation of a regional service with the PKI's token key, and the services' default
/// limits raised far above the load (the limiter still runs on every call).
pub fn bench_authz(dial: &Dial) -> Result<Authz, BenchError> {
    let identities = Identities::from_config(&IdentityConfig {
        token_jwks: Some(dial.pki().join("jwks.json")),
        ..IdentityConfig::default()
    })
    .map_err(BenchError::Failed)?;
    let limits = LimitsConfig {
        provider_per_second: 1_000_000,
        provider_burst: 1_000_000,
        ..LimitsConfig::default()
    };
    Authz::new(identities, None, &limits).map_err(BenchError::Failed)
}

/// The one RPC, answered at once with an empty list.
#[derive(Clone)]
struct Stub;

impl tonic::server::NamedService for Stub {
    const NAME: &'static str = "regiozorg.assignment.v1.AssignmentService";
}

struct Empty;

impl tonic::server::UnaryService<pb::ListProviderAssignmentsRequest> for Empty {
    type Response = pb::ListAssignmentsResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;
    fn call(&mut self, _: tonic::Request<pb::ListProviderAssignmentsRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(
            pb::ListAssignmentsResponse::default(),
        )))
    }
}

impl Service<http::Request<Body>> for Stub {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path().ends_with("/ListProviderAssignments") {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(Empty, req).await)
            } else {
                Ok(tonic::Status::unimplemented("bench stub").into_http())
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    Plain,
    Mtls,
    Checked,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Plain => "plain",
            Way::Mtls => "mtls",
            Way::Checked => "checked",
        }
    }
}

/// A server of `way` on a free port of 127.0.0.1 until the returned sender is dropped or sent.
async fn serve(
    way: Way,
    dial: &Dial,
) -> Result<
    (
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    BenchError,
> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let failed =
        |e: &dyn std::fmt::Display| BenchError::Failed(format!("{} server: {e}", way.name()));
    let tls = dial
        .tls(&rz_workload::dial::service("assignment"))
        .server()
        .map_err(|e| failed(&e))?;
    let task = match way {
        Way::Checked => {
            let (router, reporter) =
                rz_platform::server::router(tls, bench_authz(dial)?).map_err(|e| failed(&e))?;
            let router = router.add_service(Stub);
            let stop = rz_platform::Shutdown::new();
            let trigger = stop.clone();
            tokio::spawn(async move {
                tokio::spawn(async move {
                    let _ = rx.await;
                    trigger.trigger();
                });
                let _ = rz_platform::server::serve(router, reporter, listener, stop).await;
            })
        }
        Way::Plain | Way::Mtls => {
            // tonic serves a listener's stream; these ways bind the address again after
            // releasing it (nothing else takes a port this quickly on a test machine).
            drop(listener);
            let mut builder = Server::builder().tcp_nodelay(true);
            if way == Way::Mtls {
                builder = builder.tls_config(tls).map_err(|e| failed(&e))?;
            }
            let router = builder.add_service(Stub);
            tokio::spawn(async move {
                let _ = router
                    .serve_with_shutdown(addr, async {
                        let _ = rx.await;
                    })
                    .await;
            })
        }
    };
    Ok((format!("http://{addr}"), tx, task))
}

async fn connect(way: Way, dial: &Dial, url: &str) -> Result<Channel, BenchError> {
    let timeout = Duration::from_secs(10);
    match way {
        Way::Plain => Endpoint::from_shared(url.to_owned())
            .map_err(|e| BenchError::Failed(e.to_string()))?
            .tcp_nodelay(true)
            .timeout(timeout)
            .connect()
            .await
            .map_err(|e| BenchError::Failed(format!("{url}: {e}"))),
        Way::Mtls | Way::Checked => dial
            .connect(&rz_workload::dial::provider(AGB), url, timeout)
            .await
            .map_err(BenchError::Failed),
    }
}

async fn call(client: &mut AssignmentServiceClient<Channel>) -> Result<Duration, BenchError> {
    let started = Instant::now();
    client
        .list_provider_assignments(pb::ListProviderAssignmentsRequest {
            agb_code: AGB.into(),
            municipality: String::new(),
        })
        .await
        .map_err(|s| {
            BenchError::Failed(format!(
                "ListProviderAssignments: {:?} {}",
                s.code(),
                s.message()
            ))
        })?;
    Ok(started.elapsed())
}

/// One way's figures: (p50 ms, p99 ms, calls/s with 64 in flight, connect + first call mean ms).
struct Figures {
    p50: Option<f64>,
    p99: Option<f64>,
    per_s: Option<f64>,
    connect_ms: Option<f64>,
}

async fn measure(way: Way, dial: &Dial, spec: &TlsSpec) -> Result<Figures, BenchError> {
    let (url, stop, task) = serve(way, dial).await?;
    // The server may take a moment to listen (plain and mtls bind again).
    let mut channel = None;
    for _ in 0..50 {
        match connect(way, dial, &url).await {
            Ok(c) => {
                channel = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let channel = match channel {
        Some(c) => c,
        None => connect(way, dial, &url).await?,
    };
    let mut client = AssignmentServiceClient::new(channel);
    // Warm up: the connection, the allocator, the limiter's key.
    for _ in 0..100 {
        call(&mut client).await?;
    }
    let mut samples = Vec::with_capacity(spec.calls);
    for _ in 0..spec.calls {
        samples.push(call(&mut client).await?);
    }
    let started = Instant::now();
    let results: Vec<Result<Duration, BenchError>> = stream::iter(0..spec.concurrent_calls)
        .map(|_| {
            let mut c = client.clone();
            async move { call(&mut c).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(e);
    }
    let mut connects = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let started = Instant::now();
        let mut c = AssignmentServiceClient::new(connect(way, dial, &url).await?);
        call(&mut c).await?;
        connects.push(started.elapsed());
    }
    let _ = stop.send(());
    let _ = task.await;
    let connect_ms = (!connects.is_empty()).then(|| {
        connects.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / connects.len() as f64
    });
    Ok(Figures {
        p50: percentile_ms(&mut samples, 50.0),
        p99: percentile_ms(&mut samples, 99.0),
        per_s: rate(ok, elapsed),
        connect_ms,
    })
}

pub async fn run(work_dir: &Path, spec: &TlsSpec, report: &mut Report) -> Result<(), BenchError> {
    let dial = bench_pki(work_dir)?;
    let mut detail = serde_json::Map::new();
    let mut by_way = Vec::new();
    for way in [Way::Plain, Way::Mtls, Way::Checked] {
        eprintln!(
            "bench: tls: {} calls one at a time, {} with 64 in flight, {} new connections ({})",
            spec.calls,
            spec.concurrent_calls,
            spec.connections,
            way.name()
        );
        let f = measure(way, &dial, spec).await?;
        detail.insert(
            way.name().to_owned(),
            json!({"p50_ms": f.p50, "p99_ms": f.p99, "calls_per_s": f.per_s,
                   "connect_and_first_call_ms": f.connect_ms}),
        );
        by_way.push((way, f));
    }
    let none = "no calls were measured";
    for (way, f) in &by_way {
        let (p50, p99, per_s) = match way {
            Way::Plain => ("rpc_plain_p50_ms", "rpc_plain_p99_ms", "rpc_plain_per_s"),
            Way::Mtls => ("rpc_mtls_p50_ms", "rpc_mtls_p99_ms", "rpc_mtls_per_s"),
            Way::Checked => (
                "rpc_checked_p50_ms",
                "rpc_checked_p99_ms",
                "rpc_checked_per_s",
            ),
        };
        report.maybe(p50, f.p50, none);
        report.maybe(p99, f.p99, none);
        report.maybe(per_s, f.per_s, none);
    }
    let get = |w: Way| by_way.iter().find(|(x, _)| *x == w).map(|(_, f)| f);
    if let (Some(plain), Some(checked)) = (get(Way::Plain), get(Way::Checked)) {
        let cost = plain.p50.zip(checked.p50).map(|(p, c)| c - p);
        report.maybe("rpc_checks_cost_p50_ms", cost, none);
        let mtls_cost = get(Way::Mtls).and_then(|m| plain.p50.zip(m.p50).map(|(p, m)| m - p));
        detail.insert(
            "cost_p50_ms".into(),
            json!({"tls": mtls_cost, "tls_and_checks": cost}),
        );
    }
    if let Some(m) = get(Way::Checked) {
        report.maybe("tls_connect_ms", m.connect_ms, none);
    }
    report.detail("tls", serde_json::Value::Object(detail));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn work_dir(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rz-bench-tls-{name}-{}", std::process::id()))
    }

    /// The three ways are measured side by side and every figure of the section is filled in.
    #[tokio::test]
    async fn the_three_ways_are_measured() {
        let dir = work_dir("ways");
        let mut report = Report::new();
        let spec = TlsSpec {
            calls: 50,
            concurrent_calls: 200,
            connections: 3,
        };
        run(&dir, &spec, &mut report).await.unwrap();
        for k in crate::TLS_KEYS {
            if *k != "rpc_checks_cost_p50_ms" {
                assert!(report.get(k).is_some_and(|v| v > 0.0), "{k}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The checked server really checks: a provider naming another provider's AGB code is
    /// refused, and a caller without a certificate is unauthenticated.
    #[tokio::test]
    async fn the_checked_way_authorises() {
        let dir = work_dir("refuse");
        let dial = bench_pki(&dir).unwrap();
        let (url, stop, task) = serve(Way::Checked, &dial).await.unwrap();
        let mut c = AssignmentServiceClient::new(connect(Way::Checked, &dial, &url).await.unwrap());
        assert!(call(&mut c).await.is_ok());
        let other = c
            .list_provider_assignments(pb::ListProviderAssignmentsRequest {
                agb_code: "87654321".into(),
                municipality: String::new(),
            })
            .await
            .expect_err("another provider's code");
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        let anonymous = Endpoint::from_shared(url.replace("http://", "https://"))
            .unwrap()
            .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(
                tonic::transport::Certificate::from_pem(
                    std::fs::read(dial.pki().join("ca.crt")).unwrap(),
                ),
            ))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let refused = AssignmentServiceClient::new(anonymous)
            .list_provider_assignments(pb::ListProviderAssignmentsRequest {
                agb_code: AGB.into(),
                municipality: String::new(),
            })
            .await
            .expect_err("no certificate");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let _ = stop.send(());
        let _ = task.await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
