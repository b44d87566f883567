//! Health and graceful shutdown: the health service answers SERVING; on shutdown the service stops
//! accepting, the decision consumer finishes, and the outbox is flushed to JetStream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[tokio::test]
async fn health_reports_serving_and_shutdown_flushes_the_outbox() {
    let mut app = spawn_app().await;
    rz_stack::assert_serving(&app.a.channel).await;

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
    let pending = rz_stack::unpublished(&pool).await;
    assert_eq!(pending, 0, "the relay flushed the outbox before exiting");
    let messages = rz_stack::stream_messages(&app.env.nats_url, &app.namespace, "assignment").await;
    assert_eq!(
        messages, 2,
        "issued to the provider and the lifecycle event"
    );
}
