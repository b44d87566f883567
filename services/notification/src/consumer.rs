//! Turns assignment events into deliveries: the durable consumer `notification-webhooks` on
//! `<ns>.assignment.>` writes one delivery row per (event, matching subscription) in the
//! transaction that records the event in the inbox, so an event is matched exactly once.

use rz_eventing::{ConsumerSpec, Event, HandleError, Handler, Namespace};
use sqlx::PgConnection;

use crate::store;
use crate::webhook::{self, CloudEvent, Route};

pub const CONSUMER: &str = "notification-webhooks";
pub const ASSIGNMENT: &str = "assignment";

/// The subject token that names the provider (`<ns>.assignment.<municipality>.<agb>.<event>`).
const AGB_TOKEN: usize = 3;

/// Partitioned by provider: one provider's events are matched in stream order, different
/// providers' at the same time (their deliveries do not depend on each other), so the matcher is
/// not one transaction after another while a burst of events comes in.
pub fn consumer_spec(ns: &Namespace) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        CONSUMER,
        ns.stream_name(ASSIGNMENT),
        format!("{}.{ASSIGNMENT}.>", ns.as_str()),
    );
    spec.partition_token = Some(AGB_TOKEN);
    spec.partitions = PARTITIONS;
    spec
}

/// Transactions of the matcher at once (each holds a database connection while it runs).
const PARTITIONS: usize = 6;

pub struct WebhookMatcher;

impl Handler for WebhookMatcher {
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        let Some(route) = Route::from_subject(&event.nats_subject) else {
            return Ok(());
        };
        // Providers only get their own events: the provider AGB is the subject token.
        let Some(agb) = route.agb.as_deref() else {
            return Ok(());
        };
        let payload = webhook::payload(&event.event_type, &event.payload);
        let body = webhook::render(
            &CloudEvent {
                id: event.id,
                event_type: &event.event_type,
                source: &event.source,
                subject: &event.subject,
                time: event.time,
            },
            payload.data,
            &event.payload,
        );
        // The provider's subscriptions are matched, the deliveries written and the workers woken
        // in one statement (the filters as `Filters::matches` states them).
        let queued = store::queue_deliveries(
            tx,
            &store::EventToQueue {
                agb_code: agb,
                event_id: event.id,
                event_type: &event.event_type,
                short_type: &route.event,
                event_subject: &event.subject,
                municipality: &route.municipality,
                segments: &payload.segments,
                body: &body,
            },
        )
        .await?;
        if queued > 0 {
            tracing::debug!(event_id = %event.id, deliveries = queued, "deliveries queued");
        }
        Ok(())
    }
}
