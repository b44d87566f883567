//! Who is calling. Organisations are identified by their client certificate (mutual TLS), people by
//! a signed token (a JWT as an OIDC identity provider issues it) that their organisation's system
//! passes along. The identity comes from these, never from a request field.
//!
//! # Certificates
//!
//! A certificate names its organisation with a URI SAN:
//!
//! | SAN | organisation |
//! |---|---|
//! | `urn:regiozorg:provider:<AGB>` | a care provider (8-digit AGB code) |
//! | `urn:regiozorg:municipality:<CBS>` | a municipality (4-digit CBS code) |
//! | `urn:regiozorg:operator:<name>` | the region's operations staff |
//! | `urn:regiozorg:service:<name>` | one of the platform's own services |
//!
//! A certificate without such a SAN (a PKIoverheid or VECOZO certificate) is mapped through the
//! configured `[identity.serial_numbers]` table: its subject's serialNumber (the OIN) to one of the
//! URNs above. A certificate that maps to no organisation is refused.
//!
//! # Tokens
//!
//! Staff of a municipality call through their municipality's system with `authorization: Bearer
//! <JWT>`: claims `sub`, `name`, `role` (`consulent`, `teamleider`, `beheerder`) and `municipality`
//! (CBS code), `exp`; signed with a key of `[identity] token_keys` (PEM public keys) or
//! `token_jwks` (a JWKS file). The token's municipality must be the certificate's.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use rz_domain::{AgbCode, GemeenteCode};
use serde::Deserialize;

/// Why a caller could not be identified. The messages name no personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no client certificate: call with a certificate of the region's CA")]
    NoCertificate,
    #[error("the client certificate cannot be read: {0}")]
    BadCertificate(String),
    #[error(
        "the client certificate names no organisation (no urn:regiozorg: URI SAN, and its serialNumber {0:?} is not in identity.serial_numbers)"
    )]
    Unmapped(String),
    #[error("`{0}` is not an organisation: {1}")]
    BadUrn(String, String),
    #[error("token: {0}")]
    Token(String),
    #[error("a person's token may only come through a municipality's system (the caller is {0})")]
    TokenNotAllowed(String),
    #[error("the token is for municipality {token}, the certificate for {certificate}")]
    TokenMunicipality { token: String, certificate: String },
}

/// The kind of an organisation; the policy table allows calls per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Provider,
    Municipality,
    Operator,
    Service,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Provider,
        Kind::Municipality,
        Kind::Operator,
        Kind::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Provider => "provider",
            Kind::Municipality => "municipality",
            Kind::Operator => "operator",
            Kind::Service => "service",
        }
    }
}

/// An organisation taking part in the region.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Organisation {
    Provider(AgbCode),
    Municipality(GemeenteCode),
    /// The region's operations staff (a name for the team or person).
    Operator(String),
    /// One of the platform's services (`access`, `assignment`, ...).
    Service(String),
}

const URN: &str = "urn:regiozorg:";

fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Organisation {
    /// Parses `urn:regiozorg:<kind>:<id>`.
    pub fn parse_urn(urn: &str) -> Result<Self, IdentityError> {
        let bad = |why: &str| IdentityError::BadUrn(urn.to_owned(), why.to_owned());
        let rest = urn
            .strip_prefix(URN)
            .ok_or_else(|| bad("it does not start with urn:regiozorg:"))?;
        let (kind, id) = rest
            .split_once(':')
            .ok_or_else(|| bad("expected urn:regiozorg:<kind>:<id>"))?;
        match kind {
            "provider" => AgbCode::parse(id)
                .map(Self::Provider)
                .map_err(|e| bad(&e.rule)),
            "municipality" => GemeenteCode::parse(id)
                .map(Self::Municipality)
                .map_err(|e| bad(&e.rule)),
            "operator" if plain_name(id) => Ok(Self::Operator(id.to_owned())),
            "service" if plain_name(id) => Ok(Self::Service(id.to_owned())),
            "operator" | "service" => Err(bad(
                "the name must be 1 to 63 lower-case letters, digits or dashes",
            )),
            _ => Err(bad(
                "the kind must be provider, municipality, operator or service",
            )),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Self::Provider(_) => Kind::Provider,
            Self::Municipality(_) => Kind::Municipality,
            Self::Operator(_) => Kind::Operator,
            Self::Service(_) => Kind::Service,
        }
    }

    /// The identifier within its kind (AGB code, CBS code or name).
    pub fn id(&self) -> &str {
        match self {
            Self::Provider(a) => a.as_str(),
            Self::Municipality(g) => g.as_str(),
            Self::Operator(n) | Self::Service(n) => n,
        }
    }

    pub fn urn(&self) -> String {
        format!("{URN}{}:{}", self.kind().as_str(), self.id())
    }
}

impl fmt::Display for Organisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind().as_str(), self.id())
    }
}

impl fmt::Debug for Organisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A staff member's role at the municipality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Consulent,
    Teamleider,
    Beheerder,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Consulent => "consulent",
            Role::Teamleider => "teamleider",
            Role::Beheerder => "beheerder",
        }
    }
}

/// A person calling through their organisation's system. The name is personal data: `Debug`
/// shows the subject and role only.
#[derive(Clone, PartialEq, Eq)]
pub struct Person {
    /// The token's `sub`: the identity provider's stable identifier of the person.
    pub subject: String,
    pub name: String,
    pub role: Role,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("subject", &self.subject)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Who is calling: the organisation (from the certificate) and, where a person called through it,
/// the person (from the token). Handlers find it in the request's extensions ([`caller`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub organisation: Organisation,
    pub person: Option<Person>,
}

impl Caller {
    pub fn organisation(organisation: Organisation) -> Self {
        Self {
            organisation,
            person: None,
        }
    }

    pub fn kind(&self) -> Kind {
        self.organisation.kind()
    }

    pub fn is_operator(&self) -> bool {
        self.kind() == Kind::Operator
    }

    /// The caller's AGB code when it is a provider.
    pub fn provider(&self) -> Option<&AgbCode> {
        match &self.organisation {
            Organisation::Provider(a) => Some(a),
            _ => None,
        }
    }

    /// The caller's CBS code when it is a municipality.
    pub fn municipality(&self) -> Option<&GemeenteCode> {
        match &self.organisation {
            Organisation::Municipality(g) => Some(g),
            _ => None,
        }
    }
}

/// The caller of a request that passed the authorisation layer. `None` only where no layer ran
/// (a service called in-process); handlers treat that as unauthenticated.
pub fn caller<T>(request: &tonic::Request<T>) -> Option<&Caller> {
    request.extensions().get::<Caller>()
}

/// The caller of a request, or UNAUTHENTICATED where no authorisation layer ran: what a handler
/// that decides by the caller asks.
pub fn require_caller<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    caller(request).cloned().ok_or_else(|| {
        tonic::Status::unauthenticated(
            "no caller identity: the call did not pass the authorisation layer",
        )
    })
}

/// `[identity]`: how certificates and tokens map to identities.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IdentityConfig {
    /// Certificate subject serialNumber (the OIN of a PKIoverheid certificate) -> organisation URN.
    pub serial_numbers: HashMap<String, String>,
    /// PEM files with the public keys (EC P-256 or RSA) that sign staff tokens.
    pub token_keys: Vec<PathBuf>,
    /// A JWKS file (the identity provider's published keys) with more token keys.
    pub token_jwks: Option<PathBuf>,
    /// The `iss` tokens must carry, when set.
    pub token_issuer: Option<String>,
    /// The `aud` tokens must carry, when set.
    pub token_audience: Option<String>,
}

/// Maps client certificates to organisations and verifies tokens (built once at start).
pub struct Identities {
    serial_numbers: HashMap<String, Organisation>,
    keys: Vec<(
        Option<String>,
        jsonwebtoken::DecodingKey,
        jsonwebtoken::Algorithm,
    )>,
    validation: jsonwebtoken::Validation,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("serial_numbers", &self.serial_numbers.len())
            .field("token_keys", &self.keys.len())
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    name: String,
    role: Role,
    municipality: String,
}

impl Identities {
    /// Reads the configured keys; a key file that cannot be read or parsed is a configuration
    /// error naming the key.
    pub fn from_config(config: &IdentityConfig) -> Result<Self, String> {
        use jsonwebtoken::{Algorithm, DecodingKey};
        let mut serial_numbers = HashMap::new();
        for (serial, urn) in &config.serial_numbers {
            let org = Organisation::parse_urn(urn)
                .map_err(|e| format!("identity.serial_numbers.{serial}: {e}"))?;
            serial_numbers.insert(serial.clone(), org);
        }
        let mut keys = Vec::new();
        for (i, path) in config.token_keys.iter().enumerate() {
            let pem = std::fs::read(path)
                .map_err(|e| format!("identity.token_keys[{i}] {}: {e}", path.display()))?;
            let key = DecodingKey::from_ec_pem(&pem)
                .map(|k| (k, Algorithm::ES256))
                .or_else(|_| DecodingKey::from_rsa_pem(&pem).map(|k| (k, Algorithm::RS256)))
                .map_err(|e| {
                    format!(
                        "identity.token_keys[{i}] {}: not an EC P-256 or RSA public key: {e}",
                        path.display()
                    )
                })?;
            keys.push((None, key.0, key.1));
        }
        if let Some(path) = &config.token_jwks {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("identity.token_jwks {}: {e}", path.display()))?;
            let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("identity.token_jwks {}: {e}", path.display()))?;
            for jwk in &set.keys {
                let alg = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    _ => continue,
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("identity.token_jwks {}: {e}", path.display()))?;
                keys.push((jwk.common.key_id.clone(), key, alg));
            }
        }
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.algorithms = vec![Algorithm::ES256, Algorithm::RS256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        match &config.token_issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &config.token_audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Self {
            serial_numbers,
            keys,
            validation,
        })
    }

    /// The organisation a client certificate (DER, the leaf) names.
    pub fn organisation(&self, der: &[u8]) -> Result<Organisation, IdentityError> {
        use x509_parser::prelude::*;
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name
                    && uri.starts_with(URN)
                {
                    return Organisation::parse_urn(uri);
                }
            }
        }
        let serial = cert
            .subject()
            .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.serial_numbers
            .get(&serial)
            .cloned()
            .ok_or(IdentityError::Unmapped(serial))
    }

    /// The person a bearer token names, for a call through `organisation`.
    pub fn person(
        &self,
        organisation: &Organisation,
        token: &str,
    ) -> Result<Person, IdentityError> {
        let Organisation::Municipality(own) = organisation else {
            return Err(IdentityError::TokenNotAllowed(organisation.to_string()));
        };
        if self.keys.is_empty() {
            return Err(IdentityError::Token(
                "no token keys are configured (identity.token_keys)".into(),
            ));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| IdentityError::Token(format!("malformed: {e}")))?;
        let mut last = String::from("signed by an unknown key");
        for (kid, key, alg) in &self.keys {
            if *alg != header.alg || (header.kid.is_some() && kid.is_some() && *kid != header.kid) {
                continue;
            }
            // One algorithm per key: jsonwebtoken refuses a validation naming other families.
            let mut validation = self.validation.clone();
            validation.algorithms = vec![*alg];
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    let c = data.claims;
                    if c.municipality != own.as_str() {
                        return Err(IdentityError::TokenMunicipality {
                            token: c.municipality,
                            certificate: own.as_str().to_owned(),
                        });
                    }
                    return Ok(Person {
                        subject: c.sub,
                        name: c.name,
                        role: c.role,
                    });
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    match e.kind() {
                        ErrorKind::InvalidSignature => {}
                        ErrorKind::ExpiredSignature => {
                            return Err(IdentityError::Token("expired".into()));
                        }
                        _ => last = e.to_string(),
                    }
                }
            }
        }
        Err(IdentityError::Token(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_parse_and_print_back() {
        for urn in [
            "urn:regiozorg:provider:12345678",
            "urn:regiozorg:municipality:0222",
            "urn:regiozorg:operator:ops",
            "urn:regiozorg:service:assignment",
        ] {
            assert_eq!(Organisation::parse_urn(urn).unwrap().urn(), urn);
        }
        for bad in [
            "urn:regiozorg:provider:123",
            "urn:regiozorg:municipality:22",
            "urn:regiozorg:operator:",
            "urn:regiozorg:service:Upper",
            "urn:regiozorg:king:x",
            "urn:other:provider:12345678",
        ] {
            assert!(Organisation::parse_urn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_person_debug_hides_the_name() {
        let p = Person {
            subject: "s-1".into(),
            name: "Jan Jansen".into(),
            role: Role::Consulent,
        };
        assert!(!format!("{p:?}").contains("Jansen"));
    }
}
