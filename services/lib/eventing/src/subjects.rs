//! Subject and stream names.

/// The first subject token and stream-name prefix of one deployment (`rz` by default). Several
/// regions, or parallel test runs, can share one NATS cluster under different namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    /// A namespace is lowercase ASCII letters and digits, starting with a letter.
    pub fn new(ns: &str) -> Result<Self, String> {
        let ok = ns.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if ok {
            Ok(Self(ns.to_owned()))
        } else {
            Err(format!(
                "nats.namespace `{ns}` must be lowercase letters and digits"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `rz.<context>.<municipality|_>.<agb|_>.<event>`.
    pub fn subject(
        &self,
        context: &str,
        municipality: Option<&str>,
        agb: Option<&str>,
        event: &str,
    ) -> String {
        format!(
            "{}.{context}.{}.{}.{event}",
            self.0,
            municipality.unwrap_or("_"),
            agb.unwrap_or("_")
        )
    }

    /// Stream of a bounded context, e.g. `RZ_REGISTRATION`.
    pub fn stream_name(&self, context: &str) -> String {
        format!("{}_{}", self.0, context).to_ascii_uppercase()
    }

    /// The dead-letter stream, `RZ_DLQ` over `rz.dlq.>`.
    pub fn dlq_stream(&self) -> String {
        self.stream_name("dlq")
    }

    pub fn dlq_subject(&self, consumer: &str) -> String {
        format!("{}.dlq.{consumer}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_carry_municipality_and_provider() {
        let ns = Namespace::new("rz").unwrap();
        assert_eq!(
            ns.subject("assignment", Some("0222"), Some("12345678"), "issued"),
            "rz.assignment.0222.12345678.issued"
        );
        assert_eq!(
            ns.subject("registration", None, None, "x"),
            "rz.registration._._.x"
        );
        assert_eq!(ns.stream_name("registration"), "RZ_REGISTRATION");
        assert!(Namespace::new("Rz").is_err());
        assert!(Namespace::new("r.z").is_err());
        assert!(Namespace::new("").is_err());
    }
}
