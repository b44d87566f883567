//! `rzctl`: operator commands.
//!
//! - `rzctl dlq list`: every event in the dead-letter stream, with the consumer that gave up and why.
//! - `rzctl dlq replay SEQ`: publish dead letter SEQ again on its original subject (consumers that
//!   applied it before skip it through their inbox) and remove it from the dead-letter stream.
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
        _ => Err("usage: rzctl dlq list | rzctl dlq replay SEQ".into()),
    }
}
