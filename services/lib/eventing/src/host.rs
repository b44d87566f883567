//! Runs a service's parts together until shutdown: the gRPC server, the outbox relay and any
//! consumers. On shutdown: the health service turns NOT_SERVING, no new calls are accepted,
//! in-flight calls get `grace` to finish, consumers finish the event in hand, the relay flushes
//! what is pending, the NATS connection drains and the pool closes.

use std::time::Duration;

use rz_platform::Shutdown;
use rz_platform::server::Layered;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

use crate::relay::OutboxRelay;

pub struct Host {
    pub name: &'static str,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    /// How long in-flight calls may take after shutdown starts.
    pub grace: Duration,
}

impl Host {
    /// Serves until `shutdown`; `background` are the service's consumers (they watch `shutdown`).
    pub async fn run(
        self,
        router: Router<Layered>,
        health: HealthReporter,
        listener: TcpListener,
        shutdown: Shutdown,
        background: Vec<JoinHandle<()>>,
    ) -> Result<(), tonic::transport::Error> {
        // The relay stops last: only after the server and the consumers, which write to the
        // outbox, have finished, so that its final flush publishes everything they committed.
        let relay_stop = Shutdown::new();
        let relay = tokio::spawn(
            OutboxRelay::new(self.pool.clone(), self.js.clone()).run(relay_stop.clone()),
        );
        let serve = rz_platform::server::serve(router, health, listener, shutdown.clone());
        tokio::pin!(serve);
        let served = tokio::select! {
            r = &mut serve => r,
            _ = async { shutdown.wait().await; tokio::time::sleep(self.grace).await } => {
                tracing::warn!(service = self.name, "in-flight calls did not finish within the grace period");
                Ok(())
            }
        };
        for task in background {
            let _ = task.await;
        }
        relay_stop.trigger();
        let _ = relay.await;
        if let Err(e) = self.nats.drain().await {
            tracing::warn!(error = %e, "nats drain failed");
        }
        self.pool.close().await;
        tracing::info!(service = self.name, "stopped");
        served
    }
}
