//! Calls as the right party: every channel the tools open is mutual TLS with the certificate of a
//! folder of the run's test PKI (`rz_pki`): `operator` for registration's writes, imports and the
//! handover, `municipality-<CBS>` for a municipality's access and assignment calls,
//! `provider-<AGB>` for a provider's (its start of care, its webhook subscription). A provider
//! that has no certificate yet gets one on first use (a provider of the register the PKI was not
//! generated for), so a tool does not need the register's provider list before it starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rz_platform::tls::TlsConfig;
use tonic::transport::{Channel, Endpoint};

/// The operator's folder in the PKI (`urn:regiozorg:operator:ops`).
pub const OPERATOR: &str = "operator";

/// A municipality's folder.
pub fn municipality(cbs: &str) -> String {
    format!("municipality-{cbs}")
}

/// A provider's folder.
pub fn provider(agb: &str) -> String {
    format!("provider-{agb}")
}

/// A service's folder (its server and client certificate).
pub fn service(name: &str) -> String {
    format!("service-{name}")
}

/// Dials the services with the certificates of one PKI folder.
#[derive(Debug, Clone)]
pub struct Dial {
    pki: PathBuf,
    /// Serialises issuing certificates on demand.
    issuing: Arc<Mutex<()>>,
    /// Channels of [`Dial::shared`] by (folder, url), shared by the clones of this `Dial`.
    channels: Arc<Mutex<HashMap<(String, String), Channel>>>,
}

impl Dial {
    /// The PKI laid out by `rz_pki::generate` in `pki`.
    pub fn new(pki: impl Into<PathBuf>) -> Self {
        Self {
            pki: pki.into(),
            issuing: Arc::default(),
            channels: Arc::default(),
        }
    }

    pub fn pki(&self) -> &Path {
        &self.pki
    }

    /// The CA and the certificate of `folder`.
    pub fn tls(&self, folder: &str) -> TlsConfig {
        TlsConfig::from_pki(&self.pki, folder)
    }

    /// An endpoint for `url` as `folder` (mutual TLS; `http://` is dialled as `https://`).
    pub fn endpoint(&self, folder: &str, url: &str) -> Result<Endpoint, String> {
        self.ensure(folder)?;
        self.tls(folder)
            .endpoint(url)
            .map_err(|e| format!("{url} as {folder}: {e}"))
    }

    /// A lazily connecting channel as `folder`: it reconnects by itself after the service was
    /// restarted.
    pub fn lazy(&self, folder: &str, url: &str, timeout: Duration) -> Result<Channel, String> {
        Ok(self
            .endpoint(folder, url)?
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .connect_lazy())
    }

    /// One lazily connecting channel per (folder, url) for every clone of this `Dial`: a
    /// provider system that calls as many providers keeps one connection per provider.
    pub fn shared(&self, folder: &str, url: &str, timeout: Duration) -> Result<Channel, String> {
        let key = (folder.to_owned(), url.to_owned());
        if let Some(c) = self
            .channels
            .lock()
            .map_err(|_| "the channel cache's lock is poisoned".to_owned())?
            .get(&key)
        {
            return Ok(c.clone());
        }
        let c = self.lazy(folder, url, timeout)?;
        self.channels
            .lock()
            .map_err(|_| "the channel cache's lock is poisoned".to_owned())?
            .entry(key)
            .or_insert(c.clone());
        Ok(c)
    }

    /// A connected channel as `folder`.
    pub async fn connect(
        &self,
        folder: &str,
        url: &str,
        timeout: Duration,
    ) -> Result<Channel, String> {
        self.endpoint(folder, url)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("{url} as {folder}: {e}"))
    }

    /// Issues a provider's certificate when its folder does not exist yet (other folders must).
    fn ensure(&self, folder: &str) -> Result<(), String> {
        let Some(agb) = folder.strip_prefix("provider-") else {
            return Ok(());
        };
        let _guard = self
            .issuing
            .lock()
            .map_err(|_| "the PKI lock is poisoned".to_owned())?;
        if self.pki.join(folder).join("tls.key").is_file() {
            return Ok(());
        }
        let pki = rz_pki::Pki::open(&self.pki).map_err(|e| format!("opening the PKI: {e}"))?;
        pki.issue(
            folder,
            &rz_pki::Issue {
                urn: Some(format!("urn:regiozorg:provider:{agb}")),
                serial_number: None,
                valid_from_days: -1,
                valid_days: 30,
            },
        )
        .map_err(|e| format!("issuing {folder}: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_follow_the_pki_layout() {
        assert_eq!(municipality("0222"), "municipality-0222");
        assert_eq!(provider("03010028"), "provider-03010028");
        assert_eq!(service("access"), "service-access");
        let d = Dial::new("/x");
        let t = d.tls(OPERATOR);
        assert_eq!(t.cert, Some(PathBuf::from("/x/operator/tls.crt")));
        assert_eq!(t.ca, Some(PathBuf::from("/x/ca.crt")));
    }

    #[test]
    fn a_provider_without_a_certificate_gets_one() {
        let dir = std::env::temp_dir().join(format!("rz-dial-{}", std::process::id()));
        let spec = rz_pki::PkiSpec::region(&[], &["0222"]);
        assert!(rz_pki::generate(&dir, &spec).is_ok());
        let d = Dial::new(&dir);
        assert!(
            d.endpoint(&provider("12345678"), "http://127.0.0.1:1")
                .is_ok()
        );
        assert!(dir.join("provider-12345678/tls.crt").is_file());
        assert!(d.endpoint(OPERATOR, "http://127.0.0.1:1").is_ok());
        assert!(
            d.endpoint("municipality-9999", "http://127.0.0.1:1")
                .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
