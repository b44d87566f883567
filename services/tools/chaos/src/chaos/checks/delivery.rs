//! The invariants of delivery: outboxes drained, issued events received once in effect, webhooks
//! delivered, nothing dead-lettered.

use rz_eventing::Namespace;
use rz_eventing::dlq::DeadLetters;
use sqlx::Row;

use super::{Checker, Invariant, db_err};
use crate::chaos::receiver::ReceiverState;
use crate::chaos::webhooks::WebhookState;

impl Checker {
    pub(super) async fn outboxes_drained(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "outboxes_drained",
            "every event written to a service's outbox was published",
        );
        for (service, db) in &self.pools {
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(db)
                .await
                .map_err(db_err(service))?;
            let stuck: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(db)
                    .await
                    .map_err(db_err(service))?;
            inv.checked += total as usize;
            if stuck > 0 {
                inv.lost += stuck as usize;
                inv.violations.push(format!(
                    "{service}: {stuck} of {total} events never published"
                ));
            }
        }
        Ok(inv)
    }

    pub(super) async fn issued_events_received(
        &self,
        receiver: &ReceiverState,
    ) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "issued_received",
            "every issued event reached the provider receiver at least once",
        );
        for (id, subject) in self.issued_events().await? {
            inv.checked += 1;
            if !receiver.applied.contains(&id) {
                inv.lost += 1;
                inv.violations.push(format!(
                    "event {id} on {subject} never reached the receiver"
                ));
            }
        }
        for (m, n, reason) in &receiver.start_refused {
            inv.violations.push(format!(
                "start of care of assignment {n} in {m} refused: {reason}"
            ));
        }
        Ok(inv)
    }

    pub(super) async fn webhooks_delivered(
        &self,
        webhooks: &WebhookState,
    ) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "webhooks_delivered",
            "every event addressed to a provider reached its webhook, signed, at least once",
        );
        for (id, subject) in self.provider_events().await? {
            inv.checked += 1;
            if !webhooks.received.contains(&id) {
                inv.lost += 1;
                inv.violations.push(format!(
                    "event {id} on {subject} never reached the provider's webhook"
                ));
            }
        }
        for (agb, id) in &webhooks.bad_signatures {
            inv.violations.push(format!(
                "delivery of {id} to {agb} had a missing or wrong signature"
            ));
        }
        let failed = sqlx::query(
            "SELECT agb_code, event_id::text, attempts, COALESCE(last_error, '') FROM deliveries
             WHERE status = 'failed'",
        )
        .fetch_all(self.db("notification")?)
        .await
        .map_err(db_err("failed deliveries"))?;
        for r in failed {
            inv.violations.push(format!(
                "delivery of {} to {} failed for good after {} attempts: {}",
                r.get::<String, _>(1),
                r.get::<String, _>(0),
                r.get::<i32, _>(2),
                r.get::<String, _>(3)
            ));
        }
        Ok(inv)
    }

    pub(super) async fn nothing_dead_lettered(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "no_dead_letters",
            "nothing sits unexplained in the dead-letter stream",
        );
        let ns = Namespace::new(&self.sources.namespace)?;
        let (client, js) = rz_eventing::connect(&self.sources.nats_url, "chaos-checks")
            .await
            .map_err(|e| e.to_string())?;
        let letters = DeadLetters::new(js, ns)
            .list()
            .await
            .map_err(|e| format!("dead letters: {e}"))?;
        inv.checked = letters.len();
        for l in letters {
            inv.violations.push(format!(
                "dead letter seq {} event {} ({}) of consumer {} after {} attempts: {}",
                l.sequence, l.event_id, l.event_type, l.consumer, l.attempts, l.reason
            ));
        }
        let _ = client.drain().await;
        Ok(inv)
    }
}

pub(super) fn no_duplicated_effects(receiver: &ReceiverState) -> Invariant {
    let mut inv = Invariant::new(
        "no_duplicated_effects",
        "the receiver, deduplicating by event id, never applied one assignment twice",
    );
    inv.checked = receiver.applied.len();
    for (m, n, first, second) in &receiver.duplicated {
        inv.violations.push(format!(
            "assignment {n} in {m} arrived as event {first} and again as a different event {second}"
        ));
    }
    inv
}
