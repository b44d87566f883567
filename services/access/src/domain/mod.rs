//! Access's rules, as plain types without I/O: residents ([`resident`]), cases with the statutory
//! clock ([`case`]), granted products and their amendments ([`product`]), and the region's
//! catalogue as access needs it ([`catalogue`]).

pub mod case;
pub mod catalogue;
pub mod product;
pub mod resident;

use chrono::{Datelike, NaiveDate};
use rz_domain::FieldError;

/// The first and last year any date field of access accepts; a date outside is malformed
/// (INVALID_ARGUMENT naming the field), whatever rule would apply to it next.
pub const FIRST_YEAR: i32 = 1900;
pub const LAST_YEAR: i32 = 2100;

/// Parses a `YYYY-MM-DD` date of `field` and checks it lies in the years
/// [`FIRST_YEAR`]..=[`LAST_YEAR`].
pub fn date(field: &str, s: &str) -> Result<NaiveDate, FieldError> {
    let d = rz_domain::parse_date(field, s)?;
    if !(FIRST_YEAR..=LAST_YEAR).contains(&d.year()) {
        return Err(FieldError::new(
            field,
            format!("must lie in the years {FIRST_YEAR} to {LAST_YEAR}"),
        ));
    }
    Ok(d)
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Malformed input, naming each field and its rule.
    #[error("invalid: {0:?}")]
    Invalid(Vec<FieldError>),
    /// A rule of the domain: `rule` is a stable id, `subject` what it applies to.
    #[error("{rule}: {description}")]
    Rule {
        rule: &'static str,
        subject: String,
        description: String,
    },
    /// Another municipality's business (its residents).
    #[error("{rule}: {description}")]
    PermissionDenied {
        rule: &'static str,
        description: String,
    },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
}

impl AccessError {
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

    /// The rule id, for tests and logs.
    pub fn rule_id(&self) -> Option<&'static str> {
        match self {
            Self::Rule { rule, .. } | Self::PermissionDenied { rule, .. } => Some(rule),
            _ => None,
        }
    }
}

impl From<FieldError> for AccessError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}

impl From<Vec<FieldError>> for AccessError {
    fn from(e: Vec<FieldError>) -> Self {
        Self::Invalid(e)
    }
}

pub use rz_domain::Fields;
