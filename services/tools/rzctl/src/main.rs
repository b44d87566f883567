//! `rzctl`: operator commands.
//!
//! - `rzctl dlq list`: every event in the dead-letter stream, with the consumer that gave up and why.
//! - `rzctl dlq replay SEQ`: publish dead letter SEQ again on its original subject (consumers that
//!   applied it before skip it through their inbox) and remove it from the dead-letter stream.
//! - `rzctl events --provider AGB [--limit N]`: the events on a provider's own subjects
//!   (`<ns>.assignment.*.<AGB>.*`, what its system receives), oldest first, with their CloudEvents
//!   id, type and time. Payloads are not printed: they carry the BSN.
//! - `rzctl seed --endpoint URL [--file PATH]`: load a region's register (the built-in Achterhoek
//!   seed, or the seed file PATH) through registration's gRPC API; safe to repeat.
//! - `rzctl landscape --endpoint URL [--file PATH]`: print the region's contract landscape.
//! - `rzctl pki init --dir DIR [--region-file F] [--seed-file F | --providers A,B]
//!   [--municipalities X,Y]`: a test PKI for the region (CA, a certificate per organisation and
//!   service, staff tokens).
//! - `rzctl audit verify --endpoint URL` / `rzctl audit list --endpoint URL --as
//!   municipality-<CBS> --municipality CBS (--client-key K | --bsn B)`: a service's NEN 7513 audit
//!   trail: its hash chain checked, or who accessed one resident's data.
//!
//! - `rzctl nats config --pki DIR --out FILE [--seed-file F | --providers A,B]`: the region's
//!   nats-server authorisation (an account, an nkey user per service and provider) and each
//!   user's seed beside its certificate (`<pki>/provider-<AGB>/nats.nk`); existing seeds are kept.
//! - `rzctl nats provision --pki DIR [--seed-file F | --providers A,B]`: as the operator, each
//!   provider's durable consumer made, those of providers no longer listed deleted.
//!
//! Commands that call a service dial it with mutual TLS as `--as FOLDER` (default `operator`) of
//! the PKI `--pki DIR` (default `var/demo/pki`).
//!
//! `NATS_URL` (default `nats://127.0.0.1:4222`) and `RZ_NAMESPACE` (default `rz`) say where the
//! streams are.

mod audit;
mod client;
mod landscape;
mod letters;
mod nats;
mod pki;
mod seed;
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use seed::Seed;

/// Operator commands: the dead-letter stream, a provider's events, and the register's seed and
/// landscape. NATS_URL (default nats://127.0.0.1:4222) and RZ_NAMESPACE (default rz) say where
/// the streams are.
#[derive(Debug, Parser)]
#[command(name = "rzctl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";

#[derive(Debug, Subcommand)]
enum Command {
    /// The dead-letter stream.
    Dlq {
        #[command(subcommand)]
        command: Dlq,
    },
    /// The events on a provider's own subjects (what its system receives), oldest first, without
    /// their payloads.
    Events {
        /// The provider's AGB code (8 digits).
        #[arg(long, value_name = "AGB")]
        provider: String,
        /// At most this many events.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
    },
    /// Loads a region's register through registration's gRPC API (idempotent: a second load
    /// changes nothing).
    Seed {
        /// The registration service.
        #[arg(long, value_name = "URL", default_value = DEFAULT_ENDPOINT)]
        endpoint: String,
        /// A seed file; the built-in Achterhoek seed when left out.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        #[command(flatten)]
        party: client::Party,
    },
    /// Prints the region's contract landscape: providers per segment and municipality, budgets,
    /// contract terms, ended contracts and totals.
    Landscape {
        /// The registration service.
        #[arg(long, value_name = "URL", default_value = DEFAULT_ENDPOINT)]
        endpoint: String,
        /// The seed file whose dates and segments to show; the built-in Achterhoek seed when left
        /// out.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        #[command(flatten)]
        party: client::Party,
    },
    /// A test PKI for the region: CA, certificates, staff tokens.
    Pki {
        #[command(subcommand)]
        command: Pki,
    },
    /// NATS authorisation: the server's accounts and users, the providers' consumers.
    Nats {
        #[command(subcommand)]
        command: Nats,
    },
    /// The audit trail (NEN 7513) of access, assignment or notification: verify its hash chain,
    /// or list who accessed one resident's data.
    Audit {
        #[command(subcommand)]
        command: audit::Audit,
    },
    /// A municipality's letters to its residents (notification's ListLetters), or one resident's
    /// letters in full.
    Letters(letters::Letters),
}

#[derive(Debug, Subcommand)]
enum Pki {
    /// Writes a test PKI: the region's CA, a certificate per provider, municipality, the operator
    /// and each service, and a staff token per municipality.
    Init(pki::Init),
}

#[derive(Debug, Subcommand)]
enum Nats {
    /// Writes the nats-server auth config of the region (one account, an nkey user per service
    /// and provider) and each user's seed in the PKI folder; reload the server to apply it.
    Config(nats::Config),
    /// Makes each provider's durable consumer (as the operator) and deletes those of providers
    /// no longer listed.
    Provision(nats::Provision),
}

#[derive(Debug, Subcommand)]
enum Dlq {
    /// Every event in the dead-letter stream, with the consumer that gave up and why.
    List,
    /// Publishes dead letter SEQ again on its original subject and removes it from the stream.
    Replay {
        /// The dead letter's sequence number (see `rzctl dlq list`).
        seq: u64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rzctl: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Dlq { command: Dlq::List } => stream::dlq_list(&stream::Target::from_env()?).await,
        Command::Dlq {
            command: Dlq::Replay { seq },
        } => stream::dlq_replay(&stream::Target::from_env()?, seq).await,
        Command::Events { provider, limit } => {
            stream::events(&stream::Target::from_env()?, &provider, limit).await
        }
        Command::Seed {
            endpoint,
            file,
            party,
        } => seed::load(&endpoint, &party, &read_seed(file)?).await,
        Command::Landscape {
            endpoint,
            file,
            party,
        } => landscape::print(&endpoint, &party, &read_seed(file)?).await,
        Command::Pki {
            command: Pki::Init(init),
        } => init.run(),
        Command::Audit { command } => command.run().await,
        Command::Letters(letters) => letters.run().await,
        Command::Nats {
            command: Nats::Config(config),
        } => config.run(),
        Command::Nats {
            command: Nats::Provision(provision),
        } => {
            let t = stream::Target::from_env()?;
            provision.run(t.url(), t.ns()).await
        }
    }
}

/// The seed file at `path`, or the built-in Achterhoek seed.
fn read_seed(path: Option<PathBuf>) -> Result<Seed, String> {
    match path {
        None => Seed::achterhoek().map_err(|e| format!("built-in seed: {e}")),
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Seed::parse(&text).map_err(|e| format!("{}: {e}", p.display()))
        }
    }
}
