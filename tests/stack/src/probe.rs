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
