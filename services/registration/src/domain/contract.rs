//! A contract's term: 3 years from the start, at most two extensions of 2 years (7 years at most),
//! or an early end (termination).

use chrono::{Months, NaiveDate};
use rz_domain::Period;

use super::{HISTORY_WINDOW_DAYS, RegistrationError, history_floor};

pub const INITIAL_TERM_MONTHS: u32 = 36;
pub const EXTENSION_MONTHS: u32 = 24;
pub const MAX_EXTENSIONS: u32 = 2;
pub const MAX_TERM_MONTHS: u32 = 84;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractStatus {
    Active,
    Ended,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractTerm {
    pub start: NaiveDate,
    pub extensions: u32,
    pub terminated_on: Option<NaiveDate>,
}

fn months_after(start: NaiveDate, months: u32) -> NaiveDate {
    // The last day of the term: the day before the same date `months` later.
    start
        .checked_add_months(Months::new(months))
        .and_then(|d| d.pred_opt())
        .unwrap_or(NaiveDate::MAX)
}

impl ContractTerm {
    pub fn new(start: NaiveDate) -> Self {
        Self {
            start,
            extensions: 0,
            terminated_on: None,
        }
    }

    pub fn initial_end(&self) -> NaiveDate {
        months_after(self.start, INITIAL_TERM_MONTHS)
    }

    /// The end of the term after the extensions made, ignoring an early termination.
    pub fn scheduled_end(&self) -> NaiveDate {
        months_after(
            self.start,
            INITIAL_TERM_MONTHS + EXTENSION_MONTHS * self.extensions,
        )
    }

    /// The last day the contract can ever run: 7 years from the start.
    pub fn latest_possible_end(&self) -> NaiveDate {
        months_after(self.start, MAX_TERM_MONTHS)
    }

    pub fn end(&self) -> NaiveDate {
        self.terminated_on.unwrap_or_else(|| self.scheduled_end())
    }

    pub fn period(&self) -> Period {
        Period::new(self.start, Some(self.end())).unwrap_or_else(|_| Period::open(self.start))
    }

    pub fn extensions_left(&self) -> u32 {
        if self.terminated_on.is_some() {
            0
        } else {
            MAX_EXTENSIONS.saturating_sub(self.extensions)
        }
    }

    pub fn status(&self, today: NaiveDate) -> ContractStatus {
        match self.terminated_on {
            Some(end) if end < self.scheduled_end() && today > end => ContractStatus::Terminated,
            _ if today > self.end() => ContractStatus::Ended,
            _ => ContractStatus::Active,
        }
    }

    /// Extends by 2 years: at most twice, never past 7 years, never after a termination, and not
    /// when the term ended more than [`HISTORY_WINDOW_DAYS`] before `today`.
    pub fn extend(&self, today: NaiveDate) -> Result<Self, RegistrationError> {
        if self.terminated_on.is_some() {
            return Err(RegistrationError::rule(
                "contract.terminated",
                "contract_id",
                "a terminated contract cannot be extended",
            ));
        }
        if self.scheduled_end() < history_floor(today) {
            return Err(RegistrationError::rule(
                "contract.extend_recently_ended",
                "contract_id",
                format!(
                    "the contract ended on {}, more than {HISTORY_WINDOW_DAYS} days before today \
                     ({today}): conclude a new contract instead",
                    self.scheduled_end()
                ),
            ));
        }
        if self.extensions >= MAX_EXTENSIONS {
            return Err(RegistrationError::rule(
                "contract.max_extensions",
                "contract_id",
                "a contract can be extended at most twice, by 2 years each",
            ));
        }
        let next = Self {
            extensions: self.extensions + 1,
            ..self.clone()
        };
        if next.scheduled_end() > self.latest_possible_end() {
            return Err(RegistrationError::rule(
                "contract.max_term",
                "contract_id",
                "an extension may not take a contract past 7 years",
            ));
        }
        Ok(next)
    }

    /// Ends the contract early on `end` (the last day it runs).
    pub fn terminate(&self, end: NaiveDate) -> Result<Self, RegistrationError> {
        if self.terminated_on.is_some() {
            return Err(RegistrationError::rule(
                "contract.terminated",
                "contract_id",
                "the contract has been terminated already",
            ));
        }
        if end < self.start {
            return Err(RegistrationError::field(
                "end_date",
                "must not be before the contract start",
            ));
        }
        if end > self.scheduled_end() {
            return Err(RegistrationError::rule(
                "contract.termination_within_term",
                "end_date",
                format!(
                    "an early end must fall within the term, which ends on {}",
                    self.scheduled_end()
                ),
            ));
        }
        Ok(Self {
            terminated_on: Some(end),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        rz_domain::parse_date("d", s).unwrap()
    }

    #[test]
    fn a_term_is_three_years_and_two_extensions_of_two_at_most() {
        let t = ContractTerm::new(d("2022-07-01"));
        assert_eq!(t.initial_end(), d("2025-06-30"));
        let today = d("2022-07-01");
        let t1 = t.extend(today).unwrap();
        assert_eq!(t1.end(), d("2027-06-30"));
        let t2 = t1.extend(today).unwrap();
        assert_eq!(t2.end(), d("2029-06-30"));
        assert_eq!(t2.end(), t.latest_possible_end());
        assert_eq!(t2.extensions_left(), 0);
        assert!(matches!(
            t2.extend(today),
            Err(RegistrationError::Rule {
                rule: "contract.max_extensions",
                ..
            })
        ));
    }

    #[test]
    fn an_extension_comes_at_most_a_year_after_the_end() {
        // Ends 2021-12-31: extensible up to and including 2022-12-31, refused from 2023-01-01.
        let t = ContractTerm::new(d("2019-01-01"));
        assert_eq!(t.end(), d("2021-12-31"));
        assert_eq!(t.extend(d("2022-12-31")).unwrap().end(), d("2023-12-31"));
        let err = t.extend(d("2023-01-01")).unwrap_err();
        assert!(
            matches!(
                &err,
                RegistrationError::Rule {
                    rule: "contract.extend_recently_ended",
                    subject,
                    ..
                } if subject == "contract_id"
            ),
            "{err:?}"
        );
    }

    #[test]
    fn termination_ends_early_within_the_term_only() {
        let t = ContractTerm::new(d("2019-01-01"))
            .extend(d("2021-12-31"))
            .unwrap();
        let ended = t.terminate(d("2022-06-30")).unwrap();
        assert_eq!(ended.end(), d("2022-06-30"));
        assert_eq!(ended.status(d("2022-07-01")), ContractStatus::Terminated);
        assert_eq!(ended.status(d("2022-06-30")), ContractStatus::Active);
        assert!(matches!(
            ended.extend(d("2022-07-01")),
            Err(RegistrationError::Rule {
                rule: "contract.terminated",
                ..
            })
        ));
        assert!(matches!(
            t.terminate(d("2018-12-31")),
            Err(RegistrationError::Invalid(_))
        ));
        assert!(matches!(
            t.terminate(d("2024-01-01")),
            Err(RegistrationError::Rule {
                rule: "contract.termination_within_term",
                ..
            })
        ));
        assert_eq!(
            ContractTerm::new(d("2019-01-01")).status(d("2022-01-01")),
            ContractStatus::Ended
        );
    }

    #[test]
    fn a_leap_day_start_keeps_a_valid_end() {
        let t = ContractTerm::new(d("2024-02-29"));
        assert_eq!(t.initial_end(), d("2027-02-27"));
    }
}
