//! The read model's PostgreSQL store: upserts of the facts the consumers take from the events (in
//! the consumer's inbox transaction) and the loads the reports aggregate.
//!
//! Order tolerance: every row remembers the time of the event that last set it. An event at least
//! as new as the row overwrites its state (status, period, size); an older one (a replay out of
//! order) only fills what the row does not know yet. Dates that only ever get set (start and stop
//! of care, the steps of a case, the handover links) are never cleared by either.

use chrono::{DateTime, NaiveDate, Utc};
use rz_platform::db::Migration;
use sqlx::{PgConnection, Row};

use crate::facts::{
    AssignmentFact, BudgetFact, CaseFact, ContractFact, Decision, GoalProduct, ProductFact,
};

/// The shared eventing migrations under their one version, then the service's own (versions
/// above `rz_eventing::SHARED_VERSIONS_END`, each file named after its version).
pub const MIGRATIONS: &[Migration] = rz_platform::migrations![
    101 "read_model" => "0101_read_model.sql",
    102 "goals" => "0102_goals.sql",
];

/// The read model's tables, emptied by a rebuild.
pub const TABLES: &[&str] = &[
    "cases",
    "granted_products",
    "assignments",
    "contracts",
    "contract_budgets",
];

/// `SET col = <newer wins>` for state columns, `SET col = <first known wins>` for set-once columns.
fn merge_set(table: &str, state: &[&str], set_once: &[&str]) -> String {
    let newer = format!("EXCLUDED.event_time >= {table}.event_time");
    let mut parts: Vec<String> = state
        .iter()
        .map(|c| format!("{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE {table}.{c} END"))
        .collect();
    parts.extend(set_once.iter().map(|c| {
        format!(
            "{c} = CASE WHEN {newer} THEN COALESCE(EXCLUDED.{c}, {table}.{c}) ELSE COALESCE({table}.{c}, EXCLUDED.{c}) END"
        )
    }));
    parts.push(format!(
        "event_time = GREATEST({table}.event_time, EXCLUDED.event_time)"
    ));
    parts.join(", ")
}

/// How a case event merges into its row: the newer event's state, the first known dates.
fn case_merge_set() -> String {
    merge_set(
        "cases",
        &["municipality", "client_key", "law", "status"],
        &[
            "reported_on",
            "investigation_due",
            "investigated_on",
            "applied_on",
            "decision_due",
            "decided_on",
        ],
    )
}

/// Merges case events, in order, with one statement per round (see [`upsert_assignments`]): the
/// newer event's state, the first known dates.
pub async fn upsert_cases(
    tx: &mut PgConnection,
    cases: &[(CaseFact, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO cases (case_id, municipality, client_key, law, status, reported_on,
            investigation_due, investigated_on, applied_on, decision_due, decided_on, event_time)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::date[], $7::date[], $8::date[], $9::date[], $10::date[], $11::date[],
            $12::timestamptz[])
         ON CONFLICT (case_id) DO UPDATE SET {}",
        case_merge_set()
    );
    for round in rounds(cases, |c| c.0.case_id.as_str()) {
        let text = |f: &dyn Fn(&CaseFact) -> &String| -> Vec<String> {
            round.iter().map(|c| f(&c.0).clone()).collect()
        };
        let date = |f: &dyn Fn(&CaseFact) -> Option<NaiveDate>| -> Vec<Option<NaiveDate>> {
            round.iter().map(|c| f(&c.0)).collect()
        };
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(text(&|c| &c.case_id))
            .bind(text(&|c| &c.municipality))
            .bind(text(&|c| &c.client_key))
            .bind(text(&|c| &c.law))
            .bind(text(&|c| &c.status))
            .bind(date(&|c| c.reported_on))
            .bind(date(&|c| c.investigation_due))
            .bind(date(&|c| c.investigated_on))
            .bind(date(&|c| c.applied_on))
            .bind(date(&|c| c.decision_due))
            .bind(date(&|c| c.decided_on))
            .bind(round.iter().map(|c| c.1).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The columns a granted product's upsert sets when its version is not older.
const PRODUCT_SET: &str = "case_id = EXCLUDED.case_id, municipality = EXCLUDED.municipality,
            client_key = EXCLUDED.client_key, law = EXCLUDED.law,
            segment_code = EXCLUDED.segment_code, subsegment_code = EXCLUDED.subsegment_code,
            period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
            variant = EXCLUDED.variant, budget_cents = EXCLUDED.budget_cents,
            volume = EXCLUDED.volume, unit = EXCLUDED.unit, frequency = EXCLUDED.frequency,
            status = EXCLUDED.status, version = EXCLUDED.version, goal = EXCLUDED.goal
         WHERE EXCLUDED.version >= granted_products.version";

/// Granted products, in order, with one statement per round (see [`upsert_assignments`]): the
/// highest version wins.
pub async fn upsert_products(
    tx: &mut PgConnection,
    products: &[ProductFact],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO granted_products (product_id, case_id, municipality, client_key, law, segment_code,
            subsegment_code, period_start, period_end, variant, budget_cents, volume, unit, frequency,
            status, version, goal)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::date[], $9::date[], $10::text[], $11::bigint[],
            $12::bigint[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::text[])
         ON CONFLICT (product_id) DO UPDATE SET {PRODUCT_SET}"
    );
    for round in rounds(products, |p| p.product_id.as_str()) {
        let text = |f: &dyn Fn(&ProductFact) -> &String| -> Vec<String> {
            round.iter().map(|p| f(p).clone()).collect()
        };
        let num =
            |f: &dyn Fn(&ProductFact) -> i64| -> Vec<i64> { round.iter().map(|p| f(p)).collect() };
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(text(&|p| &p.product_id))
            .bind(text(&|p| &p.case_id))
            .bind(text(&|p| &p.municipality))
            .bind(text(&|p| &p.client_key))
            .bind(text(&|p| &p.law))
            .bind(text(&|p| &p.segment_code))
            .bind(text(&|p| &p.subsegment_code))
            .bind(round.iter().map(|p| p.period_start).collect::<Vec<_>>())
            .bind(round.iter().map(|p| p.period_end).collect::<Vec<_>>())
            .bind(text(&|p| &p.variant))
            .bind(num(&|p| p.budget_cents))
            .bind(num(&|p| p.volume))
            .bind(text(&|p| &p.unit))
            .bind(text(&|p| &p.frequency))
            .bind(text(&|p| &p.status))
            .bind(num(&|p| p.version))
            .bind(text(&|p| &p.goal))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A product ended early by an END amendment (after [`upsert_products`] of the same event): keeps
/// the end set by the amendment of the highest version.
pub async fn mark_scaled_down(
    tx: &mut PgConnection,
    product_id: &str,
    end: NaiveDate,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE granted_products SET scaled_down_to = $2, scaled_down_version = $3
         WHERE product_id = $1 AND (scaled_down_version IS NULL OR scaled_down_version <= $3)",
    )
    .bind(product_id)
    .bind(end)
    .bind(version)
    .execute(tx)
    .await?;
    Ok(())
}

/// How an assignment event merges into its row: the newer event's state, the first known date of
/// start and stop and the first known replacement links.
fn assignment_merge_set() -> String {
    merge_set(
        "assignments",
        &[
            "client_key",
            "agb_code",
            "law",
            "segment_code",
            "subsegment_code",
            "period_start",
            "period_end",
            "variant",
            "volume",
            "unit",
            "frequency",
            "budget_cents",
            "status",
            "assigned_on",
            "granted_product_id",
            "last_change",
        ],
        &[
            "started_on",
            "stopped_on",
            "replaces_number",
            "replaced_by_number",
        ],
    )
}

/// An assignment event for [`upsert_assignments`].
#[derive(Debug, Clone)]
pub struct AssignmentChange {
    pub fact: AssignmentFact,
    pub change: String,
    pub at: DateTime<Utc>,
}

/// An assignment's state, by (municipality, number), order-tolerant (see the module docs). Merges
/// assignment events, in order, with one statement per round: a round holds at most one event per
/// assignment (a multi-row upsert may not touch a row twice), and an assignment's later events go
/// to later rounds. So the effect is that of the events one by one in order, as each assignment's
/// events keep their order and different assignments are different rows.
pub async fn upsert_assignments(
    tx: &mut PgConnection,
    changes: &[AssignmentChange],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO assignments (municipality, number, client_key, agb_code, law, segment_code,
            subsegment_code, period_start, period_end, variant, volume, unit, frequency, budget_cents,
            status, assigned_on, started_on, stopped_on, granted_product_id, replaces_number,
            replaced_by_number, last_change, event_time)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::date[], $9::date[], $10::text[], $11::bigint[], $12::text[],
            $13::text[], $14::bigint[], $15::text[], $16::date[], $17::date[], $18::date[],
            $19::text[], $20::bigint[], $21::bigint[], $22::text[], $23::timestamptz[])
         ON CONFLICT (municipality, number) DO UPDATE SET {}",
        assignment_merge_set()
    );
    for round in rounds(changes, |c| (c.fact.municipality.as_str(), c.fact.number)) {
        let col = |f: &dyn Fn(&AssignmentChange) -> String| -> Vec<String> {
            round.iter().map(|c| f(c)).collect()
        };
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(col(&|c| c.fact.municipality.clone()))
            .bind(round.iter().map(|c| c.fact.number).collect::<Vec<_>>())
            .bind(col(&|c| c.fact.client_key.clone()))
            .bind(col(&|c| c.fact.agb_code.clone()))
            .bind(col(&|c| c.fact.law.clone()))
            .bind(col(&|c| c.fact.segment_code.clone()))
            .bind(col(&|c| c.fact.subsegment_code.clone()))
            .bind(
                round
                    .iter()
                    .map(|c| c.fact.period_start)
                    .collect::<Vec<_>>(),
            )
            .bind(round.iter().map(|c| c.fact.period_end).collect::<Vec<_>>())
            .bind(col(&|c| c.fact.variant.clone()))
            .bind(round.iter().map(|c| c.fact.volume).collect::<Vec<_>>())
            .bind(col(&|c| c.fact.unit.clone()))
            .bind(col(&|c| c.fact.frequency.clone()))
            .bind(
                round
                    .iter()
                    .map(|c| c.fact.budget_cents)
                    .collect::<Vec<_>>(),
            )
            .bind(col(&|c| c.fact.status.clone()))
            .bind(round.iter().map(|c| c.fact.assigned_on).collect::<Vec<_>>())
            .bind(round.iter().map(|c| c.fact.started_on).collect::<Vec<_>>())
            .bind(round.iter().map(|c| c.fact.stopped_on).collect::<Vec<_>>())
            .bind(col(&|c| c.fact.granted_product_id.clone()))
            .bind(
                round
                    .iter()
                    .map(|c| c.fact.replaces_number)
                    .collect::<Vec<_>>(),
            )
            .bind(
                round
                    .iter()
                    .map(|c| c.fact.replaced_by_number)
                    .collect::<Vec<_>>(),
            )
            .bind(col(&|c| c.change.clone()))
            .bind(round.iter().map(|c| c.at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Splits `items` into rounds in which every key occurs at most once, keeping the items of one key
/// in their order (the n-th item of a key goes to round n).
pub fn rounds<'a, T, K: Eq + std::hash::Hash>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<Vec<&'a T>> {
    let mut seen: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    let mut out: Vec<Vec<&T>> = Vec::new();
    for item in items {
        let n = seen.entry(key(item)).or_insert(0);
        if out.len() <= *n {
            out.push(Vec::new());
        }
        if let Some(round) = out.get_mut(*n) {
            round.push(item);
        }
        *n += 1;
    }
    out
}

/// A contract with its budgets; the newest event wins (budgets included, as a whole).
pub async fn upsert_contract(
    tx: &mut PgConnection,
    c: &ContractFact,
    budgets: &[BudgetFact],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let newer = sqlx::query(
        "INSERT INTO contracts (contract_id, agb_code, segment_code, subsegments, municipalities,
            period_start, period_end, event_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (contract_id) DO UPDATE SET
            agb_code = EXCLUDED.agb_code, segment_code = EXCLUDED.segment_code,
            subsegments = EXCLUDED.subsegments, municipalities = EXCLUDED.municipalities,
            period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
            event_time = EXCLUDED.event_time
         WHERE EXCLUDED.event_time >= contracts.event_time",
    )
    .bind(&c.contract_id)
    .bind(&c.agb_code)
    .bind(&c.segment_code)
    .bind(&c.subsegments)
    .bind(&c.municipalities)
    .bind(c.period_start)
    .bind(c.period_end)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !newer {
        return Ok(());
    }
    sqlx::query("DELETE FROM contract_budgets WHERE contract_id = $1")
        .bind(&c.contract_id)
        .execute(&mut *tx)
        .await?;
    for b in budgets {
        sqlx::query(
            "INSERT INTO contract_budgets (contract_id, municipality, year, amount_cents)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (contract_id, municipality, year) DO UPDATE SET amount_cents = EXCLUDED.amount_cents",
        )
        .bind(&c.contract_id)
        .bind(&b.municipality)
        .bind(b.year)
        .bind(b.amount_cents)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

// --- loads ---

pub async fn load_assignments(
    conn: &mut PgConnection,
    municipality: Option<&str>,
    segment: Option<&str>,
) -> Result<Vec<AssignmentFact>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT municipality, number, client_key, agb_code, law, segment_code, subsegment_code,
                period_start, period_end, variant, volume, unit, frequency, budget_cents, status,
                assigned_on, started_on, stopped_on, granted_product_id, replaces_number,
                replaced_by_number
         FROM assignments
         WHERE ($1::text IS NULL OR municipality = $1) AND ($2::text IS NULL OR segment_code = $2)
         ORDER BY municipality, number",
    )
    .bind(municipality)
    .bind(segment)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AssignmentFact {
                municipality: r.try_get(0)?,
                number: r.try_get(1)?,
                client_key: r.try_get(2)?,
                agb_code: r.try_get(3)?,
                law: r.try_get(4)?,
                segment_code: r.try_get(5)?,
                subsegment_code: r.try_get(6)?,
                period_start: r.try_get(7)?,
                period_end: r.try_get(8)?,
                variant: r.try_get(9)?,
                volume: r.try_get(10)?,
                unit: r.try_get(11)?,
                frequency: r.try_get(12)?,
                budget_cents: r.try_get(13)?,
                status: r.try_get(14)?,
                assigned_on: r.try_get(15)?,
                started_on: r.try_get(16)?,
                stopped_on: r.try_get(17)?,
                granted_product_id: r.try_get(18)?,
                replaces_number: r.try_get(19)?,
                replaced_by_number: r.try_get(20)?,
            })
        })
        .collect()
}

/// The case behind each granted product: (product id, case).
pub async fn load_product_cases(
    conn: &mut PgConnection,
) -> Result<Vec<(String, CaseFact)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.product_id, c.case_id, c.municipality, c.client_key, c.law, c.status,
                c.reported_on, c.investigation_due, c.investigated_on, c.applied_on,
                c.decision_due, c.decided_on
         FROM granted_products p JOIN cases c ON c.case_id = p.case_id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                CaseFact {
                    case_id: r.try_get(1)?,
                    municipality: r.try_get(2)?,
                    client_key: r.try_get(3)?,
                    law: r.try_get(4)?,
                    status: r.try_get(5)?,
                    reported_on: r.try_get(6)?,
                    investigation_due: r.try_get(7)?,
                    investigated_on: r.try_get(8)?,
                    applied_on: r.try_get(9)?,
                    decision_due: r.try_get(10)?,
                    decided_on: r.try_get(11)?,
                },
            ))
        })
        .collect()
}

/// The decided cases, optionally of one municipality.
pub async fn load_decisions(
    conn: &mut PgConnection,
    municipality: Option<&str>,
) -> Result<Vec<Decision>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT municipality, decided_on, decision_due FROM cases
         WHERE decided_on IS NOT NULL AND ($1::text IS NULL OR municipality = $1)",
    )
    .bind(municipality)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Granted products with their goal, the decision date of their case and the end set by their
/// last END amendment, optionally of one municipality.
pub async fn load_goal_products(
    conn: &mut PgConnection,
    municipality: Option<&str>,
) -> Result<Vec<GoalProduct>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.municipality, p.goal, c.decided_on, p.scaled_down_to
         FROM granted_products p LEFT JOIN cases c ON c.case_id = p.case_id
         WHERE ($1::text IS NULL OR p.municipality = $1)",
    )
    .bind(municipality)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(GoalProduct {
                municipality: r.try_get(0)?,
                goal: r.try_get(1)?,
                decided_on: r.try_get(2)?,
                scaled_down_to: r.try_get(3)?,
            })
        })
        .collect()
}

pub async fn load_contracts(conn: &mut PgConnection) -> Result<Vec<ContractFact>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT contract_id, agb_code, segment_code, subsegments, municipalities, period_start,
                period_end
         FROM contracts ORDER BY contract_id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ContractFact {
                contract_id: r.try_get(0)?,
                agb_code: r.try_get(1)?,
                segment_code: r.try_get(2)?,
                subsegments: r.try_get(3)?,
                municipalities: r.try_get(4)?,
                period_start: r.try_get(5)?,
                period_end: r.try_get(6)?,
            })
        })
        .collect()
}

/// (contract id, budget) for one year.
pub async fn load_budgets(
    conn: &mut PgConnection,
    year: i32,
) -> Result<Vec<(String, BudgetFact)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT contract_id, municipality, year, amount_cents FROM contract_budgets
         WHERE year = $1 ORDER BY contract_id, municipality",
    )
    .bind(year)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                BudgetFact {
                    municipality: r.try_get(1)?,
                    year: r.try_get(2)?,
                    amount_cents: r.try_get(3)?,
                },
            ))
        })
        .collect()
}

/// Row counts of the read model's tables, in [`TABLES`] order.
pub async fn counts(conn: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    let mut out = Vec::new();
    for t in TABLES {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&mut *conn)
            .await?;
        out.push(n);
    }
    Ok(out)
}

/// Empties the read model and forgets which events the given consumers applied.
pub async fn reset(conn: &mut PgConnection, consumers: &[&str]) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "TRUNCATE {}",
        TABLES.join(", ")
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM inbox WHERE consumer = ANY($1)")
        .bind(consumers)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn inbox_count(conn: &mut PgConnection, consumers: &[&str]) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = ANY($1)")
        .bind(consumers)
        .fetch_one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::rounds;

    #[test]
    fn rounds_hold_a_key_once_and_keep_each_keys_order() {
        let items = [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("c", 1), ("b", 2)];
        let r = rounds(&items, |i| i.0);
        let r: Vec<Vec<(&str, i32)>> = r.iter().map(|x| x.iter().map(|i| **i).collect()).collect();
        assert_eq!(
            r,
            vec![
                vec![("a", 1), ("b", 1), ("c", 1)],
                vec![("a", 2), ("b", 2)],
                vec![("a", 3)],
            ]
        );
        assert!(rounds(&[] as &[(&str, i32)], |i| i.0).is_empty());
    }
}
