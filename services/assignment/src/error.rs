//! Why an operation failed, for both edges: a gRPC status for callers, and for the event consumer
//! whether retrying can help (transient) or not (permanent, dead letter).

use rz_domain::FieldError;
use rz_eventing::HandleError;
use rz_platform::ApiError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input, a broken rule, not found, a duplicate, or an internal failure.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Registration or an access instance cannot be reached now: UNAVAILABLE; retried by the consumer.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Registration or access refused the call: INTERNAL; the consumer dead-letters the event.
    #[error("upstream refused: {0}")]
    Upstream(String),
    /// An event that can never be applied as it is: dead-lettered.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The caller may not touch the subject (another provider's assignment, another
    /// municipality's request): PERMISSION_DENIED naming `rule`, nothing changed.
    #[error("permission denied {rule}: {description}")]
    Denied { rule: String, description: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn rule(
        rule: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self::Api(ApiError::rule(rule, subject, description))
    }

    /// PERMISSION_DENIED under `rule` (a stable id such as `start.assignment_of_provider`).
    pub fn denied(rule: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Denied {
            rule: rule.into(),
            description: description.into(),
        }
    }

    pub fn field(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Api(ApiError::field(field, rule))
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::Api(ApiError::NotFound(what.into()))
    }

    pub fn already_exists(what: impl Into<String>) -> Self {
        Self::Api(ApiError::AlreadyExists(what.into()))
    }

    /// A deadlock or serialisation conflict: the transaction was rolled back and may be re-run.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Api(ApiError::Aborted(_)))
    }

    /// The stable rule id, when this is a broken rule or a refusal (for tests and logs).
    pub fn rule_id(&self) -> Option<&str> {
        match self {
            Self::Api(ApiError::FailedPrecondition { rule, .. }) | Self::Denied { rule, .. } => {
                Some(rule)
            }
            _ => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Api(ApiError::from(e))
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Self::Api(ApiError::from(e))
    }
}

impl From<Vec<FieldError>> for Error {
    fn from(e: Vec<FieldError>) -> Self {
        Self::Api(ApiError::from(e))
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Api(e) => Status::from(e),
            Error::Unavailable(what) => {
                tracing::warn!(error = %what, "dependency unavailable");
                Status::unavailable(what)
            }
            Error::Upstream(what) | Error::Malformed(what) => {
                Status::from(ApiError::Internal(what))
            }
            Error::Denied { rule, description } => {
                Status::from(ApiError::PermissionDenied(format!("{rule}: {description}")))
            }
        }
    }
}

impl From<Error> for HandleError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unavailable(what) => HandleError::Transient(what),
            Error::Api(
                ApiError::Internal(what) | ApiError::Aborted(what) | ApiError::Unavailable(what),
            ) => HandleError::Transient(what),
            other => HandleError::Permanent(other.to_string()),
        }
    }
}
