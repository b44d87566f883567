//! Client identities: the BSN behind a client key, kept for the standard's messages. The BSN is
//! sealed at rest ([`rz_platform::sealing`], bound to the municipality and client key); rows from
//! before migration 113 keep theirs in plaintext until [`seal_identities`] runs at start.

use rz_domain::{Bsn, ClientKey, GemeenteCode};
use rz_platform::sealing::{Keyring, RESEAL_BATCH, Sealed, reseal_in_batches};
use sqlx::{PgConnection, PgPool, Row};

fn aad(municipality: &str, client_key: &str) -> Vec<u8> {
    format!("client_identities/{municipality}/{client_key}").into_bytes()
}

pub(super) fn seal(
    keys: &Keyring,
    municipality: &str,
    client_key: &str,
    bsn: &str,
) -> Result<Sealed, sqlx::Error> {
    keys.seal(&aad(municipality, client_key), bsn.as_bytes())
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub async fn save_identity(
    tx: &mut PgConnection,
    keys: &Keyring,
    municipality: &GemeenteCode,
    client_key: &ClientKey,
    bsn: &Bsn,
) -> Result<(), sqlx::Error> {
    let s = seal(
        keys,
        municipality.as_str(),
        client_key.as_str(),
        bsn.as_str(),
    )?;
    sqlx::query(
        "INSERT INTO client_identities (municipality, client_key, bsn, sealed, key_id)
         VALUES ($1, $2, NULL, $3, $4)
         ON CONFLICT (municipality, client_key)
         DO UPDATE SET bsn = NULL, sealed = EXCLUDED.sealed, key_id = EXCLUDED.key_id",
    )
    .bind(municipality.as_str())
    .bind(client_key.as_str())
    .bind(&s.bytes)
    .bind(&s.key_id)
    .execute(tx)
    .await?;
    Ok(())
}

fn bsn_of(
    keys: &Keyring,
    municipality: &str,
    client_key: &str,
    row: &sqlx::postgres::PgRow,
) -> Result<String, sqlx::Error> {
    let sealed: Option<Vec<u8>> = row.try_get("sealed")?;
    let key_id: Option<String> = row.try_get("key_id")?;
    match (sealed, key_id) {
        (Some(bytes), Some(key_id)) => {
            let plain = keys
                .open(&aad(municipality, client_key), &Sealed { key_id, bytes })
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            String::from_utf8(plain).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        }
        _ => row
            .try_get::<Option<String>, _>("bsn")?
            .ok_or_else(|| sqlx::Error::Decode("a client identity without a BSN".into())),
    }
}

pub async fn identity(
    conn: &mut PgConnection,
    keys: &Keyring,
    municipality: &GemeenteCode,
    client_key: &ClientKey,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT bsn, sealed, key_id FROM client_identities
         WHERE municipality = $1 AND client_key = $2",
    )
    .bind(municipality.as_str())
    .bind(client_key.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(|r| bsn_of(keys, municipality.as_str(), client_key.as_str(), &r))
        .transpose()
}

/// Seals every identity stored in plaintext or under another key than the current one; run at
/// start. The number of rows sealed.
pub async fn seal_identities(pool: &PgPool, keys: &Keyring) -> Result<u64, sqlx::Error> {
    reseal_in_batches(pool, keys, |tx, keys| {
        Box::pin(seal_identities_batch(tx, keys))
    })
    .await
}

async fn seal_identities_batch(tx: &mut PgConnection, keys: &Keyring) -> Result<u64, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT municipality, client_key, bsn, sealed, key_id FROM client_identities
         WHERE sealed IS NULL OR key_id <> $1
         ORDER BY municipality, client_key LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(keys.current())
    .bind(RESEAL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let m: String = row.try_get("municipality")?;
        let k: String = row.try_get("client_key")?;
        let bsn = bsn_of(keys, &m, &k, row)?;
        let s = seal(keys, &m, &k, &bsn)?;
        sqlx::query(
            "UPDATE client_identities SET bsn = NULL, sealed = $3, key_id = $4
             WHERE municipality = $1 AND client_key = $2",
        )
        .bind(&m)
        .bind(&k)
        .bind(&s.bytes)
        .bind(&s.key_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.len() as u64)
}
