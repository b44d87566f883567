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
pub mod decisions;
pub mod domain;
pub mod error;
mod fields;
pub mod handover;
pub mod import;
mod municipality;
mod provider;
pub mod store;
pub mod upstream;
pub mod xml;

use std::net::SocketAddr;
use std::sync::Arc;

use rz_eventing::Namespace;
use rz_eventing::host::Host;
use rz_platform::Shutdown;
use rz_proto::assignment::v1::assignment_service_server::AssignmentServiceServer;
use tokio::net::TcpListener;

pub use crate::assigner::Assigner;
pub use crate::clock::{Clock, FixedClock, SystemClock};
pub use crate::config::Config;
pub use crate::handover::HandoverOutcome;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("nats: {0}")]
    Nats(#[from] rz_eventing::EventingError),
    #[error("listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("server: {0}")]
    Server(#[from] tonic::transport::Error),
}

/// A built service, bound to its port, not yet serving.
pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    config: Config,
    nats: rz_eventing::nats::Client,
    js: rz_eventing::nats::jetstream::Context,
    assigner: Assigner,
}

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
        let ns = Namespace::new(&config.nats.namespace).map_err(StartError::Config)?;
        if config.assignment.client_key_secret.is_empty() {
            return Err(StartError::Config(
                "assignment.client_key_secret must be set (RZ__ASSIGNMENT__CLIENT_KEY_SECRET)"
                    .into(),
            ));
        }
        let upstream =
            Arc::new(upstream::Upstream::new(&config.assignment).map_err(StartError::Config)?);
        let pool = rz_platform::db::connect(&config.database).await?;
        rz_platform::db::migrate(&pool, store::MIGRATIONS).await?;
        let (nats, js) = rz_eventing::connect(&config.nats.url, "assignment").await?;
        rz_eventing::ensure_stream(&js, &ns, assigner::CONTEXT, config.nats.replicas).await?;
        rz_eventing::ensure_stream(&js, &ns, "access", config.nats.replicas).await?;
        let listener = TcpListener::bind(config.server.listen).await?;
        let addr = listener.local_addr()?;
        let assigner = Assigner::new(
            pool,
            ns,
            upstream,
            clock,
            config.assignment.client_key_secret.as_bytes(),
        );
        Ok(Self {
            listener,
            addr,
            config,
            nats,
            js,
            assigner,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        self.assigner.pool()
    }

    /// The service's logic, for operator tools and tests (e.g. an interrupted handover run).
    pub fn assigner(&self) -> Assigner {
        self.assigner.clone()
    }

    /// Serves gRPC, consumes access' decisions and relays the outbox until `shutdown`; then stops
    /// gracefully (see [`rz_eventing::host::Host`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        let pool = self.assigner.pool().clone();
        let consumer = rz_eventing::EventConsumer::new(
            self.js.clone(),
            pool.clone(),
            self.assigner.ns.clone(),
            decisions::consumer_spec(&self.assigner.ns),
            decisions::DecisionHandler::new(self.assigner.clone()),
        );
        let consuming = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = consumer.run(shutdown).await {
                    tracing::error!(error = %e, "decision consumer failed");
                }
            })
        };
        // Warm the catalogue; when registration is not up yet it is fetched on first use.
        if let Err(e) = self.assigner.upstream.catalogue().await {
            tracing::warn!(error = %e, "catalogue not loaded yet");
        }
        let (router, health) = rz_platform::server::router();
        let router = router.add_service(
            AssignmentServiceServer::new(api::AssignmentApi::new(self.assigner.clone()))
                .max_decoding_message_size(xml::MAX_GRPC_MESSAGE_BYTES),
        );
        tracing::info!(addr = %self.addr, "assignment serving");
        let host = Host {
            name: "assignment",
            pool,
            nats: self.nats,
            js: self.js,
            grace: std::time::Duration::from_secs(self.config.server.shutdown_grace_secs),
        };
        Ok(host
            .run(router, health, self.listener, shutdown, vec![consuming])
            .await?)
    }
}
