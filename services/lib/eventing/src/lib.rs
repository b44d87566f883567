//! The event machinery every regiozorg service shares.
//!
//! - [`outbox`]: a state change and its event are written in one database transaction; the
//!   [`relay::OutboxRelay`] publishes them to JetStream with the event id as `Nats-Msg-Id` and marks
//!   a row sent only after JetStream acknowledged it.
//! - [`consumer::EventConsumer`]: a durable pull consumer that applies an event and records its id in
//!   the inbox in one transaction before it acks, so a redelivered or duplicated event has no second
//!   effect; after a bounded number of attempts the event goes to the dead-letter stream with its
//!   reason, where [`dlq::DeadLetters`] lets an operator list and replay it.
//! - [`envelope`]: one envelope for every event, CloudEvents 1.0 in binary mode (`ce-*` headers, a
//!   protobuf body), with the W3C `traceparent`.
//! - [`subjects`]: `<namespace>.<context>.<municipality|_>.<provider AGB|_>.<event>`, so subject
//!   permissions can confine a provider or a municipality to its own events.
//! - [`Shutdown`]: the signal the relay and the consumers stop on. The service runner that starts
//!   and stops them in order is `rz_platform::runner`, which builds on this crate.

pub mod consumer;
pub mod dlq;
pub mod envelope;
pub mod outbox;
pub mod relay;
pub mod shutdown;
pub mod subjects;
pub mod wake;

pub use consumer::{ConsumerSpec, EventConsumer, HandleError, Handler};
pub use envelope::{Event, NewEvent};
pub use shutdown::Shutdown;
pub use subjects::Namespace;

use std::time::Duration;

use async_nats::jetstream;

/// SQL creating the outbox and inbox tables: migration [`OUTBOX_INBOX`].
pub const MIGRATION_SQL: &str = include_str!("../migrations/outbox_inbox.sql");
/// SQL dropping the outbox's NOTIFY trigger (see the file for why): migration [`OUTBOX_WAKE`].
pub const OUTBOX_WAKE_SQL: &str = include_str!("../migrations/outbox_wake.sql");
/// SQL making autovacuum clean the outbox after a fixed number of changed rows rather than a share of
/// the table (see the file for why): migration [`OUTBOX_VACUUM`].
pub const OUTBOX_VACUUM_SQL: &str = include_str!("../migrations/outbox_vacuum.sql");

/// A migration of the outbox and inbox that every service database runs, under the same version
/// and name everywhere. A service lists each of [`SHARED_MIGRATIONS`] among its own migrations
/// (`rz_platform::db::Migration::shared`); versions up to [`SHARED_VERSIONS_END`] are reserved for
/// them, and a service numbers its own migrations above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedMigration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The outbox and inbox tables.
pub const OUTBOX_INBOX: SharedMigration = SharedMigration {
    version: 1,
    name: "outbox_inbox",
    sql: MIGRATION_SQL,
};
/// No NOTIFY trigger on the outbox.
pub const OUTBOX_WAKE: SharedMigration = SharedMigration {
    version: 2,
    name: "outbox_wake",
    sql: OUTBOX_WAKE_SQL,
};
/// Autovacuum of the outbox after a fixed number of changed rows.
pub const OUTBOX_VACUUM: SharedMigration = SharedMigration {
    version: 3,
    name: "outbox_vacuum",
    sql: OUTBOX_VACUUM_SQL,
};
/// Every shared migration, in version order.
pub const SHARED_MIGRATIONS: &[SharedMigration] = &[OUTBOX_INBOX, OUTBOX_WAKE, OUTBOX_VACUUM];
/// The last version reserved for [`SHARED_MIGRATIONS`].
pub const SHARED_VERSIONS_END: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum EventingError {
    #[error("nats: {0}")]
    Nats(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("malformed event: {0}")]
    Malformed(String),
}

impl EventingError {
    pub(crate) fn nats(e: impl std::fmt::Display) -> Self {
        Self::Nats(e.to_string())
    }
}

/// Connects to NATS and returns the client (drain it on shutdown) and its JetStream context.
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<(async_nats::Client, jetstream::Context), EventingError> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(EventingError::nats)?;
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// Creates (or finds) the stream that holds one bounded context's events:
/// `<NS>_<CONTEXT>` over `<ns>.<context>.>`, file storage, a 2-minute duplicate window.
pub async fn ensure_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    context: &str,
    replicas: usize,
) -> Result<jetstream::stream::Stream, EventingError> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: ns.stream_name(context),
        subjects: vec![format!("{}.{context}.>", ns.as_str())],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .map_err(EventingError::nats)
}

/// The NATS client crate, re-exported so services use the same copy.
pub use async_nats as nats;
