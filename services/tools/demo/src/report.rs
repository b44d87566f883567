//! The demo's closing report: what the region's steering needs to see at the end of 2022, from
//! the reporting read model (built only from events) and the services' deadline lists.

use std::collections::BTreeMap;
use std::time::Duration;

use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use rz_proto::notification::v1 as ntf;
use rz_proto::reporting::v1 as rep;
use rz_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use tonic::transport::Channel;

use crate::{Args, Clients, Result, connect, status_msg};
use rz_workload::residents::MUNICIPALITIES;

pub async fn reporting(args: &Args) -> Result<ReportingServiceClient<Channel>> {
    Ok(ReportingServiceClient::new(
        connect(args, &args.reporting).await?,
    ))
}

fn name(code: &str) -> &str {
    match code {
        "0197" => "Aalten",
        "1859" => "Berkelland",
        "1876" => "Bronckhorst",
        "0222" => "Doetinchem",
        "1955" => "Montferland",
        "1586" => "Oost Gelre",
        "1509" => "Oude IJsselstreek",
        "0294" => "Winterswijk",
        other => other,
    }
}

/// The chain deadlines (assignment's) still open at the year's end, in every municipality.
async fn chain_deadlines(clients: &Clients) -> Result<Vec<asg::ChainDeadline>> {
    Ok(clients
        .assignment
        .clone()
        .list_chain_deadlines(asg::ListChainDeadlinesRequest {
            municipality: String::new(),
            as_of: "2022-12-31".into(),
        })
        .await
        .map_err(status_msg("ListChainDeadlines"))?
        .into_inner()
        .deadlines)
}

/// Waits (at most two minutes) until the provider systems have started the care they were
/// assigned, the open chain deadlines stop changing and the read model has caught up.
pub async fn wait_until_settled(args: &Args, clients: &Clients) -> Result<()> {
    let mut r = reporting(args).await?;
    let mut a = clients.assignment.clone();
    let mut last = usize::MAX;
    for _ in 0..240 {
        let waiting: u32 = a
            .handover_progress(asg::HandoverProgressRequest {
                deadline: "2023-01-01".into(),
            })
            .await
            .map_err(status_msg("HandoverProgress"))?
            .into_inner()
            .rows
            .iter()
            .map(|x| x.waiting_for_start)
            .sum();
        let open = chain_deadlines(clients).await?.len();
        let caught_up = r
            .get_status(rep::GetStatusRequest {})
            .await
            .map_err(status_msg("GetStatus"))?
            .into_inner()
            .caught_up;
        if waiting == 0 && caught_up && open == last {
            return Ok(());
        }
        last = open;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("   (the flows had not settled after two minutes; the figures below may lag)");
    Ok(())
}

#[derive(Default, Clone, Copy)]
struct Lead {
    n: u64,
    sum: f64,
}

impl Lead {
    fn add(&mut self, l: Option<&rep::LeadTime>) {
        if let Some(l) = l {
            self.n += u64::from(l.count);
            self.sum += l.avg_days * f64::from(l.count);
        }
    }
    fn show(self) -> String {
        if self.n == 0 {
            "-".into()
        } else {
            format!("{:.1}", self.sum / self.n as f64)
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Row {
    in_care: u64,
    new: u64,
    ended: u64,
    request_to_decision: Lead,
    decision_to_assignment: Lead,
    assignment_to_start: Lead,
    decisions_late: u64,
    starts_late: u64,
}

impl Row {
    fn add(&mut self, r: &rep::MonthlyFiguresRow, last_month: bool) {
        if last_month {
            self.in_care += u64::from(r.clients_in_care);
        }
        self.new += u64::from(r.new_clients);
        self.ended += u64::from(r.ended_clients);
        self.request_to_decision.add(r.request_to_decision.as_ref());
        self.decision_to_assignment
            .add(r.decision_to_assignment.as_ref());
        self.assignment_to_start.add(r.assignment_to_start.as_ref());
        self.decisions_late += u64::from(r.decisions_late);
        self.starts_late += u64::from(r.starts_late);
    }
    fn merge(&mut self, o: &Row) {
        self.in_care += o.in_care;
        self.new += o.new;
        self.ended += o.ended;
        for (a, b) in [
            (&mut self.request_to_decision, o.request_to_decision),
            (&mut self.decision_to_assignment, o.decision_to_assignment),
            (&mut self.assignment_to_start, o.assignment_to_start),
        ] {
            a.n += b.n;
            a.sum += b.sum;
        }
        self.decisions_late += o.decisions_late;
        self.starts_late += o.starts_late;
    }
    fn line(&self, label: &str) -> String {
        format!(
            "   {label:<26} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9} {:>6} {:>6}",
            self.in_care,
            self.new,
            self.ended,
            self.request_to_decision.show(),
            self.decision_to_assignment.show(),
            self.assignment_to_start.show(),
            self.decisions_late,
            self.starts_late
        )
    }
}

fn euros(cents: i64) -> String {
    let e = cents / 100;
    let s = e.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    format!("{}€ {out}", if e < 0 { "-" } else { "" })
}

pub async fn print(args: &Args, clients: &Clients) -> Result<()> {
    let mut r = reporting(args).await?;
    let monthly = r
        .monthly_figures(rep::MonthlyFiguresRequest {
            from_month: "2022-07".into(),
            to_month: "2022-12".into(),
            ..Default::default()
        })
        .await
        .map_err(status_msg("MonthlyFigures"))?
        .into_inner()
        .rows;
    let mut per: BTreeMap<(String, String), Row> = BTreeMap::new();
    for row in &monthly {
        per.entry((row.municipality.clone(), row.segment_code.clone()))
            .or_default()
            .add(row, row.month == "2022-12");
    }
    println!(
        "\n3. Clients in care and lead times per municipality and segment, July to December 2022\n   (in care: on 31 December; lead times: average days; late: decisions after their statutory term, starts of care more than 5 working days after the assignment's start)"
    );
    println!(
        "   {:<26} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9} {:>6} {:>6}",
        "municipality / segment",
        "in care",
        "new",
        "ended",
        "req->dec",
        "dec->asg",
        "asg->start",
        "late d",
        "late s"
    );
    let mut region = Row::default();
    let mut per_segment: BTreeMap<String, Row> = BTreeMap::new();
    for (code, _, _) in MUNICIPALITIES {
        let mut total = Row::default();
        let mut lines = Vec::new();
        for ((m, seg), row) in per.range((code.to_owned(), String::new())..) {
            if m != code {
                break;
            }
            lines.push(row.line(&format!("  {seg}")));
            total.merge(row);
            per_segment.entry(seg.clone()).or_default().merge(row);
        }
        println!("{}", total.line(&format!("{} ({code})", name(code))));
        for l in lines {
            println!("{l}");
        }
        region.merge(&total);
    }
    println!("   {}", "-".repeat(95));
    for (seg, row) in &per_segment {
        println!("{}", row.line(&format!("region {seg}")));
    }
    println!("{}", region.line("region, all segments"));

    // The handover.
    let progress = r
        .handover_progress(rep::HandoverProgressRequest {
            deadline: "2023-01-01".into(),
            as_of: "2022-12-31".into(),
        })
        .await
        .map_err(status_msg("HandoverProgress"))?
        .into_inner();
    println!(
        "\n4. The handover of the clients of providers without a new contract (deadline {})",
        progress.deadline
    );
    println!(
        "   {:<26} {:>11} {:>13} {:>17} {:>12}",
        "municipality", "handed over", "of which late", "waiting for start", "not arranged"
    );
    let mut hp: BTreeMap<String, [u32; 4]> = BTreeMap::new();
    for x in &progress.rows {
        let e = hp.entry(x.municipality.clone()).or_default();
        e[0] += x.handed_over;
        e[1] += x.handed_over_late;
        e[2] += x.waiting_for_start;
        e[3] += x.not_arranged;
    }
    let mut t = [0u32; 4];
    for (m, v) in &hp {
        println!(
            "   {:<26} {:>11} {:>13} {:>17} {:>12}",
            format!("{} ({m})", name(m)),
            v[0],
            v[1],
            v[2],
            v[3]
        );
        for i in 0..4 {
            t[i] += v[i];
        }
    }
    println!(
        "   {:<26} {:>11} {:>13} {:>17} {:>12}",
        "region", t[0], t[1], t[2], t[3]
    );

    // Budget use.
    let budget = r
        .budget_use(rep::BudgetUseRequest {
            year: 2022,
            municipality: String::new(),
        })
        .await
        .map_err(status_msg("BudgetUse"))?
        .into_inner()
        .rows;
    let mut seg_budget: BTreeMap<String, (i64, u64, u32)> = BTreeMap::new();
    for b in &budget {
        let e = seg_budget.entry(b.segment_code.clone()).or_default();
        e.0 += b.budget_cents;
        e.1 += u64::from(b.clients_served);
        e.2 += 1;
    }
    println!(
        "\n5. Lumpsum budgets 2022 (second half) against the clients served, per segment\n   {:<8} {:>16} {:>15} {:>16} {:>10}",
        "segment", "budget", "clients served", "cost per client", "budgets"
    );
    for (seg, (cents, served, n)) in &seg_budget {
        let per_client = if *served == 0 {
            "-".to_owned()
        } else {
            euros(*cents / *served as i64)
        };
        println!(
            "   {seg:<8} {:>16} {:>15} {:>16} {:>10}",
            euros(*cents),
            served,
            per_client,
            n
        );
    }

    // The region's goals, where the data can measure them.
    let goals = r
        .goals(rep::GoalsRequest {
            municipality: String::new(),
            from_month: "2022-07".into(),
            to_month: "2022-12".into(),
        })
        .await
        .map_err(status_msg("Goals"))?
        .into_inner()
        .rows;
    println!(
        "\n   The region's goals, July to December 2022 (satisfaction is not recorded by any service, so not reported)"
    );
    println!(
        "   {:<26} {:>15} {:>15} {:>11} {:>8} {:>8} {:>8} {:>8}",
        "municipality",
        "decided in time",
        "started in time",
        "scaled down",
        "lasting",
        "health",
        "partic.",
        "flexible"
    );
    for g in &goals {
        let products = |code: &str| {
            g.goals
                .iter()
                .find(|x| x.goal == code)
                .map(|x| x.granted_products)
                .unwrap_or(0)
        };
        println!(
            "   {:<26} {:>15} {:>15} {:>11} {:>8} {:>8} {:>8} {:>8}",
            format!("{} ({})", name(&g.municipality), g.municipality),
            format!("{:.1} % of {}", g.decisions_in_time_pct, g.decisions),
            format!("{:.1} % of {}", g.starts_in_time_pct, g.starts),
            g.scaled_down,
            products("timely_lasting_result"),
            products("meaningful_life"),
            products("participation"),
            products("flexible_ambulant")
        );
    }

    // Deadlines still open and late at the year's end.
    println!(
        "\n   Deadlines open and passed on 31 December 2022 (statutory: access; chain: assignment)"
    );
    println!(
        "   {:<26} {:>14} {:>10} {:>15} {:>16}",
        "municipality", "investigation", "decision", "start of care", "request answer"
    );
    let chain = chain_deadlines(clients).await?;
    for (code, _, _) in MUNICIPALITIES {
        let Some(mut ac) = clients.access.get(code).cloned() else {
            continue;
        };
        let statutory = ac
            .list_deadlines(acc::ListDeadlinesRequest {
                as_of: "2022-12-31".into(),
                within_days: 0,
            })
            .await
            .map_err(status_msg("ListDeadlines"))?
            .into_inner()
            .deadlines;
        let late = |step: &str| {
            statutory
                .iter()
                .filter(|d| d.late && d.step == step)
                .count()
        };
        let chain_late = |kind: &str| {
            chain
                .iter()
                .filter(|d| d.late && d.kind == kind && d.municipality == code)
                .count()
        };
        println!(
            "   {:<26} {:>14} {:>10} {:>15} {:>16}",
            format!("{} ({code})", name(code)),
            late("investigation"),
            late("decision"),
            chain_late("start_of_care"),
            chain_late("request_answer")
        );
    }
    Ok(())
}

/// Residents' letters and the staff alerts still open, per municipality, and one letter in full.
pub async fn letters_and_alerts(clients: &Clients) -> Result<()> {
    if clients.notification.is_none() {
        return Ok(());
    }
    println!(
        "\n   Residents' letters written, and staff alerts open on 31 December 2022 (notification)"
    );
    println!(
        "   {:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "municipality", "granted", "refused", "provider", "ending", "overdue", "upcoming"
    );
    let mut example = None;
    for (code, _, _) in MUNICIPALITIES {
        // Each municipality reads its own, with its own certificate.
        let Some(mut n) = clients.municipal_notification.get(code).cloned() else {
            continue;
        };
        let letters = n
            .list_letters(ntf::ListLettersRequest {
                municipality: code.into(),
                client_key: String::new(),
                limit: 1000,
            })
            .await
            .map_err(status_msg("ListLetters"))?
            .into_inner()
            .letters;
        let capped = letters.len() >= 1000;
        let count = |kind: &str| {
            let c = letters.iter().filter(|l| l.kind == kind).count();
            if capped {
                format!("{c}+")
            } else {
                c.to_string()
            }
        };
        if example.is_none() {
            example = letters
                .iter()
                .find(|l| l.kind == "decision_granted")
                .map(|l| l.text.clone());
        }
        let alerts = n
            .list_staff_alerts(ntf::ListStaffAlertsRequest {
                municipality: code.into(),
                states: vec![],
                limit: 1000,
            })
            .await
            .map_err(status_msg("ListStaffAlerts"))?
            .into_inner()
            .alerts;
        let state = |s: ntf::AlertState| alerts.iter().filter(|a| a.state() == s).count();
        println!(
            "   {:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            format!("{} ({code})", name(code)),
            count("decision_granted"),
            count("decision_refused"),
            count("provider_assigned"),
            count("indication_ending"),
            state(ntf::AlertState::Overdue),
            state(ntf::AlertState::Upcoming)
        );
    }
    if let Some(text) = example {
        println!("\n   One of the letters (a decision), as the resident receives it:\n");
        for line in text.lines() {
            println!("   | {line}");
        }
    }
    Ok(())
}
