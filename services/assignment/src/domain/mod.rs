//! The assignment's rules as plain types without I/O: the record, its statuses and transitions
//! (start and stop of care, withdrawal, the end at a switch of provider), the size that follows the
//! execution variant, and the provider choice ([`choice`]).

pub mod choice;

use chrono::NaiveDate;
use rz_domain::{
    AgbCode, Cents, ClientKey, ExecutionVariant, FieldError, Frequency, GemeenteCode, Law, Period,
    Unit, WmoChangeReason, WmoEndReason, YouthChangeReason, YouthEndReason,
};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The standard's amounts (volume, budget in cents) are integers below 100,000,000.
pub const MAX_AMOUNT: i64 = 99_999_999;
/// ToewijzingNummer: at most 9 digits.
pub const MAX_NUMBER: u32 = 999_999_999;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Issued,
    Started,
    /// The provider stopped care (307).
    Stopped,
    /// The municipality ended it (handed over to another provider).
    Ended,
    Withdrawn,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Started => "started",
            Self::Stopped => "stopped",
            Self::Ended => "ended",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn from_code(s: &str) -> Option<Self> {
        [
            Self::Issued,
            Self::Started,
            Self::Stopped,
            Self::Ended,
            Self::Withdrawn,
        ]
        .into_iter()
        .find(|v| v.code() == s)
    }

    /// Issued or started: the provider is (about to be) delivering.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Issued | Self::Started)
    }
}

/// How an assignment came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A product granted by access' decision.
    Decision,
    /// A provider's request (315) the municipality granted.
    Request,
    /// Existing care from before the platform.
    Import,
    /// The replacement of an assignment whose provider's contract ended.
    Handover,
}

impl Origin {
    pub fn code(self) -> &'static str {
        match self {
            Self::Decision => "decision",
            Self::Request => "request",
            Self::Import => "import",
            Self::Handover => "handover",
        }
    }

    pub fn from_code(s: &str) -> Option<Self> {
        [Self::Decision, Self::Request, Self::Import, Self::Handover]
            .into_iter()
            .find(|v| v.code() == s)
    }
}

/// The size of an assignment, following its execution variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// taakgericht: only the product category, no volume or budget (lumpsum).
    Task,
    /// inspanningsgericht: volume + unit + frequency (PxQ).
    Effort {
        volume: u32,
        unit: Unit,
        frequency: Frequency,
    },
    /// outputgericht: a budget.
    Output { budget: Cents },
}

/// Where the size fields sit in the message being parsed.
#[derive(Debug, Clone, Copy)]
pub struct SizeFields {
    pub volume: &'static str,
    pub unit: &'static str,
    pub frequency: &'static str,
    pub budget: &'static str,
}

impl SizeFields {
    /// `size.volume`, `size.unit`, `size.frequency`, `budget_cents` (the assignment API).
    pub const API: Self = Self {
        volume: "size.volume",
        unit: "size.unit",
        frequency: "size.frequency",
        budget: "budget_cents",
    };
    /// `volume`, `unit`, `frequency`, `budget_cents` (access' granted product).
    pub const PRODUCT: Self = Self {
        volume: "volume",
        unit: "unit",
        frequency: "frequency",
        budget: "budget_cents",
    };
}

impl Extent {
    pub fn variant(&self) -> ExecutionVariant {
        match self {
            Self::Task => ExecutionVariant::Taakgericht,
            Self::Effort { .. } => ExecutionVariant::Inspanningsgericht,
            Self::Output { .. } => ExecutionVariant::Outputgericht,
        }
    }

    /// The size of an assignment of `variant` from the message's fields.
    pub fn parse(
        variant: ExecutionVariant,
        volume: u32,
        unit: &str,
        frequency: &str,
        budget_cents: i64,
        at: SizeFields,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let size_given = volume != 0 || !unit.is_empty() || !frequency.is_empty();
        let extent = match variant {
            ExecutionVariant::Taakgericht => {
                if size_given {
                    errors.push(FieldError::new(
                        at.volume,
                        "must be empty: a task-based (taakgericht) assignment has no volume",
                    ));
                }
                if budget_cents != 0 {
                    errors.push(FieldError::new(
                        at.budget,
                        "must be empty: a task-based (taakgericht) assignment has no budget",
                    ));
                }
                Self::Task
            }
            ExecutionVariant::Inspanningsgericht => {
                if volume == 0 || i64::from(volume) > MAX_AMOUNT {
                    errors.push(FieldError::new(at.volume, "must be 1 to 99999999"));
                }
                let unit = Unit::from_code(unit)
                    .map_err(|e| errors.push(e.at(at.unit)))
                    .ok();
                let frequency = Frequency::from_code(frequency)
                    .map_err(|e| errors.push(e.at(at.frequency)))
                    .ok();
                if budget_cents != 0 {
                    errors.push(FieldError::new(
                        at.budget,
                        "must be empty: an effort-based (inspanningsgericht) assignment has a volume, not a budget",
                    ));
                }
                match (unit, frequency) {
                    (Some(unit), Some(frequency)) => Self::Effort {
                        volume,
                        unit,
                        frequency,
                    },
                    _ => Self::Task,
                }
            }
            ExecutionVariant::Outputgericht => {
                if !(1..=MAX_AMOUNT).contains(&budget_cents) {
                    errors.push(FieldError::new(at.budget, "must be 1 to 99999999 cents"));
                }
                if size_given {
                    errors.push(FieldError::new(
                        at.volume,
                        "must be empty: an output-based (outputgericht) assignment has a budget, not a volume",
                    ));
                }
                Self::Output {
                    budget: Cents::new(budget_cents.max(0)).unwrap_or_default(),
                }
            }
        };
        if errors.is_empty() {
            Ok(extent)
        } else {
            Err(errors)
        }
    }

    /// A new size for a change: `None` when no size field is given.
    pub fn parse_change(
        variant: ExecutionVariant,
        volume: u32,
        unit: &str,
        frequency: &str,
        budget_cents: i64,
        at: SizeFields,
    ) -> Result<Option<Self>, Vec<FieldError>> {
        if volume == 0 && unit.is_empty() && frequency.is_empty() && budget_cents == 0 {
            return Ok(None);
        }
        if variant == ExecutionVariant::Taakgericht {
            return Err(vec![FieldError::new(
                at.volume,
                "a task-based (taakgericht) assignment has no size to change",
            )]);
        }
        Self::parse(variant, volume, unit, frequency, budget_cents, at).map(Some)
    }
}

/// The change reasons this service sets itself (JZ002 and WMO002 share these codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeReason {
    /// 03 contractwijziging: the new assignment of a handover.
    ContractChange,
    /// 04 herbeoordeling verlenging: a later end.
    ReassessmentExtension,
    /// 05 herbeoordeling verkorting: an earlier end or another size.
    ReassessmentShortening,
    /// 09 overstap naar andere aanbieder: the old assignment of a handover.
    SwitchToOtherProvider,
    /// 12 geïnitieerd door de aanbieder: a granted change request (317).
    InitiatedByProvider,
}

impl ChangeReason {
    pub fn code(self, law: Law) -> &'static str {
        use {WmoChangeReason as W, YouthChangeReason as Y};
        let (youth, wmo) = match self {
            Self::ContractChange => (Y::ContractChange, W::ContractChange),
            Self::ReassessmentExtension => (Y::ReassessmentExtension, W::ReassessmentExtension),
            Self::ReassessmentShortening => (Y::ReassessmentShortening, W::ReassessmentShortening),
            Self::SwitchToOtherProvider => (Y::SwitchToOtherProvider, W::SwitchToOtherProvider),
            Self::InitiatedByProvider => (Y::InitiatedByProvider, W::InitiatedByProvider),
        };
        match law {
            Law::Jeugdwet => youth.code(),
            Law::Wmo => wmo.code(),
        }
    }
}

/// A change reason from JZ002 (Jeugdwet) or WMO002 (Wmo).
pub fn parse_change_reason(law: Law, code: &str, field: &str) -> Result<&'static str, FieldError> {
    match law {
        Law::Jeugdwet => YouthChangeReason::from_code(code).map(YouthChangeReason::code),
        Law::Wmo => WmoChangeReason::from_code(code).map(WmoChangeReason::code),
    }
    .map_err(|e| e.at(field))
}

/// An end reason from JZ588 (Jeugdwet) or WMO588 (Wmo).
pub fn parse_end_reason(law: Law, code: &str, field: &str) -> Result<&'static str, FieldError> {
    match law {
        Law::Jeugdwet => YouthEndReason::from_code(code).map(YouthEndReason::code),
        Law::Wmo => WmoEndReason::from_code(code).map(WmoEndReason::code),
    }
    .map_err(|e| e.at(field))
}

/// An assignment (toewijzing): one product of one client assigned to one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub municipality: GemeenteCode,
    pub number: u32,
    pub client_key: ClientKey,
    pub agb_code: AgbCode,
    pub law: Law,
    pub segment_code: String,
    pub subsegment_code: String,
    pub product_category: String,
    pub product_code: String,
    pub period: Period,
    pub extent: Extent,
    pub status: Status,
    pub assigned_on: NaiveDate,
    pub change_reason: String,
    pub started_on: Option<NaiveDate>,
    pub stopped_on: Option<NaiveDate>,
    pub end_reason: String,
    pub withdrawn_on: Option<NaiveDate>,
    /// The last day the assignment is valid (its end, the stop of care, the day before a
    /// withdrawal or a switch); before `period.start` when it never took effect; `None` open-ended.
    pub valid_until: Option<NaiveDate>,
    pub choice_reason: String,
    pub origin: Origin,
    pub granted_product_id: Option<String>,
    pub granted_version: Option<u32>,
    /// The latest version of the granted product applied (amendments).
    pub product_version: u32,
    pub preferred_agb: Option<String>,
    pub request_id: Option<Uuid>,
    pub replaces_number: Option<u32>,
    pub replaced_by_number: Option<u32>,
}

fn day_before(d: NaiveDate) -> NaiveDate {
    d.pred_opt().unwrap_or(d)
}

impl Assignment {
    fn id(&self) -> String {
        format!("{}/{}", self.municipality, self.number)
    }

    fn owned_by(&self, agb: &AgbCode, rule: &'static str) -> Result<()> {
        if self.agb_code == *agb {
            Ok(())
        } else {
            Err(Error::denied(
                rule,
                format!("assignment {} is not assigned to provider {agb}", self.id()),
            ))
        }
    }

    /// Start of care (305) on `date`.
    pub fn start_care(&mut self, agb: &AgbCode, date: NaiveDate) -> Result<()> {
        self.owned_by(agb, "start.assignment_of_provider")?;
        match self.status {
            Status::Issued => {}
            Status::Started => {
                return Err(Error::already_exists(format!(
                    "start of care for assignment {} was reported already (started on {})",
                    self.id(),
                    self.started_on.map(|d| d.to_string()).unwrap_or_default()
                )));
            }
            other => {
                return Err(Error::rule(
                    "start.assignment_active",
                    "assignment_number",
                    format!(
                        "assignment {} is {}; care cannot start on it",
                        self.id(),
                        other.code()
                    ),
                ));
            }
        }
        if date < self.period.start() {
            return Err(Error::rule(
                "start.not_before_assignment_start",
                "start_date",
                format!(
                    "care cannot start on {date}, before the assignment starts on {}",
                    self.period.start()
                ),
            ));
        }
        if let Some(last) = self.valid_until
            && date > last
        {
            return Err(Error::rule(
                "start.within_assignment",
                "start_date",
                format!("care cannot start on {date}, after the assignment ends on {last}"),
            ));
        }
        self.status = Status::Started;
        self.started_on = Some(date);
        Ok(())
    }

    /// Stop of care (307) on `date` (the last day of care) with an end reason (JZ588 / WMO588).
    /// Also accepted after the municipality ended or withdrew a started assignment: the provider
    /// still reports the end of its delivery.
    pub fn stop_care(&mut self, agb: &AgbCode, date: NaiveDate, end_reason: &str) -> Result<()> {
        self.owned_by(agb, "stop.assignment_of_provider")?;
        let reason = parse_end_reason(self.law, end_reason, "end_reason")?;
        if let Some(stopped) = self.stopped_on {
            return Err(Error::already_exists(format!(
                "stop of care for assignment {} was reported already (ended on {stopped})",
                self.id()
            )));
        }
        let Some(started) = self.started_on else {
            return Err(Error::rule(
                "stop.care_started",
                "assignment_number",
                format!("care on assignment {} has not started", self.id()),
            ));
        };
        if date < started {
            return Err(Error::rule(
                "stop.not_before_start",
                "end_date",
                format!("care cannot end on {date}, before it started on {started}"),
            ));
        }
        if let Some(last) = self.valid_until
            && date > last
        {
            return Err(Error::rule(
                "stop.within_assignment",
                "end_date",
                format!("care cannot end on {date}, after the assignment ends on {last}"),
            ));
        }
        if self.status == Status::Started {
            self.status = Status::Stopped;
            self.valid_until = Some(date);
        }
        self.stopped_on = Some(date);
        self.end_reason = reason.to_owned();
        Ok(())
    }

    /// Withdrawal by the municipality from `date` on (never before `today`).
    pub fn withdraw(&mut self, date: NaiveDate, today: NaiveDate, reason: &str) -> Result<()> {
        let reason = parse_change_reason(self.law, reason, "reason")?;
        if !self.status.is_active() {
            return Err(Error::rule(
                "withdraw.assignment_active",
                "assignment_number",
                format!("assignment {} is {} already", self.id(), self.status.code()),
            ));
        }
        if date < today {
            return Err(Error::rule(
                "withdraw.not_retroactive",
                "date",
                format!(
                    "an assignment is not withdrawn with retroactive effect: {date} is before today, {today}"
                ),
            ));
        }
        if let Some(last) = self.valid_until
            && date > last
        {
            return Err(Error::rule(
                "withdraw.within_assignment",
                "date",
                format!("assignment {} ends on {last}, before {date}", self.id()),
            ));
        }
        self.status = Status::Withdrawn;
        self.withdrawn_on = Some(date);
        self.change_reason = reason.to_owned();
        self.end_validity(day_before(date));
        Ok(())
    }

    /// The new provider started care on `new_start`: this (old) assignment ends the day before,
    /// with change reason 09 (switch to another provider).
    pub fn end_for_switch(&mut self, new_start: NaiveDate) {
        self.status = Status::Ended;
        self.change_reason = ChangeReason::SwitchToOtherProvider
            .code(self.law)
            .to_owned();
        self.end_validity(day_before(new_start));
    }

    /// The assignment is valid up to `last`; the period's end follows (never before its start).
    fn end_validity(&mut self, last: NaiveDate) {
        self.valid_until = Some(self.valid_until.map_or(last, |v| v.min(last)));
        let end = last.max(self.period.start());
        if self.period.end().is_none_or(|e| end < e) {
            self.period = Period::new(self.period.start(), Some(end)).unwrap_or(self.period);
        }
    }

    /// A municipality's change: a new end (`Some(None)`: open-ended) and/or a new size.
    pub fn change(
        &mut self,
        new_end: Option<Option<NaiveDate>>,
        extent: Option<Extent>,
        reason: ChangeReason,
    ) {
        if let Some(end) = new_end {
            let end = end.map(|e| e.max(self.period.start()));
            self.period = Period::new(self.period.start(), end).unwrap_or(self.period);
            self.valid_until = end;
        }
        if let Some(extent) = extent {
            self.extent = extent;
        }
        self.change_reason = reason.code(self.law).to_owned();
    }

    /// Whether the assignment was valid on at least one day.
    pub fn took_effect(&self) -> bool {
        self.valid_until.is_none_or(|v| v >= self.period.start())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// 315 verzoek om toewijzing.
    Assignment,
    /// 317 verzoek om wijziging.
    Change,
}

impl RequestKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Assignment => "assignment",
            Self::Change => "change",
        }
    }
    pub fn from_code(s: &str) -> Option<Self> {
        [Self::Assignment, Self::Change]
            .into_iter()
            .find(|v| v.code() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    Open,
    Granted,
    Refused,
}

impl RequestStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Granted => "granted",
            Self::Refused => "refused",
        }
    }
    pub fn from_code(s: &str) -> Option<Self> {
        [Self::Open, Self::Granted, Self::Refused]
            .into_iter()
            .find(|v| v.code() == s)
    }
}

/// Who referred the client (315).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReferrerInfo {
    /// COD327
    pub kind: String,
    pub name: String,
    /// The referrer's AGB code, when given.
    pub agb_code: Option<AgbCode>,
}

/// A provider's request (315 or 317) and its answer (319).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRequest {
    pub id: Uuid,
    pub kind: RequestKind,
    pub municipality: GemeenteCode,
    pub agb_code: AgbCode,
    pub client_key: ClientKey,
    pub subsegment_code: String,
    pub assignment_number: Option<u32>,
    pub product_code: String,
    /// 315: the requested period.
    pub period: Option<Period>,
    /// 317: the requested new end.
    pub new_end: Option<NaiveDate>,
    /// The requested size (315), or the new size (317) when one is asked for.
    pub extent: Option<Extent>,
    /// 317: WJ758.
    pub request_reason: String,
    pub referrer: Option<ReferrerInfo>,
    pub status: RequestStatus,
    pub received_on: NaiveDate,
    pub answer_due: NaiveDate,
    pub answered_on: Option<NaiveDate>,
    /// WJ759
    pub refusal_reason: String,
    pub resulting_assignment_number: Option<u32>,
}

impl ProviderRequest {
    pub fn ensure_open(&self) -> Result<()> {
        if self.status == RequestStatus::Open {
            Ok(())
        } else {
            Err(Error::rule(
                "request.answered_once",
                "request_id",
                format!(
                    "request {} was answered already ({} on {})",
                    self.id,
                    self.status.code(),
                    self.answered_on.map(|d| d.to_string()).unwrap_or_default()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn agb(s: &str) -> AgbCode {
        AgbCode::parse(s).unwrap()
    }

    fn assignment() -> Assignment {
        let period = Period::new(d("2022-07-01"), Some(d("2022-12-31"))).unwrap();
        Assignment {
            municipality: GemeenteCode::parse("0222").unwrap(),
            number: 7,
            client_key: ClientKey::parse(&"0".repeat(32)).unwrap(),
            agb_code: agb("03000001"),
            law: Law::Jeugdwet,
            segment_code: "IAJ".into(),
            subsegment_code: "IAJ-ON".into(),
            product_category: "45".into(),
            product_code: String::new(),
            period,
            extent: Extent::Task,
            status: Status::Issued,
            assigned_on: d("2022-06-20"),
            change_reason: String::new(),
            started_on: None,
            stopped_on: None,
            end_reason: String::new(),
            withdrawn_on: None,
            valid_until: period.end(),
            choice_reason: String::new(),
            origin: Origin::Decision,
            granted_product_id: None,
            granted_version: None,
            product_version: 1,
            preferred_agb: None,
            request_id: None,
            replaces_number: None,
            replaced_by_number: None,
        }
    }

    #[test]
    fn start_and_stop_of_care() {
        let mut a = assignment();
        assert_eq!(
            a.start_care(&agb("03000002"), d("2022-07-01"))
                .unwrap_err()
                .rule_id(),
            Some("start.assignment_of_provider")
        );
        assert_eq!(
            a.start_care(&agb("03000001"), d("2022-06-30"))
                .unwrap_err()
                .rule_id(),
            Some("start.not_before_assignment_start")
        );
        assert_eq!(
            a.start_care(&agb("03000001"), d("2023-01-01"))
                .unwrap_err()
                .rule_id(),
            Some("start.within_assignment")
        );
        assert_eq!(
            a.stop_care(&agb("03000001"), d("2022-08-01"), "31")
                .unwrap_err()
                .rule_id(),
            Some("stop.care_started")
        );
        a.start_care(&agb("03000001"), d("2022-07-04")).unwrap();
        assert!(matches!(
            a.start_care(&agb("03000001"), d("2022-07-04")),
            Err(Error::Api(rz_platform::ApiError::AlreadyExists(_)))
        ));
        assert!(matches!(
            a.stop_care(&agb("03000001"), d("2022-08-01"), "19"),
            Err(Error::Api(rz_platform::ApiError::InvalidArgument(_)))
        ));
        assert_eq!(
            a.stop_care(&agb("03000001"), d("2022-07-03"), "31")
                .unwrap_err()
                .rule_id(),
            Some("stop.not_before_start")
        );
        a.stop_care(&agb("03000001"), d("2022-09-30"), "31")
            .unwrap();
        assert_eq!(a.status, Status::Stopped);
        assert_eq!(a.valid_until, Some(d("2022-09-30")));
    }

    #[test]
    fn withdrawal_is_never_retroactive() {
        let mut a = assignment();
        let today = d("2022-08-10");
        assert_eq!(
            a.withdraw(d("2022-08-09"), today, "05")
                .unwrap_err()
                .rule_id(),
            Some("withdraw.not_retroactive")
        );
        assert!(
            a.withdraw(d("2022-08-10"), today, "01").is_err(),
            "01 expired"
        );
        a.withdraw(d("2022-08-10"), today, "05").unwrap();
        assert_eq!(a.status, Status::Withdrawn);
        assert_eq!(a.period.end(), Some(d("2022-08-09")));
        assert_eq!(
            a.withdraw(d("2022-08-11"), today, "05")
                .unwrap_err()
                .rule_id(),
            Some("withdraw.assignment_active")
        );
    }

    #[test]
    fn a_switch_ends_the_old_assignment_the_day_before() {
        let mut a = assignment();
        a.end_for_switch(d("2022-09-15"));
        assert_eq!(a.status, Status::Ended);
        assert_eq!(a.period.end(), Some(d("2022-09-14")));
        assert_eq!(a.change_reason, "09");
        assert!(a.took_effect());
        let mut b = assignment();
        b.end_for_switch(d("2022-07-01"));
        assert_eq!(b.period.end(), Some(d("2022-07-01")));
        assert_eq!(b.valid_until, Some(d("2022-06-30")));
        assert!(!b.took_effect());
    }

    #[test]
    fn sizes_follow_the_execution_variant() {
        let api = SizeFields::API;
        assert_eq!(
            Extent::parse(ExecutionVariant::Taakgericht, 0, "", "", 0, api),
            Ok(Extent::Task)
        );
        let e = Extent::parse(ExecutionVariant::Taakgericht, 3, "04", "2", 0, api).unwrap_err();
        assert_eq!(e[0].field, "size.volume");
        assert_eq!(
            Extent::parse(ExecutionVariant::Inspanningsgericht, 3, "04", "2", 0, api),
            Ok(Extent::Effort {
                volume: 3,
                unit: Unit::Hour,
                frequency: Frequency::PerWeek
            })
        );
        let e =
            Extent::parse(ExecutionVariant::Inspanningsgericht, 0, "4", "9", 5, api).unwrap_err();
        let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["size.volume", "size.unit", "size.frequency", "budget_cents"]
        );
        assert_eq!(
            Extent::parse(ExecutionVariant::Outputgericht, 0, "", "", 150_000, api),
            Ok(Extent::Output {
                budget: Cents::new(150_000).unwrap()
            })
        );
        assert!(
            Extent::parse(ExecutionVariant::Outputgericht, 0, "", "", 100_000_000, api).is_err()
        );
        assert_eq!(
            Extent::parse_change(ExecutionVariant::Outputgericht, 0, "", "", 0, api),
            Ok(None)
        );
        assert!(Extent::parse_change(ExecutionVariant::Taakgericht, 1, "", "", 0, api).is_err());
    }

    #[test]
    fn change_reasons_per_law() {
        assert_eq!(ChangeReason::ContractChange.code(Law::Jeugdwet), "03");
        assert_eq!(ChangeReason::SwitchToOtherProvider.code(Law::Wmo), "09");
        assert_eq!(parse_end_reason(Law::Wmo, "19", "end_reason"), Ok("19"));
        assert!(parse_end_reason(Law::Jeugdwet, "19", "end_reason").is_err());
    }
}
