//! Access's PostgreSQL store. Every function takes the connection or transaction it works in; the
//! API layer decides the transaction boundaries (state change + outbox event together).

use chrono::NaiveDate;
use rz_domain::{
    AgbCode, Bsn, Cents, ClientKey, ExecutionVariant, Frequency, GemeenteCode, Law, Period,
    ProductCode, Unit,
};
use rz_platform::db::Migration;
use rz_platform::sealing::{Keyring, RESEAL_BATCH, Sealed, reseal_in_batches};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::case::{Case, CaseStatus};
use crate::domain::product::{AmendmentKind, Goal, GrantedProduct, Size};
use crate::domain::resident::{Address, LegalRepresentative, PostalCode, Resident};

/// The shared eventing migrations under their one version, then the service's own (versions
/// above `rz_eventing::SHARED_VERSIONS_END`, each file named after its version).
pub const MIGRATIONS: &[Migration] = rz_platform::migrations![
    101 "access" => "0101_access.sql",
    102 "resident_gender" => "0102_gender.sql",
    103 "sealed_residents" => "0103_sealed_residents.sql",
];

/// Tables a command can change (tests compare their row counts).
pub const TABLES: &[&str] = &[
    "residents",
    "cases",
    "products",
    "product_amendments",
    "idempotency_keys",
    "outbox",
];

fn corrupt(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is malformed: {e}").into())
}

pub use rz_platform::idempotency::{Claim, claim_key};

// ---- residents ----

/// What of a resident is sealed at rest ([`rz_platform::sealing`], bound to the client key): the
/// BSN, names, birth date, address and legal representative. The client key, the address'
/// municipality and the gender code stay readable (none identifies a person).
#[derive(serde::Serialize, serde::Deserialize)]
struct Personal {
    bsn: String,
    given_names: String,
    family_name: String,
    birth_date: NaiveDate,
    street: String,
    house_number: String,
    postal_code: String,
    city: String,
    rep_name: Option<String>,
    rep_relation: Option<String>,
}

impl Personal {
    fn of(r: &Resident) -> Self {
        let (rep_name, rep_relation) = match &r.legal_representative {
            Some(l) => (Some(l.name.clone()), Some(l.relation.clone())),
            None => (None, None),
        };
        Self {
            bsn: r.bsn.as_str().to_owned(),
            given_names: r.given_names.clone(),
            family_name: r.family_name.clone(),
            birth_date: r.birth_date,
            street: r.address.street.clone(),
            house_number: r.address.house_number.clone(),
            postal_code: r.address.postal_code.as_str().to_owned(),
            city: r.address.city.clone(),
            rep_name,
            rep_relation,
        }
    }
}

/// The associated data binding a resident's sealed data to its row.
fn resident_aad(client_key: &str) -> Vec<u8> {
    format!("residents/{client_key}").into_bytes()
}

fn seal_resident(keys: &Keyring, r: &Resident) -> Result<Sealed, sqlx::Error> {
    seal_personal(keys, r.client_key.as_str(), &Personal::of(r))
}

fn seal_personal(keys: &Keyring, client_key: &str, p: &Personal) -> Result<Sealed, sqlx::Error> {
    keys.seal_json(&resident_aad(client_key), p)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Inserts a resident, its personal data sealed; false when the BSN (and so the client key) is
/// registered already.
pub async fn insert_resident(
    tx: &mut PgConnection,
    keys: &Keyring,
    r: &Resident,
) -> Result<bool, sqlx::Error> {
    let sealed = seal_resident(keys, r)?;
    let n = sqlx::query(
        "INSERT INTO residents (client_key, sealed, key_id, municipality, gender)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(r.client_key.as_str())
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .bind(r.address.municipality.as_str())
    .bind(i16::from(r.gender))
    .execute(tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The plaintext columns of a row from before sealing (migration 103), until
/// [`seal_residents`] has sealed it.
const RESIDENT_SELECT: &str = "SELECT client_key, sealed, key_id, bsn, given_names, family_name,
    birth_date, street, house_number, postal_code, city, municipality, rep_name, rep_relation,
    gender FROM residents";

fn personal_from_row(
    row: &PgRow,
    keys: &Keyring,
    client_key: &str,
) -> Result<Personal, sqlx::Error> {
    let sealed: Option<Vec<u8>> = row.try_get("sealed")?;
    let key_id: Option<String> = row.try_get("key_id")?;
    if let (Some(bytes), Some(key_id)) = (sealed, key_id) {
        return keys
            .open_json(&resident_aad(client_key), &Sealed { key_id, bytes })
            .map_err(|e| corrupt("resident's sealed data", e));
    }
    let text = |c: &str| {
        row.try_get::<Option<String>, _>(c)?
            .ok_or_else(|| corrupt(c, "missing"))
    };
    Ok(Personal {
        bsn: text("bsn")?,
        given_names: text("given_names")?,
        family_name: text("family_name")?,
        birth_date: row
            .try_get::<Option<NaiveDate>, _>("birth_date")?
            .ok_or_else(|| corrupt("birth_date", "missing"))?,
        street: text("street")?,
        house_number: text("house_number")?,
        postal_code: text("postal_code")?,
        city: text("city")?,
        rep_name: row.try_get("rep_name")?,
        rep_relation: row.try_get("rep_relation")?,
    })
}

fn resident_from_row(
    row: &PgRow,
    keys: &Keyring,
    own: &GemeenteCode,
) -> Result<Resident, sqlx::Error> {
    let client_key: String = row.try_get("client_key")?;
    let p = personal_from_row(row, keys, &client_key)?;
    Ok(Resident {
        client_key: ClientKey::parse(&client_key).map_err(|e| corrupt("client key", e))?,
        bsn: Bsn::parse(&p.bsn).map_err(|e| corrupt("bsn", e))?,
        given_names: p.given_names,
        family_name: p.family_name,
        birth_date: p.birth_date,
        address: Address {
            street: p.street,
            house_number: p.house_number,
            postal_code: PostalCode::parse(&p.postal_code)
                .map_err(|e| corrupt("postal code", e))?,
            city: p.city,
            municipality: GemeenteCode::parse(&row.try_get::<String, _>("municipality")?)
                .map_err(|e| corrupt("municipality", e))?,
        },
        legal_representative: match (p.rep_name, p.rep_relation) {
            (Some(name), Some(relation)) => Some(LegalRepresentative { name, relation }),
            _ => None,
        },
        municipality: own.clone(),
        gender: u8::try_from(row.try_get::<i16, _>("gender")?).map_err(|e| corrupt("gender", e))?,
    })
}

/// The resident with this client key (a BSN's key is `ClientKey::derive` of it).
pub async fn resident_by_key(
    conn: &mut PgConnection,
    keys: &Keyring,
    key: &ClientKey,
    own: &GemeenteCode,
) -> Result<Option<Resident>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{RESIDENT_SELECT} WHERE client_key = $1"
    )))
    .bind(key.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref()
        .map(|r| resident_from_row(r, keys, own))
        .transpose()
}

/// The residents of `keys` (those this municipality knows; in no particular order).
pub async fn residents_by_keys(
    conn: &mut PgConnection,
    keyring: &Keyring,
    keys: &[ClientKey],
    own: &GemeenteCode,
) -> Result<Vec<Resident>, sqlx::Error> {
    let keys: Vec<&str> = keys.iter().map(ClientKey::as_str).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{RESIDENT_SELECT} WHERE client_key = ANY($1)"
    )))
    .bind(&keys)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| resident_from_row(r, keyring, own))
        .collect()
}

/// Seals the personal data of every resident stored in plaintext (before migration 103) or under
/// another key than the current one, and clears the plaintext columns; run at start. The number
/// of rows sealed. A row whose key is missing from the key file stops it with the key id named.
pub async fn seal_residents(pool: &sqlx::PgPool, keys: &Keyring) -> Result<u64, sqlx::Error> {
    reseal_in_batches(pool, keys, |tx, keys| {
        Box::pin(seal_residents_batch(tx, keys))
    })
    .await
}

async fn seal_residents_batch(tx: &mut PgConnection, keys: &Keyring) -> Result<u64, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{RESIDENT_SELECT} WHERE sealed IS NULL OR key_id <> $1
         ORDER BY client_key LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(keys.current())
    .bind(RESEAL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let client_key: String = row.try_get("client_key")?;
        let personal = personal_from_row(row, keys, &client_key)?;
        let s = seal_personal(keys, &client_key, &personal)?;
        sqlx::query(
            "UPDATE residents SET sealed = $2, key_id = $3, bsn = NULL, given_names = NULL,
                 family_name = NULL, birth_date = NULL, street = NULL, house_number = NULL,
                 postal_code = NULL, city = NULL, rep_name = NULL, rep_relation = NULL
             WHERE client_key = $1",
        )
        .bind(&client_key)
        .bind(&s.bytes)
        .bind(&s.key_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(rows.len() as u64)
}

// ---- cases ----

pub async fn insert_case(tx: &mut PgConnection, c: &Case) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (id, client_key, law, status, reported_on, investigation_due,
             investigated_on, applied_on, decision_due, decided_on, refusal_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.id)
    .bind(c.client_key.as_str())
    .bind(c.law.code())
    .bind(c.status.code())
    .bind(c.reported_on)
    .bind(c.investigation_due)
    .bind(c.investigated_on)
    .bind(c.applied_on)
    .bind(c.decision_due)
    .bind(c.decided_on)
    .bind(&c.refusal_reason)
    .execute(tx)
    .await?;
    Ok(())
}

/// Stores a case's steps (its products are inserted with [`insert_product`]).
pub async fn update_case(tx: &mut PgConnection, c: &Case) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE cases SET status = $2, reported_on = $3, investigation_due = $4,
             investigated_on = $5, applied_on = $6, decision_due = $7, decided_on = $8,
             refusal_reason = $9, updated_at = now()
         WHERE id = $1",
    )
    .bind(c.id)
    .bind(c.status.code())
    .bind(c.reported_on)
    .bind(c.investigation_due)
    .bind(c.investigated_on)
    .bind(c.applied_on)
    .bind(c.decision_due)
    .bind(c.decided_on)
    .bind(&c.refusal_reason)
    .execute(tx)
    .await?;
    Ok(())
}

const CASE_SELECT: &str = "SELECT id, client_key, law, status, reported_on, investigation_due,
    investigated_on, applied_on, decision_due, decided_on, refusal_reason FROM cases";

fn law(s: &str) -> Result<Law, sqlx::Error> {
    Law::from_code(s).map_err(|e| corrupt("law", e))
}

fn case_from_row(row: &PgRow) -> Result<Case, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Case {
        id: row.try_get("id")?,
        client_key: ClientKey::parse(&row.try_get::<String, _>("client_key")?)
            .map_err(|e| corrupt("client key", e))?,
        law: law(&row.try_get::<String, _>("law")?)?,
        status: CaseStatus::from_code(&status).ok_or_else(|| corrupt("status", &status))?,
        reported_on: row.try_get("reported_on")?,
        investigation_due: row.try_get("investigation_due")?,
        investigated_on: row.try_get("investigated_on")?,
        applied_on: row.try_get("applied_on")?,
        decision_due: row.try_get("decision_due")?,
        decided_on: row.try_get("decided_on")?,
        refusal_reason: row.try_get("refusal_reason")?,
        products: Vec::new(),
    })
}

/// A case with its products; `for_update` locks the case row for the transaction.
pub async fn load_case(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<Case>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{CASE_SELECT} WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut case = case_from_row(&row)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PRODUCT_SELECT} WHERE case_id = $1 ORDER BY position"
    )))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    case.products = rows
        .iter()
        .map(product_from_row)
        .collect::<Result<_, _>>()?;
    Ok(Some(case))
}

/// REPORTED cases whose investigation, and APPLIED cases whose decision, is due on or before `until`.
pub async fn cases_due(
    conn: &mut PgConnection,
    until: NaiveDate,
) -> Result<Vec<Case>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{CASE_SELECT}
         WHERE (status = 'reported' AND investigation_due <= $1)
            OR (status = 'applied' AND decision_due <= $1)
         ORDER BY CASE status WHEN 'reported' THEN investigation_due ELSE decision_due END, id"
    )))
    .bind(until)
    .fetch_all(conn)
    .await?;
    rows.iter().map(case_from_row).collect()
}

// ---- products ----

const PRODUCT_SELECT: &str = "SELECT id, case_id, client_key, law, segment_code, subsegment_code,
    product_category, product_code, result, goal, period_start, period_end, execution_variant,
    budget_cents, volume, unit, frequency, preferred_provider_agb, granted_on, version FROM products";

struct SizeColumns {
    budget_cents: Option<i64>,
    volume: Option<i64>,
    unit: Option<&'static str>,
    frequency: Option<&'static str>,
}

fn size_columns(s: &Size) -> SizeColumns {
    match s {
        Size::Task => SizeColumns {
            budget_cents: None,
            volume: None,
            unit: None,
            frequency: None,
        },
        Size::Budget(c) => SizeColumns {
            budget_cents: Some(c.as_i64()),
            volume: None,
            unit: None,
            frequency: None,
        },
        Size::Effort {
            volume,
            unit,
            frequency,
        } => SizeColumns {
            budget_cents: None,
            volume: Some(i64::from(*volume)),
            unit: Some(unit.code()),
            frequency: Some(frequency.code()),
        },
    }
}

fn product_from_row(row: &PgRow) -> Result<GrantedProduct, sqlx::Error> {
    let text = |c: &str| row.try_get::<String, _>(c);
    let opt = |c: &str| row.try_get::<Option<String>, _>(c);
    let variant = ExecutionVariant::from_code(&text("execution_variant")?)
        .map_err(|e| corrupt("execution variant", e))?;
    let size = match variant {
        ExecutionVariant::Taakgericht => Size::Task,
        ExecutionVariant::Outputgericht => Size::Budget(
            Cents::new(
                row.try_get::<Option<i64>, _>("budget_cents")?
                    .unwrap_or_default(),
            )
            .map_err(|e| corrupt("budget", e))?,
        ),
        ExecutionVariant::Inspanningsgericht => Size::Effort {
            volume: u32::try_from(row.try_get::<Option<i64>, _>("volume")?.unwrap_or_default())
                .map_err(|e| corrupt("volume", e))?,
            unit: Unit::from_code(&opt("unit")?.unwrap_or_default())
                .map_err(|e| corrupt("unit", e))?,
            frequency: Frequency::from_code(&opt("frequency")?.unwrap_or_default())
                .map_err(|e| corrupt("frequency", e))?,
        },
    };
    let goal = text("goal")?;
    Ok(GrantedProduct {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        client_key: ClientKey::parse(&text("client_key")?).map_err(|e| corrupt("client key", e))?,
        law: law(&text("law")?)?,
        segment_code: text("segment_code")?,
        subsegment_code: text("subsegment_code")?,
        product_category: text("product_category")?,
        product_code: opt("product_code")?
            .map(|c| ProductCode::parse(&c).map_err(|e| corrupt("product code", e)))
            .transpose()?,
        result: text("result")?,
        goal: Goal::from_code(&goal).ok_or_else(|| corrupt("goal", &goal))?,
        period: Period::new(row.try_get("period_start")?, row.try_get("period_end")?)
            .map_err(|e| corrupt("period", e))?,
        variant,
        size,
        preferred_provider: opt("preferred_provider_agb")?
            .map(|c| AgbCode::parse(&c).map_err(|e| corrupt("agb code", e)))
            .transpose()?,
        granted_on: row.try_get("granted_on")?,
        version: u32::try_from(row.try_get::<i32, _>("version")?)
            .map_err(|e| corrupt("version", e))?,
    })
}

pub async fn insert_product(
    tx: &mut PgConnection,
    p: &GrantedProduct,
    position: usize,
) -> Result<(), sqlx::Error> {
    let s = size_columns(&p.size);
    sqlx::query(
        "INSERT INTO products (id, case_id, position, client_key, law, segment_code, subsegment_code,
             product_category, product_code, result, goal, period_start, period_end,
             execution_variant, budget_cents, volume, unit, frequency, preferred_provider_agb,
             granted_on, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
             $19, $20, $21)",
    )
    .bind(p.id)
    .bind(p.case_id)
    .bind(i32::try_from(position).unwrap_or(i32::MAX))
    .bind(p.client_key.as_str())
    .bind(p.law.code())
    .bind(&p.segment_code)
    .bind(&p.subsegment_code)
    .bind(&p.product_category)
    .bind(p.product_code.as_ref().map(ProductCode::as_str))
    .bind(&p.result)
    .bind(p.goal.code())
    .bind(p.period.start())
    .bind(p.period.end())
    .bind(p.variant.code())
    .bind(s.budget_cents)
    .bind(s.volume)
    .bind(s.unit)
    .bind(s.frequency)
    .bind(p.preferred_provider.as_ref().map(AgbCode::as_str))
    .bind(p.granted_on)
    .bind(i32::try_from(p.version).unwrap_or(i32::MAX))
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn load_product(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<GrantedProduct>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PRODUCT_SELECT} WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(product_from_row).transpose()
}

/// Stores an amended product and records the amendment.
pub async fn save_amendment(
    tx: &mut PgConnection,
    p: &GrantedProduct,
    kind: AmendmentKind,
    decided_on: NaiveDate,
) -> Result<(), sqlx::Error> {
    let s = size_columns(&p.size);
    let version = i32::try_from(p.version).unwrap_or(i32::MAX);
    sqlx::query(
        "UPDATE products SET period_end = $2, budget_cents = $3, volume = $4, unit = $5,
             frequency = $6, version = $7, updated_at = now()
         WHERE id = $1",
    )
    .bind(p.id)
    .bind(p.period.end())
    .bind(s.budget_cents)
    .bind(s.volume)
    .bind(s.unit)
    .bind(s.frequency)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO product_amendments (product_id, version, amendment, decided_on, period_end,
             budget_cents, volume, unit, frequency)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(p.id)
    .bind(version)
    .bind(kind.code())
    .bind(decided_on)
    .bind(p.period.end())
    .bind(s.budget_cents)
    .bind(s.volume)
    .bind(s.unit)
    .bind(s.frequency)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Products whose end lies within `[from, to]`, by end date.
pub async fn products_ending(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<GrantedProduct>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PRODUCT_SELECT} WHERE period_end BETWEEN $1 AND $2 ORDER BY period_end, id"
    )))
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter().map(product_from_row).collect()
}

/// A product of `client_key` that a new grant of the same product (law, subsegment and code)
/// for `period` would stack on: its period overlaps (end dates inclusive, open ends unbounded).
pub async fn stacked_product(
    conn: &mut PgConnection,
    client_key: &ClientKey,
    law: Law,
    subsegment_code: &str,
    product_code: Option<&ProductCode>,
    period: Period,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM products
         WHERE client_key = $1 AND law = $2 AND subsegment_code = $3
           AND product_code IS NOT DISTINCT FROM $4
           AND ($6::date IS NULL OR period_start <= $6)
           AND (period_end IS NULL OR period_end >= $5)
         ORDER BY period_start, id LIMIT 1",
    )
    .bind(client_key.as_str())
    .bind(law.code())
    .bind(subsegment_code)
    .bind(product_code.map(ProductCode::as_str))
    .bind(period.start())
    .bind(period.end())
    .fetch_optional(conn)
    .await
}
