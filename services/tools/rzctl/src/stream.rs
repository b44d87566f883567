//! The commands on NATS JetStream: the dead-letter stream and a provider's events.
//! `NATS_URL` (default `nats://127.0.0.1:4222`) and `RZ_NAMESPACE` (default `rz`) say where.

use rz_eventing::Namespace;
use rz_eventing::dlq::DeadLetters;

/// Where the streams are: the NATS URL and the namespace, from the environment.
pub struct Target {
    url: String,
    ns: Namespace,
}

impl Target {
    pub fn from_env() -> Result<Self, String> {
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let ns = Namespace::new(&std::env::var("RZ_NAMESPACE").unwrap_or_else(|_| "rz".into()))?;
        Ok(Self { url, ns })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn ns(&self) -> &Namespace {
        &self.ns
    }

    async fn dead_letters(&self) -> Result<DeadLetters, String> {
        let (_client, js) = rz_eventing::connect(&self.url, "rzctl")
            .await
            .map_err(|e| e.to_string())?;
        Ok(DeadLetters::new(js, self.ns.clone()))
    }
}

/// Prints every event in the dead-letter stream, with the consumer that gave up and why.
pub async fn dlq_list(t: &Target) -> Result<(), String> {
    let letters = t
        .dead_letters()
        .await?
        .list()
        .await
        .map_err(|e| e.to_string())?;
    if letters.is_empty() {
        println!("the dead-letter stream is empty");
    }
    for l in letters {
        println!(
            "seq {:>6}  {}  {}  consumer={} attempts={} subject={}\n            reason: {}",
            l.sequence,
            l.event_id,
            l.event_type,
            l.consumer,
            l.attempts,
            l.original_subject,
            l.reason
        );
    }
    Ok(())
}

/// Publishes dead letter `seq` again on its original subject and removes it from the stream.
pub async fn dlq_replay(t: &Target, seq: u64) -> Result<(), String> {
    let l = t
        .dead_letters()
        .await?
        .replay(seq)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "replayed {} ({}) to {}",
        l.event_id, l.event_type, l.original_subject
    );
    Ok(())
}

/// Prints the first `limit` events on provider `agb`'s subjects.
pub async fn events(t: &Target, agb: &str, limit: usize) -> Result<(), String> {
    use rz_eventing::envelope::{CE_ID, CE_TIME, CE_TYPE};
    use rz_eventing::nats::jetstream::consumer::{DeliverPolicy, pull};
    use tokio_stream::StreamExt;

    let (url, ns) = (&t.url, &t.ns);
    if agb.len() != 8 || !agb.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("--provider: `{agb}` is not an AGB code (8 digits)"));
    }
    let (_client, js) = rz_eventing::connect(url, "rzctl")
        .await
        .map_err(|e| e.to_string())?;
    let stream = js
        .get_stream(ns.stream_name("assignment"))
        .await
        .map_err(|e| format!("stream {}: {e}", ns.stream_name("assignment")))?;
    let filter = format!("{}.assignment.*.{agb}.*", ns.as_str());
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter.clone(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut shown = 0;
    while shown < limit {
        let next = tokio::time::timeout(std::time::Duration::from_secs(2), messages.next()).await;
        let Ok(Some(Ok(m))) = next else { break };
        let header = |k: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(k))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        println!(
            "{}  {:<40} {}  {}",
            header(CE_TIME),
            header(CE_TYPE),
            header(CE_ID),
            m.subject
        );
        shown += 1;
        let pending = m.info().map(|i| i.pending).unwrap_or(0);
        if pending == 0 {
            break;
        }
    }
    if shown == 0 {
        println!("no events on {filter}");
    }
    Ok(())
}
