//! Errors at the API boundary, mapped to precise gRPC status codes with `google.rpc` details:
//! a malformed field -> INVALID_ARGUMENT with BadRequest field violations; a broken rule ->
//! FAILED_PRECONDITION with a PreconditionFailure naming the rule; NOT_FOUND; ALREADY_EXISTS;
//! PERMISSION_DENIED; anything else -> INTERNAL without internals leaking to the caller.

use rz_domain::FieldError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid argument: {}", join(.0))]
    InvalidArgument(Vec<FieldError>),
    /// A rule of the domain or the standard: `rule` is a stable identifier such as
    /// `contract.no_overlap`, `subject` what it applies to, `description` the sentence for people.
    #[error("failed precondition {rule}: {description}")]
    FailedPrecondition {
        rule: String,
        subject: String,
        description: String,
    },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The database (or another dependency) cannot be reached now: UNAVAILABLE, worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A transaction lost a deadlock or serialisation conflict: nothing was changed and the
    /// same call can simply be made again (ABORTED).
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    pub fn field(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldError::new(field, rule)])
    }

    pub fn rule(
        rule: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self::FailedPrecondition {
            rule: rule.into(),
            subject: subject.into(),
            description: description.into(),
        }
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::InvalidArgument(vec![e])
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(e: Vec<FieldError>) -> Self {
        Self::InvalidArgument(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // 40P01 deadlock_detected, 40001 serialization_failure: the transaction was rolled back.
        let conflict = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "40P01" || c == "40001");
        if conflict {
            return Self::Aborted(e.to_string());
        }
        match e {
            // The server went away or the pool has no connection to give: retryable.
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument(errors) => {
                let mut details = ErrorDetails::new();
                for fe in &errors {
                    details.add_bad_request_violation(fe.field.clone(), fe.rule.clone());
                }
                Status::with_error_details(Code::InvalidArgument, join(&errors), details)
            }
            ApiError::FailedPrecondition {
                rule,
                subject,
                description,
            } => {
                let details = ErrorDetails::with_precondition_failure_violation(
                    rule.clone(),
                    subject,
                    description.clone(),
                );
                Status::with_error_details(
                    Code::FailedPrecondition,
                    format!("{rule}: {description}"),
                    details,
                )
            }
            ApiError::NotFound(what) => Status::not_found(what),
            ApiError::AlreadyExists(what) => Status::already_exists(what),
            ApiError::PermissionDenied(what) => Status::permission_denied(what),
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "dependency unavailable");
                Status::unavailable("the database is unavailable; retry the call")
            }
            ApiError::Aborted(detail) => {
                tracing::warn!(error = %detail, "transaction conflict; the caller may retry");
                Status::aborted(
                    "a concurrent change conflicted; nothing was changed, retry the call",
                )
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Status::internal("internal error; see the service log")
            }
        }
    }
}
