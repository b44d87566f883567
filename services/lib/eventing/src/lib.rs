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
//! - [`auth`]: NATS credentials (nkey seed or creds file, TLS) for [`connect_with`], and the
//!   region's nats-server authorisation (an account, a user per service and per provider).
//! - [`Shutdown`]: the signal the relay and the consumers stop on. The service runner that starts
//!   and stops them in order is `rz_platform::runner`, which builds on this crate.

pub mod auth;
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
    /// NATS credentials that cannot be used (unreadable or malformed seed, creds file).
    #[error("nats credentials: {0}")]
    Credentials(String),
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

/// Connects to NATS as the user of `auth` (an nkey seed or creds file, TLS; see [`auth`]) and
/// returns the client and its JetStream context. Like [`connect`] it keeps trying while the server
/// is unreachable; a refused credential or permission is logged (`nats server error`) as the
/// server reports it, and requests then fail.
pub async fn connect_with(
    url: &str,
    name: &str,
    auth: &auth::NatsAuth,
) -> Result<(async_nats::Client, jetstream::Context), EventingError> {
    let client = auth::connect_options(name, auth)
        .await?
        .retry_on_initial_connect()
        .event_callback(|event| async move {
            match event {
                async_nats::Event::ServerError(e) => {
                    tracing::warn!(error = %e, "nats server error");
                }
                async_nats::Event::ClientError(e) => {
                    tracing::warn!(error = %e, "nats client error");
                }
                _ => {}
            }
        })
        .connect(url)
        .await
        .map_err(EventingError::nats)?;
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// The bounded contexts whose events carry personal data: assignment's events addressed to a
/// provider carry the client's BSN, name and address (the standard's 301 content). Their streams
/// keep events for [`StreamSettings::personal_max_age`], and the outbox relay deletes their rows
/// as soon as JetStream has them.
pub const PERSONAL_DATA_CONTEXTS: &[&str] = &["assignment"];

/// Whether events of `context` carry personal data (see [`PERSONAL_DATA_CONTEXTS`]).
pub fn carries_personal_data(context: &str) -> bool {
    PERSONAL_DATA_CONTEXTS.contains(&context)
}

/// How the streams are kept: replicas and retention, from `[nats]` (`rz_platform::config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Replicas of every stream, the dead-letter stream included (3 in a cluster).
    pub replicas: usize,
    /// How long a stream of events without personal data keeps them.
    pub max_age: Duration,
    /// How long a stream of events with personal data ([`PERSONAL_DATA_CONTEXTS`]) keeps them.
    pub personal_max_age: Duration,
    /// How long the dead-letter stream keeps a dead letter (they may copy a personal payload).
    pub dead_letter_max_age: Duration,
    /// At most this many bytes per stream; when full, a publish is refused (the outbox keeps the
    /// event and retries) rather than an older event dropped. `None`: no limit.
    pub max_bytes: Option<i64>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            replicas: 1,
            max_age: Duration::from_secs(30 * DAY),
            personal_max_age: Duration::from_secs(7 * DAY),
            dead_letter_max_age: Duration::from_secs(14 * DAY),
            max_bytes: None,
        }
    }
}

impl StreamSettings {
    /// The retention of `context`'s stream.
    pub fn max_age_of(&self, context: &str) -> Duration {
        if carries_personal_data(context) {
            self.personal_max_age
        } else {
            self.max_age
        }
    }

    fn apply(&self, config: &mut jetstream::stream::Config, max_age: Duration) {
        config.num_replicas = self.replicas.max(1);
        config.max_age = max_age;
        config.max_bytes = self.max_bytes.unwrap_or(-1);
        config.discard = jetstream::stream::DiscardPolicy::New;
    }
}

/// Creates the stream that holds one bounded context's events, or brings an existing one to the
/// settings: `<NS>_<CONTEXT>` over `<ns>.<context>.>`, file storage, a 2-minute duplicate window,
/// replicas and retention from `settings` (an existing stream is updated when they differ, so
/// raising `replicas` or shortening a retention takes effect at the next start).
pub async fn ensure_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    context: &str,
    settings: &StreamSettings,
) -> Result<jetstream::stream::Stream, EventingError> {
    let mut config = jetstream::stream::Config {
        name: ns.stream_name(context),
        subjects: vec![format!("{}.{context}.>", ns.as_str())],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    settings.apply(&mut config, settings.max_age_of(context));
    converge(js, config).await
}

/// Gets or creates the stream of `wanted`; updates it when its replicas, retention, size limit or
/// discard policy differ from `wanted`'s.
pub(crate) async fn converge(
    js: &jetstream::Context,
    wanted: jetstream::stream::Config,
) -> Result<jetstream::stream::Stream, EventingError> {
    let mut stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(EventingError::nats)?;
    let info = stream.info().await.map_err(EventingError::nats)?;
    let have = &info.config;
    if have.num_replicas != wanted.num_replicas
        || have.max_age != wanted.max_age
        || have.max_bytes != wanted.max_bytes
        || have.discard != wanted.discard
    {
        let mut update = have.clone();
        update.num_replicas = wanted.num_replicas;
        update.max_age = wanted.max_age;
        update.max_bytes = wanted.max_bytes;
        update.discard = wanted.discard;
        tracing::info!(
            stream = %wanted.name,
            replicas = wanted.num_replicas,
            max_age_s = wanted.max_age.as_secs(),
            max_bytes = wanted.max_bytes,
            "stream settings updated"
        );
        js.update_stream(update)
            .await
            .map_err(EventingError::nats)?;
        stream = js
            .get_stream(&wanted.name)
            .await
            .map_err(EventingError::nats)?;
    }
    Ok(stream)
}

/// The NATS client crate, re-exported so services use the same copy.
pub use async_nats as nats;
