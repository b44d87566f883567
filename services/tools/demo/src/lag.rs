//! Waits for the services' event consumers to catch up, so that a simulated week is processed
//! before the next one starts (time is compressed; the region's systems are not).

use std::time::{Duration, Instant};

use rz_eventing::Namespace;
use rz_eventing::nats::jetstream;

use crate::Result;

pub struct Lag {
    js: jetstream::Context,
    /// (stream, durable consumer) pairs to wait for.
    consumers: Vec<(String, String)>,
}

impl Lag {
    /// `NATS_URL` and the namespace the services use (`RZ__NATS__NAMESPACE`, default `rz`).
    pub async fn connect() -> Result<Self> {
        let url = std::env::var("NATS_URL").map_err(|_| "NATS_URL is not set".to_string())?;
        let ns =
            Namespace::new(&std::env::var("RZ__NATS__NAMESPACE").unwrap_or_else(|_| "rz".into()))?;
        let (_client, js) = rz_eventing::connect(&url, "rz-demo")
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(Self {
            js,
            consumers: vec![
                (ns.stream_name("access"), "assignment-decisions".into()),
                (ns.stream_name("assignment"), "provider-sim".into()),
            ],
        })
    }

    /// Events not yet applied by the watched consumers (a missing consumer counts as caught up).
    async fn pending(&self) -> Result<u64> {
        let mut total = 0;
        for (stream, name) in &self.consumers {
            let Ok(stream) = self.js.get_stream(stream).await else {
                continue;
            };
            let Ok(mut consumer) = stream
                .get_consumer::<jetstream::consumer::pull::Config>(name)
                .await
            else {
                continue;
            };
            let info = consumer.info().await.map_err(|e| e.to_string())?;
            total += info.num_pending + info.num_ack_pending as u64;
        }
        Ok(total)
    }

    /// Waits until nothing is pending, at most `limit`; returns the wait.
    pub async fn wait(&self, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.pending().await? == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(start.elapsed())
    }
}
