//! Assignment (toewijzing): regional, partitioned by municipality. It assigns a contracted provider
//! to each product that access granted (the resident's preferred provider when contracted,
//! otherwise the provider with the lowest caseload against its lumpsum budget share), sends the
//! standard's assignment message to the provider, takes the providers' messages (start and stop of
//! care, requests for an assignment or a change) and the municipality's answers and withdrawals,
//! lists the chain's deadlines, and runs the handover of clients whose provider's contract ended.
//!
//! Layout: [`domain`] holds the rules without I/O; [`store`] the SQL; [`upstream`] the calls to
//! registration and access; [`assigner::Assigner`] the logic the gRPC API ([`api`]), the consumer of
//! access' events ([`decisions`]) and operators share; [`App`] wires them to PostgreSQL, NATS and
//! the gRPC server.
//!
//! Privacy: the messages to a provider carry the client's BSN (the standard's message does); the
//! lifecycle events, the logs and every other output carry only the pseudonymous client key.

pub mod api;
pub mod assigner;
pub mod clock;
pub mod config;
pub mod convert;
mod corrections;
pub mod decisions;
pub mod declarations;
pub mod domain;
pub mod error;
mod fields;
pub mod handover;
pub mod import;
pub mod inbound;
pub mod metrics;
mod municipality;
pub mod owner;
mod provider;
mod received;
pub mod store;
pub mod upload;
pub mod upstream;
pub mod xml;

use std::sync::Arc;

use rz_platform::{Foundation, Shutdown};
use rz_proto::assignment::v1::assignment_service_server::AssignmentServiceServer;

pub use crate::assigner::Assigner;
pub use crate::clock::{Clock, FixedClock, SystemClock};
pub use crate::config::Config;
pub use crate::handover::HandoverOutcome;
pub use rz_platform::StartError;

/// A built service, bound to its port, not yet serving.
pub struct App {
    foundation: Foundation,
    assigner: Assigner,
    /// `[audit] retention_days`: how long the audit trail is kept.
    retention: std::time::Duration,
}

rz_platform::service!(
    App,
    "assignment",
    "Assignment (toewijzing) of contracted providers, the providers' messages and the handover",
    Config,
    store::MIGRATIONS
);

impl App {
    /// As [`App::build_with_clock`], with the system date (or `assignment.today` /
    /// `assignment.today_file` when set).
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let clock = rz_platform::clock::from_config(
            config.assignment.today,
            config.assignment.today_file.as_ref(),
        );
        Self::build_with_clock(config, clock).await
    }

    /// Connects, migrates, ensures the streams (its own and access', so the consumer can attach
    /// before access runs) and binds the listener.
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        if config.assignment.client_key_secret.is_empty() {
            return Err(StartError::Config(
                "assignment.client_key_secret must be set (RZ__ASSIGNMENT__CLIENT_KEY_SECRET)"
                    .into(),
            ));
        }
        let keys = Arc::new(config.personal_data.keyring().map_err(StartError::Config)?);
        let upstream = Arc::new(
            upstream::Upstream::new(&config.assignment, &config.tls).map_err(StartError::Config)?,
        );
        let mut foundation = Foundation::start(
            "assignment",
            &config,
            store::MIGRATIONS,
            &[assigner::CONTEXT, "access"],
        )
        .await?;
        // Uploads of iStandaarden XML are larger than tonic's default.
        foundation.accept_messages_up_to(xml::MAX_GRPC_MESSAGE_BYTES);
        // BSNs and messages stored in plaintext (before migration 113) or under an older key.
        let sealing = |e: sqlx::Error| StartError::Config(format!("sealing personal data: {e}"));
        let identities = store::seal_identities(foundation.pool(), &keys)
            .await
            .map_err(sealing)?;
        let messages = store::seal_provider_messages(foundation.pool(), &keys)
            .await
            .map_err(sealing)?;
        if identities + messages > 0 {
            tracing::info!(
                identities,
                messages,
                key_id = keys.current(),
                "personal data sealed with the current key"
            );
        }
        let assigner = Assigner::new(
            foundation.pool().clone(),
            foundation.ns().clone(),
            upstream,
            clock,
            config.assignment.client_key_secret.as_bytes(),
            keys,
        );
        // The chain's deadlines and the handover (see [`metrics`]), sampled with the platform's
        // metrics; the region's municipalities (those with an access instance) from the start.
        let metrics = metrics::AssignmentMetrics::register(
            foundation.metrics(),
            config.assignment.access_endpoints.keys(),
        );
        let assigner = assigner.with_handover_metrics(metrics.handover.clone());
        metrics.sample_from(foundation.metrics(), assigner.clone());
        let retention = config.audit.retention().map_err(StartError::Config)?;
        Ok(Self {
            foundation,
            assigner,
            retention,
        })
    }

    /// The service's logic, for operator tools and tests (e.g. an interrupted handover run).
    pub fn assigner(&self) -> Assigner {
        self.assigner.clone()
    }

    /// Serves gRPC, consumes access' decisions and relays the outbox until `shutdown` (see
    /// [`rz_platform::runner`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        let mut serving = self.foundation.serving(shutdown);
        serving.consume(
            "decisions",
            decisions::consumer_spec(&self.assigner.ns),
            decisions::DecisionHandler::new(self.assigner.clone()),
        );
        // Warm the catalogue; when registration is not up yet it is fetched on first use.
        if let Err(e) = self.assigner.upstream.catalogue().await {
            tracing::warn!(error = %e, "catalogue not loaded yet");
        }
        let api = api::AssignmentApi::new(self.assigner.clone());
        let audit = api.audit().clone();
        serving.spawn(rz_platform::audit::pruner(
            audit.clone(),
            self.retention,
            serving.shutdown(),
        ));
        serving
            .run(|grpc| {
                grpc.add_service(
                    AssignmentServiceServer::new(api)
                        .max_decoding_message_size(xml::MAX_GRPC_MESSAGE_BYTES),
                )
                .add_service(rz_platform::audit::AuditApi::new(audit).server())
            })
            .await
    }
}
