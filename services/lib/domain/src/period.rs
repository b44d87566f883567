//! Civil dates and date periods (no time zone, end date inclusive).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::FieldError;

const DATE_RULE: &str = "must be a date YYYY-MM-DD without time zone";

/// Parses a civil date written exactly as `YYYY-MM-DD`: no time, no time zone, no other layout.
/// An impossible date (`2023-02-30`) is rejected with rule "must be an existing calendar date".
pub fn parse_date(field: &str, s: &str) -> Result<NaiveDate, FieldError> {
    let b = s.as_bytes();
    let layout_ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !layout_ok {
        return Err(FieldError::new(field, DATE_RULE));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| FieldError::new(field, "must be an existing calendar date"))
}

/// A period of civil dates: `start..=end`, or open-ended when `end` is `None`.
///
/// The end date is inclusive, as in the standard (a one-day assignment has `end == start`).
/// Construction guarantees `end >= start`; deserialization checks it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawPeriod")]
pub struct Period {
    start: NaiveDate,
    end: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct RawPeriod {
    start: NaiveDate,
    end: Option<NaiveDate>,
}

impl TryFrom<RawPeriod> for Period {
    type Error = FieldError;
    fn try_from(r: RawPeriod) -> Result<Self, FieldError> {
        Self::new(r.start, r.end)
    }
}

impl Period {
    /// Fails with field `period.end`, rule "must not be before the start date" when `end < start`.
    pub fn new(start: NaiveDate, end: Option<NaiveDate>) -> Result<Self, FieldError> {
        match end {
            Some(e) if e < start => Err(FieldError::new(
                "period.end",
                "must not be before the start date",
            )),
            _ => Ok(Self { start, end }),
        }
    }

    /// An open-ended period from `start`.
    pub fn open(start: NaiveDate) -> Self {
        Self { start, end: None }
    }

    /// Parses both dates with [`parse_date`] (fields `period.start`, `period.end`).
    pub fn parse(start: &str, end: Option<&str>) -> Result<Self, FieldError> {
        let start = parse_date("period.start", start)?;
        let end = end.map(|e| parse_date("period.end", e)).transpose()?;
        Self::new(start, end)
    }

    pub fn start(&self) -> NaiveDate {
        self.start
    }

    pub fn end(&self) -> Option<NaiveDate> {
        self.end
    }

    pub fn is_open_ended(&self) -> bool {
        self.end.is_none()
    }

    /// The end date, or `NaiveDate::MAX` for an open-ended period (handy for comparisons).
    pub fn end_or_max(&self) -> NaiveDate {
        self.end.unwrap_or(NaiveDate::MAX)
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date <= self.end_or_max()
    }

    /// True if both periods share at least one day (end dates are inclusive).
    pub fn overlaps(&self, other: &Period) -> bool {
        self.start <= other.end_or_max() && other.start <= self.end_or_max()
    }

    /// True if every day of `other` lies within `self`.
    pub fn covers(&self, other: &Period) -> bool {
        self.start <= other.start && other.end_or_max() <= self.end_or_max()
    }

    /// The days both periods share, if any.
    pub fn intersection(&self, other: &Period) -> Option<Period> {
        let start = self.start.max(other.start);
        let end = match (self.end, other.end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Period::new(start, end).ok()
    }

    /// Number of days, both ends included; `None` when open-ended.
    pub fn days(&self) -> Option<i64> {
        self.end.map(|e| (e - self.start).num_days() + 1)
    }

    /// The same period with a new end date (e.g. ending an assignment), checked like `new`.
    pub fn with_end(&self, end: Option<NaiveDate>) -> Result<Self, FieldError> {
        Self::new(self.start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date("test", s).unwrap()
    }

    fn p(start: &str, end: Option<&str>) -> Period {
        Period::parse(start, end).unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(
            d("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
        for bad in [
            "2024-2-29",
            "20240229",
            "2024-02-29T00:00:00",
            "2024-02-29Z",
            "2024-02-29+01:00",
            " 2024-02-29",
            "29-02-2024",
            "",
        ] {
            let e = parse_date("start", bad).unwrap_err();
            assert_eq!(e, FieldError::new("start", DATE_RULE), "{bad:?}");
        }
        assert_eq!(
            parse_date("start", "2023-02-29").unwrap_err().rule,
            "must be an existing calendar date"
        );
    }

    #[test]
    fn new_checks_order() {
        assert!(Period::new(d("2024-01-02"), Some(d("2024-01-02"))).is_ok());
        assert_eq!(
            Period::new(d("2024-01-02"), Some(d("2024-01-01"))).unwrap_err(),
            FieldError::new("period.end", "must not be before the start date")
        );
        assert_eq!(
            Period::parse("2024-13-01", None).unwrap_err().field,
            "period.start"
        );
    }

    #[test]
    fn contains_and_days() {
        let q1 = p("2024-01-01", Some("2024-03-31"));
        assert!(q1.contains(d("2024-01-01")));
        assert!(q1.contains(d("2024-03-31")));
        assert!(!q1.contains(d("2024-04-01")));
        assert!(!q1.contains(d("2023-12-31")));
        assert_eq!(q1.days(), Some(91));
        let open = Period::open(d("2024-01-01"));
        assert!(open.contains(d("2999-12-31")));
        assert_eq!(open.days(), None);
        assert_eq!(open.end_or_max(), NaiveDate::MAX);
    }

    #[test]
    fn overlaps() {
        let a = p("2024-01-01", Some("2024-01-31"));
        // touching on one inclusive day overlaps
        assert!(a.overlaps(&p("2024-01-31", Some("2024-02-10"))));
        // adjacent does not
        assert!(!a.overlaps(&p("2024-02-01", None)));
        assert!(!p("2024-02-01", None).overlaps(&a));
        // inside, around, open-ended on both sides
        assert!(a.overlaps(&p("2024-01-10", Some("2024-01-11"))));
        assert!(a.overlaps(&p("2023-01-01", None)));
        assert!(Period::open(d("2030-01-01")).overlaps(&Period::open(d("2020-01-01"))));
        assert!(!a.overlaps(&p("2023-01-01", Some("2023-12-31"))));
    }

    #[test]
    fn intersection_and_covers() {
        let a = p("2024-01-01", Some("2024-01-31"));
        let b = p("2024-01-15", None);
        assert_eq!(
            a.intersection(&b),
            Some(p("2024-01-15", Some("2024-01-31")))
        );
        assert_eq!(a.intersection(&p("2024-02-01", None)), None);
        assert_eq!(
            Period::open(d("2024-01-01")).intersection(&b),
            Some(Period::open(d("2024-01-15")))
        );
        assert!(Period::open(d("2023-01-01")).covers(&a));
        assert!(!a.covers(&b));
        assert!(a.covers(&a));
    }

    #[test]
    fn serde_checks_order() {
        let a = p("2024-01-01", Some("2024-01-31"));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"start":"2024-01-01","end":"2024-01-31"}"#);
        assert_eq!(serde_json::from_str::<Period>(&json).unwrap(), a);
        assert!(
            serde_json::from_str::<Period>(r#"{"start":"2024-01-02","end":"2024-01-01"}"#).is_err()
        );
        let open: Period = serde_json::from_str(r#"{"start":"2024-01-02","end":null}"#).unwrap();
        assert!(open.is_open_ended());
    }
}
