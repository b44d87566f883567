//! Turns assignment events into deliveries: the durable consumer `notification-webhooks` on
//! `<ns>.assignment.>` writes one delivery row per (event, matching subscription) in the
//! transaction that records the event in the inbox, so an event is matched exactly once.

use std::sync::Arc;

use rz_eventing::{ConsumerSpec, Event, HandleError, Handler, Namespace};
use sqlx::PgConnection;

use crate::secrets::Keyring;
use crate::store;
use crate::webhook::{self, CloudEvent, Route};

pub const CONSUMER: &str = "notification-webhooks";
pub const ASSIGNMENT: &str = rz_proto::events::assignment::CONTEXT;

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

/// Writes the deliveries of the events, their bodies sealed under the keyring's current key.
pub struct WebhookMatcher {
    keys: Arc<Keyring>,
}

impl WebhookMatcher {
    pub fn new(keys: Arc<Keyring>) -> Self {
        Self { keys }
    }
}

/// What the matcher needs of one event: its route (the provider AGB is a subject token) and the
/// CloudEvent body as it is POSTed.
struct Rendered<'a> {
    event: &'a Event,
    route: Route,
    segments: Vec<String>,
    body: String,
}

/// `None`: not an event for a provider (nothing is rendered for it).
fn render(event: &Event) -> Option<Rendered<'_>> {
    let route = Route::from_subject(&event.nats_subject)?;
    // Providers only get their own events: the provider AGB is the subject token.
    route.agb.as_ref()?;
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
    Some(Rendered {
        event,
        route,
        segments: payload.segments,
        body,
    })
}

/// Matches the events' providers' subscriptions and writes the deliveries in one statement (the
/// filters as `Filters::matches` states them), which also wakes the delivery workers.
async fn queue(
    tx: &mut PgConnection,
    keys: &Keyring,
    events: &[&Event],
) -> Result<u64, HandleError> {
    let rendered: Vec<Rendered<'_>> = events.iter().filter_map(|e| render(e)).collect();
    let queue: Vec<store::EventToQueue<'_>> = rendered
        .iter()
        .filter_map(|r| {
            Some(store::EventToQueue {
                agb_code: r.route.agb.as_deref()?,
                event_id: r.event.id,
                event_type: &r.event.event_type,
                short_type: &r.route.event,
                event_subject: &r.event.subject,
                municipality: &r.route.municipality,
                segments: &r.segments,
                body: &r.body,
            })
        })
        .collect();
    let queued = store::queue_deliveries(tx, keys, &queue).await?;
    if queued > 0 {
        tracing::debug!(
            events = queue.len(),
            deliveries = queued,
            "deliveries queued"
        );
    }
    Ok(queued)
}

impl Handler for WebhookMatcher {
    /// A batch of events is matched by one statement.
    const BATCHES: bool = true;

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> Result<(), HandleError> {
        queue(tx, &self.keys, &[event]).await.map(|_| ())
    }

    /// The statement covers the whole batch, so a failure cannot name an event: it is reported
    /// at the first one.
    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        events: &[&Event],
    ) -> Result<(), (usize, HandleError)> {
        queue(tx, &self.keys, events)
            .await
            .map(|_| ())
            .map_err(|e| (0, e))
    }
}
