//! The service's own Prometheus metrics (besides the platform's, see [`rz_platform::metrics`]):
//! the webhook and letter queues sampled from their tables, webhook and letter attempts by
//! outcome, and the webhook delivery latency.
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `rz_webhook_deliveries` | `state`: `pending`, `retrying`, `failed` | deliveries waiting for their first attempt, waiting for a retry (an attempt failed), given up (failed for good, until replayed) |
//! | `rz_webhook_oldest_pending_age_seconds` | | how long the oldest delivery not yet delivered (pending or retrying) has waited |
//! | `rz_webhook_delivery_attempts_total` | `outcome`: `ok`, `retry`, `gave_up` | POSTs by what came of them |
//! | `rz_webhook_delivery_latency_seconds` | | from queueing the delivery (in the transaction that took in the event) to its recorded success |
//! | `rz_letters` | `state`: `pending`, `retrying`, `failed` | letters not sent yet (with the channel `none` they stay pending), waiting for a retry, given up |
//! | `rz_letter_attempts_total` | `outcome`: `ok`, `retry`, `gave_up` | attempts to send a letter |
//!
//! Every state and outcome is served from the start, 0 included. No label names a provider, a
//! receiver URL, a municipality or a resident.

use rz_platform::metrics::{CounterVec, GaugeVec, Metrics, SecondsGauge, SecondsHistogram};
use sqlx::PgPool;

/// The states of a queue, as the gauges label them.
pub const STATES: [&str; 3] = ["pending", "retrying", "failed"];

/// What came of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered or sent.
    Ok,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Failed for good (the retry budget spent, or a permanent error).
    GaveUp,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Retry => "retry",
            Self::GaveUp => "gave_up",
        }
    }
}

const OUTCOMES: [&[&str]; 3] = [&["ok"], &["retry"], &["gave_up"]];

/// The counters of the webhook delivery worker.
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    attempts: CounterVec,
    latency: SecondsHistogram,
}

impl WebhookMetrics {
    pub fn attempt(&self, outcome: Outcome) {
        self.attempts.inc(&[outcome.label()]);
    }

    /// A delivery recorded as delivered `seconds` after it was queued.
    pub fn delivered_after(&self, seconds: f64) {
        self.latency.observe(seconds.max(0.0));
    }
}

/// The counters of the letter dispatcher.
#[derive(Debug, Clone)]
pub struct LetterMetrics {
    attempts: CounterVec,
}

impl LetterMetrics {
    pub fn attempt(&self, outcome: Outcome) {
        self.attempts.inc(&[outcome.label()]);
    }
}

/// The service's metrics, registered with the platform's.
#[derive(Debug, Clone)]
pub struct NotificationMetrics {
    deliveries: GaugeVec,
    oldest_delivery: SecondsGauge,
    letters: GaugeVec,
    pub webhooks: WebhookMetrics,
    pub letter_attempts: LetterMetrics,
}

impl NotificationMetrics {
    /// Registers every metric of the module's table with `metrics`, each state and outcome at 0.
    pub fn register(metrics: &Metrics) -> Self {
        let deliveries = metrics.gauges(
            "rz_webhook_deliveries",
            "Webhook deliveries by state: pending (no attempt yet), retrying (waiting for the next \
             attempt), failed (given up, until replayed)",
            &["state"],
        );
        let oldest_delivery = metrics.seconds_gauge(
            "rz_webhook_oldest_pending_age",
            "How long the oldest webhook delivery not yet delivered has waited (0 when none)",
        );
        let letters = metrics.gauges(
            "rz_letters",
            "Residents' letters by state: pending (not sent yet), retrying (waiting for the next \
             attempt), failed (given up)",
            &["state"],
        );
        for state in STATES {
            deliveries.set(&[state], 0);
            letters.set(&[state], 0);
        }
        let attempts = metrics.counters(
            "rz_webhook_delivery_attempts",
            "Webhook POSTs by outcome: ok (delivered), retry (failed, tried again later), gave_up \
             (failed for good)",
            &["outcome"],
            &OUTCOMES,
        );
        // 10 ms .. about 11.6 hours (the retry window is 6 hours by default).
        let latency = metrics.seconds_histogram(
            "rz_webhook_delivery_latency",
            "From queueing a webhook delivery (the event's arrival) to its recorded success",
            rz_platform::metrics::exponential_buckets(0.01, 4.0, 12),
        );
        let letter_attempts = metrics.counters(
            "rz_letter_attempts",
            "Attempts to send a resident's letter by outcome: ok, retry, gave_up",
            &["outcome"],
            &OUTCOMES,
        );
        Self {
            deliveries,
            oldest_delivery,
            letters,
            webhooks: WebhookMetrics { attempts, latency },
            letter_attempts: LetterMetrics {
                attempts: letter_attempts,
            },
        }
    }

    /// Samples the two queues from `pool` with every round of the platform's sampler.
    pub fn sample_from(&self, metrics: &Metrics, pool: PgPool) {
        let this = self.clone();
        metrics.sample_with(move || {
            let (this, pool) = (this.clone(), pool.clone());
            async move { this.sample(&pool).await }
        });
    }

    /// Reads the queues once: two statements, each through the partial indexes of the pending
    /// and the failed rows (`deliveries_due`, `deliveries_failed`, `letters_due`,
    /// `letters_failed`). A failed read keeps the previous values.
    pub async fn sample(&self, pool: &PgPool) {
        match crate::store::delivery_queue(pool).await {
            Ok(q) => {
                self.deliveries.set(&["pending"], q.pending);
                self.deliveries.set(&["retrying"], q.retrying);
                self.deliveries.set(&["failed"], q.failed);
                self.oldest_delivery.set(q.oldest_pending_secs.max(0.0));
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample the webhook deliveries"),
        }
        match crate::store::letter_queue(pool).await {
            Ok(q) => {
                self.letters.set(&["pending"], q.pending);
                self.letters.set(&["retrying"], q.retrying);
                self.letters.set(&["failed"], q.failed);
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample the letters"),
        }
    }
}
