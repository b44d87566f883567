//! Reporting: the region's read model, built only from events, in its own database.
//!
//! Three durable consumers ([`consumers`]) take facts from the streams of access (cases, decisions,
//! granted products), assignment (the pseudonymous lifecycle of every assignment) and registration
//! (contracts and their lumpsum budgets) into the tables of [`store`]; the reports ([`figures`]) are
//! computed from those facts on request and served over gRPC ([`api`]) and as CSV ([`csv`]).
//! [`consumers::Consumers::rebuild`] drops the model and replays every stream from its start.
//!
//! Privacy: only the pseudonymous client key reaches reporting (it never reads the assignment
//! messages to providers, which carry the BSN), and it is used only to count distinct clients;
//! no report shows it.

pub mod api;
pub mod config;
pub mod consumers;
pub mod csv;
pub mod facts;
pub mod figures;
pub mod store;

use std::sync::Arc;

use rz_platform::{Foundation, Shutdown};
use rz_proto::reporting::v1::reporting_service_server::ReportingServiceServer;

pub use config::Config;
pub use consumers::Consumers;
pub use rz_platform::StartError;

/// A built service, bound to its port, not yet serving.
pub struct App {
    foundation: Foundation,
    consumers: Arc<Consumers>,
}

rz_platform::service!(
    App,
    "reporting",
    "Reporting: the region's read model built from events, its figures and CSV exports",
    Config,
    store::MIGRATIONS
);

impl App {
    /// Connects, migrates, ensures the streams it reads (they may not have been created by their
    /// producers yet) and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let foundation =
            Foundation::start("reporting", &config, store::MIGRATIONS, consumers::CONTEXTS).await?;
        let consumers = Arc::new(
            Consumers::new(
                foundation.js().clone(),
                foundation.pool().clone(),
                foundation.ns().clone(),
            )
            .with_metrics(foundation.metrics().clone()),
        );
        Ok(Self {
            foundation,
            consumers,
        })
    }

    pub fn consumers(&self) -> Arc<Consumers> {
        self.consumers.clone()
    }

    /// Consumes the streams and serves gRPC until `shutdown` (see [`rz_platform::runner`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        self.consumers.start().await?;
        let mut serving = self.foundation.serving(shutdown);
        for spec in self.consumers.specs() {
            serving.watch_consumer(&spec);
        }
        // The consumers are restarted by a rebuild; this task stops whichever generation runs.
        let (consumers, stop) = (self.consumers.clone(), serving.shutdown());
        serving.spawn(async move {
            stop.wait().await;
            consumers.stop().await;
        });
        let api = api::ReportingApi::new(serving.pool().clone(), self.consumers.clone());
        serving
            .run(|grpc| grpc.add_service(ReportingServiceServer::new(api)))
            .await
    }
}
