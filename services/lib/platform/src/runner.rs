//! The one service runner. Every service's `main.rs` is a call to [`main`]; its library implements
//! [`Service`] with two steps:
//!
//! 1. **build**: check the configuration, then [`Foundation::start`] connects to PostgreSQL and
//!    runs the service's migrations, connects to NATS and ensures the streams it publishes to or
//!    consumes from, and binds the gRPC listener (port 0 in tests). Nothing is served yet.
//! 2. **run**: [`Foundation::serving`] hands a [`Serving`] to which the service adds its event
//!    consumers ([`Serving::consume`]) and other background tasks ([`Serving::spawn`]); then
//!    [`Serving::run`] adds its gRPC services and serves until the shutdown signal.
//!
//! What every service gets here, once: the command line (`serve --config FILE`, `--help`,
//! `--version`), layered configuration, telemetry, SIGTERM/Ctrl-C handling, the gRPC server with
//! its layers and the health service, the outbox relay, and the order of a graceful stop: health
//! turns NOT_SERVING and no new calls are accepted, in-flight calls get `server.shutdown_grace_secs`
//! to finish, consumers finish the event in hand, the relay flushes what they committed, the NATS
//! connection drains and the pool closes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rz_eventing::nats::{self, jetstream};
use rz_eventing::relay::OutboxRelay;
use rz_eventing::{ConsumerSpec, EventConsumer, EventingError, Handler, Namespace};
use rz_telemetry::TelemetryConfig;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

use crate::Shutdown;
use crate::config::{DatabaseConfig, NatsConfig, ServerConfig};
use crate::db::Migration;
use crate::server::Layered;

/// Why a service could not start (or stopped serving with an error).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value is missing or breaks a rule; the message names the key.
    #[error("configuration: {0}")]
    Config(String),
    /// A service this one needs at start-up did not answer, or answered something unusable.
    #[error("upstream: {0}")]
    Upstream(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// `[database] migrate = false` and the schema is not at this build's migrations.
    #[error("schema: {0}")]
    Schema(String),
    #[error("nats: {0}")]
    Nats(#[from] EventingError),
    #[error("listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("server: {0}")]
    Server(#[from] tonic::transport::Error),
}

/// The sections every service's configuration has. Define the configuration with
/// [`service_config!`](crate::service_config).
pub trait ServiceConfig: DeserializeOwned + Send + 'static {
    fn server(&self) -> &ServerConfig;
    fn database(&self) -> &DatabaseConfig;
    fn nats(&self) -> &NatsConfig;
    fn telemetry(&self) -> &TelemetryConfig;
    /// `[tls]`: the CA and the service's own certificate; required.
    fn tls(&self) -> &crate::tls::TlsConfig;
    /// `[identity]`: certificate serial numbers and token keys.
    fn identity(&self) -> &crate::identity::IdentityConfig;
    /// `[limits]`: calls per second per caller.
    fn limits(&self) -> &crate::authz::LimitsConfig;
    /// `[metrics]`: the Prometheus endpoint (off unless `listen` is set).
    fn metrics(&self) -> &crate::config::MetricsConfig;
}

/// Defines a service's configuration: the sections every service has (`[server]`, `[database]`,
/// `[nats]`, `[telemetry]`) and the service's own, with defaults for everything, and implements
/// [`ServiceConfig`] for it:
///
/// ```ignore
/// rz_platform::service_config! {
///     /// The service's configuration.
///     pub struct Config {
///         pub access: AccessConfig,
///     }
/// }
/// ```
#[macro_export]
macro_rules! service_config {
    ($(#[$meta:meta])* pub struct $config:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, serde::Deserialize)]
        #[serde(default)]
        pub struct $config {
            pub server: $crate::config::ServerConfig,
            pub database: $crate::config::DatabaseConfig,
            pub nats: $crate::config::NatsConfig,
            pub telemetry: $crate::config::TelemetryConfig,
            pub tls: $crate::tls::TlsConfig,
            pub identity: $crate::identity::IdentityConfig,
            pub limits: $crate::authz::LimitsConfig,
            pub audit: $crate::audit::AuditConfig,
            pub metrics: $crate::config::MetricsConfig,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::runner::ServiceConfig for $config {
            fn server(&self) -> &$crate::config::ServerConfig {
                &self.server
            }
            fn database(&self) -> &$crate::config::DatabaseConfig {
                &self.database
            }
            fn nats(&self) -> &$crate::config::NatsConfig {
                &self.nats
            }
            fn telemetry(&self) -> &$crate::config::TelemetryConfig {
                &self.telemetry
            }
            fn tls(&self) -> &$crate::tls::TlsConfig {
                &self.tls
            }
            fn identity(&self) -> &$crate::identity::IdentityConfig {
                &self.identity
            }
            fn limits(&self) -> &$crate::authz::LimitsConfig {
                &self.limits
            }
            fn metrics(&self) -> &$crate::config::MetricsConfig {
                &self.metrics
            }
        }
    };
}

/// A service: built from its configuration, then run until the shutdown signal. Implement it with
/// [`service!`](crate::service).
pub trait Service: Sized + Send + 'static {
    /// The binary's and the telemetry's name (`registration`, `access`, ...).
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// The crate's version, for `--version`: `env!("CARGO_PKG_VERSION")` in the service's crate.
    const VERSION: &'static str;
    /// The service's migrations (its `store::MIGRATIONS`), for `<name> migrate`.
    const MIGRATIONS: &'static [Migration];
    type Config: ServiceConfig;

    fn build(config: Self::Config) -> impl Future<Output = Result<Self, StartError>> + Send;
    fn run(self, shutdown: Shutdown) -> impl Future<Output = Result<(), StartError>> + Send;
}

/// Makes a service's `App` a [`Service`]: `service!(App, "registration", "one line for --help",
/// Config, store::MIGRATIONS)`. The `App` has a field `foundation: Foundation` and inherent `async fn build(Config) ->
/// Result<App, StartError>` and `async fn run(self, Shutdown) -> Result<(), StartError>` (tests
/// call them directly); the macro adds `local_addr()` and `pool()`.
#[macro_export]
macro_rules! service {
    ($app:ty, $name:literal, $about:literal, $config:ty, $migrations:expr) => {
        impl $crate::runner::Service for $app {
            const NAME: &'static str = $name;
            const ABOUT: &'static str = $about;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            const MIGRATIONS: &'static [$crate::db::Migration] = $migrations;
            type Config = $config;

            async fn build(config: $config) -> Result<Self, $crate::StartError> {
                <$app>::build(config).await
            }

            async fn run(self, shutdown: $crate::Shutdown) -> Result<(), $crate::StartError> {
                <$app>::run(self, shutdown).await
            }
        }

        impl $app {
            /// Where the gRPC server listens (the bound port when the configuration said 0).
            pub fn local_addr(&self) -> std::net::SocketAddr {
                self.foundation.local_addr()
            }

            /// The service's own database.
            pub fn pool(&self) -> &sqlx::PgPool {
                self.foundation.pool()
            }

            /// Where `/metrics` is served (`None` when `[metrics] listen` is not set).
            pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
                self.foundation.metrics_addr()
            }
        }
    };
}

// `serve`'s options (a plain comment: a doc comment would become the command's description).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file; `RZ__SECTION__KEY` environment variables override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

// `migrate`'s options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MigrateArgs {
    /// A TOML configuration file; `RZ__SECTION__KEY` environment variables override it. Only
    /// `[database] url` (the migration role's) and `[telemetry]` are read.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Afterwards, grant ROLE (the services' runtime role) read and write on every table and
    /// nothing more: no CREATE, ALTER or DROP.
    #[arg(long, value_name = "ROLE")]
    pub grant_to: Option<String>,
    /// Change nothing: exit 0 when every migration of this build is applied, 3 otherwise.
    #[arg(long, conflicts_with = "grant_to")]
    pub check: bool,
}

/// Exit code of `migrate --check` when migrations are pending (1 stays "failed").
pub const EXIT_PENDING: u8 = 3;

/// A service's command line without commands of its own: `<name> [serve] [--config FILE]`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NoCommands {}

/// The whole `main` of a service binary: `<name> [serve] [--config FILE]`.
pub fn main<S: Service>() -> ExitCode {
    main_with::<S, NoCommands, _, _>(|never| async move { match never {} })
}

/// As [`main`], with commands of the service's own (`X`, a clap subcommand enum) beside `serve`;
/// `other` runs them.
pub fn main_with<S, X, F, Fut>(other: F) -> ExitCode
where
    S: Service,
    X: clap::Subcommand,
    F: FnOnce(X) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    use clap::{Args, FromArgMatches};

    let serve = ServeArgs::augment_args(
        clap::Command::new("serve").about("Runs the service (the default command)"),
    );
    let migrate = MigrateArgs::augment_args(clap::Command::new("migrate").about(
        "Applies the service's database migrations and exits (as the migration role; the \
         Kubernetes Job before a release's pods)",
    ));
    // About and version last: the derives set them from their doc comments.
    let command = ServeArgs::augment_args(X::augment_subcommands(
        clap::Command::new(S::NAME)
            .subcommand(serve)
            .subcommand(migrate),
    ))
    .about(S::ABOUT)
    .version(S::VERSION)
    .args_conflicts_with_subcommands(true);
    let matches = command.get_matches();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let result = match matches.subcommand() {
        None => match ServeArgs::from_arg_matches(&matches) {
            Ok(args) => runtime.block_on(serve_main::<S>(args)),
            Err(e) => e.exit(),
        },
        Some(("serve", sub)) => match ServeArgs::from_arg_matches(sub) {
            Ok(args) => runtime.block_on(serve_main::<S>(args)),
            Err(e) => e.exit(),
        },
        Some(("migrate", sub)) => match MigrateArgs::from_arg_matches(sub) {
            Ok(args) => match runtime.block_on(migrate_main::<S>(args)) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(EXIT_PENDING),
                Err(e) => Err(e),
            },
            Err(e) => e.exit(),
        },
        Some(_) => match X::from_arg_matches(&matches) {
            Ok(x) => runtime.block_on(other(x)),
            Err(e) => e.exit(),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration, starts telemetry, builds the service and runs it until SIGTERM or
/// Ctrl-C.
pub async fn serve_main<S: Service>(args: ServeArgs) -> Result<(), String> {
    let config: S::Config =
        crate::config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let _telemetry = rz_telemetry::init(S::NAME, config.telemetry()).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let service = S::build(config).await.map_err(|e| e.to_string())?;
    service.run(shutdown).await.map_err(|e| e.to_string())
}

/// `<name> migrate`: applies the migrations (or with `--check` only checks them) and grants the
/// runtime role; `Ok(false)` when `--check` found migrations pending.
pub async fn migrate_main<S: Service>(args: MigrateArgs) -> Result<bool, String> {
    let config: S::Config =
        crate::config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let _telemetry = rz_telemetry::init(S::NAME, config.telemetry()).map_err(|e| e.to_string())?;
    let pool = crate::db::connect(config.database())
        .await
        .map_err(|e| format!("database: {e}"))?;
    let result = migrate_with(&pool, S::NAME, S::MIGRATIONS, &args).await;
    pool.close().await;
    result
}

async fn migrate_with(
    pool: &PgPool,
    name: &str,
    migrations: &[Migration],
    args: &MigrateArgs,
) -> Result<bool, String> {
    use crate::db::SchemaError;
    if args.check {
        return match crate::db::check_applied(pool, name, migrations).await {
            Ok(state) => {
                println!(
                    "{name}: schema at version {} (every migration of this build applied{})",
                    state.version,
                    if state.newer.is_empty() {
                        String::new()
                    } else {
                        format!("; newer: {:?}", state.newer)
                    }
                );
                Ok(true)
            }
            Err(e @ (SchemaError::NotMigrated { .. } | SchemaError::Missing { .. })) => {
                println!("{name}: {e}");
                Ok(false)
            }
            Err(e) => Err(format!("schema: {e}")),
        };
    }
    crate::db::migrate(pool, migrations)
        .await
        .map_err(|e| format!("migrate: {e}"))?;
    let state = crate::db::check_applied(pool, name, migrations)
        .await
        .map_err(|e| format!("schema: {e}"))?;
    println!("{name}: schema at version {}", state.version);
    if let Some(role) = &args.grant_to {
        crate::db::grant_runtime(pool, role)
            .await
            .map_err(|e| format!("grant: {e}"))?;
        println!("{name}: runtime role {role} may read and write rows, not change the schema");
    }
    Ok(true)
}

/// What every service stands on once built: its migrated database, NATS with its streams, and the
/// bound gRPC listener.
pub struct Foundation {
    name: &'static str,
    tls: crate::tls::TlsConfig,
    server_tls: tonic::transport::ServerTlsConfig,
    identities: crate::identity::Identities,
    limits: crate::authz::LimitsConfig,
    instance: Option<rz_domain::GemeenteCode>,
    max_message: usize,
    pool: PgPool,
    nats: nats::Client,
    js: jetstream::Context,
    ns: Namespace,
    listener: TcpListener,
    addr: SocketAddr,
    grace: Duration,
    metrics: crate::metrics::Metrics,
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    sample_every: Duration,
}

impl Foundation {
    /// Connects and migrates the database, connects to NATS and ensures the streams of `contexts`
    /// (the service's own and those it consumes, so a consumer can attach before their producer
    /// runs), and binds the listener.
    pub async fn start(
        name: &'static str,
        config: &impl ServiceConfig,
        migrations: &[Migration],
        contexts: &[&str],
    ) -> Result<Self, StartError> {
        let nats_config = config.nats();
        let ns = Namespace::new(&nats_config.namespace).map_err(StartError::Config)?;
        let streams = nats_config.streams().map_err(StartError::Config)?;
        let tls = config.tls().clone();
        let server_tls = tls
            .server()
            .map_err(|e| StartError::Config(e.to_string()))?;
        // The client side too, so that a service whose calls cannot work does not start.
        tls.client()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let identities = crate::identity::Identities::from_config(config.identity())
            .map_err(StartError::Config)?;
        let pool = crate::db::connect(config.database()).await?;
        if config.database().migrate {
            crate::db::migrate(&pool, migrations).await?;
        } else {
            let state = crate::db::check_applied(&pool, name, migrations)
                .await
                .map_err(|e| StartError::Schema(e.to_string()))?;
            if !state.newer.is_empty() {
                tracing::info!(
                    version = state.version,
                    newer = ?state.newer.iter().map(|m| m.0).collect::<Vec<_>>(),
                    "the schema holds a newer release's migrations (expanded): serving on it"
                );
            }
            if crate::db::can_change_schema(&pool).await? {
                tracing::warn!(
                    "the database role can change the schema although this service does not \
                     migrate: give it a runtime role (`{name} migrate --grant-to ROLE`)"
                );
            }
        }
        let (nats, js) =
            rz_eventing::connect_with(&nats_config.url, name, &nats_config.auth(&ns, name)).await?;
        for context in contexts {
            rz_eventing::ensure_stream(&js, &ns, context, &streams).await?;
        }
        rz_eventing::dlq::ensure_stream_with(&js, &ns, &streams).await?;
        let listener = TcpListener::bind(config.server().listen).await?;
        let addr = listener.local_addr()?;
        let metrics = crate::metrics::Metrics::new();
        metrics.set_pool_max(config.database().max_connections);
        let metrics_listener = crate::metrics::bind(config.metrics()).await?;
        Ok(Self {
            name,
            tls,
            server_tls,
            identities,
            limits: config.limits().clone(),
            instance: None,
            max_message: crate::authz::DEFAULT_MAX_MESSAGE,
            pool,
            nats,
            js,
            ns,
            listener,
            addr,
            grace: Duration::from_secs(config.server().shutdown_grace_secs),
            metrics,
            metrics_listener,
            sample_every: Duration::from_secs(config.metrics().sample_secs),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served (`None` when `[metrics] listen` is not set).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The service's metrics (see [`crate::metrics`]).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Makes this the access instance of `municipality`: the policy's "own municipality".
    pub fn serve_municipality(&mut self, municipality: rz_domain::GemeenteCode) {
        self.instance = Some(municipality);
    }

    /// The largest request message this service accepts (its gRPC services' decoding limit), so
    /// that authorisation reads requests up to the same size.
    pub fn accept_messages_up_to(&mut self, bytes: usize) {
        self.max_message = bytes;
    }

    /// The service's own certificate and CA: [`crate::tls::TlsConfig::endpoint`] dials the
    /// services it calls with them.
    pub fn tls(&self) -> &crate::tls::TlsConfig {
        &self.tls
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn ns(&self) -> &Namespace {
        &self.ns
    }

    pub fn js(&self) -> &jetstream::Context {
        &self.js
    }

    /// Starts serving: background tasks and gRPC services are added to the result.
    pub fn serving(self, shutdown: Shutdown) -> Serving {
        Serving {
            foundation: self,
            shutdown,
            tasks: Vec::new(),
            consumers: Vec::new(),
        }
    }
}

/// A service being started: its consumers and background tasks run from the moment they are
/// added; [`Serving::run`] serves gRPC and then stops everything in order.
pub struct Serving {
    foundation: Foundation,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<()>>,
    /// (stream, durable name) of each consumer, for the metrics sampler.
    consumers: Vec<(String, String)>,
}

impl Serving {
    /// The shutdown signal every background task must watch.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    pub fn pool(&self) -> &PgPool {
        &self.foundation.pool
    }

    pub fn ns(&self) -> &Namespace {
        &self.foundation.ns
    }

    /// Runs an event consumer (see [`EventConsumer`]) until shutdown; `what` names it in logs.
    pub fn consume<H: Handler>(&mut self, what: &'static str, spec: ConsumerSpec, handler: H) {
        self.consumers
            .push((spec.stream.clone(), spec.name.clone()));
        let counters = self.foundation.metrics.consumer(&spec.name);
        let consumer = EventConsumer::new(
            self.foundation.js.clone(),
            self.foundation.pool.clone(),
            self.foundation.ns.clone(),
            spec,
            handler,
        )
        .with_metrics(counters);
        let shutdown = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = consumer.run(shutdown).await {
                tracing::error!(error = %e, consumer = what, "consumer failed");
            }
        }));
    }

    /// Samples the JetStream lag of a consumer the service runs itself (not with
    /// [`Serving::consume`], which does this already) into `rz_consumer_pending`; count its
    /// deliveries with [`EventConsumer::with_metrics`] and [`crate::metrics::Metrics::consumer`].
    pub fn watch_consumer(&mut self, spec: &ConsumerSpec) {
        self.consumers
            .push((spec.stream.clone(), spec.name.clone()));
    }

    /// The service's metrics (see [`crate::metrics`]).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.foundation.metrics
    }

    /// Runs a background task; it must end soon after [`Serving::shutdown`] triggers.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Adds the service's gRPC services (`grpc` gets the router with the health service and the
    /// server layers), serves until shutdown, then stops in order (see the module doc).
    pub async fn run(
        self,
        grpc: impl FnOnce(Router<Layered>) -> Router<Layered>,
    ) -> Result<(), StartError> {
        let Serving {
            foundation: f,
            shutdown,
            mut tasks,
            consumers,
        } = self;
        let authz = crate::authz::Authz::new(f.identities, f.instance, &f.limits)
            .map_err(StartError::Config)?
            .with_max_message(f.max_message);
        let (router, health): (Router<Layered>, HealthReporter) =
            crate::server::router_with_metrics(f.server_tls, authz, f.metrics.clone())?;
        let router = grpc(router);
        // The relay stops last: only after the server and the consumers, which write to the
        // outbox, have finished, so that its final flush publishes everything they committed.
        let relay_stop = Shutdown::new();
        let relay = tokio::spawn(
            OutboxRelay::new(f.pool.clone(), f.js.clone())
                .with_metrics(f.metrics.relay())
                .run(relay_stop.clone()),
        );
        // The metrics: sampled until shutdown, served until everything else has stopped.
        tasks.push(tokio::spawn(f.metrics.clone().sample(
            crate::metrics::Sampled {
                pool: f.pool.clone(),
                js: f.js.clone(),
                ns: f.ns.clone(),
                consumers,
            },
            f.sample_every,
            shutdown.clone(),
        )));
        let metrics_stop = Shutdown::new();
        let metrics_server = f.metrics_listener.map(|(listener, addr)| {
            tracing::info!(service = f.name, addr = %addr, "serving /metrics, /livez and /readyz");
            tokio::spawn(crate::metrics::serve(
                f.metrics.clone(),
                crate::metrics::Readiness {
                    pool: f.pool.clone(),
                    nats: f.nats.clone(),
                    stopping: shutdown.clone(),
                },
                listener,
                metrics_stop.clone(),
            ))
        });
        tracing::info!(service = f.name, addr = %f.addr, "serving");
        let serve = crate::server::serve(router, health, f.listener, shutdown.clone());
        tokio::pin!(serve);
        let served = tokio::select! {
            r = &mut serve => r,
            _ = async { shutdown.wait().await; tokio::time::sleep(f.grace).await } => {
                tracing::warn!(service = f.name, "in-flight calls did not finish within the grace period");
                Ok(())
            }
        };
        // A server that failed stops the rest too (the tasks watch the same signal).
        shutdown.trigger();
        for task in tasks {
            let _ = task.await;
        }
        relay_stop.trigger();
        let _ = relay.await;
        if let Err(e) = f.nats.drain().await {
            tracing::warn!(error = %e, "nats drain failed");
        }
        f.pool.close().await;
        metrics_stop.trigger();
        if let Some(server) = metrics_server {
            let _ = server.await;
        }
        tracing::info!(service = f.name, "stopped");
        Ok(served?)
    }
}
