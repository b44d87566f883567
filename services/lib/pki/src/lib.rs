//! A test PKI for a region: one CA, a certificate per organisation and service, and staff tokens.
//! `make demo` leaves one in `var/demo/pki/` (`rzctl pki init`), the test stack makes one per test.
//! It is for local use and tests only: a region in production takes its certificates from
//! cert-manager (k8s/) or the organisations' own PKI (PKIoverheid), and its tokens from its
//! identity provider.
//!
//! Layout of `dir`:
//!
//! ```text
//! ca.crt  ca.key                     the region's CA
//! token-signing.key / .pub, jwks.json  the key that signs staff tokens, and its public forms
//! provider-<AGB>/tls.crt tls.key     urn:regiozorg:provider:<AGB>
//! municipality-<CBS>/tls.crt tls.key staff.jwt   urn:regiozorg:municipality:<CBS>, a consulent's token
//! operator/tls.crt tls.key           urn:regiozorg:operator:ops
//! service-<name>/tls.crt tls.key     urn:regiozorg:service:<name>, also a server certificate
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rz_platform::tls::TlsConfig;
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    #[error("{0}")]
    Invalid(String),
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct PkiSpec {
    /// AGB codes of the providers.
    pub providers: Vec<String>,
    /// CBS codes of the municipalities.
    pub municipalities: Vec<String>,
    /// The platform's services (`registration`, `access`, ...).
    pub services: Vec<String>,
    /// More DNS names for the service (server) certificates.
    pub extra_hosts: Vec<String>,
    pub valid_days: u32,
}

/// The five services of the platform.
pub const SERVICES: [&str; 5] = [
    "registration",
    "access",
    "assignment",
    "notification",
    "reporting",
];

impl PkiSpec {
    /// The region's organisations and the five services, valid 30 days.
    pub fn region(providers: &[&str], municipalities: &[&str]) -> Self {
        Self {
            providers: providers.iter().map(|s| (*s).to_owned()).collect(),
            municipalities: municipalities.iter().map(|s| (*s).to_owned()).collect(),
            services: SERVICES.iter().map(|s| (*s).to_owned()).collect(),
            extra_hosts: Vec::new(),
            valid_days: 30,
        }
    }
}

/// A certificate to issue beyond the standard ones (tests of refusals).
#[derive(Debug, Clone, Default)]
pub struct Issue {
    /// The URI SAN (`urn:regiozorg:...`), if any.
    pub urn: Option<String>,
    /// The subject's serialNumber (an OIN), if any.
    pub serial_number: Option<String>,
    /// Validity starts this many days from now (negative: in the past).
    pub valid_from_days: i64,
    /// And lasts this many days.
    pub valid_days: i64,
}

/// A PKI on disk.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

fn write(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(|e| PkiError::Io(path.display().to_string(), e))
}

fn mkdir(path: &Path) -> Result<(), PkiError> {
    std::fs::create_dir_all(path).map_err(|e| PkiError::Io(path.display().to_string(), e))
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|e| PkiError::Io(path.display().to_string(), e))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "regiozorg test CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "regiozorg (test)");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Generates a new PKI for `spec` in `dir` (created if missing; existing files are replaced).
pub fn generate(dir: &Path, spec: &PkiSpec) -> Result<Pki, PkiError> {
    mkdir(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut params = ca_params();
    params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(i64::from(spec.valid_days) + 1);
    let ca = params.self_signed(&ca_key)?;
    write(&dir.join("ca.crt"), ca.pem().as_bytes())?;
    write(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    let pki = Pki {
        dir: dir.to_owned(),
        ca_params: params,
        ca_key,
    };
    let token_key = KeyPair::generate()?;
    write(
        &dir.join("token-signing.key"),
        token_key.serialize_pem().as_bytes(),
    )?;
    write(
        &dir.join("token-signing.pub"),
        token_key.public_key_pem().as_bytes(),
    )?;
    pki.write_jwks()?;
    let days = i64::from(spec.valid_days);
    let standard = |urn: String| Issue {
        urn: Some(urn),
        serial_number: None,
        valid_from_days: -1,
        valid_days: days + 1,
    };
    for agb in &spec.providers {
        pki.issue(
            &format!("provider-{agb}"),
            &standard(format!("urn:regiozorg:provider:{agb}")),
        )?;
    }
    for cbs in &spec.municipalities {
        let folder = format!("municipality-{cbs}");
        pki.issue(
            &folder,
            &standard(format!("urn:regiozorg:municipality:{cbs}")),
        )?;
        let token = pki.staff_token(
            cbs,
            &format!("consulent-{cbs}"),
            "Test Consulent",
            "consulent",
            86_400,
        )?;
        write(&dir.join(&folder).join("staff.jwt"), token.as_bytes())?;
    }
    pki.issue("operator", &standard("urn:regiozorg:operator:ops".into()))?;
    for name in &spec.services {
        pki.issue_server(
            &format!("service-{name}"),
            &standard(format!("urn:regiozorg:service:{name}")),
            name,
            &spec.extra_hosts,
        )?;
    }
    Ok(pki)
}

impl Pki {
    /// Opens a PKI made by [`generate`] (to issue more certificates or tokens).
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let ca_key = KeyPair::from_pem(&read(&dir.join("ca.key"))?)?;
        // The issuer needs the CA's name and key usages, which [`ca_params`] gives as generated.
        Ok(Self {
            dir: dir.to_owned(),
            ca_params: ca_params(),
            ca_key,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA and the certificate of the organisation folder `folder` (`provider-12345678`,
    /// `municipality-0222`, `operator`, `service-access`).
    pub fn tls(&self, folder: &str) -> TlsConfig {
        TlsConfig::from_pki(&self.dir, folder)
    }

    /// The public key that verifies staff tokens (for `[identity] token_keys`).
    pub fn token_key_pub(&self) -> PathBuf {
        self.dir.join("token-signing.pub")
    }

    pub fn jwks(&self) -> PathBuf {
        self.dir.join("jwks.json")
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.ca_params, &self.ca_key)
    }

    /// Issues a client certificate into `<dir>/<folder>/tls.crt|tls.key`.
    pub fn issue(&self, folder: &str, issue: &Issue) -> Result<TlsConfig, PkiError> {
        self.issue_with(folder, issue, Vec::new(), false)
    }

    /// Issues a certificate that serves too: DNS `localhost`, `name`, the extra hosts and IP
    /// 127.0.0.1.
    pub fn issue_server(
        &self,
        folder: &str,
        issue: &Issue,
        name: &str,
        extra_hosts: &[String],
    ) -> Result<TlsConfig, PkiError> {
        let mut sans = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
            SanType::DnsName(name.try_into()?),
        ];
        for host in extra_hosts {
            sans.push(SanType::DnsName(host.as_str().try_into()?));
        }
        self.issue_with(folder, issue, sans, true)
    }

    fn issue_with(
        &self,
        folder: &str,
        issue: &Issue,
        mut sans: Vec<SanType>,
        server: bool,
    ) -> Result<TlsConfig, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let cn = issue
            .urn
            .as_deref()
            .and_then(|u| u.rsplit(':').next())
            .unwrap_or(folder);
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(serial) = &issue.serial_number {
            params
                .distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 5]), serial.as_str());
        }
        if let Some(urn) = &issue.urn {
            sans.insert(0, SanType::URI(urn.as_str().try_into()?));
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now + Duration::days(issue.valid_from_days);
        params.not_after = params.not_before + Duration::days(issue.valid_days.max(1));
        let cert = params.signed_by(&key, &self.issuer())?;
        let dir = self.dir.join(folder);
        mkdir(&dir)?;
        write(&dir.join("tls.crt"), cert.pem().as_bytes())?;
        write(&dir.join("tls.key"), key.serialize_pem().as_bytes())?;
        Ok(self.tls(folder))
    }

    /// A staff token (ES256 JWT) for a person of `municipality`, valid `valid_secs` from now
    /// (negative: already expired).
    pub fn staff_token(
        &self,
        municipality: &str,
        subject: &str,
        name: &str,
        role: &str,
        valid_secs: i64,
    ) -> Result<String, PkiError> {
        let pem = read(&self.dir.join("token-signing.key"))?;
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "sub": subject,
            "name": name,
            "role": role,
            "municipality": municipality,
            "iat": now,
            "exp": now + valid_secs,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("regiozorg-test".into());
        Ok(jsonwebtoken::encode(&header, &claims, &key)?)
    }

    /// `jwks.json`: the token key as a JWK set (what an identity provider publishes).
    fn write_jwks(&self) -> Result<(), PkiError> {
        let pem = read(&self.dir.join("token-signing.key"))?;
        let key = KeyPair::from_pem(&pem)?;
        // The raw public key of P-256 is 0x04 || x || y.
        let raw = key.public_key_raw();
        if raw.len() != 65 || raw[0] != 4 {
            return Err(PkiError::Invalid("the token key is not P-256".into()));
        }
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "use": "sig",
                "alg": "ES256",
                "kid": "regiozorg-test",
                "x": b64(&raw[1..33]),
                "y": b64(&raw[33..65]),
            }]
        });
        write(
            &self.dir.join("jwks.json"),
            serde_json::to_string_pretty(&jwks)
                .map_err(|e| PkiError::Invalid(e.to_string()))?
                .as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use rz_platform::identity::{Identities, IdentityConfig, Organisation, Role};

    #[test]
    fn a_region_pki_names_every_organisation_and_signs_tokens() {
        let dir = std::env::temp_dir().join(format!("rz-pki-test-{}", std::process::id()));
        let pki = generate(&dir, &PkiSpec::region(&["12345678"], &["0222"])).unwrap();
        for f in [
            "ca.crt",
            "provider-12345678/tls.crt",
            "municipality-0222/tls.key",
            "municipality-0222/staff.jwt",
            "operator/tls.crt",
            "service-access/tls.crt",
            "jwks.json",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let der = |folder: &str| {
            let pem = std::fs::read_to_string(dir.join(folder).join("tls.crt")).unwrap();
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            decode_b64(&b64)
        };
        let ids = Identities::from_config(&IdentityConfig {
            token_keys: vec![pki.token_key_pub()],
            ..IdentityConfig::default()
        })
        .unwrap();
        assert_eq!(
            ids.organisation(&der("provider-12345678")).unwrap().urn(),
            "urn:regiozorg:provider:12345678"
        );
        let m = ids.organisation(&der("municipality-0222")).unwrap();
        let token = std::fs::read_to_string(dir.join("municipality-0222/staff.jwt")).unwrap();
        let person = ids.person(&m, &token).unwrap();
        assert_eq!(person.role, Role::Consulent);
        // Another municipality's token through this certificate is refused, as is an expired one.
        let other = pki.staff_token("0197", "x", "X", "consulent", 600).unwrap();
        assert!(ids.person(&m, &other).is_err());
        let expired = pki
            .staff_token("0222", "x", "X", "consulent", -600)
            .unwrap();
        assert!(ids.person(&m, &expired).is_err());
        // A provider may not pass a person's token.
        let p = Organisation::parse_urn("urn:regiozorg:provider:12345678").unwrap();
        assert!(ids.person(&p, &token).is_err());
        // The JWKS verifies the same tokens.
        let by_jwks = Identities::from_config(&IdentityConfig {
            token_jwks: Some(pki.jwks()),
            ..IdentityConfig::default()
        })
        .unwrap();
        by_jwks.person(&m, &token).unwrap();
        // A certificate with only a serialNumber maps through the configuration.
        pki.issue(
            "oin",
            &Issue {
                serial_number: Some("00000001001234567000".into()),
                valid_from_days: -1,
                valid_days: 2,
                ..Issue::default()
            },
        )
        .unwrap();
        assert!(ids.organisation(&der("oin")).is_err());
        let mapped = Identities::from_config(&IdentityConfig {
            serial_numbers: [(
                "00000001001234567000".to_owned(),
                "urn:regiozorg:municipality:0197".to_owned(),
            )]
            .into(),
            ..IdentityConfig::default()
        })
        .unwrap();
        assert_eq!(
            mapped.organisation(&der("oin")).unwrap().urn(),
            "urn:regiozorg:municipality:0197"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn decode_b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }
}
