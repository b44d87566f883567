//! Client identities: the BSN behind a client key, kept for the standard's messages.

use sqlx::PgConnection;

pub async fn save_identity(
    tx: &mut PgConnection,
    municipality: &str,
    client_key: &str,
    bsn: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_identities (municipality, client_key, bsn) VALUES ($1, $2, $3)
         ON CONFLICT (municipality, client_key) DO UPDATE SET bsn = EXCLUDED.bsn",
    )
    .bind(municipality)
    .bind(client_key)
    .bind(bsn)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn identity(
    conn: &mut PgConnection,
    municipality: &str,
    client_key: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT bsn FROM client_identities WHERE municipality = $1 AND client_key = $2",
    )
    .bind(municipality)
    .bind(client_key)
    .fetch_optional(conn)
    .await
}
