//! The pseudonymous client key: what every service but access, and every event not addressed to a
//! provider, uses instead of the BSN. It is a keyed hash (HMAC-SHA256, first 128 bits, hex) of the
//! BSN under the region's secret, which lives outside the databases (configuration or a secret
//! store): without the secret the key cannot be traced back to a person, and the same resident has
//! the same key in every service and municipality of the region.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::{Bsn, FieldError};

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(String);

impl ClientKey {
    pub const FIELD: &'static str = "client_key";

    /// The key of `bsn` under the region's `secret`.
    pub fn derive(secret: &[u8], bsn: &Bsn) -> Self {
        let digest: Vec<u8> = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
            Ok(mut mac) => {
                mac.update(bsn.as_str().as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            // HMAC takes keys of any length, so this arm does not run; it still stays keyed.
            Err(_) => Sha256::digest([secret, bsn.as_str().as_bytes()].concat()).to_vec(),
        };
        Self(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
    }

    /// A key as received from another service: 32 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new(
                Self::FIELD,
                "must be 32 lowercase hexadecimal digits",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stable_secret_dependent_and_parses_back() {
        let bsn = Bsn::parse("111222333").unwrap();
        let a = ClientKey::derive(b"region-secret", &bsn);
        assert_eq!(a, ClientKey::derive(b"region-secret", &bsn));
        assert_ne!(a, ClientKey::derive(b"other-secret", &bsn));
        assert_eq!(a.as_str().len(), 32);
        assert!(!a.as_str().contains("111222333"));
        assert_eq!(ClientKey::parse(a.as_str()).unwrap(), a);
        assert!(ClientKey::parse("XYZ").is_err());
        assert!(ClientKey::parse(&"A".repeat(32)).is_err());
    }
}
