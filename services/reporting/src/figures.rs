//! The reports, computed from the facts without I/O. The definitions are documented on the proto
//! messages (`regiozorg/reporting/v1/reporting.proto`); in short:
//!
//! - care of an assignment runs from `started_on` to its care end (the stop of care, else the
//!   period's end); assignments whose care never started count for no care figure;
//! - lead times are attributed to the month of their later event and to the assignment's
//!   municipality, segment, subsegment and provider; request -> decision and decision ->
//!   assignment count each assignment made from a decision (not the replacements of a handover);
//! - a start of care is late when it is after 5 working days ([`WorkingDays`]) from the
//!   assignment's start;
//! - the region's goals ([`goals`]) only where the data measures them: granted products per goal,
//!   decisions within their term, starts within 5 working days, products ended early by an END
//!   amendment; satisfaction is recorded by no service and not reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use rz_domain::WorkingDays;

use crate::facts::{
    AssignmentFact, BudgetFact, CaseFact, ContractFact, Decision, GOALS, GoalProduct,
};

/// Working days a provider has to start care after the assignment's start.
pub const START_DAYS: u32 = 5;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let month = Self {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
        };
        month.first_day().map(|_| month)
    }

    pub fn of(d: NaiveDate) -> Self {
        Self {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn first_day(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn last_day(self) -> Option<NaiveDate> {
        self.next().first_day().and_then(|d| d.pred_opt())
    }

    /// Months from `self` to `to`, inclusive (0 when `to` is before `self`).
    pub fn count_to(self, to: Self) -> i64 {
        i64::from(to.year - self.year) * 12 + i64::from(to.month) - i64::from(self.month) + 1
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Mean (one decimal) and 90th percentile (nearest rank) of whole days.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LeadTime {
    pub count: u32,
    pub avg_days: f64,
    pub p90_days: i32,
}

impl LeadTime {
    pub fn of(values: &[i64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let n = v.len();
        let sum: i64 = v.iter().sum();
        let avg = (sum as f64 / n as f64 * 10.0).round() / 10.0;
        // nearest rank: the smallest value with at least 90 % of the values at or below it
        let rank = (n * 9).div_ceil(10).max(1);
        let p90 = v.get(rank - 1).copied().unwrap_or_default();
        Self {
            count: u32::try_from(n).unwrap_or(u32::MAX),
            avg_days: avg,
            p90_days: i32::try_from(p90).unwrap_or(i32::MAX),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub municipality: String,
    pub segment_code: String,
    pub subsegment_code: String,
    pub agb_code: String,
    pub month: Month,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PxqVolume {
    pub unit: String,
    pub frequency: String,
    pub assignments: u32,
    pub volume: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MonthlyRow {
    pub clients_in_care: u32,
    pub new_clients: u32,
    pub ended_clients: u32,
    pub request_to_decision: LeadTime,
    pub decision_to_assignment: LeadTime,
    pub assignment_to_start: LeadTime,
    pub decisions_late: u32,
    pub starts_late: u32,
    pub pxq: Vec<PxqVolume>,
}

#[derive(Default)]
struct Acc {
    in_care: BTreeSet<String>,
    new: BTreeSet<String>,
    ended: BTreeSet<String>,
    r2d: Vec<i64>,
    d2a: Vec<i64>,
    a2s: Vec<i64>,
    decisions_late: u32,
    starts_late: u32,
    pxq: BTreeMap<(String, String), (u32, u64)>,
}

fn count(s: &BTreeSet<String>) -> u32 {
    u32::try_from(s.len()).unwrap_or(u32::MAX)
}

/// The day a start of care is due: 5 working days after the assignment's start.
pub fn start_due(period_start: NaiveDate) -> NaiveDate {
    WorkingDays::add_working_days(period_start, START_DAYS)
}

/// Figures per municipality x segment x subsegment x provider x month, `from..=to`.
/// `cases` maps a granted product's id to its case.
pub fn monthly(
    assignments: &[AssignmentFact],
    cases: &HashMap<String, CaseFact>,
    from: Month,
    to: Month,
) -> BTreeMap<GroupKey, MonthlyRow> {
    let mut acc: BTreeMap<GroupKey, Acc> = BTreeMap::new();
    let in_range = |m: Month| from <= m && m <= to;
    let key = |a: &AssignmentFact, month: Month| GroupKey {
        municipality: a.municipality.clone(),
        segment_code: a.segment_code.clone(),
        subsegment_code: a.subsegment_code.clone(),
        agb_code: a.agb_code.clone(),
        month,
    };
    for a in assignments {
        if let Some(started) = a.started_on {
            let end = a.care_end();
            let mut m = from.max(Month::of(started));
            while m <= to {
                let (Some(first), Some(last)) = (m.first_day(), m.last_day()) else {
                    break;
                };
                if end.is_some_and(|e| e < first) {
                    break;
                }
                if started <= last {
                    let g = acc.entry(key(a, m)).or_default();
                    g.in_care.insert(a.client_key.clone());
                    if a.variant == "inspanningsgericht" {
                        let p = g
                            .pxq
                            .entry((a.unit.clone(), a.frequency.clone()))
                            .or_default();
                        p.0 += 1;
                        p.1 += u64::try_from(a.volume).unwrap_or(0);
                    }
                }
                m = m.next();
            }
            let sm = Month::of(started);
            if in_range(sm) {
                let g = acc.entry(key(a, sm)).or_default();
                g.new.insert(a.client_key.clone());
                let from_day = a.assigned_on.max(a.period_start);
                g.a2s.push((started - from_day).num_days());
                if started > start_due(a.period_start) {
                    g.starts_late += 1;
                }
            }
            if let Some(e) = end
                && e >= started
                && in_range(Month::of(e))
            {
                acc.entry(key(a, Month::of(e)))
                    .or_default()
                    .ended
                    .insert(a.client_key.clone());
            }
        }
        if a.replaces_number.is_some() || a.granted_product_id.is_empty() {
            continue;
        }
        let Some(case) = cases.get(&a.granted_product_id) else {
            continue;
        };
        let Some(decided) = case.decided_on else {
            continue;
        };
        let dm = Month::of(decided);
        if in_range(dm) {
            let g = acc.entry(key(a, dm)).or_default();
            if let Some(requested) = case.requested_on() {
                g.r2d.push((decided - requested).num_days());
            }
            if case.decision_due.is_some_and(|due| decided > due) {
                g.decisions_late += 1;
            }
        }
        let am = Month::of(a.assigned_on);
        if in_range(am) {
            acc.entry(key(a, am))
                .or_default()
                .d2a
                .push((a.assigned_on - decided).num_days());
        }
    }
    acc.into_iter()
        .map(|(k, g)| {
            let row = MonthlyRow {
                clients_in_care: count(&g.in_care),
                new_clients: count(&g.new),
                ended_clients: count(&g.ended),
                request_to_decision: LeadTime::of(&g.r2d),
                decision_to_assignment: LeadTime::of(&g.d2a),
                assignment_to_start: LeadTime::of(&g.a2s),
                decisions_late: g.decisions_late,
                starts_late: g.starts_late,
                pxq: g
                    .pxq
                    .into_iter()
                    .map(|((unit, frequency), (n, v))| PxqVolume {
                        unit,
                        frequency,
                        assignments: n,
                        volume: v,
                    })
                    .collect(),
            };
            (k, row)
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandoverRow {
    pub handed_over: u32,
    pub handed_over_late: u32,
    pub waiting_for_start: u32,
    pub not_arranged: u32,
}

/// Whether `agb` is contracted for the subsegment in the municipality on `date`.
pub fn contracted(
    contracts: &[ContractFact],
    agb: &str,
    segment: &str,
    subsegment: &str,
    municipality: &str,
    date: NaiveDate,
) -> bool {
    contracts.iter().any(|c| {
        c.agb_code == agb
            && c.active_on(date)
            && c.covers_municipality(municipality)
            && c.covers(segment, subsegment)
    })
}

/// Handover progress per (municipality, segment) of the replaced assignment.
pub fn handover(
    assignments: &[AssignmentFact],
    contracts: &[ContractFact],
    deadline: NaiveDate,
    as_of: NaiveDate,
) -> BTreeMap<(String, String), HandoverRow> {
    let by_number: HashMap<(&str, i64), &AssignmentFact> = assignments
        .iter()
        .map(|a| ((a.municipality.as_str(), a.number), a))
        .collect();
    let mut rows: BTreeMap<(String, String), HandoverRow> = BTreeMap::new();
    for old in assignments {
        let group = (old.municipality.clone(), old.segment_code.clone());
        match old.replaced_by_number {
            Some(n) => {
                let Some(new) = by_number.get(&(old.municipality.as_str(), n)) else {
                    continue;
                };
                if new.status == "withdrawn" {
                    continue;
                }
                let row = rows.entry(group).or_default();
                match new.started_on {
                    Some(started) => {
                        row.handed_over += 1;
                        if started > deadline {
                            row.handed_over_late += 1;
                        }
                    }
                    None => row.waiting_for_start += 1,
                }
            }
            None => {
                if old.is_active()
                    && old.period_end.is_none_or(|e| e >= as_of)
                    && !contracted(
                        contracts,
                        &old.agb_code,
                        &old.segment_code,
                        &old.subsegment_code,
                        &old.municipality,
                        deadline,
                    )
                {
                    rows.entry(group).or_default().not_arranged += 1;
                }
            }
        }
    }
    rows
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BudgetKey {
    pub agb_code: String,
    pub municipality: String,
    pub segment_code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetRow {
    pub budget_cents: i64,
    pub clients_served: u32,
    pub cost_per_client_cents: i64,
}

/// Lumpsum budgets of `year` per provider x municipality x segment against the distinct clients
/// whose care with that provider overlapped the year.
pub fn budget_use(
    assignments: &[AssignmentFact],
    contracts: &[ContractFact],
    budgets: &[(String, BudgetFact)],
    year: i32,
) -> BTreeMap<BudgetKey, BudgetRow> {
    let (Some(first), Some(last)) = (
        NaiveDate::from_ymd_opt(year, 1, 1),
        NaiveDate::from_ymd_opt(year, 12, 31),
    ) else {
        return BTreeMap::new();
    };
    let by_id: HashMap<&str, &ContractFact> = contracts
        .iter()
        .map(|c| (c.contract_id.as_str(), c))
        .collect();
    let mut out: BTreeMap<BudgetKey, BudgetRow> = BTreeMap::new();
    for (id, b) in budgets.iter().filter(|(_, b)| b.year == year) {
        let Some(c) = by_id.get(id.as_str()) else {
            continue;
        };
        out.entry(BudgetKey {
            agb_code: c.agb_code.clone(),
            municipality: b.municipality.clone(),
            segment_code: c.segment_code.clone(),
        })
        .or_default()
        .budget_cents += b.amount_cents;
    }
    for (k, row) in out.iter_mut() {
        let clients: BTreeSet<&str> = assignments
            .iter()
            .filter(|a| {
                a.agb_code == k.agb_code
                    && a.municipality == k.municipality
                    && a.segment_code == k.segment_code
                    && a.started_on.is_some_and(|s| s <= last)
                    && a.care_end().is_none_or(|e| e >= first)
            })
            .map(|a| a.client_key.as_str())
            .collect();
        row.clients_served = u32::try_from(clients.len()).unwrap_or(u32::MAX);
        row.cost_per_client_cents = if clients.is_empty() {
            0
        } else {
            let n = i64::from(row.clients_served);
            (row.budget_cents + n / 2) / n
        };
    }
    out
}

/// Contracted providers per segment on `date` (optionally only contracts covering a municipality).
pub fn providers_per_segment(
    contracts: &[ContractFact],
    date: NaiveDate,
    municipality: Option<&str>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in contracts {
        if c.active_on(date) && municipality.is_none_or(|m| c.covers_municipality(m)) {
            out.entry(c.segment_code.clone())
                .or_default()
                .insert(c.agb_code.clone());
        }
    }
    out
}

/// The goals report of one municipality (see `GoalsRow` in the proto).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoalsRow {
    /// Granted products decided in the period, per goal in [`GOALS`] order.
    pub granted: [u32; 6],
    pub decisions: u32,
    pub decisions_in_time: u32,
    pub starts: u32,
    pub starts_in_time: u32,
    pub scaled_down: u32,
}

/// `part / whole` in percent, one decimal; 0 when `whole` is 0.
pub fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (f64::from(part) * 1000.0 / f64::from(whole)).round() / 10.0
}

/// The region's goals per municipality over `from..=to`: granted products per goal (by the
/// decision of their case), decisions within their term, starts of care within
/// [`START_DAYS`] working days (the rule of `starts_late`), and products ended early by an END
/// amendment (by the end it set). A municipality appears when it has any of these in the period.
pub fn goals(
    products: &[GoalProduct],
    decisions: &[Decision],
    assignments: &[AssignmentFact],
    from: Month,
    to: Month,
) -> BTreeMap<String, GoalsRow> {
    let in_range = |d: NaiveDate| {
        let m = Month::of(d);
        from <= m && m <= to
    };
    let mut out: BTreeMap<String, GoalsRow> = BTreeMap::new();
    for p in products {
        if p.decided_on.is_some_and(in_range)
            && let Some(i) = GOALS.iter().position(|g| *g == p.goal)
            && let Some(n) = out
                .entry(p.municipality.clone())
                .or_default()
                .granted
                .get_mut(i)
        {
            *n += 1;
        }
        if p.scaled_down_to.is_some_and(in_range) {
            out.entry(p.municipality.clone()).or_default().scaled_down += 1;
        }
    }
    for (m, decided, due) in decisions {
        if in_range(*decided) {
            let row = out.entry(m.clone()).or_default();
            row.decisions += 1;
            if due.is_some_and(|due| *decided <= due) {
                row.decisions_in_time += 1;
            }
        }
    }
    for a in assignments {
        if let Some(started) = a.started_on
            && in_range(started)
        {
            let row = out.entry(a.municipality.clone()).or_default();
            row.starts += 1;
            if started <= start_due(a.period_start) {
                row.starts_in_time += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn a(
        n: i64,
        client: &str,
        start: &str,
        started: Option<&str>,
        end: Option<&str>,
    ) -> AssignmentFact {
        AssignmentFact {
            municipality: "0222".into(),
            number: n,
            client_key: client.into(),
            agb_code: "03010001".into(),
            law: "jeugdwet".into(),
            segment_code: "IAJ".into(),
            subsegment_code: "IAJ-ON".into(),
            period_start: d(start),
            period_end: end.map(d),
            variant: "taakgericht".into(),
            status: if started.is_some() {
                "started"
            } else {
                "issued"
            }
            .into(),
            assigned_on: d(start),
            started_on: started.map(d),
            ..Default::default()
        }
    }

    #[test]
    fn goals_count_products_decisions_starts_and_scaling_down() {
        let m = |s: &str| Month::parse(s).unwrap();
        let product = |goal: &str, decided: &str, down: Option<&str>| GoalProduct {
            municipality: "0222".into(),
            goal: goal.into(),
            decided_on: Some(d(decided)),
            scaled_down_to: down.map(d),
        };
        let products = vec![
            product("participation", "2022-07-04", None),
            product("participation", "2022-07-05", Some("2022-09-30")),
            product("meaningful_life", "2022-06-30", Some("2022-07-31")),
            product("", "2022-07-05", None),
        ];
        let decisions = vec![
            ("0222".to_string(), d("2022-07-04"), Some(d("2022-07-04"))),
            ("0222".to_string(), d("2022-07-05"), Some(d("2022-07-01"))),
            ("0222".to_string(), d("2022-06-30"), Some(d("2022-07-01"))),
        ];
        let facts = vec![
            // due 2022-08-08: on time, late
            a(1, "k1", "2022-08-01", Some("2022-08-08"), None),
            a(2, "k2", "2022-08-01", Some("2022-08-09"), None),
            a(3, "k3", "2022-08-01", None, None),
        ];
        let rows = goals(&products, &decisions, &facts, m("2022-07"), m("2022-09"));
        let row = rows.get("0222").unwrap();
        assert_eq!(row.granted, [0, 0, 2, 0, 0, 0]);
        assert_eq!((row.decisions, row.decisions_in_time), (2, 1));
        assert_eq!((row.starts, row.starts_in_time), (2, 1));
        assert_eq!(row.scaled_down, 2);
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(2, 3), 66.7);
        assert_eq!(percent(0, 0), 0.0);
    }

    #[test]
    fn months_parse_and_step() {
        let m = Month::parse("2022-12").unwrap();
        assert_eq!(m.next().to_string(), "2023-01");
        assert_eq!(m.last_day(), Some(d("2022-12-31")));
        assert!(Month::parse("2022-13").is_none());
        assert!(Month::parse("22-1").is_none());
        assert_eq!(m.count_to(Month::parse("2023-02").unwrap()), 3);
    }

    #[test]
    fn lead_time_mean_and_nearest_rank_p90() {
        let lt = LeadTime::of(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!((lt.count, lt.avg_days, lt.p90_days), (10, 5.5, 9));
        let lt = LeadTime::of(&[4]);
        assert_eq!((lt.count, lt.avg_days, lt.p90_days), (1, 4.0, 4));
        let lt = LeadTime::of(&[1, 2]);
        assert_eq!((lt.avg_days, lt.p90_days), (1.5, 2));
        assert_eq!(LeadTime::of(&[]), LeadTime::default());
    }

    #[test]
    fn care_counts_per_month() {
        let facts = vec![
            a(
                1,
                "k1",
                "2022-07-01",
                Some("2022-07-04"),
                Some("2022-09-15"),
            ),
            a(2, "k2", "2022-08-01", Some("2022-08-20"), None),
            a(3, "k3", "2022-08-01", None, None),
        ];
        let rows = monthly(
            &facts,
            &HashMap::new(),
            Month::parse("2022-07").unwrap(),
            Month::parse("2022-10").unwrap(),
        );
        let get = |m: &str| {
            rows.iter()
                .find(|(k, _)| k.month.to_string() == m)
                .map(|(_, r)| r.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("2022-07").clients_in_care, 1);
        assert_eq!(get("2022-07").new_clients, 1);
        assert_eq!(get("2022-08").clients_in_care, 2);
        assert_eq!(get("2022-09").clients_in_care, 2);
        assert_eq!(get("2022-09").ended_clients, 1);
        assert_eq!(get("2022-10").clients_in_care, 1);
        // 2022-08-01 + 5 working days = 2022-08-08: the start on the 20th is late
        assert_eq!(get("2022-08").starts_late, 1);
        assert_eq!(get("2022-07").starts_late, 0);
    }

    #[test]
    fn handover_counts_replacements_and_unarranged_care() {
        let mut old = a(1, "k1", "2022-01-01", Some("2022-01-03"), None);
        old.agb_code = "03019999".into();
        old.replaced_by_number = Some(3);
        let mut old2 = a(2, "k2", "2022-01-01", Some("2022-01-03"), None);
        old2.agb_code = "03019999".into();
        let mut new = a(3, "k1", "2022-12-01", Some("2022-12-05"), None);
        new.replaces_number = Some(1);
        let contracts = vec![ContractFact {
            contract_id: "c".into(),
            agb_code: "03010001".into(),
            segment_code: "IAJ".into(),
            subsegments: vec!["IAJ-ON".into()],
            municipalities: vec!["0222".into()],
            period_start: d("2022-07-01"),
            period_end: None,
        }];
        let rows = handover(
            &[old, old2, new],
            &contracts,
            d("2023-01-01"),
            d("2022-12-10"),
        );
        let row = rows.get(&("0222".to_string(), "IAJ".to_string())).unwrap();
        assert_eq!(
            row,
            &HandoverRow {
                handed_over: 1,
                handed_over_late: 0,
                waiting_for_start: 0,
                not_arranged: 1
            }
        );
    }

    #[test]
    fn budget_per_client_rounds_half_up() {
        let c = ContractFact {
            contract_id: "c".into(),
            agb_code: "03010001".into(),
            segment_code: "IAJ".into(),
            period_start: d("2022-07-01"),
            ..Default::default()
        };
        let budgets = vec![(
            "c".to_string(),
            BudgetFact {
                municipality: "0222".into(),
                year: 2022,
                amount_cents: 1_000,
            },
        )];
        let facts = vec![
            a(1, "k1", "2022-07-01", Some("2022-07-04"), None),
            a(2, "k2", "2022-07-01", Some("2022-07-04"), None),
            a(3, "k3", "2022-07-01", Some("2022-07-04"), None),
            a(4, "k3", "2022-07-01", None, None),
        ];
        let rows = budget_use(&facts, &[c], &budgets, 2022);
        let row = rows.values().next().unwrap();
        assert_eq!((row.clients_served, row.cost_per_client_cents), (3, 333));
    }
}
