//! A case (zaak) and the statutory clock.
//!
//! - Wmo: a request (melding) opens the case (REPORTED); the investigation is due within 6 weeks.
//!   When it is done (INVESTIGATED) the resident files the formal application (APPLIED); the
//!   decision is due within 2 weeks of it.
//! - Jeugdwet: the application opens the case (APPLIED); the decision is due within 8 weeks.
//!
//! The decision (beschikking) grants products (GRANTED) or refuses (REFUSED). Every step's date
//! must not lie before the previous step's.

use chrono::{Days, NaiveDate};
use rz_domain::{ClientKey, GemeenteCode, Law, Period, ProductCode};
use uuid::Uuid;

use super::AccessError;
use super::product::{GrantedProduct, ProductPlan};

pub const INVESTIGATION_DAYS: u64 = 6 * 7;
pub const WMO_DECISION_DAYS: u64 = 2 * 7;
pub const JEUGDWET_DECISION_DAYS: u64 = 8 * 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    Reported,
    Investigated,
    Applied,
    Granted,
    Refused,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 5] = [
        Self::Reported,
        Self::Investigated,
        Self::Applied,
        Self::Granted,
        Self::Refused,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Investigated => "investigated",
            Self::Applied => "applied",
            Self::Granted => "granted",
            Self::Refused => "refused",
        }
    }

    pub fn from_code(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == s)
    }

    fn upper(self) -> String {
        self.code().to_uppercase()
    }
}

fn plus(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days))
        .unwrap_or(NaiveDate::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub id: Uuid,
    pub client_key: ClientKey,
    pub law: Law,
    pub status: CaseStatus,
    pub reported_on: Option<NaiveDate>,
    pub investigation_due: Option<NaiveDate>,
    pub investigated_on: Option<NaiveDate>,
    pub applied_on: Option<NaiveDate>,
    pub decision_due: Option<NaiveDate>,
    pub decided_on: Option<NaiveDate>,
    pub refusal_reason: Option<String>,
    pub products: Vec<GrantedProduct>,
}

/// A step that is due: the investigation of a REPORTED case or the decision on an APPLIED one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub case_id: Uuid,
    pub client_key: ClientKey,
    pub law: Law,
    /// `investigation` | `decision`
    pub step: &'static str,
    pub due: NaiveDate,
    pub late: bool,
    pub days_left: i64,
}

impl Case {
    /// Opens a case on `date`: the melding (Wmo) or the application (Jeugdwet).
    pub fn open(id: Uuid, client_key: ClientKey, law: Law, date: NaiveDate) -> Self {
        let mut case = Self {
            id,
            client_key,
            law,
            status: CaseStatus::Reported,
            reported_on: None,
            investigation_due: None,
            investigated_on: None,
            applied_on: None,
            decision_due: None,
            decided_on: None,
            refusal_reason: None,
            products: Vec::new(),
        };
        match law {
            Law::Wmo => {
                case.reported_on = Some(date);
                case.investigation_due = Some(plus(date, INVESTIGATION_DAYS));
            }
            Law::Jeugdwet => {
                case.status = CaseStatus::Applied;
                case.applied_on = Some(date);
                case.decision_due = Some(plus(date, JEUGDWET_DECISION_DAYS));
            }
        }
        case
    }

    fn wmo_only(&self, step: &str) -> Result<(), AccessError> {
        if self.law == Law::Jeugdwet {
            return Err(AccessError::rule(
                "case.wmo_step",
                self.id.to_string(),
                format!(
                    "{step} is a Wmo step; a Jeugdwet case opens with the application and goes straight to the decision"
                ),
            ));
        }
        Ok(())
    }

    fn expect(&self, status: CaseStatus, step: &str) -> Result<(), AccessError> {
        if self.status != status {
            return Err(AccessError::rule(
                "case.step_order",
                self.id.to_string(),
                format!(
                    "the case is {}; {step} needs a {} case",
                    self.status.upper(),
                    status.upper()
                ),
            ));
        }
        Ok(())
    }

    fn not_before(
        &self,
        date: NaiveDate,
        previous: Option<NaiveDate>,
        what: &str,
    ) -> Result<(), AccessError> {
        if let Some(p) = previous
            && date < p
        {
            return Err(AccessError::rule(
                "case.date_order",
                "date",
                format!(
                    "the date {date} lies before the {what} ({p}) of case {}",
                    self.id
                ),
            ));
        }
        Ok(())
    }

    /// Wmo: the investigation is done.
    pub fn complete_investigation(&mut self, date: NaiveDate) -> Result<(), AccessError> {
        self.wmo_only("completing the investigation")?;
        self.expect(CaseStatus::Reported, "completing the investigation")?;
        self.not_before(date, self.reported_on, "melding")?;
        self.status = CaseStatus::Investigated;
        self.investigated_on = Some(date);
        Ok(())
    }

    /// Wmo: the formal application after the investigation; the decision is due in 2 weeks.
    pub fn submit_application(&mut self, date: NaiveDate) -> Result<(), AccessError> {
        self.wmo_only("submitting the application")?;
        self.expect(CaseStatus::Investigated, "submitting the application")?;
        self.not_before(date, self.investigated_on, "completed investigation")?;
        self.status = CaseStatus::Applied;
        self.applied_on = Some(date);
        self.decision_due = Some(plus(date, WMO_DECISION_DAYS));
        Ok(())
    }

    /// Checks that a decision can be taken on `date`, seen on `today`: the case is APPLIED, the
    /// date does not lie before the application (`case.date_order`) nor after today
    /// (`decide.not_in_future`: a decision is recorded once it is taken).
    pub fn check_decision(&self, date: NaiveDate, today: NaiveDate) -> Result<(), AccessError> {
        self.expect(CaseStatus::Applied, "a decision")?;
        self.not_before(date, self.applied_on, "application")?;
        if date > today {
            return Err(AccessError::rule(
                "decide.not_in_future",
                "date",
                format!(
                    "the decision date {date} lies after today ({today}); a decision is recorded once it is taken"
                ),
            ));
        }
        Ok(())
    }

    /// The decision grants `plans` (checked against the case's law and `municipality`); no
    /// granted period starts before the application (`decide.period_after_application`), and no
    /// two of the plans stack (`decide.no_stacking`, see [`stacks`]).
    pub fn grant(
        &mut self,
        date: NaiveDate,
        today: NaiveDate,
        plans: Vec<ProductPlan>,
        municipality: &GemeenteCode,
        mut new_id: impl FnMut() -> Uuid,
    ) -> Result<(), AccessError> {
        self.check_decision(date, today)?;
        if plans.is_empty() {
            return Err(AccessError::field(
                "grant",
                "must hold at least one product",
            ));
        }
        for (i, p) in plans.iter().enumerate() {
            let s = &p.subsegment;
            if s.law != self.law {
                return Err(AccessError::rule(
                    "product.law_matches_case",
                    format!("grant[{i}].subsegment_code"),
                    format!(
                        "subsegment {} falls under the {}, the case under the {}",
                        s.code,
                        s.law.description(),
                        self.law.description()
                    ),
                ));
            }
            if !s.takes_part(municipality) {
                return Err(AccessError::rule(
                    "product.municipality_takes_part",
                    format!("grant[{i}].subsegment_code"),
                    format!(
                        "municipality {municipality} does not buy segment {} through the joint contracts",
                        s.segment_code
                    ),
                ));
            }
        }
        for (i, p) in plans.iter().enumerate() {
            if let Some(applied) = self.applied_on
                && p.period.start() < applied
            {
                return Err(AccessError::rule(
                    "decide.period_after_application",
                    format!("grant[{i}].period.start"),
                    format!(
                        "the granted period starts on {}, before the application of {applied}; care is granted from the application on",
                        p.period.start()
                    ),
                ));
            }
            if let Some(j) = plans[..i].iter().position(|q| {
                stacks(
                    (
                        q.subsegment.law,
                        q.subsegment.code.as_str(),
                        q.product_code.as_ref(),
                        q.period,
                    ),
                    (
                        p.subsegment.law,
                        p.subsegment.code.as_str(),
                        p.product_code.as_ref(),
                        p.period,
                    ),
                )
            }) {
                return Err(AccessError::rule(
                    "decide.no_stacking",
                    format!("grant[{i}]"),
                    format!(
                        "grant[{i}] grants the same product as grant[{j}] for an overlapping period"
                    ),
                ));
            }
        }
        self.products = plans
            .into_iter()
            .map(|p| GrantedProduct {
                id: new_id(),
                case_id: self.id,
                client_key: self.client_key.clone(),
                law: self.law,
                segment_code: p.subsegment.segment_code.clone(),
                subsegment_code: p.subsegment.code.clone(),
                product_category: p.subsegment.product_category().to_owned(),
                product_code: p.product_code,
                result: p.result,
                goal: p.goal,
                period: p.period,
                variant: p.subsegment.execution_variant(),
                size: p.size,
                preferred_provider: p.preferred_provider,
                granted_on: date,
                version: 1,
            })
            .collect();
        self.status = CaseStatus::Granted;
        self.decided_on = Some(date);
        Ok(())
    }

    /// The decision refuses, with its reason.
    pub fn refuse(
        &mut self,
        date: NaiveDate,
        today: NaiveDate,
        reason: &str,
    ) -> Result<(), AccessError> {
        self.check_decision(date, today)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AccessError::field("refusal_reason", "must not be empty"));
        }
        self.status = CaseStatus::Refused;
        self.decided_on = Some(date);
        self.refusal_reason = Some(reason.to_owned());
        Ok(())
    }

    /// The step that is due on the case, seen on `as_of`: the investigation of a REPORTED case or
    /// the decision on an APPLIED one.
    pub fn deadline(&self, as_of: NaiveDate) -> Option<Deadline> {
        let (step, due) = match self.status {
            CaseStatus::Reported => ("investigation", self.investigation_due?),
            CaseStatus::Applied => ("decision", self.decision_due?),
            _ => return None,
        };
        Some(Deadline {
            case_id: self.id,
            client_key: self.client_key.clone(),
            law: self.law,
            step,
            due,
            late: due < as_of,
            days_left: (due - as_of).num_days(),
        })
    }
}

/// True when two grants stack: the same product of the region's catalogue (law, subsegment and
/// product code, an absent code matching only an absent code) for overlapping periods (end dates
/// inclusive). Two subsegments sharing a national product category are different products.
pub fn stacks(
    a: (Law, &str, Option<&ProductCode>, Period),
    b: (Law, &str, Option<&ProductCode>, Period),
) -> bool {
    a.0 == b.0 && a.1 == b.1 && a.2 == b.2 && overlaps(a.3, b.3)
}

/// True when two periods share at least one day.
pub fn overlaps(a: Period, b: Period) -> bool {
    let before = |x: Period, y: Period| x.end().is_some_and(|e| e < y.start());
    !before(a, b) && !before(b, a)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn d(s: &str) -> NaiveDate {
        rz_domain::parse_date("t", s).unwrap()
    }

    fn key() -> ClientKey {
        ClientKey::parse(&"b".repeat(32)).unwrap()
    }

    #[test]
    fn the_wmo_clock() {
        let mut c = Case::open(Uuid::now_v7(), key(), Law::Wmo, d("2026-03-02"));
        assert_eq!(c.status, CaseStatus::Reported);
        assert_eq!(c.investigation_due, Some(d("2026-04-13")));
        let e = c
            .check_decision(d("2026-03-03"), d("2026-12-31"))
            .unwrap_err();
        assert_eq!(e.rule_id(), Some("case.step_order"));
        let e = c.complete_investigation(d("2026-03-01")).unwrap_err();
        assert_eq!(e.rule_id(), Some("case.date_order"));
        c.complete_investigation(d("2026-04-01")).unwrap();
        let e = c.submit_application(d("2026-03-31")).unwrap_err();
        assert_eq!(e.rule_id(), Some("case.date_order"));
        c.submit_application(d("2026-04-02")).unwrap();
        assert_eq!(c.decision_due, Some(d("2026-04-16")));
        let dl = c.deadline(d("2026-04-20")).unwrap();
        assert_eq!((dl.step, dl.late, dl.days_left), ("decision", true, -4));
        c.refuse(d("2026-04-10"), d("2026-12-31"), "geen noodzaak")
            .unwrap();
        assert_eq!(c.status, CaseStatus::Refused);
        assert!(c.deadline(d("2026-04-20")).is_none());
    }

    #[test]
    fn the_jeugdwet_clock() {
        let mut c = Case::open(Uuid::now_v7(), key(), Law::Jeugdwet, d("2026-01-05"));
        assert_eq!(c.status, CaseStatus::Applied);
        assert_eq!(c.decision_due, Some(d("2026-03-02")));
        assert_eq!(
            c.complete_investigation(d("2026-01-06"))
                .unwrap_err()
                .rule_id(),
            Some("case.wmo_step")
        );
        assert_eq!(
            c.submit_application(d("2026-01-06")).unwrap_err().rule_id(),
            Some("case.wmo_step")
        );
        let dl = c.deadline(d("2026-03-01")).unwrap();
        assert_eq!((dl.step, dl.late, dl.days_left), ("decision", false, 1));
    }

    #[test]
    fn stacking_is_the_same_product_for_overlapping_days() {
        let p = |s: &str, e: Option<&str>| Period::new(d(s), e.map(d)).unwrap();
        let code = ProductCode::parse("PV01").unwrap();
        let a = (
            Law::Wmo,
            "WIO-PV",
            Some(&code),
            p("2026-01-01", Some("2026-06-30")),
        );
        assert!(stacks(
            a,
            (Law::Wmo, "WIO-PV", Some(&code), p("2026-06-30", None))
        ));
        assert!(!stacks(
            a,
            (Law::Wmo, "WIO-PV", Some(&code), p("2026-07-01", None))
        ));
        assert!(!stacks(
            a,
            (Law::Wmo, "WIO-PV", None, p("2026-01-01", None))
        ));
        assert!(!stacks(
            a,
            (Law::Wmo, "WIO-ONT", Some(&code), p("2026-01-01", None))
        ));
        assert!(!stacks(
            a,
            (Law::Jeugdwet, "WIO-PV", Some(&code), p("2026-01-01", None))
        ));
        assert!(overlaps(p("2026-01-01", None), p("2020-01-01", None)));
        assert!(!overlaps(
            p("2026-01-01", None),
            p("2020-01-01", Some("2025-12-31"))
        ));
    }
}
