//! Client identities: the BSN behind a client key, kept for the standard's messages.

use rz_domain::{Bsn, ClientKey, GemeenteCode};
use sqlx::PgConnection;

pub async fn save_identity(
    tx: &mut PgConnection,
    municipality: &GemeenteCode,
    client_key: &ClientKey,
    bsn: &Bsn,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_identities (municipality, client_key, bsn) VALUES ($1, $2, $3)
         ON CONFLICT (municipality, client_key) DO UPDATE SET bsn = EXCLUDED.bsn",
    )
    .bind(municipality.as_str())
    .bind(client_key.as_str())
    .bind(bsn.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn identity(
    conn: &mut PgConnection,
    municipality: &GemeenteCode,
    client_key: &ClientKey,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT bsn FROM client_identities WHERE municipality = $1 AND client_key = $2",
    )
    .bind(municipality.as_str())
    .bind(client_key.as_str())
    .fetch_optional(conn)
    .await
}
