//! The gRPC clients rzctl makes: every call is mutual TLS as one party of a PKI folder laid out by
//! `rzctl pki init` (`--pki DIR --as FOLDER`, by default `var/demo/pki` and `operator`).

use std::fmt::Display;
use std::path::PathBuf;

use rz_platform::tls::TlsConfig;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use tonic::transport::Channel;

pub type Client = RegistrationServiceClient<Channel>;

/// Who rzctl calls as: `--pki DIR --as FOLDER`.
#[derive(Debug, Clone, clap::Args)]
pub struct Party {
    /// The PKI folder (`rzctl pki init`): `ca.crt` and a folder per organisation.
    #[arg(long, value_name = "DIR", default_value = "var/demo/pki")]
    pub pki: PathBuf,
    /// The organisation folder in the PKI to call as (`operator`, `provider-<AGB>`,
    /// `municipality-<CBS>`).
    #[arg(long = "as", value_name = "FOLDER", default_value = "operator")]
    pub folder: String,
}

impl Party {
    /// The CA and this party's certificate and key.
    pub fn tls(&self) -> TlsConfig {
        TlsConfig::from_pki(&self.pki, &self.folder)
    }

    /// A mutual-TLS channel to `endpoint` (an `http://` URL is dialled as `https://`).
    pub async fn channel(&self, endpoint: &str) -> Result<Channel, String> {
        self.tls()
            .endpoint(endpoint)
            .map_err(|e| format!("--pki {} --as {}: {e}", self.pki.display(), self.folder))?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))
    }
}

/// The registration service at `endpoint`, as `party`.
pub async fn connect(endpoint: &str, party: &Party) -> Result<Client, String> {
    Ok(RegistrationServiceClient::new(
        party.channel(endpoint).await?,
    ))
}

/// Turns a refused call into a message naming the call.
pub fn failed(what: impl Display) -> impl FnOnce(tonic::Status) -> String {
    move |s| format!("{what}: {:?}: {}", s.code(), s.message())
}
