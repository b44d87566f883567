//! Mutual TLS for every gRPC server and client (rustls through tonic).
//!
//! `[tls]` names three PEM files: `ca` (the region's CA: which client and server certificates are
//! trusted), `cert` and `key` (this organisation's or service's own certificate, used both to
//! serve and to call). A server refuses, during the handshake, a client certificate that its CA did
//! not sign or that has expired; a call without any certificate reaches the authorisation layer as
//! unauthenticated and is answered UNAUTHENTICATED before any RPC runs.
//!
//! The test PKI (`rzctl pki init`, `var/demo/pki/`) lays out a folder per organisation with
//! `tls.crt` and `tls.key` beside one `ca.crt`: [`TlsConfig::from_dir`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// `[tls]`: the CA and this party's own certificate and key (PEM files).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TlsConfig {
    /// The CA certificate(s) this party trusts (the region's CA).
    pub ca: Option<PathBuf>,
    /// This party's certificate (chain), leaf first.
    pub cert: Option<PathBuf>,
    /// This party's private key.
    pub key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.{0}: required (the path of a PEM file)")]
    Missing(&'static str),
    #[error("tls.{0} {1}: {2}")]
    Read(&'static str, String, String),
    #[error("tls.{0} {1}: not PEM")]
    NotPem(&'static str, String),
    #[error("endpoint `{0}`: {1}")]
    Endpoint(String, String),
}

fn read(key: &'static str, path: Option<&PathBuf>) -> Result<Vec<u8>, TlsError> {
    let path = path.ok_or(TlsError::Missing(key))?;
    let bytes = std::fs::read(path)
        .map_err(|e| TlsError::Read(key, path.display().to_string(), e.to_string()))?;
    if !bytes.windows(10).any(|w| w == b"-----BEGIN") {
        return Err(TlsError::NotPem(key, path.display().to_string()));
    }
    Ok(bytes)
}

impl TlsConfig {
    /// `ca` and the organisation folder `dir` holding `tls.crt` and `tls.key`.
    pub fn from_dir(ca: impl Into<PathBuf>, dir: &Path) -> Self {
        Self {
            ca: Some(ca.into()),
            cert: Some(dir.join("tls.crt")),
            key: Some(dir.join("tls.key")),
        }
    }

    /// In a PKI folder laid out by `rzctl pki init`: `<pki>/ca.crt` and `<pki>/<organisation>/`.
    pub fn from_pki(pki: &Path, organisation: &str) -> Self {
        Self::from_dir(pki.join("ca.crt"), &pki.join(organisation))
    }

    fn identity(&self) -> Result<Identity, TlsError> {
        Ok(Identity::from_pem(
            read("cert", self.cert.as_ref())?,
            read("key", self.key.as_ref())?,
        ))
    }

    fn ca(&self) -> Result<Certificate, TlsError> {
        Ok(Certificate::from_pem(read("ca", self.ca.as_ref())?))
    }

    /// The server side: this party's certificate, and client certificates checked against the CA.
    /// A client without a certificate is let through the handshake so that it can be answered
    /// UNAUTHENTICATED (with a reason) instead of a broken connection.
    pub fn server(&self) -> Result<ServerTlsConfig, TlsError> {
        Ok(ServerTlsConfig::new()
            .identity(self.identity()?)
            .client_ca_root(self.ca()?)
            .client_auth_optional(true)
            .timeout(Duration::from_secs(10)))
    }

    /// The client side: the CA to check servers against, and this party's certificate.
    pub fn client(&self) -> Result<ClientTlsConfig, TlsError> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(self.ca()?)
            .identity(self.identity()?)
            .timeout(Duration::from_secs(10)))
    }

    /// An endpoint for `url` dialled with mutual TLS. Calls always use TLS: an `http://` URL is
    /// dialled as `https://` (the same host and port). Timeouts and keep-alive are the caller's.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, TlsError> {
        let https = match url.strip_prefix("http://") {
            Some(rest) => format!("https://{rest}"),
            None => url.to_owned(),
        };
        Endpoint::from_shared(https)
            .map_err(|e| TlsError::Endpoint(url.to_owned(), e.to_string()))?
            .tls_config(self.client()?)
            .map_err(|e| TlsError::Endpoint(url.to_owned(), e.to_string()))
    }
}
