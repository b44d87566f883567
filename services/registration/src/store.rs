//! The register's PostgreSQL store. Every function takes the connection or transaction it works in;
//! the API layer decides the transaction boundaries (state change + outbox event together).

use chrono::NaiveDate;
use rz_platform::db::Migration;
use sqlx::postgres::PgRow;
use sqlx::postgres::types::PgRange;
// Dynamic SQL below only joins constant fragments; every value is a bind parameter.
use sqlx::{AssertSqlSafe, FromRow, PgConnection, Row};
use uuid::Uuid;

use crate::domain::contract::ContractTerm;
use crate::domain::tender::Tender;

/// The shared eventing migrations under their one version, then the service's own (versions
/// above `rz_eventing::SHARED_VERSIONS_END`, each file named after its version).
pub const MIGRATIONS: &[Migration] = rz_platform::migrations![
    101 "register" => "0101_register.sql",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRow {
    pub agb_code: String,
    pub name: String,
    pub legal_form: String,
    pub kvk_number: String,
    pub kind: String,
    pub lead_agb_code: Option<String>,
    pub members: Vec<String>,
    pub subcontractors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRow {
    pub id: Uuid,
    pub agb_code: String,
    pub segment_code: String,
    pub subsegments: Vec<String>,
    pub municipalities: Vec<String>,
    pub term: ContractTerm,
    pub termination_reason: String,
    pub tender_id: Option<Uuid>,
    pub budgets: Vec<(String, i32, i64)>,
    pub tariffs: Vec<(String, String, i64)>,
}

pub use rz_platform::idempotency::{Claim, claim_key};

pub async fn insert_provider(tx: &mut PgConnection, p: &ProviderRow) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO providers (agb_code, name, legal_form, kvk_number, kind, lead_agb_code)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agb_code) DO NOTHING",
    )
    .bind(&p.agb_code)
    .bind(&p.name)
    .bind(&p.legal_form)
    .bind(&p.kvk_number)
    .bind(&p.kind)
    .bind(&p.lead_agb_code)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    for m in &p.members {
        sqlx::query(
            "INSERT INTO consortium_members (consortium_agb_code, member_agb_code) VALUES ($1, $2)",
        )
        .bind(&p.agb_code)
        .bind(m)
        .execute(&mut *tx)
        .await?;
    }
    Ok(n == 1)
}

pub async fn add_subcontractor(
    tx: &mut PgConnection,
    main: &str,
    sub: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("INSERT INTO subcontractors (main_agb_code, sub_agb_code) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(main)
        .bind(sub)
        .execute(tx)
        .await?
        .rows_affected()
        == 1)
}

/// A row of [`PROVIDER_SELECT`]. (By hand: the workspace's sqlx has no derive feature.)
impl<'r> FromRow<'r, PgRow> for ProviderRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(ProviderRow {
            agb_code: row.try_get("agb_code")?,
            name: row.try_get("name")?,
            legal_form: row.try_get("legal_form")?,
            kvk_number: row.try_get("kvk_number")?,
            kind: row.try_get("kind")?,
            lead_agb_code: row.try_get("lead_agb_code")?,
            members: row.try_get("members")?,
            subcontractors: row.try_get("subs")?,
        })
    }
}

const PROVIDER_SELECT: &str = "SELECT p.agb_code, p.name, p.legal_form, p.kvk_number, p.kind, p.lead_agb_code,
    ARRAY(SELECT member_agb_code FROM consortium_members WHERE consortium_agb_code = p.agb_code ORDER BY 1) AS members,
    ARRAY(SELECT sub_agb_code FROM subcontractors WHERE main_agb_code = p.agb_code ORDER BY 1) AS subs
    FROM providers p";

pub async fn get_provider(
    conn: &mut PgConnection,
    agb: &str,
) -> Result<Option<ProviderRow>, sqlx::Error> {
    Ok(get_providers(conn, &[agb.to_owned()]).await?.pop())
}

/// The registered providers among `agbs`, in no particular order (one statement for all).
pub async fn get_providers(
    conn: &mut PgConnection,
    agbs: &[String],
) -> Result<Vec<ProviderRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "{PROVIDER_SELECT} WHERE p.agb_code = ANY($1)"
    )))
    .bind(agbs)
    .fetch_all(conn)
    .await
}

pub async fn list_providers(conn: &mut PgConnection) -> Result<Vec<ProviderRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "{PROVIDER_SELECT} ORDER BY p.agb_code"
    )))
    .fetch_all(conn)
    .await
}

pub async fn consortia_of(conn: &mut PgConnection, agb: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT consortium_agb_code FROM consortium_members WHERE member_agb_code = $1
         UNION SELECT agb_code FROM providers WHERE lead_agb_code = $1 ORDER BY 1",
    )
    .bind(agb)
    .fetch_all(conn)
    .await
}

pub async fn save_tender(tx: &mut PgConnection, tender: &Tender) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tenders (id, segment_code, doc) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()",
    )
    .bind(tender.id)
    .bind(&tender.segment_code)
    .bind(sqlx::types::Json(tender))
    .execute(tx)
    .await?;
    Ok(())
}

/// Loads a tender; `for_update` locks it for the rest of the transaction.
pub async fn load_tender(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<Tender>, sqlx::Error> {
    let sql = if for_update {
        "SELECT doc FROM tenders WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT doc FROM tenders WHERE id = $1"
    };
    let doc: Option<sqlx::types::Json<Tender>> = sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(doc.map(|d| d.0))
}

fn range(term: &ContractTerm) -> PgRange<NaiveDate> {
    use std::ops::Bound;
    PgRange {
        start: Bound::Included(term.start),
        end: Bound::Included(term.end()),
    }
}

/// The first existing coverage of this provider that overlaps the new one, if any:
/// (contract id, subsegment, municipality).
pub async fn overlapping_coverage(
    conn: &mut PgConnection,
    agb: &str,
    subsegments: &[String],
    municipalities: &[String],
    term: &ContractTerm,
    except: Option<Uuid>,
) -> Result<Option<(Uuid, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT contract_id, subsegment, municipality FROM contract_coverage
         WHERE agb_code = $1 AND subsegment = ANY($2) AND municipality = ANY($3) AND period && $4
           AND contract_id IS DISTINCT FROM $5
         ORDER BY subsegment, municipality LIMIT 1",
    )
    .bind(agb)
    .bind(subsegments)
    .bind(municipalities)
    .bind(range(term))
    .bind(except)
    .fetch_optional(conn)
    .await
}

pub async fn insert_contract(tx: &mut PgConnection, c: &ContractRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO contracts (id, agb_code, segment_code, subsegments, municipalities, start_date, extensions,
                                terminated_on, termination_reason, tender_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(c.id)
    .bind(&c.agb_code)
    .bind(&c.segment_code)
    .bind(&c.subsegments)
    .bind(&c.municipalities)
    .bind(c.term.start)
    .bind(c.term.extensions as i32)
    .bind(c.term.terminated_on)
    .bind(&c.termination_reason)
    .bind(c.tender_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO contract_coverage (contract_id, agb_code, subsegment, municipality, period)
         SELECT $1, $2, s, m, $5 FROM unnest($3::text[]) s CROSS JOIN unnest($4::text[]) m",
    )
    .bind(c.id)
    .bind(&c.agb_code)
    .bind(&c.subsegments)
    .bind(&c.municipalities)
    .bind(range(&c.term))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores a changed term (extension or termination) and moves the coverage periods with it.
pub async fn update_term(tx: &mut PgConnection, c: &ContractRow) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE contracts SET extensions = $2, terminated_on = $3, termination_reason = $4 WHERE id = $1")
        .bind(c.id)
        .bind(c.term.extensions as i32)
        .bind(c.term.terminated_on)
        .bind(&c.termination_reason)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE contract_coverage SET period = $2 WHERE contract_id = $1")
        .bind(c.id)
        .bind(range(&c.term))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn set_budget(
    tx: &mut PgConnection,
    id: Uuid,
    municipality: &str,
    year: i32,
    cents: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO contract_budgets (contract_id, municipality, year, amount_cents) VALUES ($1, $2, $3, $4)
         ON CONFLICT (contract_id, municipality, year) DO UPDATE SET amount_cents = EXCLUDED.amount_cents",
    )
    .bind(id)
    .bind(municipality)
    .bind(year)
    .bind(cents)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn set_tariff(
    tx: &mut PgConnection,
    id: Uuid,
    product: &str,
    unit: &str,
    cents: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO contract_tariffs (contract_id, product_code, unit, price_cents) VALUES ($1, $2, $3, $4)
         ON CONFLICT (contract_id, product_code, unit) DO UPDATE SET price_cents = EXCLUDED.price_cents",
    )
    .bind(id)
    .bind(product)
    .bind(unit)
    .bind(cents)
    .execute(tx)
    .await?;
    Ok(())
}

const CONTRACT_SELECT: &str =
    "SELECT c.id, c.agb_code, c.segment_code, c.subsegments, c.municipalities, c.start_date,
    c.extensions, c.terminated_on, c.termination_reason, c.tender_id,
    ARRAY(SELECT municipality || '|' || year || '|' || amount_cents FROM contract_budgets b
          WHERE b.contract_id = c.id ORDER BY municipality, year) AS budgets,
    ARRAY(SELECT product_code || '|' || unit || '|' || price_cents FROM contract_tariffs t
          WHERE t.contract_id = c.id ORDER BY product_code, unit) AS tariffs
    FROM contracts c";

/// A row of [`CONTRACT_SELECT`]. (By hand: the workspace's sqlx has no derive feature.)
impl<'r> FromRow<'r, PgRow> for ContractRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let split3 = |s: &String| -> (String, String, i64) {
            let mut it = s.splitn(3, '|');
            let a = it.next().unwrap_or_default().to_owned();
            let b = it.next().unwrap_or_default().to_owned();
            let c = it.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            (a, b, c)
        };
        let budgets: Vec<String> = row.try_get("budgets")?;
        let tariffs: Vec<String> = row.try_get("tariffs")?;
        Ok(ContractRow {
            id: row.try_get("id")?,
            agb_code: row.try_get("agb_code")?,
            segment_code: row.try_get("segment_code")?,
            subsegments: row.try_get("subsegments")?,
            municipalities: row.try_get("municipalities")?,
            term: ContractTerm {
                start: row.try_get("start_date")?,
                extensions: row.try_get::<i32, _>("extensions")?.max(0) as u32,
                terminated_on: row.try_get("terminated_on")?,
            },
            termination_reason: row.try_get("termination_reason")?,
            tender_id: row.try_get("tender_id")?,
            budgets: budgets
                .iter()
                .map(split3)
                .map(|(m, y, c)| (m, y.parse().unwrap_or(0), c))
                .collect(),
            tariffs: tariffs.iter().map(split3).collect(),
        })
    }
}

pub async fn load_contract(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<ContractRow>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE OF c" } else { "" };
    sqlx::query_as(AssertSqlSafe(format!(
        "{CONTRACT_SELECT} WHERE c.id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Default, Clone)]
pub struct ContractFilter {
    pub agb_code: Option<String>,
    pub segment_code: Option<String>,
    pub municipality: Option<String>,
    pub active_on: Option<NaiveDate>,
}

pub async fn list_contracts(
    conn: &mut PgConnection,
    f: &ContractFilter,
) -> Result<Vec<ContractRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "{CONTRACT_SELECT}
         WHERE ($1::text IS NULL OR c.agb_code = $1)
           AND ($2::text IS NULL OR c.segment_code = $2)
           AND ($3::text IS NULL OR $3 = ANY(c.municipalities))
           AND ($4::date IS NULL OR EXISTS (SELECT 1 FROM contract_coverage v WHERE v.contract_id = c.id AND v.period @> $4))
         ORDER BY c.segment_code, c.agb_code, c.start_date"
    )))
    .bind(&f.agb_code)
    .bind(&f.segment_code)
    .bind(&f.municipality)
    .bind(f.active_on)
    .fetch_all(conn)
    .await
}

/// Providers contracted for a subsegment in a municipality on a date: (contract id, AGB code,
/// lumpsum budget of that municipality in the date's year).
pub async fn contracted(
    conn: &mut PgConnection,
    subsegment: &str,
    municipality: &str,
    date: NaiveDate,
    agb: Option<&str>,
) -> Result<Vec<(Uuid, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT v.contract_id, v.agb_code,
                COALESCE((SELECT amount_cents FROM contract_budgets b WHERE b.contract_id = v.contract_id
                          AND b.municipality = v.municipality AND b.year = EXTRACT(YEAR FROM $3::date)::int), 0) AS budget
         FROM contract_coverage v
         WHERE v.subsegment = $1 AND v.municipality = $2 AND v.period @> $3::date
           AND ($4::text IS NULL OR v.agb_code = $4)
         ORDER BY v.agb_code",
    )
    .bind(subsegment)
    .bind(municipality)
    .bind(date)
    .bind(agb)
    .fetch_all(conn)
    .await
}
