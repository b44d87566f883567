//! The reports as CSV: UTF-8, comma-separated, one header line, `\n` line ends, fields quoted when
//! they hold a comma, a quote or a line break. Built from the same responses the gRPC calls
//! return, so the numbers are the same.

use rz_proto::reporting::v1 as pb;

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn line(out: &mut String, fields: &[String]) {
    let joined: Vec<String> = fields.iter().map(|f| field(f)).collect();
    out.push_str(&joined.join(","));
    out.push('\n');
}

fn lead(l: Option<&pb::LeadTime>) -> [String; 3] {
    let l = l.cloned().unwrap_or_default();
    [
        l.count.to_string(),
        format!("{:.1}", l.avg_days),
        l.p90_days.to_string(),
    ]
}

pub const MONTHLY_HEADER: &[&str] = &[
    "municipality",
    "segment_code",
    "subsegment_code",
    "agb_code",
    "month",
    "clients_in_care",
    "new_clients",
    "ended_clients",
    "request_to_decision_count",
    "request_to_decision_avg_days",
    "request_to_decision_p90_days",
    "decision_to_assignment_count",
    "decision_to_assignment_avg_days",
    "decision_to_assignment_p90_days",
    "assignment_to_start_count",
    "assignment_to_start_avg_days",
    "assignment_to_start_p90_days",
    "decisions_late",
    "starts_late",
    "pxq",
];

pub fn monthly(r: &pb::MonthlyFiguresResponse) -> String {
    let mut out = String::new();
    line(&mut out, &header(MONTHLY_HEADER));
    for row in &r.rows {
        let mut f = vec![
            row.municipality.clone(),
            row.segment_code.clone(),
            row.subsegment_code.clone(),
            row.agb_code.clone(),
            row.month.clone(),
            row.clients_in_care.to_string(),
            row.new_clients.to_string(),
            row.ended_clients.to_string(),
        ];
        f.extend(lead(row.request_to_decision.as_ref()));
        f.extend(lead(row.decision_to_assignment.as_ref()));
        f.extend(lead(row.assignment_to_start.as_ref()));
        f.push(row.decisions_late.to_string());
        f.push(row.starts_late.to_string());
        // unit/frequency:assignments:volume, separated by spaces
        f.push(
            row.pxq
                .iter()
                .map(|p| format!("{}/{}:{}:{}", p.unit, p.frequency, p.assignments, p.volume))
                .collect::<Vec<_>>()
                .join(" "),
        );
        line(&mut out, &f);
    }
    out
}

pub const HANDOVER_HEADER: &[&str] = &[
    "deadline",
    "municipality",
    "segment_code",
    "handed_over",
    "handed_over_late",
    "waiting_for_start",
    "not_arranged",
];

pub fn handover(r: &pb::HandoverProgressResponse) -> String {
    let mut out = String::new();
    line(&mut out, &header(HANDOVER_HEADER));
    for row in &r.rows {
        line(
            &mut out,
            &[
                r.deadline.clone(),
                row.municipality.clone(),
                row.segment_code.clone(),
                row.handed_over.to_string(),
                row.handed_over_late.to_string(),
                row.waiting_for_start.to_string(),
                row.not_arranged.to_string(),
            ],
        );
    }
    out
}

pub const BUDGET_HEADER: &[&str] = &[
    "year",
    "agb_code",
    "municipality",
    "segment_code",
    "budget_cents",
    "clients_served",
    "cost_per_client_cents",
];

pub fn budget(r: &pb::BudgetUseResponse) -> String {
    let mut out = String::new();
    line(&mut out, &header(BUDGET_HEADER));
    for row in &r.rows {
        line(
            &mut out,
            &[
                row.year.to_string(),
                row.agb_code.clone(),
                row.municipality.clone(),
                row.segment_code.clone(),
                row.budget_cents.to_string(),
                row.clients_served.to_string(),
                row.cost_per_client_cents.to_string(),
            ],
        );
    }
    out
}

pub const PROVIDERS_HEADER: &[&str] = &["date", "segment_code", "providers", "agb_codes"];

pub fn providers(r: &pb::ProvidersPerSegmentResponse) -> String {
    let mut out = String::new();
    line(&mut out, &header(PROVIDERS_HEADER));
    for row in &r.rows {
        line(
            &mut out,
            &[
                r.date.clone(),
                row.segment_code.clone(),
                row.providers.to_string(),
                row.agb_codes.join(" "),
            ],
        );
    }
    out
}

pub const GOALS_HEADER: &[&str] = &[
    "from_month",
    "to_month",
    "municipality",
    "granted_timely_lasting_result",
    "granted_meaningful_life",
    "granted_participation",
    "granted_flexible_ambulant",
    "granted_resident_satisfaction",
    "granted_chain_satisfaction",
    "decisions",
    "decisions_in_time",
    "decisions_in_time_pct",
    "starts",
    "starts_in_time",
    "starts_in_time_pct",
    "scaled_down",
];

/// One line per municipality; the per-goal columns follow the goals' order in the row (the
/// enum's order, as [`crate::facts::GOALS`]).
pub fn goals(r: &pb::GoalsResponse) -> String {
    let mut out = String::new();
    line(&mut out, &header(GOALS_HEADER));
    for row in &r.rows {
        let mut f = vec![
            r.from_month.clone(),
            r.to_month.clone(),
            row.municipality.clone(),
        ];
        for g in crate::facts::GOALS {
            let n = row
                .goals
                .iter()
                .find(|x| x.goal == g)
                .map(|x| x.granted_products)
                .unwrap_or_default();
            f.push(n.to_string());
        }
        f.extend([
            row.decisions.to_string(),
            row.decisions_in_time.to_string(),
            format!("{:.1}", row.decisions_in_time_pct),
            row.starts.to_string(),
            row.starts_in_time.to_string(),
            format!("{:.1}", row.starts_in_time_pct),
            row.scaled_down.to_string(),
        ]);
        line(&mut out, &f);
    }
    out
}

fn header(h: &[&str]) -> Vec<String> {
    h.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(field("abc"), "abc");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn handover_csv_has_a_header_and_a_line_per_row() {
        let r = pb::HandoverProgressResponse {
            deadline: "2023-01-01".into(),
            rows: vec![pb::HandoverProgressRow {
                municipality: "0222".into(),
                segment_code: "IAJ".into(),
                handed_over: 2,
                handed_over_late: 0,
                waiting_for_start: 1,
                not_arranged: 3,
            }],
        };
        assert_eq!(
            handover(&r),
            "deadline,municipality,segment_code,handed_over,handed_over_late,waiting_for_start,not_arranged\n\
             2023-01-01,0222,IAJ,2,0,1,3\n"
        );
    }
}
