//! The regional contract register (`registration`): the catalogue of lots, segments and
//! subsegments, the providers (organisations, consortia, subcontractors), the tender that selected
//! them and the contracts it produced. Other services ask it which providers are contracted for a
//! subsegment in a municipality on a date.
//!
//! Layout: [`domain`] holds the rules without I/O, [`store`] the SQL, [`api`] the gRPC edge, and
//! [`App`] wires them to the database, NATS (outbox relay) and the gRPC server.

pub mod api;
pub mod config;
pub mod domain;
pub mod store;

use std::sync::Arc;

use rz_platform::clock::Clock;
use rz_platform::{Foundation, Shutdown};
use rz_proto::registration::v1::registration_service_server::RegistrationServiceServer;

pub use config::Config;
use domain::catalogue::Catalogue;
pub use rz_platform::StartError;

/// A built service, bound to its port, not yet serving.
pub struct App {
    foundation: Foundation,
    catalogue: Arc<Catalogue>,
    clock: Arc<dyn Clock>,
}

rz_platform::service!(
    App,
    "registration",
    "The regional contract register: catalogue, providers, tenders and contracts",
    Config,
    store::MIGRATIONS
);

impl App {
    /// As [`App::build_with_clock`], with the system date (or `registration.today` /
    /// `registration.today_file` when set).
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let clock = rz_platform::clock::from_config(
            config.registration.today,
            config.registration.today_file.as_ref(),
        );
        Self::build_with_clock(config, clock).await
    }

    /// Loads the catalogue, connects, migrates, ensures the stream and binds the listener.
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let catalogue = match &config.registration.region_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StartError::Config(format!("registration.region_file {}: {e}", path.display()))
                })?;
                Catalogue::from_toml(&text)
            }
            None => Catalogue::achterhoek(),
        }
        .map_err(|e| StartError::Config(format!("registration.region_file: {e}")))?;
        let foundation =
            Foundation::start("registration", &config, store::MIGRATIONS, &[api::CONTEXT]).await?;
        Ok(Self {
            foundation,
            catalogue: Arc::new(catalogue),
            clock,
        })
    }

    /// Serves gRPC and relays the outbox until `shutdown` (see [`rz_platform::runner`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        let api = api::RegistrationApi::new(
            self.foundation.pool().clone(),
            self.catalogue.clone(),
            self.foundation.ns().clone(),
            self.clock.clone(),
        );
        tracing::info!(region = %self.catalogue.region, "registration built");
        self.foundation
            .serving(shutdown)
            .run(|grpc| grpc.add_service(RegistrationServiceServer::new(api)))
            .await
    }
}
