//! Data at rest sealed with AES-256-GCM (ring, the crypto library rustls already uses here) under
//! keys that live outside the database, with the key's id stored beside each sealed value so keys can
//! be rotated. Notification seals its webhook subscription secrets with it; access, assignment and
//! notification seal personal data (BSN, names, addresses) with it ([`PersonalDataConfig`]).
//!
//! A key file holds one key per line, `<id> <base64 of 32 bytes>` (blank lines and lines starting
//! with `#` are ignored). The key named by the configured key id seals new values; when that is
//! unset, the last line's key does. Rotation: append a new key line (and point the key id at it, if
//! set), restart: at start a service reseals every value still under another key with the current
//! one; once that ran, old lines may be removed. A sealed value whose key is missing from the file
//! stops the start (or the read) with the key id named.
//!
//! A sealed value is `nonce (12 random bytes) || ciphertext || tag`; the caller binds it to its row
//! with the associated data (a row id, a client key), so a sealed value copied to another row does
//! not open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// A value as stored: which key sealed it, and the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The value names a key the key file does not hold.
    #[error("sealed with key `{0}`, which the key file does not hold")]
    UnknownKey(String),
    /// Wrong key, another row's value, or altered bytes.
    #[error("the sealed value does not open under key `{0}`")]
    Open(String),
    #[error("the system random generator failed")]
    Random,
    #[error("sealing failed")]
    Seal,
}

/// The keys that open sealed values, and the one that seals new ones.
pub struct Keyring {
    current: String,
    keys: HashMap<String, LessSafeKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key bytes.
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("keys", &ids)
            .finish()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Keyring {
    /// Reads the key file; `current` names the sealing key (the last line's when `None`). The
    /// error names the file and line, never a key.
    pub fn load(path: &Path, current: Option<&str>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text, current).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// As [`Keyring::load`], from the file's text.
    pub fn parse(text: &str, current: Option<&str>) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, key) = line
                .split_once(char::is_whitespace)
                .map(|(i, k)| (i.trim(), k.trim()))
                .ok_or_else(|| format!("line {}: expected `<key id> <base64 key>`", n + 1))?;
            if !valid_id(id) {
                return Err(format!(
                    "line {}: a key id is 1 to 32 letters, digits, `-` or `_`",
                    n + 1
                ));
            }
            let bytes = STANDARD
                .decode(key)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| format!("line {}: the key must be 32 bytes in base64", n + 1))?;
            keys.push((id.to_owned(), bytes));
        }
        let current = match current.filter(|c| !c.is_empty()) {
            Some(c) => c.to_owned(),
            None => keys
                .last()
                .map(|(id, _)| id.clone())
                .ok_or("holds no key")?,
        };
        Self::from_keys(&current, &keys)
    }

    /// A keyring of `keys` sealing with `current`.
    pub fn from_keys(current: &str, keys: &[(String, [u8; 32])]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (id, bytes) in keys {
            let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "bad key length")?;
            if map.insert(id.clone(), LessSafeKey::new(key)).is_some() {
                return Err(format!("key `{id}` is listed twice"));
            }
        }
        if !map.contains_key(current) {
            return Err(format!("key id `{current}` is not in the file"));
        }
        Ok(Self {
            current: current.to_owned(),
            keys: map,
            random: SystemRandom::new(),
        })
    }

    /// The id of the key that seals new values.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Seals `plaintext` under the current key, bound to `aad` (what identifies its row).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, SealError> {
        let key = self
            .keys
            .get(&self.current)
            .ok_or_else(|| SealError::UnknownKey(self.current.clone()))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| SealError::Seal)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + in_out.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&in_out);
        Ok(Sealed {
            key_id: self.current.clone(),
            bytes,
        })
    }

    /// Opens a sealed value bound to `aad`.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        let open_err = || SealError::Open(sealed.key_id.clone());
        let (nonce, rest) = sealed
            .bytes
            .split_at_checked(NONCE_LEN)
            .ok_or_else(open_err)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| open_err())?;
        let mut in_out = rest.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| open_err())?;
        Ok(plain.to_vec())
    }

    /// Whether a key with this id is loaded.
    pub fn has(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// `n` bytes from the system's secure random generator.
    pub fn random_bytes(&self, n: usize) -> Result<Vec<u8>, SealError> {
        let mut b = vec![0u8; n];
        self.random.fill(&mut b).map_err(|_| SealError::Random)?;
        Ok(b)
    }
}

/// A new key file line, `<id> <base64 of 32 random bytes>` (for the tools that set up a stack;
/// operators may equally run `printf '%s %s\n' k1 "$(head -c 32 /dev/urandom | base64)"`).
pub fn new_key_line(id: &str) -> Result<String, SealError> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| SealError::Random)?;
    Ok(format!("{id} {}\n", STANDARD.encode(key)))
}

/// `[personal_data]` of a service that stores BSNs, names or addresses: the keys that seal them at
/// rest. Set the file through `RZ__PERSONAL_DATA__KEYS_FILE` (a mounted Secret on Kubernetes).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct PersonalDataConfig {
    /// The key file, `<key id> <base64 of 32 bytes>` per line, kept outside the database (required).
    pub keys_file: Option<PathBuf>,
    /// The key that seals new values; the file's last line when empty.
    pub key_id: String,
}

impl PersonalDataConfig {
    /// The keyring of [`PersonalDataConfig::keys_file`]; the error names the setting and the line,
    /// never a key.
    pub fn keyring(&self) -> Result<Keyring, String> {
        let path = self.keys_file.as_ref().ok_or(
            "personal_data.keys_file is required: the keys that seal BSNs, names and addresses \
             at rest (`<key id> <base64 of 32 bytes>` per line), kept outside the database",
        )?;
        Keyring::load(path, Some(self.key_id.as_str()))
            .map_err(|e| format!("personal_data.keys_file {e}"))
    }
}

/// Rows a transaction of [`reseal_in_batches`] may seal.
pub const RESEAL_BATCH: i64 = 500;

/// A batch of [`reseal_in_batches`]: seals up to [`RESEAL_BATCH`] rows in the transaction it is
/// given and says how many it sealed.
pub type ResealBatch<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, sqlx::Error>> + Send + 'c>>;

/// Seals rows at start, a batch at a time, each batch in a transaction of its own, until a batch
/// finds none left; the rows sealed. `batch` (given the transaction and `keys`) selects the rows still in plaintext or under another
/// key than the current one (`LIMIT RESEAL_BATCH FOR UPDATE SKIP LOCKED`), seals and updates them.
pub async fn reseal_in_batches<F>(
    pool: &sqlx::PgPool,
    keys: &Keyring,
    mut batch: F,
) -> Result<u64, sqlx::Error>
where
    F: for<'c> FnMut(&'c mut sqlx::PgConnection, &'c Keyring) -> ResealBatch<'c>,
{
    let mut sealed = 0;
    loop {
        let mut tx = pool.begin().await?;
        let n = batch(&mut tx, keys).await?;
        tx.commit().await?;
        if n == 0 {
            return Ok(sealed);
        }
        sealed += n;
    }
}

impl Keyring {
    /// Seals `value` as JSON, bound to `aad`.
    pub fn seal_json<T: serde::Serialize>(
        &self,
        aad: &[u8],
        value: &T,
    ) -> Result<Sealed, SealError> {
        let plain = serde_json::to_vec(value).map_err(|_| SealError::Seal)?;
        self.seal(aad, &plain)
    }

    /// Opens a value sealed with [`Keyring::seal_json`].
    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        aad: &[u8],
        sealed: &Sealed,
    ) -> Result<T, SealError> {
        let plain = self.open(aad, sealed)?;
        serde_json::from_slice(&plain).map_err(|_| SealError::Open(sealed.key_id.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ring() -> Keyring {
        let a = STANDARD.encode([1u8; 32]);
        let b = STANDARD.encode([2u8; 32]);
        Keyring::parse(&format!("# keys\nk1 {a}\n\nk2 {b}\n"), None).unwrap()
    }

    #[test]
    fn the_last_key_seals_and_every_key_opens() {
        let r = ring();
        assert_eq!(r.current(), "k2");
        let s = r.seal(b"row-1", b"whsec_x").unwrap();
        assert_eq!(s.key_id, "k2");
        assert_eq!(s.bytes.len(), NONCE_LEN + 7 + 16);
        assert!(!s.bytes.windows(7).any(|w| w == b"whsec_x"));
        assert_eq!(r.open(b"row-1", &s).unwrap(), b"whsec_x");
        // Fresh nonce each time.
        assert_ne!(r.seal(b"row-1", b"whsec_x").unwrap().bytes, s.bytes);
        let old = Keyring::parse(&format!("k1 {}\n", STANDARD.encode([1u8; 32])), None)
            .unwrap()
            .seal(b"row-1", b"old")
            .unwrap();
        assert_eq!(r.open(b"row-1", &old).unwrap(), b"old");
    }

    #[test]
    fn another_row_another_key_or_altered_bytes_do_not_open() {
        let r = ring();
        let s = r.seal(b"row-1", b"whsec_x").unwrap();
        assert!(matches!(r.open(b"row-2", &s), Err(SealError::Open(_))));
        let mut altered = s.clone();
        altered.bytes[NONCE_LEN] ^= 1;
        assert!(matches!(
            r.open(b"row-1", &altered),
            Err(SealError::Open(_))
        ));
        let moved = Sealed {
            key_id: "k1".into(),
            bytes: s.bytes.clone(),
        };
        assert!(matches!(r.open(b"row-1", &moved), Err(SealError::Open(_))));
        let unknown = Sealed {
            key_id: "k9".into(),
            bytes: s.bytes,
        };
        assert!(matches!(
            r.open(b"row-1", &unknown),
            Err(SealError::UnknownKey(k)) if k == "k9"
        ));
    }

    #[test]
    fn bad_key_files_name_the_line_not_the_key() {
        let short = STANDARD.encode([1u8; 16]);
        let e = Keyring::parse(&format!("k1 {short}\n"), None).unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("32 bytes") && !e.contains(&short),
            "{e}"
        );
        assert!(Keyring::parse("", None).unwrap_err().contains("no key"));
        assert!(Keyring::parse("k1\n", None).unwrap_err().contains("line 1"));
        let k = STANDARD.encode([1u8; 32]);
        assert!(
            Keyring::parse(&format!("k/1 {k}\n"), None)
                .unwrap_err()
                .contains("key id")
        );
        assert!(
            Keyring::parse(&format!("k1 {k}\nk1 {k}\n"), None)
                .unwrap_err()
                .contains("twice")
        );
        let e = Keyring::parse(&format!("k1 {k}\n"), Some("k2")).unwrap_err();
        assert!(e.contains("key id `k2`"), "{e}");
        assert_eq!(
            Keyring::parse(&format!("k1 {k}\nk2 {k}\n"), Some("k1"))
                .unwrap()
                .current(),
            "k1"
        );
        assert!(!format!("{:?}", ring()).contains(&k));
        let line = new_key_line("k7").unwrap();
        assert_ne!(line, new_key_line("k7").unwrap());
        assert_eq!(Keyring::parse(&line, None).unwrap().current(), "k7");
    }
}
