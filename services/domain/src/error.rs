//! The one error type of every parser in this crate.

/// A value that breaks a rule: which field, and which rule.
///
/// `field` starts as a sensible default (`"bsn"`, `"agb_code"`, ...); callers that know where the
/// value came from rename it with [`FieldError::at`], e.g. `.at("provider.agb_code")`. `rule` is a
/// short English sentence naming the rule ("must be 8 digits", "fails the 11-test"), suitable for a
/// `google.rpc.BadRequest` field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The same error, with the field renamed (the rule is kept).
    #[must_use]
    pub fn at(self, field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_rename() {
        let e = FieldError::new("agb_code", "must be 8 digits");
        assert_eq!(e.to_string(), "agb_code: must be 8 digits");
        let e = e.at("provider.agb_code");
        assert_eq!(e.field, "provider.agb_code");
        assert_eq!(e.rule, "must be 8 digits");
    }
}
