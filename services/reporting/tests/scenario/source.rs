//! The source of truth: direct counts over the services' own databases, and the comparison of
//! the monthly figures with them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use rz_domain::WorkingDays;
use rz_proto::reporting::v1 as pb;
use rz_stack::{M, d};
use sqlx::{PgPool, Row};

pub(crate) struct SourceAssignment {
    pub(crate) client_key: String,
    pub(crate) agb: String,
    pub(crate) segment: String,
    pub(crate) subsegment: String,
    pub(crate) start: NaiveDate,
    pub(crate) end: Option<NaiveDate>,
    pub(crate) variant: String,
    pub(crate) volume: Option<i32>,
    pub(crate) unit: Option<String>,
    pub(crate) frequency: Option<String>,
    pub(crate) assigned_on: NaiveDate,
    pub(crate) started_on: Option<NaiveDate>,
    pub(crate) stopped_on: Option<NaiveDate>,
    pub(crate) product: Option<String>,
    pub(crate) replaces: Option<i64>,
}

pub(crate) async fn source_assignments(db: &PgPool) -> Vec<SourceAssignment> {
    sqlx::query(
        "SELECT number, client_key, agb_code, segment_code, subsegment_code, start_date, end_date,
                execution_variant, volume, unit, frequency, status, assigned_on, started_on,
                stopped_on, granted_product_id, replaces_number, replaced_by_number
         FROM assignments WHERE municipality = $1",
    )
    .bind(M)
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|r| SourceAssignment {
        client_key: r.get(1),
        agb: r.get(2),
        segment: r.get(3),
        subsegment: r.get(4),
        start: r.get(5),
        end: r.get(6),
        variant: r.get(7),
        volume: r.get(8),
        unit: r.get(9),
        frequency: r.get(10),
        assigned_on: r.get(12),
        started_on: r.get(13),
        stopped_on: r.get(14),
        product: r.get(15),
        replaces: r.get(16),
    })
    .collect()
}

pub(crate) struct SourceCase {
    pub(crate) law: String,
    pub(crate) reported_on: Option<NaiveDate>,
    pub(crate) applied_on: Option<NaiveDate>,
    pub(crate) decision_due: Option<NaiveDate>,
    pub(crate) decided_on: Option<NaiveDate>,
}

/// granted product id -> its case, from access' database.
pub(crate) async fn source_cases(db: &PgPool) -> HashMap<String, SourceCase> {
    sqlx::query(
        "SELECT p.id::text, c.law, c.reported_on, c.applied_on, c.decision_due, c.decided_on
         FROM products p JOIN cases c ON c.id = p.case_id",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get(0),
            SourceCase {
                law: r.get(1),
                reported_on: r.get(2),
                applied_on: r.get(3),
                decision_due: r.get(4),
                decided_on: r.get(5),
            },
        )
    })
    .collect()
}

/// The goals report as a direct count over access' and assignment's databases.
pub(crate) async fn expected_goals(
    access_db: &PgPool,
    assignments: &[SourceAssignment],
) -> pb::GoalsRow {
    let (first, last) = (d("2022-06-01"), d("2023-03-31"));
    let in_range = |x: NaiveDate| first <= x && x <= last;
    let goal_rows: Vec<(String, NaiveDate)> = sqlx::query_as(
        "SELECT p.goal, c.decided_on FROM products p JOIN cases c ON c.id = p.case_id",
    )
    .fetch_all(access_db)
    .await
    .unwrap();
    let goals = reporting::facts::GOALS
        .iter()
        .map(|g| pb::GoalProducts {
            goal: g.to_string(),
            granted_products: goal_rows
                .iter()
                .filter(|(goal, decided)| goal == g && in_range(*decided))
                .count() as u32,
        })
        .collect();
    let decided: Vec<(NaiveDate, NaiveDate)> =
        sqlx::query_as("SELECT decided_on, decision_due FROM cases WHERE decided_on IS NOT NULL")
            .fetch_all(access_db)
            .await
            .unwrap();
    let decisions: Vec<_> = decided.iter().filter(|(d, _)| in_range(*d)).collect();
    let decisions_in_time = decisions.iter().filter(|(d, due)| d <= due).count() as u32;
    let starts: Vec<_> = assignments
        .iter()
        .filter(|a| a.started_on.is_some_and(in_range))
        .collect();
    let starts_in_time = starts
        .iter()
        .filter(|a| a.started_on.unwrap() <= WorkingDays::add_working_days(a.start, 5))
        .count() as u32;
    // the end set by each product's last END amendment
    let ended: Vec<(Option<NaiveDate>,)> = sqlx::query_as(
        "SELECT DISTINCT ON (product_id) period_end FROM product_amendments
         WHERE amendment = 'end' ORDER BY product_id, version DESC",
    )
    .fetch_all(access_db)
    .await
    .unwrap();
    let pct = |part: u32, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            (part as f64 * 100.0 / whole as f64 * 10.0).round() / 10.0
        }
    };
    pb::GoalsRow {
        municipality: M.into(),
        goals,
        decisions: decisions.len() as u32,
        decisions_in_time,
        decisions_in_time_pct: pct(decisions_in_time, decisions.len()),
        starts: starts.len() as u32,
        starts_in_time,
        starts_in_time_pct: pct(starts_in_time, starts.len()),
        scaled_down: ended.iter().filter(|(e,)| e.is_some_and(in_range)).count() as u32,
    }
}

pub(crate) fn ym(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

pub(crate) fn months() -> Vec<(String, NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut first = d("2022-06-01");
    while first <= d("2023-03-01") {
        let next = if first.month() == 12 {
            NaiveDate::from_ymd_opt(first.year() + 1, 1, 1).unwrap()
        } else {
            NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1).unwrap()
        };
        out.push((ym(first), first, next.pred_opt().unwrap()));
        first = next;
    }
    out
}

pub(crate) type Key = (String, String, String, String); // segment, subsegment, agb, month

#[derive(Default, Debug, PartialEq)]
pub(crate) struct Expected {
    pub(crate) in_care: BTreeSet<String>,
    pub(crate) new: BTreeSet<String>,
    pub(crate) ended: BTreeSet<String>,
    pub(crate) r2d: Vec<i64>,
    pub(crate) d2a: Vec<i64>,
    pub(crate) a2s: Vec<i64>,
    pub(crate) decisions_late: u32,
    pub(crate) starts_late: u32,
    pub(crate) pxq: BTreeMap<(String, String), (u32, u64)>,
}

pub(crate) fn lead(v: &[i64]) -> pb::LeadTime {
    if v.is_empty() {
        return pb::LeadTime::default();
    }
    let mut v = v.to_vec();
    v.sort();
    let n = v.len();
    let avg = v.iter().sum::<i64>() as f64 / n as f64;
    let rank = ((n as f64) * 0.9).ceil() as usize;
    pb::LeadTime {
        count: n as u32,
        avg_days: (avg * 10.0).round() / 10.0,
        p90_days: v[rank.max(1) - 1] as i32,
    }
}

pub(crate) fn expected_monthly(
    assignments: &[SourceAssignment],
    cases: &HashMap<String, SourceCase>,
) -> BTreeMap<Key, Expected> {
    let mut out: BTreeMap<Key, Expected> = BTreeMap::new();
    let months = months();
    let in_range = |d: NaiveDate| months.iter().any(|(_, f, l)| *f <= d && d <= *l);
    let k = |a: &SourceAssignment, m: String| {
        (a.segment.clone(), a.subsegment.clone(), a.agb.clone(), m)
    };
    for a in assignments {
        if let Some(started) = a.started_on {
            let end = a.stopped_on.or(a.end);
            for (m, first, last) in &months {
                if started <= *last && end.is_none_or(|e| e >= *first) {
                    let e = out.entry(k(a, m.clone())).or_default();
                    e.in_care.insert(a.client_key.clone());
                    if a.variant == "inspanningsgericht" {
                        let p = e
                            .pxq
                            .entry((
                                a.unit.clone().unwrap_or_default(),
                                a.frequency.clone().unwrap_or_default(),
                            ))
                            .or_default();
                        p.0 += 1;
                        p.1 += a.volume.unwrap_or(0) as u64;
                    }
                }
            }
            if in_range(started) {
                let e = out.entry(k(a, ym(started))).or_default();
                e.new.insert(a.client_key.clone());
                e.a2s
                    .push((started - a.assigned_on.max(a.start)).num_days());
                if started > WorkingDays::add_working_days(a.start, 5) {
                    e.starts_late += 1;
                }
            }
            if let Some(e) = end
                && in_range(e)
            {
                out.entry(k(a, ym(e)))
                    .or_default()
                    .ended
                    .insert(a.client_key.clone());
            }
        }
        if a.replaces.is_some() {
            continue;
        }
        let Some(case) = a.product.as_ref().and_then(|p| cases.get(p)) else {
            continue;
        };
        let decided = case.decided_on.unwrap();
        let requested = if case.law == "wmo" {
            case.reported_on
        } else {
            case.applied_on
        }
        .unwrap();
        let e = out.entry(k(a, ym(decided))).or_default();
        e.r2d.push((decided - requested).num_days());
        if decided > case.decision_due.unwrap() {
            e.decisions_late += 1;
        }
        out.entry(k(a, ym(a.assigned_on)))
            .or_default()
            .d2a
            .push((a.assigned_on - decided).num_days());
    }
    out
}

pub(crate) fn check_monthly(got: &pb::MonthlyFiguresResponse, expected: &BTreeMap<Key, Expected>) {
    let mut rows: BTreeMap<Key, &pb::MonthlyFiguresRow> = BTreeMap::new();
    for r in &got.rows {
        assert_eq!(r.municipality, M);
        rows.insert(
            (
                r.segment_code.clone(),
                r.subsegment_code.clone(),
                r.agb_code.clone(),
                r.month.clone(),
            ),
            r,
        );
    }
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same groups"
    );
    for (key, e) in expected {
        let r = rows[key];
        assert_eq!(
            r.clients_in_care as usize,
            e.in_care.len(),
            "{key:?} in care"
        );
        assert_eq!(r.new_clients as usize, e.new.len(), "{key:?} new");
        assert_eq!(r.ended_clients as usize, e.ended.len(), "{key:?} ended");
        assert_eq!(r.request_to_decision.unwrap(), lead(&e.r2d), "{key:?} r2d");
        assert_eq!(
            r.decision_to_assignment.unwrap(),
            lead(&e.d2a),
            "{key:?} d2a"
        );
        assert_eq!(r.assignment_to_start.unwrap(), lead(&e.a2s), "{key:?} a2s");
        assert_eq!(r.decisions_late, e.decisions_late, "{key:?} decisions late");
        assert_eq!(r.starts_late, e.starts_late, "{key:?} starts late");
        let pxq: BTreeMap<(String, String), (u32, u64)> = r
            .pxq
            .iter()
            .map(|p| {
                (
                    (p.unit.clone(), p.frequency.clone()),
                    (p.assignments, p.volume),
                )
            })
            .collect();
        assert_eq!(pxq, e.pxq, "{key:?} pxq");
    }
}
