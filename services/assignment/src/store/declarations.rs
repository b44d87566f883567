//! Declarations (323) and their approved lines (table `declarations`, `declaration_lines`).

use chrono::NaiveDate;
use sqlx::{PgConnection, Row};

/// A line stored before (approved), as the declaration rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub reference: String,
    pub municipality: String,
    pub assignment_number: u32,
    pub period_start: NaiveDate,
    pub volume: i64,
    pub amount_cents: i64,
    /// `D` or `C`.
    pub debit_credit: String,
    pub credited_by: Option<String>,
}

/// A judged declaration to record with its approved lines.
#[derive(Debug, Clone)]
pub struct DeclarationRecord {
    pub agb_code: String,
    pub law: &'static str,
    pub number: String,
    pub municipality: String,
    pub message_id: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub received_on: NaiveDate,
    pub lines: i32,
    pub refused_lines: i32,
    pub declared_cents: i64,
    pub approved_cents: i64,
}

/// One approved line to store.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub reference: String,
    pub assignment_number: i64,
    pub product_category: String,
    pub product_code: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub volume: i64,
    pub unit: String,
    pub tariff_cents: Option<i64>,
    pub amount_cents: i64,
    pub debit_credit: &'static str,
    pub previous_reference: Option<String>,
}

/// Whether provider `agb` used DeclaratieNummer `number` before under `law` (TR333).
pub async fn declaration_known(
    conn: &mut PgConnection,
    agb: &str,
    law: &str,
    number: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM declarations WHERE agb_code = $1 AND law = $2 AND number = $3)",
    )
    .bind(agb)
    .bind(law)
    .bind(number)
    .fetch_one(&mut *conn)
    .await
}

fn stored(row: &sqlx::postgres::PgRow) -> Result<StoredLine, sqlx::Error> {
    let n: i64 = row.try_get("assignment_number")?;
    Ok(StoredLine {
        reference: row.try_get("reference")?,
        municipality: row.try_get("municipality")?,
        assignment_number: super::number(n)?,
        period_start: row.try_get("period_start")?,
        volume: row.try_get("volume")?,
        amount_cents: row.try_get("amount_cents")?,
        debit_credit: row.try_get("debit_credit")?,
        credited_by: row.try_get("credited_by")?,
    })
}

/// The stored lines of provider `agb` under `law` with one of `references`.
pub async fn stored_lines(
    conn: &mut PgConnection,
    agb: &str,
    law: &str,
    references: &[String],
) -> Result<Vec<StoredLine>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT reference, municipality, assignment_number, period_start, volume, amount_cents,
                debit_credit, credited_by
         FROM declaration_lines
         WHERE agb_code = $1 AND law = $2 AND reference = ANY($3)",
    )
    .bind(agb)
    .bind(law)
    .bind(references)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(stored).collect()
}

/// The stored lines of the assignments `numbers` of `municipality` (any provider's).
pub async fn stored_lines_of_assignments(
    conn: &mut PgConnection,
    municipality: &str,
    numbers: &[i64],
) -> Result<Vec<StoredLine>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT reference, municipality, assignment_number, period_start, volume, amount_cents,
                debit_credit, credited_by
         FROM declaration_lines
         WHERE municipality = $1 AND assignment_number = ANY($2)",
    )
    .bind(municipality)
    .bind(numbers)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(stored).collect()
}

/// Records a judged declaration, stores its approved lines and marks the debit lines its credit
/// lines undo (`credits`: (debit reference, credit reference)), in the caller's transaction.
pub async fn insert_declaration(
    conn: &mut PgConnection,
    d: &DeclarationRecord,
    lines: &[NewLine],
    credits: &[(String, String)],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO declarations (agb_code, law, number, municipality, message_id, period_start,
             period_end, received_on, lines, refused_lines, declared_cents, approved_cents)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&d.agb_code)
    .bind(d.law)
    .bind(&d.number)
    .bind(&d.municipality)
    .bind(&d.message_id)
    .bind(d.period_start)
    .bind(d.period_end)
    .bind(d.received_on)
    .bind(d.lines)
    .bind(d.refused_lines)
    .bind(d.declared_cents)
    .bind(d.approved_cents)
    .execute(&mut *conn)
    .await?;
    // In chunks, one statement each (UNNEST of column arrays).
    for chunk in lines.chunks(5_000) {
        let col = |f: fn(&NewLine) -> String| chunk.iter().map(f).collect::<Vec<String>>();
        sqlx::query(
            "INSERT INTO declaration_lines (agb_code, law, reference, declaration_number,
                 municipality, assignment_number, product_category, product_code, period_start,
                 period_end, volume, unit, tariff_cents, amount_cents, debit_credit,
                 previous_reference)
             SELECT $1, $2, r, $3, $4, n, pc, code, ps, pe, v, u, t, a, dc, prev
             FROM UNNEST($5::text[], $6::bigint[], $7::text[], $8::text[], $9::date[],
                         $10::date[], $11::bigint[], $12::text[], $13::bigint[], $14::bigint[],
                         $15::text[], $16::text[])
                  AS x(r, n, pc, code, ps, pe, v, u, t, a, dc, prev)",
        )
        .bind(&d.agb_code)
        .bind(d.law)
        .bind(&d.number)
        .bind(&d.municipality)
        .bind(col(|l| l.reference.clone()))
        .bind(
            chunk
                .iter()
                .map(|l| l.assignment_number)
                .collect::<Vec<_>>(),
        )
        .bind(col(|l| l.product_category.clone()))
        .bind(col(|l| l.product_code.clone()))
        .bind(chunk.iter().map(|l| l.period_start).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.period_end).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.volume).collect::<Vec<_>>())
        .bind(col(|l| l.unit.clone()))
        .bind(chunk.iter().map(|l| l.tariff_cents).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.amount_cents).collect::<Vec<_>>())
        .bind(col(|l| l.debit_credit.to_owned()))
        .bind(
            chunk
                .iter()
                .map(|l| l.previous_reference.clone())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    }
    if !credits.is_empty() {
        let (debits, by): (Vec<String>, Vec<String>) = credits.iter().cloned().unzip();
        sqlx::query(
            "UPDATE declaration_lines l SET credited_by = x.c
             FROM UNNEST($3::text[], $4::text[]) AS x(d, c)
             WHERE l.agb_code = $1 AND l.law = $2 AND l.reference = x.d AND l.credited_by IS NULL",
        )
        .bind(&d.agb_code)
        .bind(d.law)
        .bind(debits)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
