//! Health and graceful shutdown: the health service answers SERVING, and on shutdown the service
//! stops accepting, finishes, and flushes its outbox to JetStream before it exits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::spawn_app;
use rz_proto::registration::v1 as pb;

#[tokio::test]
async fn health_reports_serving_and_shutdown_flushes_the_outbox() {
    let mut app = spawn_app().await;
    app.register("03000555", "Afsluit BV").await;

    app.stack
        .registration_service()
        .stop()
        .await
        .expect("stops within the grace period");

    let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
    let pending = rz_stack::unpublished(&pool).await;
    assert_eq!(pending, 0, "the relay flushed the outbox before exiting");
    let messages = rz_stack::stream_messages(&app.nats_url, &app.namespace, "registration").await;
    assert_eq!(messages, 1);
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
    rz_stack::assert_serving(&app.channel).await;
}
