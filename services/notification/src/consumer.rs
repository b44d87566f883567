//! Turns assignment events into deliveries: the durable consumer `notification-webhooks` on
//! `<ns>.assignment.>` writes one delivery row per (event, matching subscription) in the
//! transaction that records the event in the inbox, so an event is matched exactly once.

use rz_eventing::{ConsumerSpec, Event, HandleError, Handler, Namespace};
use sqlx::PgConnection;

use crate::store;
use crate::webhook::{self, CloudEvent, Filters, Route};

pub const CONSUMER: &str = "notification-webhooks";
pub const ASSIGNMENT: &str = "assignment";

pub fn consumer_spec(ns: &Namespace) -> ConsumerSpec {
    ConsumerSpec::new(
        CONSUMER,
        ns.stream_name(ASSIGNMENT),
        format!("{}.{ASSIGNMENT}.>", ns.as_str()),
    )
}

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
        let subscriptions = store::subscriptions_of(tx, agb).await?;
        if subscriptions.is_empty() {
            return Ok(());
        }
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
        let mut queued = false;
        for s in subscriptions {
            let filters = Filters {
                event_types: s.event_types,
                municipalities: s.municipalities,
                segments: s.segments,
            };
            if !filters.matches(&event.event_type, &route, &payload.segments) {
                continue;
            }
            store::insert_delivery(
                tx,
                &store::NewDelivery {
                    subscription_id: s.id,
                    agb_code: agb,
                    event_id: event.id,
                    event_type: &event.event_type,
                    event_subject: &event.subject,
                    body: &body,
                },
            )
            .await?;
            tracing::debug!(subscription = %s.id, event_id = %event.id, "delivery queued");
            queued = true;
        }
        if queued {
            store::announce_deliveries(tx).await?;
        }
        Ok(())
    }
}
