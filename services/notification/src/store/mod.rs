//! The SQL: subscriptions, deliveries (claimed with `FOR UPDATE SKIP LOCKED` under a lease so
//! replicas share the work), operator alerts, residents' letters and staff alerts.
//!
//! One file per section; callers use the items re-exported here (`store::claim_due`, ...).

mod deliveries;
mod letter_dispatch;
mod letters;
mod queues;
mod sealing;
mod staff_alerts;
mod subscriptions;

pub use deliveries::{
    Claimed, DELIVERIES_WRITTEN, DeliveryRow, EventToQueue, NewDelivery, SealedBodies, claim_due,
    delivery, failed_deliveries, insert_delivery, mark_delivered, mark_delivered_many,
    mark_delivered_timed, mark_failed, queue_deliveries, replay, seal_delivery_bodies,
};
pub use letter_dispatch::{StoredLetter, claim_due_letters, mark_letter_failed, mark_letter_sent};
pub use letters::{
    LetterRow, NewLetter, decision_letter_exists, ending_letter_exists, insert_letter,
    insert_letters, letter, letters, seal_letter_texts,
};
pub use queues::{Queue, QueueSize, delivery_queue, letter_queue, schedule_retry};
pub use sealing::{SealRowError, TextError};
pub use staff_alerts::{AlertCounts, AlertRow, SeenDeadline, apply_alert_scan, staff_alerts};
pub use subscriptions::{
    SubscriptionRow, delete_subscription, insert_subscription, reseal_secrets, set_secret,
    subscription, subscriptions_of,
};

use rz_platform::db::Migration;

/// The shared eventing migrations under their one version, then the service's own (versions
/// above `rz_eventing::SHARED_VERSIONS_END`, each file named after its version).
pub const MIGRATIONS: &[Migration] = rz_platform::migrations![
    101 "webhooks" => "0101_webhooks.sql",
    102 "letters" => "0102_letters.sql",
    103 "decisions_alerts" => "0103_decisions_alerts.sql",
    104 "letter_dispatch" => "0104_letter_dispatch.sql",
    105 "queue_vacuum" => "0105_queue_vacuum.sql",
    106 "sealed_secrets" => "0106_sealed_secrets.sql",
    107 "sealed_bodies" => "0107_sealed_bodies.sql",
];
