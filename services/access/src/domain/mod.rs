//! Access's rules, as plain types without I/O: residents ([`resident`]), cases with the statutory
//! clock ([`case`]), granted products and their amendments ([`product`]), and the region's
//! catalogue as access needs it ([`catalogue`]).

pub mod case;
pub mod catalogue;
pub mod product;
pub mod resident;

use rz_domain::FieldError;

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
