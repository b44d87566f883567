//! The test stack (dev-only): the real services, each its own `App::build(config)` served by
//! `tokio::spawn(app.run(shutdown))` on `127.0.0.1:0` with a fresh database (rz-testkit), all of one
//! stack sharing one NATS namespace of their own. Every crate's integration tests and `tests/e2e`
//! start what they need here:
//!
//! ```ignore
//! let stack = Stack::builder()
//!     .landscape(Landscape::standard())
//!     .access("0222")
//!     .assignment()
//!     .today(d("2022-06-27"))
//!     .start()
//!     .await;
//! let mut access = stack.access("0222");
//! let mut assignment = stack.as_provider(P1).assignment();
//! ```
//!
//! Services start in the order the region needs them: reporting first (it ensures the streams and
//! consumes from their start), registration (with the contract landscape loaded through its gRPC
//! API), access per municipality, assignment, notification. A service another one needs is added
//! on its own (access and assignment bring registration). Dropping the stack triggers every
//! service's shutdown; [`Stack::shutdown`] also waits for them.
//!
//! Every service serves mutual TLS only and authorises every call by the caller's certificate
//! (the policy table, `services/lib/platform/src/authz/policy.rs`). The stack generates a PKI
//! (`rz_pki`) with a certificate for every provider and municipality of the landscape and the
//! fixtures, those given with [`StackBuilder::providers`] and [`StackBuilder::municipalities`],
//! every access' municipality, the operator and the five services; each service runs with its own
//! certificate, the stack's token key and its rate limits off (a test tunes `limits` with the
//! config tuners). The clients: [`Stack::registration`], [`Stack::assignment`],
//! [`Stack::notification`] and [`Stack::reporting`] call as the operator, [`Stack::access`] as the
//! municipality whose instance it is; [`Stack::as_provider`], [`Stack::as_municipality`],
//! [`Stack::as_operator`] and [`Stack::as_service`] give a [`Party`] with a client of every service
//! as that organisation; [`Stack::staff`] a person's token. Endpoints stay `http://<addr>` strings
//! (dialled as https).
//!
//! The shared fixtures live here as well: the contract landscape ([`Landscape`]), synthetic
//! residents ([`bsn`], [`resident_request`]), the products a decision grants and the steps of a
//! case through access ([`youth_product`], [`open_case`], [`decide`]) and the webhook receiver
//! with its signature check ([`Receiver`], [`verify_signature`]).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod care;
mod fixtures;
mod parties;
mod probe;
mod status;
mod webhook;

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use assignment::{Assigner, FixedClock};
use chrono::NaiveDate;
use rz_platform::Shutdown;
use rz_platform::authz::LimitsConfig;
use rz_platform::identity::IdentityConfig;
use rz_platform::tls::TlsConfig;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use care::{
    assignments_of, decide, import_request, investigate_and_apply, open_case, output_product,
    pxq_product, youth_product,
};
pub use fixtures::{
    Landscape, M, NONE, OLD, P1, P2, P3, PV1, PV2, SECRET, ZH, bsn, d, fixture, key_of, key_with,
    period, resident_request,
};
use parties::{Channels, StackPki};
pub use parties::{OPERATOR, Party, Staff, connect};
pub use probe::{
    assert_serving, at_least, count, eventually, free_addr, http_get, sample, scrape, scrape_until,
    stream_messages, unpublished,
};
pub use rz_pki::{self, Issue};
pub use rz_platform::identity::Role;
pub use rz_testkit::{TestEnv, with_database};
pub use status::{assert_invalid, assert_invalid_says, assert_rule};
pub use webhook::{Received, Receiver, verify_error, verify_signature};

/// How long [`Service::stop`] waits for a service to finish.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// One running service of a stack.
pub struct Service {
    pub addr: SocketAddr,
    /// `http://<addr>` (dialled as https).
    pub endpoint: String,
    /// A connected gRPC channel to it: as the operator, to an access instance as its municipality.
    pub channel: Channel,
    /// The service's own pool (`app.pool()`).
    pub pool: PgPool,
    /// The URL of its database.
    pub db_url: String,
    pub shutdown: Shutdown,
    /// The task serving it; `Err` carries the service's start error as text. `None` once taken.
    pub server: Option<JoinHandle<Result<(), String>>>,
}

impl Service {
    /// Spawns `run(shutdown)` and connects a channel to `addr` as `caller`.
    async fn spawn<Fut, E>(
        addr: SocketAddr,
        pool: PgPool,
        db_url: String,
        caller: &TlsConfig,
        run: impl FnOnce(Shutdown) -> Fut,
    ) -> Self
    where
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let shutdown = Shutdown::new();
        let serving = run(shutdown.clone());
        let server = tokio::spawn(async move { serving.await.map_err(|e| e.to_string()) });
        let endpoint = format!("http://{addr}");
        let channel = connect(&endpoint, caller).await;
        Self {
            addr,
            endpoint,
            channel,
            pool,
            db_url,
            shutdown,
            server: Some(server),
        }
    }

    /// Triggers the service's shutdown and waits (at most 15 s) until it has stopped.
    pub async fn stop(&mut self) -> Result<(), String> {
        self.shutdown.trigger();
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        match tokio::time::timeout(STOP_WITHIN, server).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("the service task failed: {e}")),
            Err(_) => Err(format!("did not stop within {STOP_WITHIN:?}")),
        }
    }
}

type Tune<C> = Box<dyn FnOnce(&mut C) + Send + Sync>;
type TuneAccess = Arc<dyn Fn(&mut access::Config) + Send + Sync>;

/// What a [`Stack`] starts; see [`Stack::builder`].
pub struct StackBuilder {
    registration: bool,
    landscape: Option<Landscape>,
    access: Vec<String>,
    assignment: bool,
    notification: bool,
    notification_db: Option<String>,
    reporting: bool,
    providers: Vec<String>,
    municipalities: Vec<String>,
    today: Option<NaiveDate>,
    secret: String,
    namespace: Option<String>,
    external_registration: Option<String>,
    external_access: Vec<(String, String)>,
    registration_config: Option<Tune<registration::Config>>,
    access_config: Option<TuneAccess>,
    assignment_config: Option<Tune<assignment::Config>>,
    notification_config: Option<Tune<notification::Config>>,
    reporting_config: Option<Tune<reporting::Config>>,
}

/// The builder methods that change one service's configuration after the stack filled it in.
macro_rules! tuners {
    ($($service:literal => $method:ident: $config:ty;)*) => {
        impl StackBuilder {
            $(
                #[doc = concat!("Changes ", $service, "'s configuration after the stack filled it in.")]
                pub fn $method(mut self, tune: impl FnOnce(&mut $config) + Send + Sync + 'static) -> Self {
                    self.$method = Some(Box::new(tune));
                    self
                }
            )*
        }
    };
}

tuners! {
    "registration" => registration_config: registration::Config;
    "assignment" => assignment_config: assignment::Config;
    "notification" => notification_config: notification::Config;
    "reporting" => reporting_config: reporting::Config;
}

impl StackBuilder {
    /// The contract register.
    pub fn registration(mut self) -> Self {
        self.registration = true;
        self
    }

    /// Registration, loaded with `landscape` through its gRPC API before anything else asks it.
    pub fn landscape(mut self, landscape: Landscape) -> Self {
        self.registration = true;
        self.landscape = Some(landscape);
        self
    }

    /// Access for `municipality` (a CBS code such as `0222`); brings registration.
    pub fn access(mut self, municipality: &str) -> Self {
        self.registration = true;
        self.access.push(municipality.to_owned());
        self
    }

    /// Assignment, knowing registration and every access of the stack; brings registration.
    /// Its date is the system date unless [`StackBuilder::today`] fixes it.
    pub fn assignment(mut self) -> Self {
        self.registration = true;
        self.assignment = true;
        self
    }

    /// Notification, knowing every access and the assignment of the stack.
    pub fn notification(mut self) -> Self {
        self.notification = true;
        self
    }

    /// Notification as another replica on the database at `db_url` (join that stack's namespace
    /// with [`StackBuilder::namespace`]).
    pub fn notification_on(mut self, db_url: &str) -> Self {
        self.notification = true;
        self.notification_db = Some(db_url.to_owned());
        self
    }

    /// Reporting; it starts first, so it consumes every stream from its start.
    pub fn reporting(mut self) -> Self {
        self.reporting = true;
        self
    }

    /// Certificates for these providers (AGB codes) besides the landscape's and the fixtures'.
    pub fn providers(mut self, agb_codes: &[&str]) -> Self {
        self.providers
            .extend(agb_codes.iter().map(|s| (*s).to_owned()));
        self
    }

    /// Certificates for these municipalities (CBS codes) besides the landscape's and every
    /// access's; no access instance is started for them.
    pub fn municipalities(mut self, cbs_codes: &[&str]) -> Self {
        self.municipalities
            .extend(cbs_codes.iter().map(|s| (*s).to_owned()));
        self
    }

    /// The date of registration and assignment: one [`FixedClock`] on `date` that the test moves
    /// ([`Stack::clock`]).
    pub fn today(mut self, date: NaiveDate) -> Self {
        self.today = Some(date);
        self
    }

    /// The region's secret for client keys (default [`SECRET`]).
    pub fn client_key_secret(mut self, secret: &str) -> Self {
        self.secret = secret.to_owned();
        self
    }

    /// Joins the NATS namespace of another stack instead of a fresh one.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// Uses the registration at `endpoint` (of another stack) instead of starting one.
    pub fn use_registration(mut self, endpoint: &str) -> Self {
        self.external_registration = Some(endpoint.to_owned());
        self
    }

    /// Uses the access for `municipality` at `endpoint` (of another stack) instead of starting
    /// one.
    pub fn use_access(mut self, municipality: &str, endpoint: &str) -> Self {
        self.external_access
            .push((municipality.to_owned(), endpoint.to_owned()));
        self
    }

    /// Changes every access's configuration (also of instances started later) after the stack
    /// filled it in.
    pub fn access_config(
        mut self,
        tune: impl Fn(&mut access::Config) + Send + Sync + 'static,
    ) -> Self {
        self.access_config = Some(Arc::new(tune));
        self
    }

    /// Starts what was asked, in order; panics (the test fails) when a service does not build.
    pub async fn start(self) -> Stack {
        let env = TestEnv::load();
        let namespace = self.namespace.unwrap_or_else(|| env.namespace());
        let mut providers: Vec<String> = [P1, P2, P3, OLD, PV1, PV2, ZH, NONE]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(self.providers)
            .collect();
        let mut municipalities: Vec<String> = std::iter::once(M.to_owned())
            .chain(self.access.iter().cloned())
            .chain(self.municipalities)
            .collect();
        if let Some(landscape) = &self.landscape {
            providers.extend(landscape.agb_codes());
            municipalities.extend(landscape.municipalities());
        }
        providers.sort();
        providers.dedup();
        municipalities.sort();
        municipalities.dedup();
        let mut stack = Stack {
            env,
            namespace,
            pki: StackPki::shared(&providers, &municipalities),
            channels: Channels::default(),
            secret: self.secret,
            registration: None,
            access: Vec::new(),
            assignment: None,
            assigner: None,
            clock: None,
            notification: None,
            reporting: None,
            contracts: HashMap::new(),
            access_config: self.access_config,
            external_registration: self.external_registration,
            external_access: self.external_access,
        };
        if self.reporting {
            let mut config = reporting::Config::default();
            stack
                .base(
                    <reporting::App as rz_platform::runner::Service>::MIGRATIONS,
                    &mut config.database,
                    &mut config.nats,
                    &mut config.server,
                    4,
                )
                .await;
            stack.secure(
                "reporting",
                &mut config.tls,
                &mut config.identity,
                &mut config.limits,
            );
            if let Some(tune) = self.reporting_config {
                tune(&mut config);
            }
            let db_url = config.database.url.clone();
            let app = reporting::App::build(config)
                .await
                .expect("reporting builds");
            let (addr, pool) = (app.local_addr(), app.pool().clone());
            let operator = stack.pki.tls(OPERATOR);
            stack.reporting =
                Some(Service::spawn(addr, pool, db_url, &operator, |s| app.run(s)).await);
        }
        if self.registration && stack.external_registration.is_none() {
            let mut config = registration::Config::default();
            stack
                .base(
                    <registration::App as rz_platform::runner::Service>::MIGRATIONS,
                    &mut config.database,
                    &mut config.nats,
                    &mut config.server,
                    5,
                )
                .await;
            stack.secure(
                "registration",
                &mut config.tls,
                &mut config.identity,
                &mut config.limits,
            );
            if let Some(tune) = self.registration_config {
                tune(&mut config);
            }
            let db_url = config.database.url.clone();
            let app = match self.today {
                Some(date) => {
                    let clock = stack
                        .clock
                        .get_or_insert_with(|| Arc::new(FixedClock::new(date)))
                        .clone();
                    registration::App::build_with_clock(config, clock).await
                }
                None => registration::App::build(config).await,
            }
            .expect("registration builds");
            let (addr, pool) = (app.local_addr(), app.pool().clone());
            let operator = stack.pki.tls(OPERATOR);
            stack.registration =
                Some(Service::spawn(addr, pool, db_url, &operator, |s| app.run(s)).await);
            if let Some(landscape) = &self.landscape {
                stack.contracts = landscape.load(&mut stack.registration()).await;
            }
        }
        for municipality in &self.access {
            let config = stack.access_config(municipality).await;
            stack.start_access_with(municipality, config).await;
        }
        if self.assignment {
            let mut config = assignment::Config::default();
            stack
                .base(
                    <assignment::App as rz_platform::runner::Service>::MIGRATIONS,
                    &mut config.database,
                    &mut config.nats,
                    &mut config.server,
                    5,
                )
                .await;
            stack.secure(
                "assignment",
                &mut config.tls,
                &mut config.identity,
                &mut config.limits,
            );
            config.assignment.registration_endpoint = stack.registration_endpoint();
            config.assignment.client_key_secret = stack.secret.clone();
            config.personal_data.keys_file = Some(personal_keys_file());
            config.assignment.access_endpoints = stack.access_endpoints();
            if let Some(tune) = self.assignment_config {
                tune(&mut config);
            }
            let db_url = config.database.url.clone();
            let app = match self.today {
                Some(date) => {
                    let clock = stack
                        .clock
                        .get_or_insert_with(|| Arc::new(FixedClock::new(date)))
                        .clone();
                    assignment::App::build_with_clock(config, clock).await
                }
                None => assignment::App::build(config).await,
            }
            .expect("assignment builds");
            let (addr, pool) = (app.local_addr(), app.pool().clone());
            stack.assigner = Some(app.assigner());
            let operator = stack.pki.tls(OPERATOR);
            stack.assignment =
                Some(Service::spawn(addr, pool, db_url, &operator, |s| app.run(s)).await);
        }
        if self.notification {
            let mut config = notification::Config::default();
            stack
                .base(
                    <notification::App as rz_platform::runner::Service>::MIGRATIONS,
                    &mut config.database,
                    &mut config.nats,
                    &mut config.server,
                    8,
                )
                .await;
            stack.secure(
                "notification",
                &mut config.tls,
                &mut config.identity,
                &mut config.limits,
            );
            if let Some(db) = self.notification_db {
                config.database.url = db;
            }
            config.notification.access_endpoints = stack.access_endpoints();
            // The test receivers listen on loopback, over http or https: allowed here only.
            config.webhooks.require_https = false;
            config.webhooks.allow_cidrs = vec!["127.0.0.0/8".into(), "::1/128".into()];
            config.webhooks.secret_keys_file = Some(webhook_keys_file());
            if let Some(a) = &stack.assignment {
                config.notification.assignment_endpoint = a.endpoint.clone();
            }
            if let Some(tune) = self.notification_config {
                tune(&mut config);
            }
            let db_url = config.database.url.clone();
            let app = notification::App::build(config)
                .await
                .expect("notification builds");
            let (addr, pool) = (app.local_addr(), app.pool().clone());
            let operator = stack.pki.tls(OPERATOR);
            stack.notification =
                Some(Service::spawn(addr, pool, db_url, &operator, |s| app.run(s)).await);
        }
        stack
    }
}

/// Services started by [`Stack::builder`]; see the crate documentation.
pub struct Stack {
    pub env: TestEnv,
    namespace: String,
    pki: Arc<StackPki>,
    channels: Channels,
    secret: String,
    registration: Option<Service>,
    /// (municipality, instance) in start order; later instances of a municipality are replicas.
    access: Vec<(String, Service)>,
    assignment: Option<Service>,
    assigner: Option<Assigner>,
    clock: Option<Arc<FixedClock>>,
    notification: Option<Service>,
    reporting: Option<Service>,
    contracts: HashMap<String, String>,
    access_config: Option<TuneAccess>,
    /// Services of another stack this one uses.
    external_registration: Option<String>,
    external_access: Vec<(String, String)>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for s in self.services_mut() {
            s.shutdown.trigger();
        }
    }
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder {
            registration: false,
            landscape: None,
            access: Vec::new(),
            assignment: false,
            notification: false,
            notification_db: None,
            reporting: false,
            providers: Vec::new(),
            municipalities: Vec::new(),
            today: None,
            secret: SECRET.to_owned(),
            namespace: None,
            external_registration: None,
            external_access: Vec::new(),
            registration_config: None,
            access_config: None,
            assignment_config: None,
            notification_config: None,
            reporting_config: None,
        }
    }

    /// The stack's NATS namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The URL of the NATS server.
    pub fn nats_url(&self) -> &str {
        &self.env.nats_url
    }

    /// The region's secret for client keys.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The client key of `bsn` under the stack's secret.
    pub fn key_of(&self, bsn: &str) -> String {
        key_with(&self.secret, bsn)
    }

    /// The contract ids of the landscape, by AGB code (the last contract of each provider).
    pub fn contracts(&self) -> &HashMap<String, String> {
        &self.contracts
    }

    fn services_mut(&mut self) -> impl Iterator<Item = &mut Service> {
        self.reporting
            .iter_mut()
            .chain(self.registration.iter_mut())
            .chain(self.access.iter_mut().map(|(_, s)| s))
            .chain(self.assignment.iter_mut())
            .chain(self.notification.iter_mut())
    }

    /// Fills in the parts every service's configuration shares: a fresh database, migrated as
    /// its owner and used by the service as the runtime role [`RUNTIME_ROLE`] (which cannot
    /// change the schema; `[database] migrate = false`, as on Kubernetes), the stack's NATS
    /// namespace, port 0.
    async fn base(
        &self,
        migrations: &[rz_platform::db::Migration],
        database: &mut rz_platform::config::DatabaseConfig,
        nats: &mut rz_platform::config::NatsConfig,
        server: &mut rz_platform::config::ServerConfig,
        max_connections: u32,
    ) {
        database.url = runtime_database(&self.env, migrations).await;
        database.migrate = false;
        database.max_connections = max_connections;
        nats.url = self.env.nats_url.clone();
        nats.namespace = self.namespace.clone();
        server.listen = "127.0.0.1:0".parse().unwrap();
        server.shutdown_grace_secs = 5;
    }

    /// Fills in what every service's identity needs: its certificate (`service-<name>` of the
    /// stack's PKI), the stack's staff-token key, and rate limits off.
    fn secure(
        &self,
        service: &str,
        tls: &mut TlsConfig,
        identity: &mut IdentityConfig,
        limits: &mut LimitsConfig,
    ) {
        *tls = self.pki.tls(&format!("service-{service}"));
        identity.token_keys = vec![self.pki.token_key()];
        *limits = LimitsConfig {
            provider_per_second: 0,
            provider_burst: 0,
            municipality_per_second: 0,
            municipality_burst: 0,
            operator_per_second: 0,
            operator_burst: 0,
        };
    }

    /// Access's configuration for `municipality` as the stack would start it (a fresh database,
    /// the stack's registration and secret), without starting it: for start-up tests.
    pub async fn access_config(&self, municipality: &str) -> access::Config {
        let mut config = access::Config::default();
        self.base(
            <access::App as rz_platform::runner::Service>::MIGRATIONS,
            &mut config.database,
            &mut config.nats,
            &mut config.server,
            5,
        )
        .await;
        self.secure(
            "access",
            &mut config.tls,
            &mut config.identity,
            &mut config.limits,
        );
        config.access = access::AccessConfig {
            municipality: municipality.to_owned(),
            client_key_secret: self.secret.clone(),
            registration_endpoint: self.registration_endpoint(),
            ..Default::default()
        };
        config.personal_data.keys_file = Some(personal_keys_file());
        if let Some(tune) = &self.access_config {
            tune(&mut config);
        }
        config
    }

    async fn start_access_with(&mut self, municipality: &str, config: access::Config) -> &Service {
        let db_url = config.database.url.clone();
        let app = access::App::build(config).await.expect("access builds");
        let (addr, pool) = (app.local_addr(), app.pool().clone());
        let own = self.pki.tls(&format!("municipality-{municipality}"));
        let service = Service::spawn(addr, pool, db_url, &own, |s| app.run(s)).await;
        self.access.push((municipality.to_owned(), service));
        &self.access[self.access.len() - 1].1
    }

    /// Another access instance for `municipality` on the first one's database, listening on
    /// `listen`; its endpoint. Assignment and notification keep the endpoints they started with.
    pub async fn start_access_at(&mut self, municipality: &str, listen: SocketAddr) -> String {
        let db_url = self.access_service(municipality).db_url.clone();
        let mut config = self.access_config(municipality).await;
        config.database.url = db_url;
        config.server.listen = listen;
        self.start_access_with(municipality, config)
            .await
            .endpoint
            .clone()
    }

    /// Another access for `municipality` with a fresh database, started after the others (the
    /// assignment and notification of the stack do not know it); its endpoint.
    pub async fn start_access(&mut self, municipality: &str) -> String {
        let config = self.access_config(municipality).await;
        self.start_access_with(municipality, config)
            .await
            .endpoint
            .clone()
    }

    fn access_endpoints(&self) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = self.external_access.iter().cloned().collect();
        for (m, s) in &self.access {
            out.entry(m.clone()).or_insert_with(|| s.endpoint.clone());
        }
        out
    }

    fn expect_service<'a>(service: Option<&'a Service>, name: &str) -> &'a Service {
        service.unwrap_or_else(|| panic!("the stack runs no {name}: add it to the builder"))
    }

    pub fn registration_service(&mut self) -> &mut Service {
        self.registration
            .as_mut()
            .expect("the stack runs no registration: add it to the builder")
    }

    /// The first access instance of `municipality`.
    pub fn access_service(&mut self, municipality: &str) -> &mut Service {
        self.access
            .iter_mut()
            .find(|(m, _)| m == municipality)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("the stack runs no access for {municipality}"))
    }

    pub fn assignment_service(&mut self) -> &mut Service {
        self.assignment
            .as_mut()
            .expect("the stack runs no assignment: add it to the builder")
    }

    pub fn notification_service(&mut self) -> &mut Service {
        self.notification
            .as_mut()
            .expect("the stack runs no notification: add it to the builder")
    }

    pub fn reporting_service(&mut self) -> &mut Service {
        self.reporting
            .as_mut()
            .expect("the stack runs no reporting: add it to the builder")
    }

    /// `http://<addr>` of registration.
    pub fn registration_endpoint(&self) -> String {
        match &self.external_registration {
            Some(endpoint) => endpoint.clone(),
            None => Self::expect_service(self.registration.as_ref(), "registration")
                .endpoint
                .clone(),
        }
    }

    /// `http://<addr>` of the first access instance of `municipality`.
    pub fn access_endpoint(&self, municipality: &str) -> String {
        self.access_endpoints()
            .remove(municipality)
            .unwrap_or_else(|| panic!("the stack runs no access for {municipality}"))
    }

    /// `http://<addr>` of assignment.
    pub fn assignment_endpoint(&self) -> String {
        Self::expect_service(self.assignment.as_ref(), "assignment")
            .endpoint
            .clone()
    }

    /// `http://<addr>` of notification.
    pub fn notification_endpoint(&self) -> String {
        Self::expect_service(self.notification.as_ref(), "notification")
            .endpoint
            .clone()
    }

    /// `http://<addr>` of reporting.
    pub fn reporting_endpoint(&self) -> String {
        Self::expect_service(self.reporting.as_ref(), "reporting")
            .endpoint
            .clone()
    }

    /// A gRPC client of registration, as the operator.
    pub fn registration(&self) -> RegistrationServiceClient<Channel> {
        self.as_operator().registration()
    }

    /// A gRPC client of access for `municipality` (its first instance), as that municipality.
    pub fn access(&self, municipality: &str) -> AccessServiceClient<Channel> {
        self.as_municipality(municipality).access(municipality)
    }

    /// A gRPC client of assignment, as the operator.
    pub fn assignment(&self) -> AssignmentServiceClient<Channel> {
        self.as_operator().assignment()
    }

    /// A gRPC client of notification, as the operator.
    pub fn notification(&self) -> NotificationServiceClient<Channel> {
        self.as_operator().notification()
    }

    /// A gRPC client of reporting, as the operator.
    pub fn reporting(&self) -> ReportingServiceClient<Channel> {
        self.as_operator().reporting()
    }

    /// The provider `agb` (`urn:regiozorg:provider:<agb>`).
    pub fn as_provider(&self, agb: &str) -> Party<'_> {
        Party::new(self, format!("provider-{agb}"))
    }

    /// The municipality `cbs` (`urn:regiozorg:municipality:<cbs>`), its system without a person.
    pub fn as_municipality(&self, cbs: &str) -> Party<'_> {
        Party::new(self, format!("municipality-{cbs}"))
    }

    /// The region's operations staff (`urn:regiozorg:operator:ops`).
    pub fn as_operator(&self) -> Party<'_> {
        Party::new(self, OPERATOR.to_owned())
    }

    /// The platform's service `name` (`urn:regiozorg:service:<name>`), as it calls another.
    pub fn as_service(&self, name: &str) -> Party<'_> {
        Party::new(self, format!("service-{name}"))
    }

    /// A person with `role` at `municipality`: a token valid an hour, signed by the stack's token
    /// key, to pass with that municipality's calls ([`Staff::request`]).
    pub fn staff(&self, municipality: &str, role: Role) -> Staff {
        Staff::issue(self.pki.pki(), municipality, role, 3600)
    }

    /// The stack's PKI (to issue certificates and tokens for tests of refusals).
    pub fn pki(&self) -> &rz_pki::Pki {
        self.pki.pki()
    }

    /// A channel to `endpoint` as the party whose certificate `tls` names, connecting on its first
    /// call (a refused handshake is that call's error).
    pub async fn channel_as(&self, endpoint: &str, tls: &TlsConfig) -> Channel {
        parties::lazy(endpoint, tls)
    }

    /// Assignment's logic (for what has no RPC: an interrupted handover run, unassigned products).
    pub fn assigner(&self) -> Assigner {
        self.assigner
            .clone()
            .expect("the stack runs no assignment: add it to the builder")
    }

    /// The clock of registration and assignment, when [`StackBuilder::today`] fixed it.
    pub fn clock(&self) -> Arc<FixedClock> {
        self.clock
            .clone()
            .expect("the stack's date is the system date: fix it with StackBuilder::today")
    }

    /// Stops every service (in reverse start order) and waits for them; the first error.
    pub async fn shutdown(mut self) -> Result<(), String> {
        let mut services: Vec<&mut Service> = self.services_mut().collect();
        services.reverse();
        let mut result = Ok(());
        for s in services {
            let stopped = s.stop().await;
            if result.is_ok() {
                result = stopped;
            }
        }
        result
    }
}

/// The file of keys sealing personal data at rest (`[personal_data]` of access, assignment and
/// notification), one per test process (replicas and restarts of one test share it).
pub fn personal_keys_file() -> std::path::PathBuf {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("rz-stack-personal-keys-{}", std::process::id()));
        let line = rz_platform::sealing::new_key_line("pd1").expect("random key");
        std::fs::write(&path, line).expect("writing the personal data key file");
        path
    })
    .clone()
}

/// The file of keys sealing notification's subscription secrets, one per test process (replicas
/// and restarts of one test share it).
fn webhook_keys_file() -> std::path::PathBuf {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("rz-stack-webhook-keys-{}", std::process::id()));
        let line = notification::secrets::new_key_line("test1").expect("random key");
        std::fs::write(&path, line).expect("writing the webhook key file");
        path
    })
    .clone()
}

/// A pool (4 connections) on a fresh database migrated with `migrations` as its owner: for tests
/// of a store's statements without a running service.
pub async fn migrated_pool(migrations: &[rz_platform::db::Migration]) -> sqlx::PgPool {
    let config = rz_platform::config::DatabaseConfig {
        url: rz_testkit::TestEnv::load().fresh_database().await,
        max_connections: 4,
        ..Default::default()
    };
    let pool = rz_platform::db::connect(&config)
        .await
        .expect("connects to a fresh database");
    rz_platform::db::migrate(&pool, migrations)
        .await
        .expect("migrates a fresh database");
    pool
}

/// The role every service of a stack connects as: rows yes, schema no (see
/// `rz_platform::db::grant_runtime`). One role for the PostgreSQL server (roles are not per
/// database); its password is ignored under the local stack's trust authentication.
pub const RUNTIME_ROLE: &str = "rz_app";

/// A fresh database migrated with `migrations` as its owner (the admin URL's role, as `<service>
/// migrate` would as the migration role) with [`RUNTIME_ROLE`] granted; the runtime role's URL.
pub async fn runtime_database(
    env: &rz_testkit::TestEnv,
    migrations: &[rz_platform::db::Migration],
) -> String {
    let owner_url = env.fresh_database().await;
    let owner = sqlx::PgPool::connect(&owner_url)
        .await
        .expect("connects to a fresh database");
    // Parallel tests create it at once: the loser's error is one of these two.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN CREATE ROLE {RUNTIME_ROLE} LOGIN PASSWORD '{RUNTIME_ROLE}';
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
    )))
    .execute(&owner)
    .await
    .expect("creates the runtime role");
    rz_platform::db::migrate(&owner, migrations)
        .await
        .expect("migrates as the owner");
    rz_platform::db::grant_runtime(&owner, RUNTIME_ROLE)
        .await
        .expect("grants the runtime role");
    owner.close().await;
    with_user(&owner_url, RUNTIME_ROLE, RUNTIME_ROLE)
}

/// `url` with its user and password replaced.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split_once('@').map(|(_, h)| h).unwrap_or(rest);
            format!("{scheme}://{user}:{password}@{host}")
        }
        None => url.to_owned(),
    }
}
