#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One decision is one trace, across processes (issue 18): the services run as their real binaries
//! ([`Cluster`]) and export their spans over OTLP/gRPC to a receiver in this test, as they would to
//! the region's collector. One care flow (a resident, a case, the decision at access; the
//! assignment; the provider's start of care, reported by a provider system that passes on the
//! trace context of the event it got; reporting and notification on the events) must show as one
//! trace holding the spans of access, assignment, reporting and notification, its gRPC server
//! spans and messaging spans after OpenTelemetry's semantic conventions, no personal data in any
//! attribute, and log lines that carry its trace id.
//!
//! Needs the binaries in `target/debug` (`cargo build --workspace --bins`) and the local stack.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use rz_chaos::chaos::flows::{Endpoints, Load, LoadStats};
use rz_chaos::{Cluster, ClusterSpec};
use rz_eventing::Namespace;
use rz_eventing::nats::jetstream::AckKind;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_testkit::TestEnv;
use rz_workload::provider::{self, Started};
use sqlx::Connection;

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RZ_HARNESS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target"));
    target.join("debug")
}

// ------------------------------------------------------------------ the OTLP receiver

/// One span as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    /// The `service.name` of the resource that exported it.
    service: String,
    trace_id: String,
    span_id: String,
    /// Empty for a root span.
    parent: String,
    name: String,
    /// OTLP `SpanKind`: 2 server, 3 client, 4 producer, 5 consumer.
    kind: i32,
    attrs: BTreeMap<String, String>,
    /// Each event's name and attributes (tracing events inside the span).
    events: Vec<(String, BTreeMap<String, String>)>,
    /// Trace ids of the linked spans.
    links: Vec<String>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

const SERVER: i32 = 2;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// The collector side of OTLP/gRPC (plain h2 on loopback): keeps every span exported to it.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Got>>>);

fn text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(any_value::Value::ArrayValue(a)) => a
            .values
            .iter()
            .map(|v| text(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(any_value::Value::KvlistValue(l)) => l
            .values
            .iter()
            .map(|kv| format!("{}={}", kv.key, text(kv.value.as_ref())))
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = Vec::new();
        for rs in request.into_inner().resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| attrs(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push(Got {
                        service: service.clone(),
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        name: s.name.clone(),
                        kind: s.kind,
                        attrs: attrs(&s.attributes),
                        events: s
                            .events
                            .iter()
                            .map(|e| (e.name.clone(), attrs(&e.attributes)))
                            .collect(),
                        links: s.links.iter().map(|l| hex(&l.trace_id)).collect(),
                    });
                }
            }
        }
        self.0.lock().unwrap().extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Listens on 127.0.0.1:0; returns the endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Got> {
        self.0.lock().unwrap().clone()
    }
}

/// The server span of `method` at service `service` (by resource name), the latest one.
fn server_span<'a>(spans: &'a [Got], service: &str, method: &str) -> Option<&'a Got> {
    spans
        .iter()
        .rfind(|s| s.kind == SERVER && s.service == service && s.attr("rpc.method") == Some(method))
}

/// The services (by `service.name`) with spans in trace `trace_id`, by span kind.
fn kinds_by_service(spans: &[Got], trace_id: &str) -> BTreeMap<String, BTreeSet<i32>> {
    let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.trace_id == trace_id) {
        out.entry(s.service.clone()).or_default().insert(s.kind);
    }
    out
}

/// The spans below the span `root` (its children, theirs, ...).
fn descendants(spans: &[Got], root: &str) -> Vec<Got> {
    let mut ids: BTreeSet<String> = BTreeSet::from([root.to_owned()]);
    let mut out = Vec::new();
    loop {
        let more: Vec<&Got> = spans
            .iter()
            .filter(|s| ids.contains(&s.parent) && !ids.contains(&s.span_id))
            .collect();
        if more.is_empty() {
            return out;
        }
        for s in more {
            ids.insert(s.span_id.clone());
            out.push(s.clone());
        }
    }
}

// ------------------------------------------------------------------ the test

#[tokio::test]
async fn one_decision_is_one_trace_across_the_services() {
    let t0 = Instant::now();
    let receiver = Receiver::default();
    let otlp = receiver.start().await;

    let env = TestEnv::load();
    let ns = env.namespace();
    let run_dir = std::env::temp_dir().join(format!("rz-traces-{ns}"));
    let municipality = "0222";
    let mut spec = ClusterSpec::new(bin_dir(), &run_dir, &env.admin_url, &env.nats_url);
    spec.db_prefix = format!("rztr_{ns}");
    spec.nats_namespace = ns.clone();
    spec.municipalities = vec![municipality.into()];
    spec.otlp_endpoint = Some(otlp.clone());
    spec.extra_env = vec![
        ("*".into(), "RZ__SERVER__SHUTDOWN_GRACE_SECS=2".into()),
        // The batch span processor exports every 200 ms instead of every 5 s.
        ("*".into(), "OTEL_BSP_SCHEDULE_DELAY=200".into()),
        ("*".into(), "RUST_LOG=info".into()),
    ];
    let cluster = Cluster::start(spec).await.expect("cluster starts");
    let started = t0.elapsed().as_secs_f64();
    cluster.seed().await.expect("seed");
    let seeded = t0.elapsed().as_secs_f64();

    // The provider system: a durable consumer on every issued assignment of this namespace.
    let nsp = Namespace::new(&ns).unwrap();
    let (_nats, js) = rz_eventing::connect(&env.nats_url, "trace-provider")
        .await
        .unwrap();
    let issued = provider::subscribe(
        &js,
        &nsp,
        "trace-provider",
        provider::issued_filter(&ns, None),
    )
    .await
    .unwrap();
    let mut messages = issued.messages().await.unwrap();

    // One care flow: resident 300000 of 0222, a case, the decision granting one product.
    let mut access = BTreeMap::new();
    access.insert(
        municipality.to_owned(),
        cluster.endpoint(&format!("access@{municipality}")).unwrap(),
    );
    let endpoints = Endpoints {
        registration: cluster.endpoint("registration").unwrap(),
        assignment: cluster.endpoint("assignment").unwrap(),
        access,
        dial: cluster.dial(),
    };
    let load = Load::new(endpoints, Arc::new(LoadStats::default()))
        .await
        .expect("catalogue");
    let record = load.flow(0).await.expect("care flow");
    assert_eq!(record.products, 1, "{record:?}");

    // The provider gets the assignment and reports the start of care, passing the event's trace
    // context on (as rz-provider-sim does).
    let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
        .await
        .expect("an issued assignment within 30 s")
        .expect("stream open")
        .expect("message");
    let traceparent = message
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_owned())
        .expect("the issued event carries a traceparent");
    let a = provider::assignment(&message.payload)
        .unwrap()
        .expect("an assignment");
    assert_eq!(a.municipality, municipality);
    let channel = cluster
        .dial()
        .lazy(
            &rz_workload::dial::provider(&a.agb_code),
            &cluster.endpoint("assignment").unwrap(),
            Duration::from_secs(10),
        )
        .unwrap();
    let mut request = tonic::Request::new(provider::start_of_care(&a, provider::first_day(&a)));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    match provider::report_start(&mut AssignmentServiceClient::new(channel), request).await {
        Started::Reported => {}
        other => panic!("start of care: {other:?}"),
    }
    message.ack_with(AckKind::Ack).await.unwrap();

    // Wait until the decision's trace holds reporting's and notification's consumer spans of the
    // start of care (the services export every 200 ms).
    let flow_trace =
        |spans: &[Got]| server_span(spans, "access", "Decide").map(|s| s.trace_id.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = receiver.spans();
        let done = flow_trace(&spans).is_some_and(|t| {
            let after_start = server_span(&spans, "assignment", "ReportStartOfCare")
                .filter(|s| s.trace_id == t)
                .map(|s| descendants(&spans, &s.span_id))
                .unwrap_or_default();
            ["reporting", "notification"].iter().all(|svc| {
                spans
                    .iter()
                    .any(|s| s.trace_id == t && s.service == *svc && s.kind == CONSUMER)
            }) && after_start
                .iter()
                .any(|s| s.service == "reporting" && s.kind == CONSUMER)
        });
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = t0.elapsed().as_secs_f64();
    // A graceful stop flushes what is left.
    let logs: Vec<(String, PathBuf)> = cluster
        .services()
        .into_iter()
        .map(|s| {
            let p = cluster.log_path(&s);
            (s, p)
        })
        .collect();
    cluster.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = receiver.spans();

    // ---- diagnostics (shown when the test fails)
    let trace = flow_trace(&spans).expect("access exported the Decide server span");
    let mut tree = String::new();
    for s in spans.iter().filter(|s| s.trace_id == trace) {
        tree.push_str(&format!(
            "{:<13} kind {} {} {} <- {} {:?} links {:?}\n",
            s.service, s.kind, s.name, s.span_id, s.parent, s.attrs, s.links
        ));
    }
    eprintln!(
        "{} spans received, {} in the decision's trace {trace}:\n{tree}",
        spans.len(),
        spans.iter().filter(|s| s.trace_id == trace).count()
    );

    // ---- one trace across access, assignment, reporting and notification
    let kinds = kinds_by_service(&spans, &trace);
    for svc in ["access", "assignment", "reporting", "notification"] {
        assert!(
            kinds.contains_key(svc),
            "{svc} has spans in the decision's trace:\n{tree}"
        );
    }
    assert!(kinds["access"].contains(&SERVER), "{tree}");
    assert!(kinds["access"].contains(&PRODUCER), "{tree}");
    assert!(kinds["assignment"].contains(&CONSUMER), "{tree}");
    assert!(kinds["assignment"].contains(&PRODUCER), "{tree}");
    assert!(kinds["assignment"].contains(&SERVER), "{tree}");
    assert!(kinds["reporting"].contains(&CONSUMER), "{tree}");
    assert!(kinds["notification"].contains(&CONSUMER), "{tree}");
    let start = server_span(&spans, "assignment", "ReportStartOfCare").expect("start of care");
    assert_eq!(
        start.trace_id, trace,
        "the provider's start of care continues the decision's trace"
    );
    let after_start = descendants(&spans, &start.span_id);
    assert!(
        after_start
            .iter()
            .any(|s| s.service == "reporting" && s.kind == CONSUMER),
        "reporting processes the start of care in the trace:\n{tree}"
    );

    // Every span of the decision's events, published and processed, is in that one trace: each
    // event published in the trace is processed in it by every consumer; every event of the
    // assignment service for the municipality (the test imports nothing: each comes from this
    // decision) and every decision event of access is in it. No step starts a trace of its own.
    let published: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.trace_id == trace && s.kind == PRODUCER)
        .filter_map(|s| s.attr("messaging.message.id"))
        .collect();
    assert!(published.len() >= 4, "{tree}");
    let of_decision = |s: &Got| {
        let dest = s.attr("messaging.destination.name").unwrap_or("");
        matches!(s.kind, PRODUCER | CONSUMER)
            && (s
                .attr("messaging.message.id")
                .is_some_and(|id| published.contains(id))
                || dest.starts_with(&format!("{ns}.assignment.{municipality}."))
                || (dest.starts_with(&format!("{ns}.access.{municipality}."))
                    && s.attr("event_type")
                        .is_some_and(|t| t.contains(".decision"))))
    };
    let flow_events: Vec<&Got> = spans.iter().filter(|s| of_decision(s)).collect();
    assert!(flow_events.len() >= 8, "{flow_events:#?}");
    for s in &flow_events {
        assert_eq!(
            s.trace_id, trace,
            "{} {} of {} is outside the decision's trace:\n{tree}",
            s.service, s.name, s.attrs["messaging.destination.name"]
        );
    }
    // A batch of a batching consumer (reporting, notification) continues the trace of its first
    // event and links every event's: one holding the decision's events links the trace.
    let linked = spans
        .iter()
        .filter(|s| s.links.contains(&trace) && s.trace_id != trace)
        .count();
    eprintln!("batches in other traces linking the decision's: {linked}");
    eprintln!(
        "{} spans of the decision's {} events, all in its trace",
        flow_events.len(),
        published.len()
    );

    // Each span's parent is in the trace (nothing dangling), but for the root: the Decide call.
    let ids: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .map(|s| s.span_id.as_str())
        .collect();
    for s in spans.iter().filter(|s| s.trace_id == trace) {
        assert!(
            s.parent.is_empty() || ids.contains(s.parent.as_str()),
            "{} {} has a parent that was not exported:\n{tree}",
            s.service,
            s.name
        );
    }

    // ---- semantic conventions
    let decide = server_span(&spans, "access", "Decide").unwrap();
    assert_eq!(decide.name, "regiozorg.access.v1.AccessService/Decide");
    assert_eq!(decide.attr("rpc.system"), Some("grpc"));
    assert_eq!(
        decide.attr("rpc.service"),
        Some("regiozorg.access.v1.AccessService")
    );
    assert_eq!(decide.attr("rpc.grpc.status_code"), Some("0"));
    assert_eq!(start.attr("rpc.grpc.status_code"), Some("0"));
    for s in spans.iter().filter(|s| s.kind == SERVER) {
        for key in [
            "rpc.system",
            "rpc.service",
            "rpc.method",
            "rpc.grpc.status_code",
        ] {
            assert!(
                s.attrs.contains_key(key),
                "{} {} lacks {key}: {:?}",
                s.service,
                s.name,
                s.attrs
            );
        }
    }
    for s in spans
        .iter()
        .filter(|s| matches!(s.kind, PRODUCER | CONSUMER))
    {
        assert_eq!(s.attr("messaging.system"), Some("nats"), "{s:?}");
        let op = if s.kind == PRODUCER {
            "publish"
        } else {
            "process"
        };
        assert_eq!(s.attr("messaging.operation.type"), Some(op), "{s:?}");
        assert!(
            s.attrs.contains_key("messaging.destination.template"),
            "{s:?}"
        );
        assert!(s.name.starts_with(&format!("{op} {ns}.")), "{s:?}");
        if s.attr("messaging.batch.message_count").is_none() {
            assert!(s.attrs.contains_key("messaging.destination.name"), "{s:?}");
            assert!(s.attrs.contains_key("messaging.message.id"), "{s:?}");
        }
    }
    let refused_later = spans
        .iter()
        .filter(|s| s.kind == SERVER && s.attr("rpc.grpc.status_code") == Some("6"))
        .count();
    eprintln!("server spans answered ALREADY_EXISTS: {refused_later}");

    // ---- no personal data in any attribute or span event
    let mut personal: Vec<String> = Vec::new();
    for minor in [true, false] {
        let r = rz_workload::Driver::new("chaos").resident(300_000, municipality, minor);
        personal.extend([r.bsn, r.given_names, r.family_name, r.birth_date]);
        if let Some(addr) = r.address {
            personal.push(addr.postal_code);
        }
    }
    personal.sort();
    personal.dedup();
    let mut values = 0usize;
    for s in &spans {
        let all = s
            .attrs
            .iter()
            .chain(s.events.iter().flat_map(|(_, a)| a.iter()));
        for (k, v) in all {
            values += 1;
            for p in &personal {
                assert!(
                    !v.contains(p.as_str()),
                    "personal data `{p}` in {} {} attribute {k} = {v}",
                    s.service,
                    s.name
                );
            }
        }
        for (name, _) in &s.events {
            for p in &personal {
                assert!(
                    !name.contains(p.as_str()),
                    "personal data in an event: {name}"
                );
            }
        }
    }
    eprintln!(
        "{values} attribute values of {} spans scanned for {personal:?}",
        spans.len()
    );

    // ---- a log line of the flow leads to its trace
    let mut lines_with_ids = 0usize;
    let mut of_flow: Vec<String> = Vec::new();
    for (service, path) in &logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(t), Some(sp)) = (v.get("trace_id"), v.get("span_id")) else {
                continue;
            };
            let (t, sp) = (t.as_str().unwrap_or(""), sp.as_str().unwrap_or(""));
            assert_eq!(t.len(), 32, "{line}");
            assert_eq!(sp.len(), 16, "{line}");
            lines_with_ids += 1;
            if t == trace {
                assert!(
                    spans.iter().any(|s| s.span_id == sp && s.trace_id == trace),
                    "the log line's span was exported: {line}"
                );
                of_flow.push(format!("{service}: {line}"));
            }
        }
    }
    eprintln!(
        "{lines_with_ids} log lines with trace ids, {} of the flow's trace:\n{}",
        of_flow.len(),
        of_flow.join("\n")
    );
    assert!(
        !of_flow.is_empty(),
        "a log line carries the decision's trace id"
    );

    // Clean up the databases.
    let mut conn = sqlx::PgConnection::connect(&env.admin_url).await.unwrap();
    let dbs: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(format!("rztr_{ns}_%"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for db in dbs {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    eprintln!(
        "trace test took {:.1} s (cluster up {started:.1} s, seeded {seeded:.1} s, flow traced {waited:.1} s)",
        t0.elapsed().as_secs_f64()
    );
}
