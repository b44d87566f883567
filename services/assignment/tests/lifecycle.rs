//! Health and graceful shutdown: the health service answers SERVING; on shutdown the service stops
//! accepting, the decision consumer finishes, and the outbox is flushed to JetStream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn health_reports_serving_and_shutdown_flushes_the_outbox() {
    let mut app = spawn_app().await;
    let mut health = HealthClient::new(app.a.channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");

    app.import(&bsn(1), P1, "2022-07-01", "2022-12-31", false)
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect_with(app.a.pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    app.a
        .stack
        .assignment_service()
        .stop()
        .await
        .expect("stops within the grace period");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pending, 0, "the relay flushed the outbox before exiting");
    let (_c, js) = rz_eventing::connect(&app.env.nats_url, "check")
        .await
        .unwrap();
    let info = js
        .get_stream(format!("{}_ASSIGNMENT", app.namespace.to_uppercase()))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert_eq!(
        info.messages, 2,
        "issued to the provider and the lifecycle event"
    );
}
