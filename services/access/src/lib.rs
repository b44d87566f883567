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
pub mod metrics;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rz_domain::GemeenteCode;
use rz_platform::tls::{TlsConfig, TlsError};
use rz_platform::{Foundation, Shutdown};
use rz_proto::access::v1::access_service_server::AccessServiceServer;
use rz_proto::registration::v1 as registration_pb;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;

pub use config::{AccessConfig, Config};
use domain::catalogue::Catalogue;
pub use rz_platform::StartError;

/// How long start-up keeps trying to reach registration for the catalogue.
pub const CATALOGUE_WAIT: Duration = Duration::from_secs(30);

/// A built service, bound to its port, not yet serving.
pub struct App {
    foundation: Foundation,
    config: Config,
    catalogue: Arc<Catalogue>,
    municipality: GemeenteCode,
    secret: Arc<[u8]>,
    keys: Arc<rz_platform::sealing::Keyring>,
}

rz_platform::service!(
    App,
    "access",
    "Access (toegang) of one municipality: residents, cases on the statutory clock, decisions",
    Config,
    store::MIGRATIONS
);

/// Asks registration at `endpoint` for the region's catalogue, retrying for `within` while it is
/// unreachable (it may be starting too). The call uses mutual TLS with `tls` (the service's own
/// certificate and the region's CA, `[tls]`).
pub async fn fetch_catalogue(
    tls: &TlsConfig,
    endpoint: &str,
    within: Duration,
) -> Result<registration_pb::Catalogue, StartError> {
    let endpoint_cfg = tls
        .endpoint(endpoint)
        .map_err(|e| match e {
            TlsError::Endpoint(..) => {
                StartError::Config(format!("access.registration_endpoint: {e}"))
            }
            other => StartError::Config(other.to_string()),
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
            return Err(StartError::Upstream(format!(
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
        let keys = Arc::new(config.personal_data.keyring().map_err(StartError::Config)?);
        config.audit.retention().map_err(StartError::Config)?;
        let catalogue = fetch_catalogue(
            &config.tls,
            &config.access.registration_endpoint,
            CATALOGUE_WAIT,
        )
        .await?;
        let catalogue = Catalogue::from_pb(&catalogue).map_err(StartError::Upstream)?;
        if !catalogue.has_municipality(&municipality) {
            return Err(StartError::Config(format!(
                "access.municipality {municipality} is not a municipality of region {}",
                catalogue.region
            )));
        }
        let mut foundation =
            Foundation::start("access", &config, store::MIGRATIONS, &[api::CONTEXT]).await?;
        // The policy's "own municipality" of a municipality caller is the one this instance serves.
        foundation.serve_municipality(municipality.clone());
        // Residents stored in plaintext (before migration 103) or under an older key: sealed now.
        let sealed = store::seal_residents(foundation.pool(), &keys)
            .await
            .map_err(|e| StartError::Config(format!("sealing residents: {e}")))?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                key_id = keys.current(),
                "residents sealed with the current key"
            );
        }
        tracing::info!(
            %municipality,
            region = %catalogue.region,
            subsegments = catalogue.subsegment_count(),
            "access built"
        );
        Ok(Self {
            foundation,
            config,
            catalogue: Arc::new(catalogue),
            municipality,
            secret,
            keys,
        })
    }

    pub fn municipality(&self) -> &GemeenteCode {
        &self.municipality
    }

    /// Serves gRPC and relays the outbox until `shutdown` (see [`rz_platform::runner`]).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartError> {
        let api = api::AccessApi::new(
            self.foundation.pool().clone(),
            self.catalogue.clone(),
            self.foundation.ns().clone(),
            self.municipality.clone(),
            self.secret.clone(),
            self.keys.clone(),
            rz_platform::clock::from_config(
                self.config.access.today,
                self.config.access.today_file.as_ref(),
            ),
        );
        // The audit trail: listed by BSN too (access alone can turn one into the client key).
        let retention = self.config.audit.retention().map_err(StartError::Config)?;
        let secret = self.secret.clone();
        let audit = api.audit().clone();
        let audit_api = rz_platform::audit::AuditApi::new(audit.clone()).with_resolver(Arc::new(
            move |_municipality: &str, bsn: &str| {
                let bsn = rz_domain::Bsn::parse(bsn)
                    .map_err(|e| tonic::Status::from(rz_platform::ApiError::from(e)))?;
                Ok(rz_domain::ClientKey::derive(&secret, &bsn).to_string())
            },
        ));
        // The statutory deadlines (see [`metrics`]), sampled with the platform's metrics.
        let deadlines = metrics::DeadlineMetrics::register(
            self.foundation.metrics(),
            self.municipality.clone(),
        );
        deadlines.sample_from(
            self.foundation.metrics(),
            self.foundation.pool().clone(),
            rz_platform::clock::from_config(
                self.config.access.today,
                self.config.access.today_file.as_ref(),
            ),
        );
        tracing::info!(municipality = %self.municipality, "access serving");
        let mut serving = self.foundation.serving(shutdown);
        serving.spawn(rz_platform::audit::pruner(
            audit,
            retention,
            serving.shutdown(),
        ));
        serving
            .run(|grpc| {
                grpc.add_service(AccessServiceServer::new(api))
                    .add_service(audit_api.server())
            })
            .await
    }
}
