//! `rzctl`: operator commands.
//!
//! - `rzctl dlq list`: every event in the dead-letter stream, with the consumer that gave up and why.
//! - `rzctl dlq replay SEQ`: publish dead letter SEQ again on its original subject (consumers that
//!   applied it before skip it through their inbox) and remove it from the dead-letter stream.
//!
//! - `rzctl events --provider AGB [--limit N]`: the events on a provider's own subjects
//!   (`<ns>.assignment.*.<AGB>.*`, what its system receives), oldest first, with their CloudEvents
//!   id, type and time. Payloads are not printed: they carry the BSN.
//!
//! `NATS_URL` (default `nats://127.0.0.1:4222`) and `RZ_NAMESPACE` (default `rz`) say where.

use std::process::ExitCode;

use rz_eventing::Namespace;
use rz_eventing::dlq::DeadLetters;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rzctl: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let ns = Namespace::new(&std::env::var("RZ_NAMESPACE").unwrap_or_else(|_| "rz".into()))?;
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let dlq = || async {
        let (_client, js) = rz_eventing::connect(&url, "rzctl")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(DeadLetters::new(js, ns.clone()))
    };
    match words.as_slice() {
        ["dlq", "list"] => {
            let letters = dlq().await?.list().await.map_err(|e| e.to_string())?;
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
        ["dlq", "replay", seq] => {
            let seq: u64 = seq
                .parse()
                .map_err(|_| format!("`{seq}` is not a sequence number"))?;
            let l = dlq().await?.replay(seq).await.map_err(|e| e.to_string())?;
            println!(
                "replayed {} ({}) to {}",
                l.event_id, l.event_type, l.original_subject
            );
            Ok(())
        }
        ["events", "--provider", agb] => events(&url, &ns, agb, 100).await,
        ["events", "--provider", agb, "--limit", n] => {
            let n: usize = n.parse().map_err(|_| format!("--limit: `{n}` is not a number"))?;
            events(&url, &ns, agb, n).await
        }
        _ => Err(
            "usage: rzctl dlq list | rzctl dlq replay SEQ | rzctl events --provider AGB [--limit N]"
                .into(),
        ),
    }
}

/// Prints the first `limit` events on provider `agb`'s subjects.
async fn events(url: &str, ns: &Namespace, agb: &str, limit: usize) -> Result<(), String> {
    use rz_eventing::envelope::{CE_ID, CE_TIME, CE_TYPE};
    use rz_eventing::nats::jetstream::consumer::{DeliverPolicy, pull};
    use tokio_stream::StreamExt;

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
