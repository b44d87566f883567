//! `rzctl audit`: the NEN 7513 audit trail of a service that holds personal data (access,
//! assignment, notification).
//!
//! - `rzctl audit verify --endpoint URL [--pki DIR] [--as operator]`: recomputes the service's hash
//!   chain; exits with failure when it is broken, naming the first broken entry.
//! - `rzctl audit list --endpoint URL --as municipality-0222 --municipality 0222 (--client-key K |
//!   --bsn B) [--limit N]`: who accessed one resident's data, newest first. A BSN only at access
//!   (it alone can turn one into the client key).
//!
//! A municipality folder's `staff.jwt`, when there is one, is sent as the person calling.

use rz_proto::audit::v1 as pb;
use rz_proto::audit::v1::audit_service_client::AuditServiceClient;
use tonic::transport::Channel;

use crate::client::{self, Party};

#[derive(Debug, clap::Subcommand)]
pub enum Audit {
    /// Recomputes the audit trail's hash chain from its oldest kept entry (operator only); fails
    /// when the chain is broken.
    Verify {
        /// The service (access, assignment or notification).
        #[arg(long, value_name = "URL")]
        endpoint: String,
        #[command(flatten)]
        party: Party,
    },
    /// Lists who accessed one resident's data, newest first.
    List {
        /// The service (access, assignment or notification).
        #[arg(long, value_name = "URL")]
        endpoint: String,
        #[command(flatten)]
        party: Party,
        /// The resident's municipality (CBS code); a municipality must name itself.
        #[arg(long, value_name = "CBS", default_value = "")]
        municipality: String,
        /// The resident's client key (32 hexadecimal digits).
        #[arg(
            long,
            value_name = "K",
            required_unless_present = "bsn",
            conflicts_with = "bsn"
        )]
        client_key: Option<String>,
        /// The resident's BSN (access only).
        #[arg(long, value_name = "B")]
        bsn: Option<String>,
        /// At most this many entries (at most 1000).
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u32,
    },
}

impl Audit {
    pub async fn run(self) -> Result<(), String> {
        match self {
            Audit::Verify { endpoint, party } => {
                let mut c = connect(&endpoint, &party).await?;
                let v = c
                    .verify_chain(request(&party, pb::VerifyChainRequest {})?)
                    .await
                    .map_err(client::failed("VerifyChain"))?
                    .into_inner();
                println!("{}", verification_text(&v));
                if v.intact {
                    Ok(())
                } else {
                    Err(format!(
                        "audit chain broken at entry {}",
                        v.first_broken_seq
                    ))
                }
            }
            Audit::List {
                endpoint,
                party,
                municipality,
                client_key,
                bsn,
                limit,
            } => {
                let mut c = connect(&endpoint, &party).await?;
                let r = pb::ListClientEntriesRequest {
                    municipality,
                    client_key: client_key.unwrap_or_default(),
                    bsn: bsn.unwrap_or_default(),
                    page_size: limit,
                };
                let entries = c
                    .list_client_entries(request(&party, r)?)
                    .await
                    .map_err(client::failed("ListClientEntries"))?
                    .into_inner()
                    .entries;
                print!("{}", entries_text(&entries));
                Ok(())
            }
        }
    }
}

async fn connect(endpoint: &str, party: &Party) -> Result<AuditServiceClient<Channel>, String> {
    Ok(AuditServiceClient::new(party.channel(endpoint).await?))
}

/// The request, with the folder's staff token as `authorization` when the folder has one.
pub(crate) fn request<T>(party: &Party, message: T) -> Result<tonic::Request<T>, String> {
    let mut r = tonic::Request::new(message);
    let token_file = party.pki.join(&party.folder).join("staff.jwt");
    if let Ok(token) = std::fs::read_to_string(&token_file) {
        let value = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| format!("{}: not a token", token_file.display()))?;
        r.metadata_mut().insert("authorization", value);
    }
    Ok(r)
}

pub fn verification_text(v: &pb::VerifyChainResponse) -> String {
    if v.intact {
        format!(
            "audit chain intact: {} entries checked (oldest kept entry {}): {}",
            v.entries, v.oldest_seq, v.detail
        )
    } else {
        format!(
            "audit chain BROKEN at entry {} ({} entries checked, oldest kept entry {}): {}",
            v.first_broken_seq, v.entries, v.oldest_seq, v.detail
        )
    }
}

pub fn entries_text(entries: &[pb::AuditEntry]) -> String {
    if entries.is_empty() {
        return "no entries\n".to_owned();
    }
    let mut out = String::from("SEQ\tTIME\tORGANISATION\tPERSON\tROLE\tSYSTEM\tACTION\tPURPOSE\n");
    for e in entries {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            e.seq,
            e.at,
            e.organisation,
            dash(&e.person),
            dash(&e.role),
            e.system,
            e.action,
            dash(&e.purpose)
        ));
    }
    out
}
