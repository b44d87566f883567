//! The invariant of the read model: reporting's monthly figures equal direct counts over
//! assignment's data.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use rz_proto::reporting::v1 as rep;
use sqlx::Row;

use super::{Checker, Invariant, db_err};

impl Checker {
    pub(super) async fn reporting_equals_direct_counts(&mut self) -> Result<Invariant, String> {
        let mut inv = Invariant::new(
            "reporting_matches",
            "reporting's monthly clients in care, new and ended equal direct counts over assignment's data",
        );
        let caught_up = self
            .reporting
            .get_status(rep::GetStatusRequest {})
            .await
            .map(|r| r.into_inner().caught_up)
            .map_err(|s| format!("GetStatus: {s}"))?;
        if !caught_up {
            inv.violations
                .push("reporting is not caught up with the streams".into());
        }
        let (from, to) = ("2021-09", "2023-09");
        let got = self
            .reporting
            .monthly_figures(rep::MonthlyFiguresRequest {
                from_month: from.into(),
                to_month: to.into(),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("MonthlyFigures: {s}"))?
            .into_inner();
        type Key = (String, String, String, String, String);
        let mut reported: BTreeMap<Key, (u32, u32, u32)> = BTreeMap::new();
        for r in got.rows {
            if r.clients_in_care + r.new_clients + r.ended_clients == 0 {
                continue;
            }
            reported.insert(
                (
                    r.municipality,
                    r.segment_code,
                    r.subsegment_code,
                    r.agb_code,
                    r.month,
                ),
                (r.clients_in_care, r.new_clients, r.ended_clients),
            );
        }
        let rows = sqlx::query(
            "SELECT municipality, segment_code, subsegment_code, agb_code, client_key,
                    started_on, COALESCE(stopped_on, end_date)
             FROM assignments WHERE started_on IS NOT NULL",
        )
        .fetch_all(self.db("assignment")?)
        .await
        .map_err(db_err("assignments"))?;
        let months = months(from, to);
        let mut sets: BTreeMap<Key, [BTreeSet<String>; 3]> = BTreeMap::new();
        for r in &rows {
            let started: NaiveDate = r.get(5);
            let end: Option<NaiveDate> = r.get(6);
            let client: String = r.get(4);
            let key =
                |month: &str| -> Key { (r.get(0), r.get(1), r.get(2), r.get(3), month.to_owned()) };
            for (m, first, last) in &months {
                if started <= *last && end.is_none_or(|e| e >= *first) {
                    sets.entry(key(m)).or_default()[0].insert(client.clone());
                }
                if *first <= started && started <= *last {
                    sets.entry(key(m)).or_default()[1].insert(client.clone());
                }
                if let Some(e) = end
                    && *first <= e
                    && e <= *last
                {
                    sets.entry(key(m)).or_default()[2].insert(client.clone());
                }
            }
        }
        let expected: BTreeMap<Key, (u32, u32, u32)> = sets
            .into_iter()
            .map(|(k, s)| (k, (s[0].len() as u32, s[1].len() as u32, s[2].len() as u32)))
            .collect();
        let keys: BTreeSet<&Key> = expected.keys().chain(reported.keys()).collect();
        inv.checked = keys.len();
        for k in keys {
            let e = expected.get(k).copied().unwrap_or_default();
            let g = reported.get(k).copied().unwrap_or_default();
            if e != g {
                inv.violations.push(format!(
                    "{} {} {} {} {}: reporting says in care/new/ended {}/{}/{}, direct count {}/{}/{}",
                    k.0, k.1, k.2, k.3, k.4, g.0, g.1, g.2, e.0, e.1, e.2
                ));
            }
        }
        Ok(inv)
    }
}

/// (YYYY-MM, first day, last day) from `from` to `to` inclusive.
fn months(from: &str, to: &str) -> Vec<(String, NaiveDate, NaiveDate)> {
    let parse = |s: &str| NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok();
    let (Some(mut first), Some(end)) = (parse(from), parse(to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while first <= end {
        let next = if first.month() == 12 {
            NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
        };
        let Some(next) = next else { break };
        let Some(last) = next.pred_opt() else { break };
        out.push((
            format!("{:04}-{:02}", first.year(), first.month()),
            first,
            last,
        ));
        first = next;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn months_cover_the_range() {
        let m = super::months("2022-11", "2023-02");
        let names: Vec<&str> = m.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["2022-11", "2022-12", "2023-01", "2023-02"]);
        assert_eq!(m[2].2.to_string(), "2023-01-31");
    }
}
