//! The Prometheus endpoint of a real service: access with `[metrics] listen` on port 0 serves
//! `GET /metrics`; after real calls (answered OK, ALREADY_EXISTS and INVALID_ARGUMENT) the RPC
//! counter and the latency histogram show each method and status, the sampled gauges are there,
//! and no label carries a BSN (nor any nine-digit number).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{MUNICIPALITY, bsn, resident_request};
use rz_platform::Shutdown;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_stack::{Stack, http_get};

/// The value of the sample `name{labels}` (labels as the text has them), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// Every run of nine or more digits in the label sets of `text`.
fn long_numbers_in_labels(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        // The label set ends at the first `}`; an exemplar (`# {trace_id="<32 hex>"}`) may follow.
        let (Some(open), Some(close)) = (line.find('{'), line.find('}')) else {
            continue;
        };
        let labels = &line[open..close];
        let mut run = String::new();
        for c in labels.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_digit() {
                run.push(c);
            } else {
                if run.len() >= 9 {
                    out.push(run.clone());
                }
                run.clear();
            }
        }
    }
    out
}

#[tokio::test]
async fn access_serves_rpc_counts_and_latency_by_method_and_status_without_personal_data() {
    let stack = Stack::builder()
        .registration()
        .municipalities(&[MUNICIPALITY])
        .start()
        .await;
    let mut config = stack.access_config(MUNICIPALITY).await;
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    config.metrics.sample_secs = 1;
    let db_url = config.database.url.clone();
    let app = access::App::build(config).await.expect("access builds");
    let metrics = app.metrics_addr().expect("metrics are served");
    assert_ne!(metrics.port(), 0, "the bound port, not the configured 0");
    let endpoint = format!("http://{}", app.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let mut client =
        AccessServiceClient::new(stack.as_municipality(MUNICIPALITY).channel(&endpoint));

    // One call answered OK, one ALREADY_EXISTS (the same BSN under another key), one
    // INVALID_ARGUMENT (a BSN that fails the eleven-test).
    let b = bsn(7);
    client
        .register_resident(resident_request(&b, "1970-03-15"))
        .await
        .expect("registers");
    let mut dup = resident_request(&b, "1970-03-15");
    dup.idempotency_key = "another-key".into();
    let err = client.register_resident(dup).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    let mut bad = resident_request(&b, "1970-03-15");
    bad.idempotency_key = "bad-bsn".into();
    bad.bsn = "123456789".into();
    let err = client.register_resident(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    let (status, content_type, text) = http_get(metrics, "/metrics").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let series = |name: &str, code: &str| {
        format!(
            "{name}{{service=\"regiozorg.access.v1.AccessService\",method=\"RegisterResident\",code=\"{code}\"}}"
        )
    };
    for code in ["OK", "ALREADY_EXISTS", "INVALID_ARGUMENT"] {
        assert_eq!(
            sample(&text, &series("rz_rpc_requests_total", code)),
            Some(1.0),
            "{code} counted once in:\n{text}"
        );
        assert_eq!(
            sample(&text, &series("rz_rpc_duration_seconds_count", code)),
            Some(1.0),
            "{code} observed once"
        );
        let sum = sample(&text, &series("rz_rpc_duration_seconds_sum", code)).unwrap();
        assert!(sum > 0.0 && sum < 30.0, "{code} latency {sum}");
    }
    let inf = "rz_rpc_duration_seconds_bucket{le=\"+Inf\",service=\"regiozorg.access.v1.AccessService\",method=\"RegisterResident\",code=\"OK\"}";
    let inf_alt = "rz_rpc_duration_seconds_bucket{service=\"regiozorg.access.v1.AccessService\",method=\"RegisterResident\",code=\"OK\",le=\"+Inf\"}";
    assert!(
        sample(&text, inf) == Some(1.0) || sample(&text, inf_alt) == Some(1.0),
        "the +Inf bucket of OK holds the call:\n{text}"
    );
    // A method not called has no series; the sampled gauges are there from the start.
    assert!(!text.contains("method=\"Decide\""));
    assert_eq!(sample(&text, "rz_db_pool_max_connections"), Some(5.0));
    assert!(sample(&text, "rz_db_pool_connections").unwrap() >= 1.0);
    assert_eq!(sample(&text, "rz_outbox_pending"), Some(0.0));
    assert!(sample(&text, "rz_dlq_messages").is_some());

    // No personal data: neither BSN sent appears, nor any nine-digit number in a label.
    assert!(!text.contains(&b), "the BSN leaked into the metrics");
    assert!(!text.contains("123456789"));
    assert_eq!(long_numbers_in_labels(&text), Vec::<String>::new());

    // Only /metrics and the probes are served.
    let (status, _, _) = http_get(metrics, "/").await;
    assert!(status.contains(" 404 "), "{status}");

    // The probes: live, and ready while its database answers; not ready while the database
    // refuses connections (and back when it takes them again).
    let (status, _, body) = http_get(metrics, "/livez").await;
    assert!(status.contains(" 200 "), "{status} {body}");
    let (status, _, body) = http_get(metrics, "/readyz").await;
    assert!(status.contains(" 200 "), "{status} {body}");
    let database = db_url.rsplit('/').next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(&stack.env.admin_url).await.unwrap();
    let refuse = |allow: bool| {
        sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allow}"
        ))
    };
    sqlx::query(refuse(false)).execute(&admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&admin)
        .await
        .unwrap();
    let (status, _, body) = http_get(metrics, "/readyz").await;
    sqlx::query(refuse(true)).execute(&admin).await.unwrap();
    assert!(status.contains(" 503 "), "{status} {body}");
    assert!(body.contains("database"), "{body}");
    rz_stack::eventually(std::time::Duration::from_secs(10), async || {
        let (status, _, body) = http_get(metrics, "/readyz").await;
        if status.contains(" 200 ") {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;

    shutdown.trigger();
    server.await.unwrap().unwrap();
    // The endpoint stops with the service.
    assert!(std::net::TcpStream::connect(metrics).is_err());
}
