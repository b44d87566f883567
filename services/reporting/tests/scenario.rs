//! A scripted scenario through the real services (registration, access for Doetinchem 0222 and
//! assignment, each in-process with a fresh database, one NATS namespace of their own), with
//! reporting consuming their streams. Every figure reporting gives is compared with a direct
//! count over the source services' own databases; a rebuild gives the same figures; the CSV export
//! carries the same numbers and no BSN.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use assignment::FixedClock;
use chrono::{Datelike, NaiveDate};
use rz_domain::WorkingDays;
use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use rz_proto::assignment::v1 as asg;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::reporting::v1 as pb;
use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use rz_proto::types::v1 as types;
use rz_stack::{Landscape, M, OLD, P1, P2, P3, PV1, bsn, d, key_of, period};
use sqlx::{PgPool, Row};
use tonic::transport::Channel;

struct Stack {
    registration: RegistrationServiceClient<Channel>,
    access: AccessServiceClient<Channel>,
    assignment: AssignmentServiceClient<Channel>,
    reporting: ReportingServiceClient<Channel>,
    clock: Arc<FixedClock>,
    registration_db: PgPool,
    access_db: PgPool,
    assignment_db: PgPool,
    reporting_db: PgPool,
    /// The running services (its drop stops them).
    _stack: rz_stack::Stack,
}

/// Reporting first (it ensures the streams and consumes from their start), then registration,
/// access 0222 and assignment (its date 2022-06-27).
async fn spawn_stack() -> Stack {
    let mut stack = rz_stack::Stack::builder()
        .reporting()
        .access(M)
        // products are amended on TODAY, while they are still active
        .access_config(|c| c.access.today = Some(d(TODAY)))
        .assignment()
        .today(d("2022-06-27"))
        .start()
        .await;
    Stack {
        registration: stack.registration(),
        access: stack.access(M),
        assignment: stack.assignment(),
        reporting: stack.reporting(),
        clock: stack.clock(),
        registration_db: stack.registration_service().pool.clone(),
        access_db: stack.access_service(M).pool.clone(),
        assignment_db: stack.assignment_service().pool.clone(),
        reporting_db: stack.reporting_service().pool.clone(),
        _stack: stack,
    }
}

impl Stack {
    async fn load_contracts(&mut self) {
        let mut landscape = Landscape::new();
        for agb in [P1, P2, P3, OLD, PV1] {
            landscape = landscape.provider(agb, &format!("Zorg {agb}"));
        }
        for (agb, budget) in [(P1, 50_000_000), (P2, 30_000_000), (P3, 20_000_000)] {
            landscape = landscape
                .contract(agb, "IAJ", &["IAJ-ON"], "2022-07-01")
                .budget(M, 2022, budget)
                .budget(M, 2023, budget + 1_000);
        }
        landscape
            .contract(OLD, "IAJ", &[], "2019-07-01")
            .contract(PV1, "WIO", &["WIO-PV"], "2022-07-01")
            .load(&mut self.registration)
            .await;
    }

    async fn resident(&mut self, bsn: &str, birth: &str) {
        self.access
            .register_resident(acc::RegisterResidentRequest {
                gender: String::new(),
                ..rz_stack::resident_request(bsn, birth)
            })
            .await
            .unwrap();
    }

    /// A Jeugdwet application on `applied` decided on `decided`.
    async fn youth(&mut self, bsn: &str, applied: &str, decided: &str, grant: acc::ProductToGrant) {
        self.resident(bsn, "2012-05-01").await;
        let case = self
            .access
            .open_case(acc::OpenCaseRequest {
                idempotency_key: format!("case-{bsn}"),
                bsn: bsn.into(),
                law: types::Law::Jeugdwet as i32,
                date: applied.into(),
            })
            .await
            .unwrap()
            .into_inner();
        self.decide(&case.id, decided, grant).await;
    }

    /// A Wmo melding on `reported`, application and decision on `decided`.
    async fn wmo(&mut self, bsn: &str, reported: &str, decided: &str, grant: acc::ProductToGrant) {
        self.resident(bsn, "1960-01-10").await;
        let case = self
            .access
            .open_case(acc::OpenCaseRequest {
                idempotency_key: format!("case-{bsn}"),
                bsn: bsn.into(),
                law: types::Law::Wmo as i32,
                date: reported.into(),
            })
            .await
            .unwrap()
            .into_inner();
        self.access
            .complete_investigation(acc::CompleteInvestigationRequest {
                case_id: case.id.clone(),
                date: decided.into(),
            })
            .await
            .unwrap();
        self.access
            .submit_application(acc::SubmitApplicationRequest {
                case_id: case.id.clone(),
                date: decided.into(),
            })
            .await
            .unwrap();
        self.decide(&case.id, decided, grant).await;
    }

    async fn decide(&mut self, case_id: &str, date: &str, grant: acc::ProductToGrant) {
        self.access
            .decide(acc::DecideRequest {
                case_id: case_id.into(),
                date: date.into(),
                grant: vec![grant],
                refusal_reason: String::new(),
            })
            .await
            .unwrap();
    }

    /// Waits until the client has `n` assignments and returns them.
    async fn assignments_of(&mut self, bsn: &str, n: usize) -> Vec<asg::Assignment> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self
                .assignment
                .list_client_assignments(asg::ListClientAssignmentsRequest {
                    municipality: M.into(),
                    client_key: key_of(bsn),
                })
                .await
                .unwrap()
                .into_inner()
                .assignments;
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "{bsn}: {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until assignment applied an amendment: an active assignment of the client ends on `end`.
    async fn wait_for_end(&mut self, bsn: &str, end: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.assignments_of(bsn, 1).await;
            if got
                .iter()
                .any(|a| a.period.as_ref().is_some_and(|p| p.end == end))
            {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{bsn}: {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn start(&mut self, a: &asg::Assignment, date: &str) {
        self.assignment
            .report_start_of_care(asg::ReportStartOfCareRequest {
                agb_code: a.agb_code.clone(),
                municipality: M.into(),
                assignment_number: a.number,
                start_date: date.into(),
            })
            .await
            .unwrap();
    }

    async fn import(&mut self, bsn: &str, start: &str, end: &str, started: bool) {
        self.assignment
            .import_assignment(asg::ImportAssignmentRequest {
                idempotency_key: format!("imp-{bsn}"),
                municipality: M.into(),
                bsn: bsn.into(),
                client_key: String::new(),
                agb_code: OLD.into(),
                subsegment_code: "IAJ-ON".into(),
                product_code: String::new(),
                period: period(start, end),
                size: None,
                budget_cents: 0,
                started,
            })
            .await
            .unwrap();
    }

    /// Waits until every service published its outbox and reporting applied every event.
    async fn settle(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut unpublished = 0i64;
            for db in [&self.registration_db, &self.access_db, &self.assignment_db] {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        .fetch_one(db)
                        .await
                        .unwrap();
                unpublished += n;
            }
            let status = self
                .reporting
                .get_status(pb::GetStatusRequest {})
                .await
                .unwrap()
                .into_inner();
            if unpublished == 0 && status.caught_up {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not settled: {unpublished} unpublished, {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn figures(&mut self) -> Figures {
        let r = &mut self.reporting;
        Figures {
            goals: r.goals(goals_request()).await.unwrap().into_inner(),
            monthly: r
                .monthly_figures(monthly_request())
                .await
                .unwrap()
                .into_inner(),
            handover: r
                .handover_progress(handover_request())
                .await
                .unwrap()
                .into_inner(),
            budget: r
                .budget_use(pb::BudgetUseRequest {
                    year: 2022,
                    municipality: String::new(),
                })
                .await
                .unwrap()
                .into_inner(),
            providers: r
                .providers_per_segment(pb::ProvidersPerSegmentRequest {
                    date: "2022-08-01".into(),
                    municipality: M.into(),
                })
                .await
                .unwrap()
                .into_inner(),
        }
    }
}

fn monthly_request() -> pb::MonthlyFiguresRequest {
    pb::MonthlyFiguresRequest {
        municipality: M.into(),
        segment_code: String::new(),
        from_month: "2022-06".into(),
        to_month: "2023-03".into(),
    }
}

const TODAY: &str = "2022-07-15";

fn handover_request() -> pb::HandoverProgressRequest {
    pb::HandoverProgressRequest {
        deadline: "2023-01-01".into(),
        as_of: TODAY.into(),
    }
}

fn goals_request() -> pb::GoalsRequest {
    pb::GoalsRequest {
        municipality: M.into(),
        from_month: "2022-06".into(),
        to_month: "2023-03".into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Figures {
    goals: pb::GoalsResponse,
    monthly: pb::MonthlyFiguresResponse,
    handover: pb::HandoverProgressResponse,
    budget: pb::BudgetUseResponse,
    providers: pb::ProvidersPerSegmentResponse,
}

// --- the source of truth: direct counts over the services' own databases ---

struct SourceAssignment {
    client_key: String,
    agb: String,
    segment: String,
    subsegment: String,
    start: NaiveDate,
    end: Option<NaiveDate>,
    variant: String,
    volume: Option<i32>,
    unit: Option<String>,
    frequency: Option<String>,
    assigned_on: NaiveDate,
    started_on: Option<NaiveDate>,
    stopped_on: Option<NaiveDate>,
    product: Option<String>,
    replaces: Option<i64>,
}

async fn source_assignments(db: &PgPool) -> Vec<SourceAssignment> {
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

struct SourceCase {
    law: String,
    reported_on: Option<NaiveDate>,
    applied_on: Option<NaiveDate>,
    decision_due: Option<NaiveDate>,
    decided_on: Option<NaiveDate>,
}

/// granted product id -> its case, from access' database.
async fn source_cases(db: &PgPool) -> HashMap<String, SourceCase> {
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
async fn expected_goals(access_db: &PgPool, assignments: &[SourceAssignment]) -> pb::GoalsRow {
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

fn ym(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn months() -> Vec<(String, NaiveDate, NaiveDate)> {
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

type Key = (String, String, String, String); // segment, subsegment, agb, month

#[derive(Default, Debug, PartialEq)]
struct Expected {
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

fn lead(v: &[i64]) -> pb::LeadTime {
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

fn expected_monthly(
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

fn check_monthly(got: &pb::MonthlyFiguresResponse, expected: &BTreeMap<Key, Expected>) {
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

#[tokio::test]
async fn every_figure_equals_a_direct_count_over_the_source_data() {
    let mut s = spawn_stack().await;
    s.load_contracts().await;

    // existing care of OLD (contract ended 2022-06-30), imported before the handover
    let old_clients = [bsn(1), bsn(2), bsn(3)];
    s.import(&old_clients[0], "2021-03-01", "2023-02-28", true)
        .await;
    s.import(&old_clients[1], "2021-03-01", "", true).await;
    s.import(&old_clients[2], "2021-06-01", "2023-06-30", false)
        .await;

    // decisions in both laws; the first youth decision is late (applied 2022-05-01, due 06-26)
    let (ya, yb, yc, wa) = (bsn(11), bsn(12), bsn(13), bsn(21));
    let youth = |start: &str, preferred: &str| acc::ProductToGrant {
        subsegment_code: "IAJ-ON".into(),
        result: "Zelfstandig naar school".into(),
        goal: acc::Goal::Participation as i32,
        period: period(start, "2023-01-31"),
        preferred_provider_agb: preferred.into(),
        ..Default::default()
    };
    s.youth(&ya, "2022-05-01", "2022-07-04", youth("2022-07-04", P1))
        .await;
    s.youth(&yb, "2022-06-20", "2022-07-05", youth("2022-07-05", P2))
        .await;
    s.youth(&yc, "2022-07-01", "2022-07-06", youth("2022-07-06", ""))
        .await;
    s.wmo(
        &wa,
        "2022-06-01",
        "2022-07-04",
        acc::ProductToGrant {
            subsegment_code: "WIO-PV".into(),
            product_code: "PV01".into(),
            result: "Zelfstandig wassen en aankleden".into(),
            goal: acc::Goal::TimelyLastingResult as i32,
            period: period("2022-07-04", "2022-12-31"),
            volume: 3,
            unit: "04".into(),
            frequency: "2".into(),
            preferred_provider_agb: PV1.into(),
            ..Default::default()
        },
    )
    .await;

    // starts of care: on time, on the due day, late (after 5 working days)
    let a = s.assignments_of(&ya, 1).await.remove(0);
    s.start(&a, "2022-07-05").await;
    let b = s.assignments_of(&yb, 1).await.remove(0);
    s.start(&b, "2022-07-20").await;
    // C starts on the last day allowed (2022-07-06 + 5 working days)
    let c = s.assignments_of(&yc, 1).await.remove(0);
    assert_eq!(c.period.as_ref().unwrap().start, "2022-07-06");
    s.start(&c, "2022-07-13").await;
    let w = s.assignments_of(&wa, 1).await.remove(0);
    s.start(&w, "2022-07-06").await;
    // care of A stops early
    s.assignment
        .report_stop_of_care(asg::ReportStopOfCareRequest {
            agb_code: a.agb_code.clone(),
            municipality: M.into(),
            assignment_number: a.number,
            end_date: "2022-09-30".into(),
            end_reason: "38".into(),
        })
        .await
        .unwrap();

    // the handover: OLD's clients get contracted providers from 2022-07-01
    s.clock.set(d("2022-07-01"));
    let run = s
        .assignment
        .run_handover(asg::RunHandoverRequest {
            as_of: "2022-07-01".into(),
            municipality: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.newly_arranged, 3, "{run:?}");
    let replaced = s.assignments_of(&old_clients[0], 2).await;
    let new = replaced
        .iter()
        .find(|x| x.replaces_number != 0)
        .unwrap()
        .clone();
    s.start(&new, "2022-07-07").await;
    s.clock.set(d(TODAY));

    // scaling down: WA's product is ended early (2022-12-31 -> 2022-11-30); YB's is extended,
    // which is no scaling down
    let product_of = |subsegment: &'static str, client: String| {
        let db = s.access_db.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT id::text FROM products WHERE subsegment_code = $1 AND client_key = $2",
            )
            .bind(subsegment)
            .bind(client)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    let wa_product = product_of("WIO-PV", key_of(&wa)).await;
    let yb_product = product_of("IAJ-ON", key_of(&yb)).await;
    for (product_id, amendment, new_end) in [
        (wa_product, acc::Amendment::End, "2022-11-30"),
        (yb_product, acc::Amendment::Extend, "2023-06-30"),
    ] {
        s.access
            .amend_product(acc::AmendProductRequest {
                product_id,
                amendment: amendment as i32,
                date: TODAY.into(),
                new_end: new_end.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    // assignment takes the amendments from access' stream before reporting's view is compared
    s.wait_for_end(&wa, "2022-11-30").await;
    s.wait_for_end(&yb, "2023-06-30").await;

    s.settle().await;
    let figures = s.figures().await;

    // --- monthly figures against the source databases ---
    let source = source_assignments(&s.assignment_db).await;
    let cases = source_cases(&s.access_db).await;
    let expected = expected_monthly(&source, &cases);
    check_monthly(&figures.monthly, &expected);
    // the scenario exercises what it should
    let sum =
        |f: fn(&pb::MonthlyFiguresRow) -> u32| figures.monthly.rows.iter().map(f).sum::<u32>();
    assert_eq!(sum(|r| r.decisions_late), 1);
    assert_eq!(
        sum(|r| r.starts_late),
        1,
        "B started 2022-07-20, due 2022-07-12"
    );
    assert!(
        sum(|r| r.ended_clients) >= 2,
        "A stopped, OLD's first client handed over"
    );
    assert!(figures.monthly.rows.iter().any(|r| !r.pxq.is_empty()));

    // --- the goals against access' and assignment's databases ---
    let expected = expected_goals(&s.access_db, &source).await;
    assert_eq!(figures.goals.rows, vec![expected.clone()]);
    assert_eq!(
        (
            figures.goals.from_month.as_str(),
            figures.goals.to_month.as_str()
        ),
        ("2022-06", "2023-03")
    );
    // the scenario exercises what it should: 3 Participation, 1 TimelyLastingResult; one late
    // decision of four; B's late start; WA's product ended early
    let granted: Vec<u32> = expected.goals.iter().map(|g| g.granted_products).collect();
    assert_eq!(granted, vec![1, 0, 3, 0, 0, 0]);
    assert_eq!((expected.decisions, expected.decisions_in_time), (4, 3));
    assert_eq!(expected.decisions_in_time_pct, 75.0);
    assert_eq!(
        expected.starts - expected.starts_in_time,
        sum(|r| r.starts_late),
        "the rule of starts_late"
    );
    assert!(expected.starts >= 5, "{expected:?}");
    assert_eq!(expected.scaled_down, 1);

    // --- handover progress equals assignment's own report ---
    let theirs = s
        .assignment
        .handover_progress(asg::HandoverProgressRequest {
            deadline: "2023-01-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let ours: Vec<_> = figures
        .handover
        .rows
        .iter()
        .map(|r| {
            (
                r.municipality.clone(),
                r.segment_code.clone(),
                r.handed_over,
                r.waiting_for_start,
                r.not_arranged,
            )
        })
        .collect();
    let theirs: Vec<_> = theirs
        .rows
        .iter()
        .map(|r| {
            (
                r.municipality.clone(),
                r.segment_code.clone(),
                r.handed_over,
                r.waiting_for_start,
                r.not_arranged,
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(ours, vec![(M.to_string(), "IAJ".to_string(), 1, 2, 0)]);

    // --- budget use against registration's budgets and assignment's clients ---
    let budgets: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT c.agb_code, c.segment_code, b.amount_cents FROM contract_budgets b
         JOIN contracts c ON c.id = b.contract_id WHERE b.year = 2022 AND b.municipality = $1
         ORDER BY 1",
    )
    .bind(M)
    .fetch_all(&s.registration_db)
    .await
    .unwrap();
    assert_eq!(budgets.len(), 3);
    assert_eq!(figures.budget.rows.len(), budgets.len());
    for (row, (agb, seg, amount)) in figures.budget.rows.iter().zip(&budgets) {
        assert_eq!(
            (&row.agb_code, &row.segment_code, row.budget_cents),
            (agb, seg, *amount)
        );
        let clients: BTreeSet<&str> = source
            .iter()
            .filter(|a| {
                &a.agb == agb
                    && &a.segment == seg
                    && a.started_on.is_some_and(|s| s <= d("2022-12-31"))
                    && a.stopped_on.or(a.end).is_none_or(|e| e >= d("2022-01-01"))
            })
            .map(|a| a.client_key.as_str())
            .collect();
        assert_eq!(row.clients_served as usize, clients.len(), "{agb}");
        let n = clients.len() as i64;
        let cost = if n == 0 { 0 } else { (amount + n / 2) / n };
        assert_eq!(row.cost_per_client_cents, cost, "{agb}");
    }
    assert!(figures.budget.rows.iter().any(|r| r.clients_served > 0));

    // --- providers per segment against registration's ListContracts ---
    let contracts = s
        .registration
        .list_contracts(reg::ListContractsRequest {
            active_on: "2022-08-01".into(),
            municipality: M.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .contracts;
    let mut per_segment: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in contracts {
        per_segment
            .entry(c.segment_code)
            .or_default()
            .insert(c.agb_code);
    }
    let ours: BTreeMap<String, BTreeSet<String>> = figures
        .providers
        .rows
        .iter()
        .map(|r| {
            assert_eq!(r.providers as usize, r.agb_codes.len());
            (
                r.segment_code.clone(),
                r.agb_codes.iter().cloned().collect(),
            )
        })
        .collect();
    assert_eq!(ours, per_segment);
    assert_eq!(ours["IAJ"].len(), 3, "OLD's contract ended");

    // --- CSV: a header line, the same numbers, no BSN ---
    let mut all_csv = String::new();
    for report in [
        pb::export_csv_request::Report::MonthlyFigures(monthly_request()),
        pb::export_csv_request::Report::HandoverProgress(handover_request()),
        pb::export_csv_request::Report::BudgetUse(pb::BudgetUseRequest {
            year: 2022,
            municipality: String::new(),
        }),
        pb::export_csv_request::Report::ProvidersPerSegment(pb::ProvidersPerSegmentRequest {
            date: "2022-08-01".into(),
            municipality: M.into(),
        }),
        pb::export_csv_request::Report::Goals(goals_request()),
    ] {
        let out = s
            .reporting
            .export_csv(pb::ExportCsvRequest {
                report: Some(report),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(out.filename.ends_with(".csv"));
        all_csv.push_str(&String::from_utf8(out.csv).unwrap());
    }
    let monthly_csv = reporting::csv::monthly(&figures.monthly);
    assert!(
        all_csv.starts_with(&monthly_csv),
        "the export carries the gRPC figures"
    );
    let lines: Vec<&str> = monthly_csv.lines().collect();
    assert!(
        lines[0].starts_with(
            "municipality,segment_code,subsegment_code,agb_code,month,clients_in_care"
        )
    );
    assert_eq!(lines.len(), figures.monthly.rows.len() + 1);
    for (line, row) in lines[1..].iter().zip(&figures.monthly.rows) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[4], row.month);
        assert_eq!(f[5].parse::<u32>().unwrap(), row.clients_in_care);
        assert_eq!(f[6].parse::<u32>().unwrap(), row.new_clients);
        assert_eq!(f[7].parse::<u32>().unwrap(), row.ended_clients);
        assert_eq!(f[17].parse::<u32>().unwrap(), row.decisions_late);
        assert_eq!(f[18].parse::<u32>().unwrap(), row.starts_late);
    }
    let goals_csv = reporting::csv::goals(&figures.goals);
    assert!(
        all_csv.ends_with(&goals_csv),
        "the goals export carries the gRPC figures"
    );
    let lines: Vec<&str> = goals_csv.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        "from_month,to_month,municipality,granted_timely_lasting_result,granted_meaningful_life,\
         granted_participation,granted_flexible_ambulant,granted_resident_satisfaction,\
         granted_chain_satisfaction,decisions,decisions_in_time,decisions_in_time_pct,starts,\
         starts_in_time,starts_in_time_pct,scaled_down"
    );
    let g = &figures.goals.rows[0];
    assert_eq!(
        lines[1],
        format!(
            "2022-06,2023-03,{M},1,0,3,0,0,0,4,3,75.0,{},{},{:.1},1",
            g.starts, g.starts_in_time, g.starts_in_time_pct
        )
    );
    let everyone: Vec<String> = old_clients
        .iter()
        .chain([&ya, &yb, &yc, &wa])
        .cloned()
        .collect();
    for b in &everyone {
        assert!(!all_csv.contains(b.as_str()), "BSN {b} in a report");
        assert!(
            !all_csv.contains(&key_of(b)),
            "client key of {b} in a report"
        );
    }
    let proto_text = format!("{figures:?}");
    for b in &everyone {
        assert!(!proto_text.contains(b.as_str()) && !proto_text.contains(&key_of(b)));
    }
    // nor in reporting's own database
    let dump: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(t::text, '|'), '') FROM (
            SELECT a::text AS t FROM assignments a UNION ALL SELECT c::text FROM cases c
            UNION ALL SELECT p::text FROM granted_products p) x",
    )
    .fetch_one(&s.reporting_db)
    .await
    .unwrap();
    for b in &everyone {
        assert!(
            !dump.contains(b.as_str()),
            "BSN {b} in reporting's database"
        );
    }

    // --- a redelivered event has no second effect; a rebuild gives the same figures ---
    let rebuilt = s
        .reporting
        .rebuild(pb::RebuildRequest { timeout_secs: 30 })
        .await
        .unwrap()
        .into_inner();
    assert!(rebuilt.caught_up, "{rebuilt:?}");
    assert_eq!(rebuilt.assignments as usize, source.len());
    assert_eq!(rebuilt.contracts, 5);
    assert_eq!(rebuilt.budgets, 6);
    assert_eq!(rebuilt.cases, 4);
    assert_eq!(rebuilt.granted_products, 4);
    assert!(rebuilt.events_applied > 0);
    let again = s.figures().await;
    assert_eq!(again, figures);
}

#[tokio::test]
async fn goals_reject_a_bad_month_naming_the_field() {
    let mut s = spawn_stack().await;
    let err = s
        .reporting
        .goals(pb::GoalsRequest {
            municipality: M.into(),
            from_month: "2022-13".into(),
            to_month: "2023-03".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("from_month"), "{err:?}");
    assert!(!err.message().contains("to_month"), "{err:?}");
    // the same through the export
    let err = s
        .reporting
        .export_csv(pb::ExportCsvRequest {
            report: Some(pb::export_csv_request::Report::Goals(pb::GoalsRequest {
                municipality: String::new(),
                from_month: "2022-06".into(),
                to_month: "March".into(),
            })),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("to_month"), "{err:?}");
}
