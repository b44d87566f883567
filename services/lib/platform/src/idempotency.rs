//! Client-chosen idempotency keys for create commands: the first request with a key claims it in
//! the command's transaction; the same request again gets what it created; a different request
//! under a used key is refused. Each service keeps the `idempotency_keys` table in its own
//! database (see registration's migration).
//!
//! What makes two requests "the same" is [`fingerprint`]: a digest of the operation and the
//! request's protobuf encoding. Never `Debug` output (it changes with the code, not the request)
//! and never the personal data itself (the digest is stored, the request is not).

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};

/// The fingerprint of a request under an idempotency key: SHA-256 (hex) of `operation`, a zero
/// byte and the encoded `request`. Encode the request as the client sent it, with the
/// idempotency key left in (it is the same for both) and nothing the server derived.
pub fn fingerprint(operation: &str, request: &impl prost::Message) -> String {
    fingerprint_bytes(operation, &request.encode_to_vec())
}

/// As [`fingerprint`], for a request already encoded (or a canonical byte form of one, such as a
/// provider's XML message with the BSN replaced by the client key).
pub fn fingerprint_bytes(operation: &str, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(operation.as_bytes());
    h.update([0]);
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub enum Claim {
    /// The key is new and now belongs to this request.
    New,
    /// The same request was made before; this is what it created.
    Replay(String),
    /// The key was used for a different request.
    Conflict,
}

/// Claims an idempotency key for a create command, in the command's transaction.
pub async fn claim_key(
    tx: &mut PgConnection,
    key: &str,
    operation: &str,
    fingerprint: &str,
    resource_id: &str,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (key, operation, fingerprint, resource_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(operation)
    .bind(fingerprint)
    .bind(resource_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let row = sqlx::query(
        "SELECT operation, fingerprint, resource_id FROM idempotency_keys WHERE key = $1",
    )
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    let same = row.try_get::<String, _>("operation")? == operation
        && row.try_get::<String, _>("fingerprint")? == fingerprint;
    Ok(if same {
        Claim::Replay(row.try_get("resource_id")?)
    } else {
        Claim::Conflict
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_names_operation_and_bytes() {
        let a = fingerprint_bytes("open_case", b"x");
        assert_eq!(a.len(), 64);
        assert_eq!(a, fingerprint_bytes("open_case", b"x"));
        assert_ne!(a, fingerprint_bytes("open_case", b"y"));
        assert_ne!(a, fingerprint_bytes("register_resident", b"x"));
        // The separator keeps "ab" + "c" apart from "a" + "bc".
        assert_ne!(fingerprint_bytes("ab", b"c"), fingerprint_bytes("a", b"bc"));
        assert_eq!(
            fingerprint(
                "op",
                &prost_types::Duration {
                    seconds: 1,
                    nanos: 0
                }
            ),
            fingerprint_bytes("op", &[8, 1])
        );
    }
}
