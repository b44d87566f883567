//! Access (toegang): one instance per municipality, with its own database. It registers the
//! municipality's residents (it alone holds their BSN and name), runs their cases on the statutory
//! clock (Wmo: melding, investigation within 6 weeks, application, decision within 2 weeks;
//! Jeugdwet: decision within 8 weeks of the application) and decides: it grants products of the
//! region's catalogue, or refuses. Granted products can be changed, extended or ended.
//!
//! Everything it publishes (`rz.access.<municipality>._.<event>`: `case_changed`,
//! `decision_granted`, `product_amended`) carries the pseudonymous client key, never the BSN or a
//! name. The assignment service asks [`GetClientForAssignment`](api::AccessApi) for the client
//! block of the standard's assignment message.
//!
//! Layout: [`domain`] holds the rules without I/O, [`store`] the SQL, [`api`] the gRPC edge, and
//! [`App`] wires them to the catalogue (fetched once from registration at start-up), the database,
//! NATS (outbox relay) and the gRPC server.

pub mod api;
pub mod config;
pub mod domain;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rz_domain::GemeenteCode;
use rz_eventing::Namespace;
use rz_eventing::host::Host;
use rz_platform::Shutdown;
use rz_proto::access::v1::access_service_server::AccessServiceServer;
use rz_proto::registration::v1 as registration_pb;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use tokio::net::TcpListener;

pub use config::{AccessConfig, Config};
use domain::catalogue::Catalogue;

/// How long start-up keeps trying to reach registration for the catalogue.
pub const CATALOGUE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("catalogue: {0}")]
    Catalogue(String),
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
    catalogue: Arc<Catalogue>,
    municipality: GemeenteCode,
    secret: Arc<[u8]>,
    ns: Namespace,
}

/// Asks registration at `endpoint` for the region's catalogue, retrying for `within` while it is
/// unreachable (it may be starting too).
pub async fn fetch_catalogue(
    endpoint: &str,
    within: Duration,
) -> Result<registration_pb::Catalogue, StartError> {
    let endpoint_cfg = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| {
            StartError::Config(format!(
                "access.registration_endpoint `{endpoint}` is not a URL: {e}"
            ))
        })?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10));
    let deadline = Instant::now() + within;
    loop {
        let attempt = async {
            let channel = endpoint_cfg.connect().await.map_err(|e| e.to_string())?;
            RegistrationServiceClient::new(channel)
                .get_catalogue(registration_pb::GetCatalogueRequest {})
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| format!("{}: {}", s.code(), s.message()))
        };
        let error = match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(StartError::Catalogue(format!(
                "registration at {endpoint} did not answer within {}s: {error}",
                within.as_secs()
            )));
        }
        tracing::warn!(%endpoint, error = %error, "registration not reachable yet; retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl App {
    /// Checks the configuration, fetches the catalogue from registration, connects, migrates,
    /// ensures the stream and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let municipality = GemeenteCode::parse(config.access.municipality.trim()).map_err(|e| {
            StartError::Config(format!(
                "access.municipality `{}`: {}",
                config.access.municipality, e.rule
            ))
        })?;
        if config.access.client_key_secret.is_empty() {
            return Err(StartError::Config(
                "access.client_key_secret must be set (the region's secret for client keys)".into(),
            ));
        }
        let secret: Arc<[u8]> = Arc::from(config.access.client_key_secret.as_bytes());
        let ns = Namespace::new(&config.nats.namespace).map_err(StartError::Config)?;
        let catalogue =
            fetch_catalogue(&config.access.registration_endpoint, CATALOGUE_WAIT).await?;
        let catalogue = Catalogue::from_pb(&catalogue).map_err(StartError::Catalogue)?;
        if !catalogue.has_municipality(&municipality) {
            return Err(StartError::Config(format!(
                "access.municipality {municipality} is not a municipality of region {}",
                catalogue.region
            )));
        }
        let pool = rz_platform::db::connect(&config.database).await?;
        rz_platform::db::migrate(&pool, store::MIGRATIONS).await?;
        let (nats, js) = rz_eventing::connect(&config.nats.url, "access").await?;
        rz_eventing::ensure_stream(&js, &ns, api::CONTEXT, config.nats.replicas).await?;
        let listener = TcpListener::bind(config.server.listen).await?;
        let addr = listener.local_addr()?;
        tracing::info!(
            %municipality,
            region = %catalogue.region,
            subsegments = catalogue.subsegment_count(),
            "access built"
        );
        Ok(Self {
            listener,
            addr,
            config,
            pool,
            nats,
            js,
            catalogue: Arc::new(catalogue),
            municipality,
            secret,
            ns,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    pub fn municipality(&self) -> &GemeenteCode {
        &self.municipality
    }

    /// Serves gRPC and relays the outbox until `shutdown`; then stops gracefully (see
    /// [`rz_eventing::host::Host`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        let api = api::AccessApi::new(
            self.pool.clone(),
            self.catalogue.clone(),
            self.ns.clone(),
            self.municipality.clone(),
            self.secret.clone(),
            rz_platform::clock::from_config(
                self.config.access.today,
                self.config.access.today_file.as_ref(),
            ),
        );
        let (router, health) = rz_platform::server::router();
        let router = router.add_service(AccessServiceServer::new(api));
        tracing::info!(addr = %self.addr, municipality = %self.municipality, "access serving");
        let host = Host {
            name: "access",
            pool: self.pool,
            nats: self.nats,
            js: self.js,
            grace: Duration::from_secs(self.config.server.shutdown_grace_secs),
        };
        Ok(host
            .run(router, health, self.listener, shutdown, Vec::new())
            .await?)
    }
}
