//! The register's rules, as plain types without I/O.

pub mod catalogue;
pub mod contract;
pub mod tender;

use chrono::NaiveDate;
use rz_domain::FieldError;

/// How far back the register may be written: a tender's contracts may start, and an ended contract
/// may still be extended, at most this many days before today. Older history is not reopened.
pub const HISTORY_WINDOW_DAYS: u64 = 365;

/// The first day inside the [`HISTORY_WINDOW_DAYS`] before `today`.
pub fn history_floor(today: NaiveDate) -> NaiveDate {
    today
        .checked_sub_days(chrono::Days::new(HISTORY_WINDOW_DAYS))
        .unwrap_or(NaiveDate::MIN)
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// Malformed input, naming each field and its rule.
    #[error("invalid: {0:?}")]
    Invalid(Vec<FieldError>),
    /// A rule of the register: `rule` is a stable id, `subject` what it applies to.
    #[error("{rule}: {description}")]
    Rule {
        rule: &'static str,
        subject: String,
        description: String,
    },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
}

impl RegistrationError {
    pub fn rule(
        rule: &'static str,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self::Rule {
            rule,
            subject: subject.into(),
            description: description.into(),
        }
    }
    pub fn field(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, rule)])
    }
}

impl From<FieldError> for RegistrationError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}
