//! The facts the read model keeps, and how they are taken from the events' payloads. No I/O.
//!
//! Only the pseudonymous client key is kept (to count distinct clients); a report never shows it.

use chrono::NaiveDate;
use rz_proto::access::v1 as acc;
use rz_proto::assignment::v1 as asg;
use rz_proto::registration::v1 as reg;
use rz_proto::types::v1 as types;

/// A decision of a case: (municipality, decided_on, decision_due).
pub type Decision = (String, NaiveDate, Option<NaiveDate>);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaseFact {
    pub case_id: String,
    pub municipality: String,
    pub client_key: String,
    pub law: String,
    pub status: String,
    pub reported_on: Option<NaiveDate>,
    pub investigation_due: Option<NaiveDate>,
    pub investigated_on: Option<NaiveDate>,
    pub applied_on: Option<NaiveDate>,
    pub decision_due: Option<NaiveDate>,
    pub decided_on: Option<NaiveDate>,
}

impl CaseFact {
    /// The start of the request: the Wmo melding, else the application.
    pub fn requested_on(&self) -> Option<NaiveDate> {
        if self.law == "wmo" {
            self.reported_on.or(self.applied_on)
        } else {
            self.applied_on.or(self.reported_on)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductFact {
    pub product_id: String,
    pub case_id: String,
    pub municipality: String,
    pub client_key: String,
    pub law: String,
    pub segment_code: String,
    pub subsegment_code: String,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub variant: String,
    pub budget_cents: i64,
    pub volume: i64,
    pub unit: String,
    pub frequency: String,
    pub status: String,
    pub version: i64,
    /// Access' goal code ([`GOALS`]); empty when the event named none.
    pub goal: String,
}

/// The region's six goals, in the order of `regiozorg.access.v1.Goal`, by access' codes.
pub const GOALS: [&str; 6] = [
    "timely_lasting_result",
    "meaningful_life",
    "participation",
    "flexible_ambulant",
    "resident_satisfaction",
    "chain_satisfaction",
];

/// A granted product as the goals report sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoalProduct {
    pub municipality: String,
    pub goal: String,
    /// The decision of its case (`None` while the case is unknown to the read model).
    pub decided_on: Option<NaiveDate>,
    /// The end set by its last END amendment; `None` when it was never ended early.
    pub scaled_down_to: Option<NaiveDate>,
}

pub fn goal_code(g: i32) -> String {
    match acc::Goal::try_from(g) {
        Ok(acc::Goal::TimelyLastingResult) => GOALS[0],
        Ok(acc::Goal::MeaningfulLife) => GOALS[1],
        Ok(acc::Goal::Participation) => GOALS[2],
        Ok(acc::Goal::FlexibleAmbulant) => GOALS[3],
        Ok(acc::Goal::ResidentSatisfaction) => GOALS[4],
        Ok(acc::Goal::ChainSatisfaction) => GOALS[5],
        _ => "",
    }
    .to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssignmentFact {
    pub municipality: String,
    pub number: i64,
    pub client_key: String,
    pub agb_code: String,
    pub law: String,
    pub segment_code: String,
    pub subsegment_code: String,
    pub period_start: NaiveDate,
    pub period_end: Option<NaiveDate>,
    pub variant: String,
    pub volume: i64,
    pub unit: String,
    pub frequency: String,
    pub budget_cents: i64,
    pub status: String,
    pub assigned_on: NaiveDate,
    pub started_on: Option<NaiveDate>,
    pub stopped_on: Option<NaiveDate>,
    pub granted_product_id: String,
    pub replaces_number: Option<i64>,
    pub replaced_by_number: Option<i64>,
}

impl AssignmentFact {
    /// The last day of care: the stop of care, else the period's end; `None` while open-ended.
    pub fn care_end(&self) -> Option<NaiveDate> {
        self.stopped_on.or(self.period_end)
    }

    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "issued" | "started")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContractFact {
    pub contract_id: String,
    pub agb_code: String,
    pub segment_code: String,
    pub subsegments: Vec<String>,
    pub municipalities: Vec<String>,
    pub period_start: NaiveDate,
    pub period_end: Option<NaiveDate>,
}

impl ContractFact {
    pub fn active_on(&self, d: NaiveDate) -> bool {
        self.period_start <= d && self.period_end.is_none_or(|e| d <= e)
    }

    pub fn covers_municipality(&self, m: &str) -> bool {
        self.municipalities.is_empty() || self.municipalities.iter().any(|x| x == m)
    }

    /// Whether it covers `subsegment` of `segment` (no subsegments listed: the whole segment).
    pub fn covers(&self, segment: &str, subsegment: &str) -> bool {
        if self.subsegments.is_empty() {
            self.segment_code == segment
        } else {
            self.subsegments.iter().any(|s| s == subsegment)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetFact {
    pub municipality: String,
    pub year: i32,
    pub amount_cents: i64,
}

pub fn law_code(l: i32) -> String {
    match types::Law::try_from(l) {
        Ok(types::Law::Jeugdwet) => "jeugdwet",
        Ok(types::Law::Wmo) => "wmo",
        _ => "",
    }
    .to_owned()
}

pub fn variant_code(v: i32) -> String {
    match types::ExecutionVariant::try_from(v) {
        Ok(types::ExecutionVariant::Taakgericht) => "taakgericht",
        Ok(types::ExecutionVariant::Outputgericht) => "outputgericht",
        Ok(types::ExecutionVariant::Inspanningsgericht) => "inspanningsgericht",
        _ => "",
    }
    .to_owned()
}

fn case_status(s: i32) -> String {
    match acc::CaseStatus::try_from(s) {
        Ok(acc::CaseStatus::Reported) => "reported",
        Ok(acc::CaseStatus::Investigated) => "investigated",
        Ok(acc::CaseStatus::Applied) => "applied",
        Ok(acc::CaseStatus::Granted) => "granted",
        Ok(acc::CaseStatus::Refused) => "refused",
        _ => "",
    }
    .to_owned()
}

fn assignment_status(s: i32) -> String {
    match asg::AssignmentStatus::try_from(s) {
        Ok(asg::AssignmentStatus::Issued) => "issued",
        Ok(asg::AssignmentStatus::Started) => "started",
        Ok(asg::AssignmentStatus::Stopped) => "stopped",
        Ok(asg::AssignmentStatus::Ended) => "ended",
        Ok(asg::AssignmentStatus::Withdrawn) => "withdrawn",
        _ => "",
    }
    .to_owned()
}

fn period(p: Option<&types::Period>) -> Result<(Option<NaiveDate>, Option<NaiveDate>), String> {
    match p {
        None => Ok((None, None)),
        Some(p) => Ok((opt_date(&p.start)?, opt_date(&p.end)?)),
    }
}

pub fn case_fact(c: &acc::Case, municipality: &str) -> Result<CaseFact, String> {
    if c.id.is_empty() {
        return Err("case without an id".into());
    }
    Ok(CaseFact {
        case_id: c.id.clone(),
        municipality: municipality.to_owned(),
        client_key: c.client_key.clone(),
        law: law_code(c.law),
        status: case_status(c.status),
        reported_on: opt_date(&c.reported_on)?,
        investigation_due: opt_date(&c.investigation_due)?,
        investigated_on: opt_date(&c.investigated_on)?,
        applied_on: opt_date(&c.applied_on)?,
        decision_due: opt_date(&c.decision_due)?,
        decided_on: opt_date(&c.decided_on)?,
    })
}

pub fn product_fact(
    p: &acc::GrantedProduct,
    case: Option<&acc::Case>,
    municipality: &str,
) -> Result<ProductFact, String> {
    if p.id.is_empty() {
        return Err("granted product without an id".into());
    }
    let (start, end) = period(p.period.as_ref())?;
    let client_key = if p.client_key.is_empty() {
        case.map(|c| c.client_key.clone()).unwrap_or_default()
    } else {
        p.client_key.clone()
    };
    let case_id = if p.case_id.is_empty() {
        case.map(|c| c.id.clone()).unwrap_or_default()
    } else {
        p.case_id.clone()
    };
    Ok(ProductFact {
        product_id: p.id.clone(),
        case_id,
        municipality: municipality.to_owned(),
        client_key,
        law: law_code(if p.law == 0 {
            case.map(|c| c.law).unwrap_or_default()
        } else {
            p.law
        }),
        segment_code: p.segment_code.clone(),
        subsegment_code: p.subsegment_code.clone(),
        period_start: start,
        period_end: end,
        variant: variant_code(p.execution_variant),
        budget_cents: p.budget_cents,
        volume: i64::from(p.volume),
        unit: p.unit.clone(),
        frequency: p.frequency.clone(),
        status: p.status.clone(),
        version: i64::from(p.version),
        goal: goal_code(p.goal),
    })
}

pub fn assignment_fact(a: &asg::Assignment) -> Result<AssignmentFact, String> {
    if a.number == 0 || a.municipality.is_empty() {
        return Err("assignment without municipality and number".into());
    }
    let (start, end) = period(a.period.as_ref())?;
    let start = start.ok_or_else(|| format!("assignment {} has no start", a.number))?;
    let assigned_on = opt_date(&a.assigned_on)?.unwrap_or(start);
    let size = a.size.clone().unwrap_or_default();
    let link = |n: u32| (n != 0).then_some(i64::from(n));
    Ok(AssignmentFact {
        municipality: a.municipality.clone(),
        number: i64::from(a.number),
        client_key: a.client_key.clone(),
        agb_code: a.agb_code.clone(),
        law: law_code(a.law),
        segment_code: a.segment_code.clone(),
        subsegment_code: a.subsegment_code.clone(),
        period_start: start,
        period_end: end,
        variant: variant_code(a.execution_variant),
        volume: i64::from(size.volume),
        unit: size.unit,
        frequency: size.frequency,
        budget_cents: a.budget_cents,
        status: assignment_status(a.status),
        assigned_on,
        started_on: opt_date(&a.started_on)?,
        stopped_on: opt_date(&a.stopped_on)?,
        granted_product_id: a.granted_product_id.clone(),
        replaces_number: link(a.replaces_number),
        replaced_by_number: link(a.replaced_by_number),
    })
}

pub fn contract_fact(c: &reg::Contract) -> Result<(ContractFact, Vec<BudgetFact>), String> {
    if c.id.is_empty() {
        return Err("contract without an id".into());
    }
    let (start, end) = period(c.period.as_ref())?;
    let start = start.ok_or_else(|| format!("contract {} has no start", c.id))?;
    let budgets = c
        .budgets
        .iter()
        .map(|b| BudgetFact {
            municipality: b.municipality.clone(),
            year: b.year,
            amount_cents: b.amount_cents,
        })
        .collect();
    Ok((
        ContractFact {
            contract_id: c.id.clone(),
            agb_code: c.agb_code.clone(),
            segment_code: c.segment_code.clone(),
            subsegments: c.subsegment_codes.clone(),
            municipalities: c.municipalities.clone(),
            period_start: start,
            period_end: end,
        },
        budgets,
    ))
}

/// Parses an optional `YYYY-MM-DD` of an event; empty means unknown.
pub fn opt_date(s: &str) -> Result<Option<NaiveDate>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Some)
        .map_err(|e| format!("date `{s}`: {e}"))
}
