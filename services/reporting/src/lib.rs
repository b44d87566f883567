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

use std::net::SocketAddr;
use std::sync::Arc;

use rz_eventing::Namespace;
use rz_eventing::host::Host;
use rz_platform::Shutdown;
use rz_proto::reporting::v1::reporting_service_server::ReportingServiceServer;
use tokio::net::TcpListener;

pub use config::Config;
pub use consumers::Consumers;

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
    pool: sqlx::PgPool,
    nats: rz_eventing::nats::Client,
    js: rz_eventing::nats::jetstream::Context,
    consumers: Arc<Consumers>,
}

impl App {
    /// Connects, migrates, ensures the streams it reads (so it can start before their producers)
    /// and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let ns = Namespace::new(&config.nats.namespace).map_err(StartError::Config)?;
        let pool = rz_platform::db::connect(&config.database).await?;
        rz_platform::db::migrate(&pool, store::MIGRATIONS).await?;
        let (nats, js) = rz_eventing::connect(&config.nats.url, "reporting").await?;
        for context in consumers::CONTEXTS {
            rz_eventing::ensure_stream(&js, &ns, context, config.nats.replicas).await?;
        }
        let listener = TcpListener::bind(config.server.listen).await?;
        let addr = listener.local_addr()?;
        let consumers = Arc::new(Consumers::new(js.clone(), pool.clone(), ns));
        Ok(Self {
            listener,
            addr,
            config,
            pool,
            nats,
            js,
            consumers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    pub fn consumers(&self) -> Arc<Consumers> {
        self.consumers.clone()
    }

    /// Consumes the streams and serves gRPC until `shutdown`; then stops gracefully (see
    /// [`rz_eventing::host::Host`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        self.consumers.start().await?;
        // The consumers are restarted by a rebuild; this task stops whichever generation runs.
        let watcher = {
            let consumers = self.consumers.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.wait().await;
                consumers.stop().await;
            })
        };
        let api = api::ReportingApi::new(self.pool.clone(), self.consumers.clone());
        let (router, health) = rz_platform::server::router();
        let router = router.add_service(ReportingServiceServer::new(api));
        tracing::info!(addr = %self.addr, "reporting serving");
        let host = Host {
            name: "reporting",
            pool: self.pool,
            nats: self.nats,
            js: self.js,
            grace: std::time::Duration::from_secs(self.config.server.shutdown_grace_secs),
        };
        Ok(host
            .run(router, health, self.listener, shutdown, vec![watcher])
            .await?)
    }
}
