//! Health and graceful shutdown: the health service answers SERVING, and on shutdown the service
//! stops accepting, finishes, and flushes its outbox to JetStream before it exits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::spawn_app;
use rz_proto::registration::v1 as pb;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn health_reports_serving_and_shutdown_flushes_the_outbox() {
    let mut app = spawn_app().await;
    app.register("03000555", "Afsluit BV").await;

    app.stack
        .registration_service()
        .stop()
        .await
        .expect("stops within the grace period");

    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&sqlx::PgPool::connect(&app.db_url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(pending, 0, "the relay flushed the outbox before exiting");
    let (_c, js) = rz_eventing::connect(&app.nats_url, "check").await.unwrap();
    let stream = format!("{}_REGISTRATION", app.namespace.to_uppercase());
    let info = js
        .get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert_eq!(info.messages, 1);
    assert!(
        app.client
            .get_catalogue(pb::GetCatalogueRequest {})
            .await
            .is_err(),
        "no longer serving"
    );
}

#[tokio::test]
async fn the_health_service_answers() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
}
