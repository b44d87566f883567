//! Subscription secrets at rest: sealed with [`rz_platform::sealing`] under the keys of
//! `webhooks.secret_keys_file`, the subscription id as associated data. At start the service
//! reseals every secret still under another key (and any legacy plaintext secret) with the current
//! one ([`crate::store::reseal_secrets`]).

pub use rz_platform::sealing::{Keyring, SealError as SecretError, Sealed, new_key_line};
