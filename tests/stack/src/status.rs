//! Assertions on the gRPC status a refused request gets (the rich error model).

use tonic_types::StatusExt;

/// Asserts INVALID_ARGUMENT with a BadRequest violation for `field`.
pub fn assert_invalid(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let bad = status
        .get_details_bad_request()
        .expect("BadRequest details");
    assert!(
        bad.field_violations
            .iter()
            .any(|v| v.field == field && !v.description.is_empty()),
        "no violation for {field}: {:?}",
        bad.field_violations
    );
}

/// As [`assert_invalid`], and the violation's description contains `text`.
pub fn assert_invalid_says(status: &tonic::Status, field: &str, text: &str) {
    assert_invalid(status, field);
    let bad = status.get_details_bad_request().unwrap();
    assert!(
        bad.field_violations
            .iter()
            .any(|v| v.field == field && v.description.contains(text)),
        "{field} does not say {text:?}: {:?}",
        bad.field_violations
    );
}

/// Asserts FAILED_PRECONDITION with a PreconditionFailure naming `rule`.
pub fn assert_rule(status: &tonic::Status, rule: &str) {
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let failure = status
        .get_details_precondition_failure()
        .expect("PreconditionFailure details");
    assert!(
        failure.violations.iter().any(|v| v.r#type == rule),
        "no rule {rule}: {:?}",
        failure.violations
    );
}
