//! What the sealed columns share: a value stored in plaintext (before sealing) or sealed (the
//! bytes and the id of the key that sealed them), opened as text, and resealed at start (in
//! batches, [`rz_platform::sealing::reseal_in_batches`]).

use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::secrets::{Keyring, Sealed, SecretError};

/// Rows whose body is removed per statement at start (no sealing, a plain update).
pub(super) const CLEAR_BATCH: i64 = 5_000;

/// Why a stored text could not be read. Names the key, never the text.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error(transparent)]
    Seal(#[from] SecretError),
    #[error("the value opened under key `{0}` is not UTF-8")]
    NotUtf8(String),
    #[error("neither plaintext nor a sealed value is stored")]
    Missing,
}

/// A value the start could not seal: it does not open (its key is missing from the key file) or
/// cannot be sealed. Names the row and the key, never the text.
#[derive(Debug, thiserror::Error)]
#[error("{what} {id}: {source}")]
pub struct SealRowError {
    /// `delivery` or `letter`.
    pub what: &'static str,
    pub id: Uuid,
    pub source: TextError,
}

/// The sealed value of the columns `bytes` and `key_id` of a row; `None` when not sealed.
pub(super) fn sealed(r: &PgRow, bytes: &str, key_id: &str) -> Result<Option<Sealed>, sqlx::Error> {
    Ok(
        match (
            r.try_get::<Option<String>, _>(key_id)?,
            r.try_get::<Option<Vec<u8>>, _>(bytes)?,
        ) {
            (Some(key_id), Some(bytes)) => Some(Sealed { key_id, bytes }),
            _ => None,
        },
    )
}

/// The text of a row: opened when sealed, else its plaintext.
pub(super) fn open_text(
    keys: &Keyring,
    aad: &[u8],
    plain: Option<String>,
    sealed: Option<Sealed>,
) -> Result<String, TextError> {
    match (sealed, plain) {
        (Some(s), _) => {
            let bytes = keys.open(aad, &s)?;
            String::from_utf8(bytes).map_err(|_| TextError::NotUtf8(s.key_id))
        }
        (None, Some(p)) => Ok(p),
        (None, None) => Err(TextError::Missing),
    }
}

/// As [`open_text`], decoding errors as `sqlx` decode errors (for readers that fail whole).
pub(super) fn open_text_or_decode_err(
    keys: &Keyring,
    aad: &[u8],
    plain: Option<String>,
    sealed: Option<Sealed>,
) -> Result<String, sqlx::Error> {
    open_text(keys, aad, plain, sealed).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// The stored value of row `id` (a `what`) sealed again under the current key: opened (or taken
/// in plaintext) first. Its error is a [`SealRowError`] (as a decode error).
pub(super) fn reseal(
    keys: &Keyring,
    (what, id): (&'static str, Uuid),
    aad: &[u8],
    plain: &Option<String>,
    bytes: &Option<Vec<u8>>,
    key_id: &Option<String>,
) -> Result<Sealed, sqlx::Error> {
    let sealed = match (bytes, key_id) {
        (Some(bytes), Some(key_id)) => Some(Sealed {
            key_id: key_id.clone(),
            bytes: bytes.clone(),
        }),
        _ => None,
    };
    open_text(keys, aad, plain.clone(), sealed)
        .and_then(|text| Ok(keys.seal(aad, text.as_bytes())?))
        .map_err(|source| sqlx::Error::Decode(Box::new(SealRowError { what, id, source })))
}
