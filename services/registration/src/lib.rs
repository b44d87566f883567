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
pub mod seed;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use rz_eventing::Namespace;
use rz_eventing::host::Host;
use rz_platform::Shutdown;
use rz_proto::registration::v1::registration_service_server::RegistrationServiceServer;
use tokio::net::TcpListener;

pub use config::Config;
use domain::catalogue::Catalogue;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("region file: {0}")]
    Region(String),
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
    pool: sqlx::PgPool,
    nats: async_nats_client::Client,
    js: async_nats_client::jetstream::Context,
    catalogue: Arc<Catalogue>,
    ns: Namespace,
}

// async-nats is re-exported through the event machinery so every service uses one copy.
mod async_nats_client {
    pub use rz_eventing::nats::*;
}

impl App {
    /// Loads the catalogue, connects, migrates, ensures the stream and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let catalogue = match &config.region_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| StartError::Region(format!("{}: {e}", path.display())))?;
                Catalogue::from_toml(&text)
            }
            None => Catalogue::achterhoek(),
        }
        .map_err(StartError::Region)?;
        let ns = Namespace::new(&config.nats.namespace).map_err(StartError::Region)?;
        let pool = rz_platform::db::connect(&config.database).await?;
        rz_platform::db::migrate(&pool, store::MIGRATIONS).await?;
        let (nats, js) = rz_eventing::connect(&config.nats.url, "registration").await?;
        rz_eventing::ensure_stream(&js, &ns, api::CONTEXT, config.nats.replicas).await?;
        let listener = TcpListener::bind(config.server.listen).await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            addr,
            config,
            pool,
            nats,
            js,
            catalogue: Arc::new(catalogue),
            ns,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    /// Serves gRPC and relays the outbox until `shutdown`; then stops gracefully (see
    /// [`rz_eventing::host::Host`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        let api =
            api::RegistrationApi::new(self.pool.clone(), self.catalogue.clone(), self.ns.clone());
        let (router, health) = rz_platform::server::router();
        let router = router.add_service(RegistrationServiceServer::new(api));
        tracing::info!(addr = %self.addr, region = %self.catalogue.region, "registration serving");
        let host = Host {
            name: "registration",
            pool: self.pool,
            nats: self.nats,
            js: self.js,
            grace: std::time::Duration::from_secs(self.config.server.shutdown_grace_secs),
        };
        Ok(host
            .run(router, health, self.listener, shutdown, Vec::new())
            .await?)
    }
}
