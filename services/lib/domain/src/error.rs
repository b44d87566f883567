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

/// Collects field errors while a request is parsed, so one reply names every malformed field.
///
/// ```
/// use rz_domain::{AgbCode, Fields};
/// let mut f = Fields::default();
/// let agb = f.check(AgbCode::parse("123").map_err(|e| e.at("agb_code")));
/// f.non_empty("name", " ");
/// assert!(agb.is_none());
/// assert_eq!(f.finish().unwrap_err().len(), 2);
/// ```
#[derive(Debug, Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// Keeps the value, or records its error.
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    /// Keeps the value, or records all its errors.
    pub fn check_all<T>(&mut self, r: Result<T, Vec<FieldError>>) -> Option<T> {
        r.map_err(|e| self.0.extend(e)).ok()
    }

    /// Records that `field` breaks `rule`.
    pub fn push(&mut self, field: impl Into<String>, rule: impl Into<String>) {
        self.0.push(FieldError::new(field, rule));
    }

    /// Records `field` when it is empty or only white space, or when it begins or ends with white
    /// space: a value is taken as sent, never trimmed, so what is stored is what was checked.
    pub fn non_empty(&mut self, field: &str, v: &str) {
        if let Err(rule) = not_blank(v) {
            self.push(field, rule);
        }
    }

    /// Records `field` as [`Self::non_empty`] does; returns the text as sent.
    pub fn required(&mut self, field: &str, v: &str) -> String {
        self.non_empty(field, v);
        v.to_owned()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when no field broke a rule, otherwise every error in the order found. Boundary error
    /// types convert the list (`ApiError::InvalidArgument`, a service's own `Invalid`).
    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// The rule a required text breaks, if any: empty (or only white space), or white space around it.
pub(crate) fn not_blank(v: &str) -> Result<(), &'static str> {
    if v.trim().is_empty() {
        Err("must not be empty")
    } else if v.trim() != v {
        Err(SURROUNDING_WHITE_SPACE)
    } else {
        Ok(())
    }
}

/// The rule of a value with white space around it (nothing is trimmed).
pub const SURROUNDING_WHITE_SPACE: &str = "must not begin or end with white space";

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

    #[test]
    fn fields_collect_every_error_in_order() {
        let mut f = Fields::default();
        assert_eq!(f.check(Ok::<_, FieldError>(1)), Some(1));
        f.non_empty("a", "  ");
        assert_eq!(f.required("b", "x"), "x");
        f.check_all::<()>(Err(vec![
            FieldError::new("c", "r1"),
            FieldError::new("d", "r2"),
        ]));
        f.push("e", "r3");
        assert!(!f.is_empty());
        let fields: Vec<String> = f
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["a", "c", "d", "e"]);
        assert!(Fields::default().finish().is_ok());
    }

    #[test]
    fn text_is_refused_with_white_space_around_it_not_trimmed() {
        let mut f = Fields::default();
        f.non_empty("a", " x");
        assert_eq!(f.required("b", "x\n"), "x\n");
        f.non_empty("c", "\t");
        f.non_empty("d", "de Vries");
        let errors = f.finish().unwrap_err();
        assert_eq!(
            errors,
            [
                FieldError::new("a", SURROUNDING_WHITE_SPACE),
                FieldError::new("b", SURROUNDING_WHITE_SPACE),
                FieldError::new("c", "must not be empty"),
            ]
        );
    }
}
