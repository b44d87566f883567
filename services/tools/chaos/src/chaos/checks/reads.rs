//! The queries that settling and several invariants share.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::{Checker, ISSUED, db_err};

impl Checker {
    /// Granted products of every access instance: (product id, municipality, version).
    pub(super) async fn granted_products(&self) -> Result<Vec<(String, String, i32)>, String> {
        let mut out = Vec::new();
        for (service, db) in self.access_dbs() {
            let m = service.trim_start_matches("access@").to_owned();
            let rows = sqlx::query(
                "SELECT p.id::text, p.version FROM products p JOIN cases c ON c.id = p.case_id
                 WHERE c.status = 'granted'",
            )
            .fetch_all(db)
            .await
            .map_err(db_err("granted products"))?;
            for r in rows {
                out.push((r.get::<String, _>(0), m.clone(), r.get::<i32, _>(1)));
            }
        }
        Ok(out)
    }

    /// The ids of every issued event in assignment's outbox.
    pub(super) async fn issued_events(&self) -> Result<Vec<(String, String)>, String> {
        let rows = sqlx::query("SELECT id::text, nats_subject FROM outbox WHERE event_type = $1")
            .bind(ISSUED)
            .fetch_all(self.db("assignment")?)
            .await
            .map_err(db_err("issued events"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Product id -> (active assignments, any assignment), and the products recorded unassigned.
    pub(super) async fn assignment_of_products(
        &self,
    ) -> Result<(HashMap<String, (i64, i64)>, HashSet<String>), String> {
        let db = self.db("assignment")?;
        let rows = sqlx::query(
            "SELECT granted_product_id, count(*) FILTER (WHERE status IN ('issued', 'started')),
                    count(*)
             FROM assignments WHERE granted_product_id IS NOT NULL GROUP BY 1",
        )
        .fetch_all(db)
        .await
        .map_err(db_err("assignments per product"))?;
        let per = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let unassigned: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT granted_product_id FROM unassigned_products")
                .fetch_all(db)
                .await
                .map_err(db_err("unassigned products"))?;
        Ok((per, unassigned.into_iter().collect()))
    }

    /// Amended products (version > 1) of every access instance, and those whose active
    /// assignment does not show the amendment (version, end), as evidence lines.
    pub(super) async fn amendments(&self) -> Result<(usize, Vec<String>), String> {
        let mut amended: HashMap<String, (String, i32, Option<String>)> = HashMap::new();
        for (service, db) in self.access_dbs() {
            let m = service.trim_start_matches("access@").to_owned();
            let rows = sqlx::query(
                "SELECT id::text, version, period_end::text FROM products WHERE version > 1",
            )
            .fetch_all(db)
            .await
            .map_err(db_err("amended products"))?;
            for r in rows {
                amended.insert(r.get(0), (m.clone(), r.get(1), r.get(2)));
            }
        }
        if amended.is_empty() {
            return Ok((0, Vec::new()));
        }
        let ids: Vec<String> = amended.keys().cloned().collect();
        let db = self.db("assignment")?;
        let rows = sqlx::query(
            "SELECT granted_product_id, number, product_version, end_date::text FROM assignments
             WHERE granted_product_id = ANY($1) AND status IN ('issued', 'started')",
        )
        .bind(&ids)
        .fetch_all(db)
        .await
        .map_err(db_err("amended assignments"))?;
        let unassigned: HashSet<String> = sqlx::query_scalar(
            "SELECT granted_product_id FROM unassigned_products WHERE granted_product_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(db)
        .await
        .map_err(db_err("unassigned amended"))?
        .into_iter()
        .collect();
        let mut seen = HashSet::new();
        let mut bad = Vec::new();
        for r in rows {
            let id: String = r.get(0);
            let Some((m, version, end)) = amended.get(&id) else {
                continue;
            };
            seen.insert(id.clone());
            let (number, pv, a_end): (i64, i32, Option<String>) = (r.get(1), r.get(2), r.get(3));
            if pv != *version || a_end != *end {
                bad.push(format!(
                    "product {id} in {m} is version {version} ending {}; its assignment {number} shows version {pv} ending {}",
                    end.as_deref().unwrap_or("-"),
                    a_end.as_deref().unwrap_or("-")
                ));
            }
        }
        for (id, (m, version, _)) in &amended {
            if !seen.contains(id) && !unassigned.contains(id) {
                bad.push(format!(
                    "product {id} in {m} (version {version}) has no active assignment"
                ));
            }
        }
        Ok((amended.len(), bad))
    }

    /// Every event addressed to one provider (`<ns>.assignment.<m>.<agb>.<event>`): (id, subject).
    pub(super) async fn provider_events(&self) -> Result<Vec<(String, String)>, String> {
        let rows = sqlx::query(
            "SELECT id::text, nats_subject FROM outbox WHERE split_part(nats_subject, '.', 4) <> '_'",
        )
        .fetch_all(self.db("assignment")?)
        .await
        .map_err(db_err("provider events"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
