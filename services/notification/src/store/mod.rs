//! The SQL: subscriptions, deliveries (claimed with `FOR UPDATE SKIP LOCKED` under a lease so
//! replicas share the work), operator alerts, residents' letters and staff alerts.
//!
//! One file per section; callers use the items re-exported here (`store::claim_due`, ...).

mod deliveries;
mod letter_dispatch;
mod letters;
mod queues;
mod staff_alerts;
mod subscriptions;

pub use deliveries::{
    Claimed, DELIVERIES_WRITTEN, DeliveryRow, EventToQueue, NewDelivery, claim_due, delivery,
    failed_deliveries, insert_delivery, mark_delivered, mark_delivered_many, mark_failed,
    queue_deliveries, replay,
};
pub use letter_dispatch::{StoredLetter, claim_due_letters, mark_letter_failed, mark_letter_sent};
pub use letters::{
    LetterRow, NewLetter, decision_letter_exists, ending_letter_exists, insert_letter, letter,
    letters,
};
pub use queues::{Queue, schedule_retry};
pub use staff_alerts::{AlertCounts, AlertRow, SeenDeadline, apply_alert_scan, staff_alerts};
pub use subscriptions::{
    SubscriptionRow, delete_subscription, insert_subscription, subscription, subscriptions_of,
};

use rz_platform::db::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "outbox_inbox",
        sql: rz_eventing::MIGRATION_SQL,
    },
    Migration {
        version: 2,
        name: "webhooks",
        sql: include_str!("../../migrations/0002_webhooks.sql"),
    },
    Migration {
        version: 3,
        name: "letters",
        sql: include_str!("../../migrations/0003_letters.sql"),
    },
    Migration {
        version: 4,
        name: "decisions_alerts",
        sql: include_str!("../../migrations/0004_decisions_alerts.sql"),
    },
    Migration {
        version: 5,
        name: "letter_dispatch",
        sql: include_str!("../../migrations/0005_letter_dispatch.sql"),
    },
    Migration {
        version: 6,
        name: "outbox_wake",
        sql: rz_eventing::OUTBOX_WAKE_SQL,
    },
    Migration {
        version: 7,
        name: "outbox_vacuum",
        sql: rz_eventing::OUTBOX_VACUUM_SQL,
    },
    Migration {
        version: 8,
        name: "queue_vacuum",
        sql: include_str!("../../migrations/0008_queue_vacuum.sql"),
    },
];
