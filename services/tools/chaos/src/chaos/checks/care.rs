//! The invariants of the care flow: acknowledged decisions kept, granted products assigned once,
//! amendments applied, one provider a day, and the handover.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;

use super::{Checker, Invariant, db_err};
use crate::chaos::flows::FlowRecord;

impl Checker {
    pub(super) async fn acknowledged_decisions_kept(
        &self,
        flows: &[FlowRecord],
    ) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "decisions_kept",
            "every decision access acknowledged is in its database with its products",
        );
        let mut by_m: BTreeMap<&str, Vec<&FlowRecord>> = BTreeMap::new();
        for f in flows {
            by_m.entry(f.municipality.as_str()).or_default().push(f);
        }
        for (m, fs) in by_m {
            let db = self.db(&format!("access@{m}"))?;
            let rows = sqlx::query(
                "SELECT c.id::text, c.status, count(p.id) FROM cases c
                 LEFT JOIN products p ON p.case_id = c.id GROUP BY c.id, c.status",
            )
            .fetch_all(db)
            .await
            .map_err(db_err("cases"))?;
            let cases: HashMap<String, (String, i64)> = rows
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
            for f in fs {
                inv.checked += 1;
                let want = if f.products > 0 { "granted" } else { "refused" };
                match cases.get(&f.case_id) {
                    Some((status, n)) if status == want && *n == i64::from(f.products) => {}
                    Some((status, n)) => inv.violations.push(format!(
                        "flow {} case {} in {m}: acknowledged as {want} with {} products, stored as {status} with {n}",
                        f.index, f.case_id, f.products
                    )),
                    None => {
                        inv.lost += 1;
                        inv.violations.push(format!(
                            "flow {} case {} in {m}: acknowledged, not in the database (lost)",
                            f.index, f.case_id
                        ));
                    }
                }
            }
        }
        Ok(inv)
    }

    pub(super) async fn granted_products_assigned_once(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "granted_assigned_once",
            "every granted product has exactly one active assignment, or a recorded reason why not",
        );
        let products = self.granted_products().await?;
        let (per, unassigned) = self.assignment_of_products().await?;
        for (id, m, version) in products {
            inv.checked += 1;
            let (active, any) = per.get(&id).copied().unwrap_or((0, 0));
            let reason = unassigned.contains(&id);
            match (active, any, reason) {
                (1, _, false) => {}
                (0, 0, true) => {}
                (0, 0, false) => {
                    inv.lost += 1;
                    inv.violations.push(format!(
                        "product {id} (v{version}) in {m}: no assignment and no recorded reason (lost)"
                    ));
                }
                (a, n, r) => inv.violations.push(format!(
                    "product {id} (v{version}) in {m}: {a} active of {n} assignments, recorded as unassigned: {r}"
                )),
            }
        }
        Ok(inv)
    }

    pub(super) async fn amendments_applied(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "amendments_applied",
            "every amended (extended) product's active assignment carries the new version and end",
        );
        let (checked, bad) = self.amendments().await?;
        inv.checked = checked;
        inv.violations = bad;
        Ok(inv)
    }

    pub(super) async fn no_two_providers_on_a_day(&self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "one_provider_per_day",
            "no client has two assignments for the same subsegment valid on the same day",
        );
        let db = self.db("assignment")?;
        inv.checked = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM assignments WHERE status <> 'withdrawn'",
        )
        .fetch_one(db)
        .await
        .map_err(db_err("assignments"))? as usize;
        // Validity as the service itself judges it (store::overlapping): start_date up to
        // valid_until, for assignments that took effect.
        let rows = sqlx::query(
            "SELECT a.municipality, a.client_key, a.subsegment_code, a.number, a.agb_code,
                    a.start_date::text, COALESCE(a.valid_until::text, '-'), a.status,
                    b.number, b.agb_code, b.start_date::text, COALESCE(b.valid_until::text, '-'),
                    b.status, b.replaces_number = a.number, b.started_on IS NOT NULL
             FROM assignments a JOIN assignments b
               ON b.municipality = a.municipality AND b.client_key = a.client_key
              AND b.subsegment_code = a.subsegment_code AND b.number > a.number
             WHERE a.status <> 'withdrawn' AND b.status <> 'withdrawn'
               AND (a.valid_until IS NULL OR a.valid_until >= a.start_date)
               AND (b.valid_until IS NULL OR b.valid_until >= b.start_date)
               AND a.start_date <= COALESCE(b.valid_until, 'infinity'::date)
               AND b.start_date <= COALESCE(a.valid_until, 'infinity'::date)
             LIMIT 200",
        )
        .fetch_all(db)
        .await
        .map_err(db_err("overlapping assignments"))?;
        for r in rows {
            let replaces: Option<bool> = r.get(13);
            let started: bool = r.get(14);
            let note = if replaces == Some(true) && !started {
                " (a handover replacement whose start of care was never reported)"
            } else {
                ""
            };
            inv.violations.push(format!(
                "client {}… in {} for {}: assignment {} ({}, {}..{}, {}) and {} ({}, {}..{}, {}){note}",
                &r.get::<String, _>(1).chars().take(8).collect::<String>(),
                r.get::<String, _>(0),
                r.get::<String, _>(2),
                r.get::<i64, _>(3),
                r.get::<String, _>(4),
                r.get::<String, _>(5),
                r.get::<String, _>(6),
                r.get::<String, _>(7),
                r.get::<i64, _>(8),
                r.get::<String, _>(9),
                r.get::<String, _>(10),
                r.get::<String, _>(11),
                r.get::<String, _>(12),
            ));
        }
        Ok(inv)
    }

    pub(super) async fn handover_leaves_nobody_without_provider(
        &self,
        not_arranged: u32,
        contracted_after: &HashSet<(String, String, String)>,
    ) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "handover_complete",
            "every imported client of a provider without a contract from 2022-07-01 has a new provider from the day after the old one ends",
        );
        let db = self.db("assignment")?;
        let rows = sqlx::query(
            "SELECT o.municipality, o.number, o.status, COALESCE(o.valid_until::text, '-'),
                    n.number, n.status, n.start_date::text, COALESCE(n.started_on::text, '-'),
                    (n.number IS NOT NULL AND n.started_on IS NOT NULL
                     AND o.valid_until IS NOT NULL AND o.valid_until + 1 = n.started_on
                     AND o.status = 'ended'),
                    o.agb_code, o.subsegment_code
             FROM assignments o
             LEFT JOIN assignments n ON n.municipality = o.municipality
                  AND n.number = o.replaced_by_number AND n.status <> 'withdrawn'
             WHERE o.origin = 'import'",
        )
        .fetch_all(db)
        .await
        .map_err(db_err("handover"))?;
        let mut unreplaced = Vec::new();
        for r in rows {
            inv.checked += 1;
            let ok: Option<bool> = r.get(8);
            if ok == Some(true) {
                continue;
            }
            let m: String = r.get(0);
            let number: i64 = r.get(1);
            let new: Option<i64> = r.get(4);
            let still_contracted = contracted_after.contains(&(r.get(9), r.get(10), m.clone()));
            if new.is_none() && still_contracted {
                continue; // the provider keeps the client: nothing to hand over
            }
            match new {
                None => unreplaced.push(format!(
                    "imported assignment {number} in {m} ({}, valid until {}) has no replacement",
                    r.get::<String, _>(2),
                    r.get::<String, _>(3)
                )),
                Some(n) => inv.violations.push(format!(
                    "imported assignment {number} in {m} ({}, valid until {}) replaced by {n} ({}, from {}, care started {}): not seamless",
                    r.get::<String, _>(2),
                    r.get::<String, _>(3),
                    r.get::<Option<String>, _>(5).unwrap_or_default(),
                    r.get::<Option<String>, _>(6).unwrap_or_default(),
                    r.get::<Option<String>, _>(7).unwrap_or_default(),
                )),
            }
        }
        // Those the last handover run reported as without a contracted provider are explained.
        if unreplaced.len() > not_arranged as usize {
            inv.violations.extend(unreplaced.into_iter().map(|u| {
                format!("{u} (the last RunHandover reported only {not_arranged} without a contracted provider)")
            }));
        }
        Ok(inv)
    }
}
