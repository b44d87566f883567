//! A scripted scenario through the real services (registration, access for Doetinchem 0222 and
//! assignment, each in-process with a fresh database, one NATS namespace of their own), with
//! reporting consuming their streams. Every figure reporting gives is compared with a direct
//! count over the source services' own databases; a rebuild gives the same figures; the CSV export
//! carries the same numbers and no BSN.//!
//! - `stack`: the services, the scenario's steps and waits, and the requests for the figures;
//! - `source`: the source of truth, direct counts over the services' own databases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod source;
mod stack;

use std::collections::{BTreeMap, BTreeSet};

use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use rz_proto::registration::v1 as reg;
use rz_proto::reporting::v1 as pb;
use rz_stack::{M, P1, P2, PV1, bsn, d, key_of, pxq_product, youth_product};

use source::{check_monthly, expected_goals, expected_monthly, source_assignments, source_cases};
use stack::{TODAY, goals_request, handover_request, monthly_request, spawn_stack};

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
    let youth = |start: &str, preferred: &str| youth_product(start, "2023-01-31", preferred);
    s.youth(&ya, "2022-05-01", "2022-07-04", youth("2022-07-04", P1))
        .await;
    s.youth(&yb, "2022-06-20", "2022-07-05", youth("2022-07-05", P2))
        .await;
    s.youth(&yc, "2022-07-01", "2022-07-06", youth("2022-07-06", ""))
        .await;
    let personal_care = pxq_product("2022-07-04", "2022-12-31", PV1);
    s.wmo(&wa, "2022-06-01", "2022-07-04", personal_care).await;

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
    s.provider(&a.agb_code)
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
    // reporting's rows and assignment's are different messages with the same fields
    macro_rules! progress {
        ($rows:expr) => {
            $rows
                .iter()
                .map(|r| {
                    let (m, segment) = (r.municipality.clone(), r.segment_code.clone());
                    (
                        m,
                        segment,
                        r.handed_over,
                        r.waiting_for_start,
                        r.not_arranged,
                    )
                })
                .collect::<Vec<_>>()
        };
    }
    let ours = progress!(figures.handover.rows);
    let theirs = progress!(theirs.rows);
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
