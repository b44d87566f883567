//! The queue metrics as Prometheus reads them: notification with `[metrics] listen` serves
//! `GET /metrics`; every state and outcome is there at 0 from the start; a delivery to a receiver
//! that answers 204 counts an `ok` attempt and one latency observation; a delivery to a receiver
//! that keeps failing is `retrying` (1, as the table has it) and then, its budget spent,
//! `failed`; the letters written for the events are `pending` (the channel is `none`). No label
//! names a provider, a receiver's address or a resident.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Receiver, spawn_app_with};
use rz_stack::{free_addr, sample, scrape_until};
use sqlx::PgPool;

const AGB_OK: &str = "12345678";
const AGB_FAILING: &str = "87654321";

/// (pending, retrying, failed) of a queue table, as the gauges should show it.
async fn table(pool: &PgPool, table: &str) -> (i64, i64, i64) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FILTER (WHERE status = 'pending' AND attempts = 0),
                count(*) FILTER (WHERE status = 'pending' AND attempts > 0),
                count(*) FILTER (WHERE status = 'failed')
         FROM {table}"
    )))
    .fetch_one(pool)
    .await
    .unwrap()
}

fn gauges(text: &str, metric: &str) -> (i64, i64, i64) {
    let g = |state: &str| {
        sample(text, &format!("{metric}{{state=\"{state}\"}}"))
            .unwrap_or_else(|| panic!("no {metric}{{state=\"{state}\"}} in\n{text}")) as i64
    };
    (g("pending"), g("retrying"), g("failed"))
}

#[tokio::test]
async fn webhook_and_letter_queues_attempts_and_latency_are_served_as_the_tables_have_them() {
    let metrics = free_addr();
    let mut app = spawn_app_with(move |c| {
        c.metrics.listen = Some(metrics);
        c.metrics.sample_secs = 1;
        // Room to see the failing delivery retrying: 6 s to its second and last attempt.
        c.webhooks.initial_backoff_ms = 6_000;
        c.webhooks.max_backoff_ms = 6_000;
        c.webhooks.max_attempts = 2;
    })
    .await;

    // Before anything happened: every state and outcome at 0, the histogram empty.
    let text = scrape_until(
        metrics,
        &[
            ("rz_webhook_deliveries{state=\"pending\"}", 0.0),
            ("rz_webhook_deliveries{state=\"retrying\"}", 0.0),
            ("rz_webhook_deliveries{state=\"failed\"}", 0.0),
            ("rz_webhook_oldest_pending_age_seconds", 0.0),
            ("rz_webhook_delivery_attempts_total{outcome=\"ok\"}", 0.0),
            ("rz_webhook_delivery_attempts_total{outcome=\"retry\"}", 0.0),
            (
                "rz_webhook_delivery_attempts_total{outcome=\"gave_up\"}",
                0.0,
            ),
            ("rz_webhook_delivery_latency_seconds_count", 0.0),
            ("rz_letters{state=\"pending\"}", 0.0),
            ("rz_letters{state=\"retrying\"}", 0.0),
            ("rz_letters{state=\"failed\"}", 0.0),
            ("rz_letter_attempts_total{outcome=\"ok\"}", 0.0),
            ("rz_letter_attempts_total{outcome=\"retry\"}", 0.0),
            ("rz_letter_attempts_total{outcome=\"gave_up\"}", 0.0),
        ],
    )
    .await;
    assert!(text.contains("# TYPE rz_webhook_delivery_latency_seconds histogram"));

    // A receiver that answers 204: one attempt `ok`, one latency observation.
    let ok = Receiver::start(0).await;
    app.subscribe(AGB_OK, &ok.url("/hook"), &[], &[], &[]).await;
    app.publish_assignment("0222", AGB_OK, "issued", 41, "IAJ")
        .await;
    app.wait_delivered(1).await;
    let text = scrape_until(
        metrics,
        &[
            ("rz_webhook_delivery_attempts_total{outcome=\"ok\"}", 1.0),
            ("rz_webhook_delivery_latency_seconds_count", 1.0),
            ("rz_webhook_deliveries{state=\"pending\"}", 0.0),
        ],
    )
    .await;
    let latency = sample(&text, "rz_webhook_delivery_latency_seconds_sum").unwrap();
    let queued_to_delivered: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM delivered_at - created_at)::float8 FROM deliveries
         WHERE status = 'delivered'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        latency > 0.0 && (latency - queued_to_delivered).abs() < 0.05,
        "latency {latency} s, the table says {queued_to_delivered} s"
    );

    // A receiver that keeps failing: after the first attempt the delivery waits for its retry.
    let failing = Receiver::start(usize::MAX).await;
    app.subscribe(AGB_FAILING, &failing.url("/hook"), &[], &[], &[])
        .await;
    app.publish_assignment("0222", AGB_FAILING, "issued", 42, "IAJ")
        .await;
    let text = scrape_until(
        metrics,
        &[
            ("rz_webhook_deliveries{state=\"retrying\"}", 1.0),
            ("rz_webhook_deliveries{state=\"pending\"}", 0.0),
            ("rz_webhook_deliveries{state=\"failed\"}", 0.0),
            ("rz_webhook_delivery_attempts_total{outcome=\"retry\"}", 1.0),
        ],
    )
    .await;
    assert_eq!(
        gauges(&text, "rz_webhook_deliveries"),
        table(&app.pool, "deliveries").await
    );
    assert!(sample(&text, "rz_webhook_oldest_pending_age_seconds").unwrap() > 0.0);

    // Its second attempt fails too: given up, the operator alert raised.
    let text = scrape_until(
        metrics,
        &[
            ("rz_webhook_deliveries{state=\"retrying\"}", 0.0),
            ("rz_webhook_deliveries{state=\"failed\"}", 1.0),
            ("rz_webhook_delivery_attempts_total{outcome=\"retry\"}", 1.0),
            (
                "rz_webhook_delivery_attempts_total{outcome=\"gave_up\"}",
                1.0,
            ),
            ("rz_webhook_delivery_attempts_total{outcome=\"ok\"}", 1.0),
            ("rz_webhook_oldest_pending_age_seconds", 0.0),
        ],
    )
    .await;
    assert_eq!(
        gauges(&text, "rz_webhook_deliveries"),
        table(&app.pool, "deliveries").await
    );
    assert_eq!(table(&app.pool, "deliveries").await, (0, 0, 1));
    assert_eq!(failing.received().len(), 2);

    // Each `issued` event wrote a letter to the resident; without a channel both stay pending.
    app.letters("0222", "provider_assigned", 2).await;
    let text = scrape_until(metrics, &[("rz_letters{state=\"pending\"}", 2.0)]).await;
    assert_eq!(
        gauges(&text, "rz_letters"),
        table(&app.pool, "letters").await
    );

    // No label names a provider, a receiver or a resident.
    for secret in [AGB_OK, AGB_FAILING, "127.0.0.1", "999990019", "Jansen"] {
        let leaked: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(secret))
            .collect();
        assert!(leaked.is_empty(), "{secret} in {leaked:?}");
    }
    app.stop().await;
}
