//! What tests read off running services: waiting until something holds, the health check, the
//! outbox, a JetStream stream and table counts.

use std::time::Duration;

use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Polls `probe` every 50 ms until it returns `Ok`, and returns that value. After `within` the
/// test fails with the last `Err` (what was seen instead).
pub async fn eventually<T>(
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "not within {within:?}: {seen}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For [`eventually`]: `Ok(items)` when there are at least `n`, else `Err` with how many of what.
pub fn at_least<T>(items: Vec<T>, n: usize, what: &str) -> Result<Vec<T>, String> {
    match items.len() >= n {
        true => Ok(items),
        false => Err(format!("{} of {n} {what}", items.len())),
    }
}

/// Asserts that the gRPC health service behind `channel` answers SERVING.
pub async fn assert_serving(channel: &Channel) {
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
}

/// The rows of a table.
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The events in a service's outbox that the relay has not published yet.
pub async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// How many messages a service's stream (`<NAMESPACE>_<SERVICE>`) holds.
pub async fn stream_messages(nats_url: &str, namespace: &str, service: &str) -> u64 {
    let (_client, js) = rz_eventing::connect(nats_url, "check").await.unwrap();
    let stream = format!("{}_{}", namespace.to_uppercase(), service.to_uppercase());
    js.get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

/// A loopback address nothing listens on now (for a service's `[metrics] listen`, bound a moment
/// later).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// `GET path` over plain HTTP/1.1, as Prometheus or a kubelet probe asks it: (status line,
/// content type, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    use std::io::{Read, Write};
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).expect("connects");
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("writes the request");
        let mut raw = String::new();
        conn.read_to_string(&mut raw).expect("reads the answer");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
        let status = head.lines().next().unwrap_or_default().to_owned();
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default();
        (status, content_type, body.to_owned())
    })
    .await
    .expect("the request task")
}

/// `GET /metrics`, asserted 200: the exposition text.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    let (status, _, body) = http_get(addr, "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    body
}

/// The value of `series` (name with its labels as exposed, e.g. `rz_letters{state="failed"}`).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            // an exemplar or timestamp may follow the value
            let value = v.split_whitespace().next().unwrap_or_default();
            value.parse().expect("a number")
        })
}

/// Scrapes until every `(series, value)` of `want` holds (at most 20 s); returns the last text.
pub async fn scrape_until<S: AsRef<str>>(addr: std::net::SocketAddr, want: &[(S, f64)]) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = scrape(addr).await;
        let wrong: Vec<String> = want
            .iter()
            .filter(|(s, v)| sample(&text, s.as_ref()) != Some(*v))
            .map(|(s, v)| {
                format!(
                    "{} is {:?}, expected {v}",
                    s.as_ref(),
                    sample(&text, s.as_ref())
                )
            })
            .collect();
        if wrong.is_empty() {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "after 20 s: {wrong:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
