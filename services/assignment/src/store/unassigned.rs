//! Granted products that could not be assigned, and why.

use chrono::NaiveDate;
use rz_domain::{ClientKey, GemeenteCode, Law, Period};
use sqlx::{PgConnection, Row};

use super::{decode_err, parsed};

/// A granted product that could not be assigned, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unassigned {
    pub granted_product_id: String,
    pub granted_version: u32,
    pub municipality: GemeenteCode,
    pub client_key: ClientKey,
    pub law: Law,
    pub segment_code: String,
    pub subsegment_code: String,
    pub period: Period,
    /// `no_contracted_provider` | `stacking`
    pub reason_code: String,
    pub reason: String,
    pub decided_on: NaiveDate,
}

pub async fn insert_unassigned(tx: &mut PgConnection, u: &Unassigned) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO unassigned_products (granted_product_id, granted_version, municipality, client_key,
            law, segment_code, subsegment_code, start_date, end_date, reason_code, reason, decided_on)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING",
    )
    .bind(&u.granted_product_id)
    .bind(i32::try_from(u.granted_version).unwrap_or(i32::MAX))
    .bind(u.municipality.as_str())
    .bind(u.client_key.as_str())
    .bind(u.law.code())
    .bind(&u.segment_code)
    .bind(&u.subsegment_code)
    .bind(u.period.start())
    .bind(u.period.end())
    .bind(&u.reason_code)
    .bind(&u.reason)
    .bind(u.decided_on)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn list_unassigned(
    conn: &mut PgConnection,
    municipality: Option<&str>,
) -> Result<Vec<Unassigned>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT granted_product_id, granted_version, municipality, client_key, law, segment_code,
                subsegment_code, start_date, end_date, reason_code, reason, decided_on
         FROM unassigned_products WHERE ($1::text IS NULL OR municipality = $1)
         ORDER BY municipality, decided_on, granted_product_id",
    )
    .bind(municipality)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let law: String = r.try_get("law")?;
            let start: NaiveDate = r.try_get("start_date")?;
            Ok(Unassigned {
                granted_product_id: r.try_get("granted_product_id")?,
                granted_version: u32::try_from(r.try_get::<i32, _>("granted_version")?)
                    .unwrap_or(0),
                municipality: parsed(r, "municipality", GemeenteCode::parse)?,
                client_key: parsed(r, "client_key", ClientKey::parse)?,
                law: Law::from_code(&law).map_err(|_| decode_err("law", &law))?,
                segment_code: r.try_get("segment_code")?,
                subsegment_code: r.try_get("subsegment_code")?,
                period: Period::new(start, r.try_get("end_date")?)
                    .map_err(|_| decode_err("period", &start.to_string()))?,
                reason_code: r.try_get("reason_code")?,
                reason: r.try_get("reason")?,
                decided_on: r.try_get("decided_on")?,
            })
        })
        .collect()
}
