use std::error::Error;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use hookflow_core::ports::PortError;

/// Error codes AWS documents as worth retrying.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "RequestThrottled",
    "KMSThrottlingException",
];

/// A terminal error now parks its message and fails its run on the first
/// delivery, so a code that only says "try later" must not pass for one:
/// the documented list, and any code that names throttling or a fault on
/// the service's side (SQS's `InternalFailure`, `KmsThrottled`, …).
fn is_transient_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
        || [
            "Throttl",
            "InternalFailure",
            "InternalServer",
            "Unavailable",
            "RequestTimeout",
            "SlowDown",
        ]
        .iter()
        .any(|part| code.contains(part))
}

/// Classifies an SDK failure: network trouble, timeouts and throttling are
/// retryable; everything else (access denied, validation) is terminal.
pub(crate) fn port_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => service.err().code().is_some_and(is_transient_code),
        _ => false,
    };
    let message = DisplayErrorContext(&err).to_string();
    PortError {
        operation,
        message,
        retryable,
    }
}

pub(crate) fn decode_error(operation: &'static str, err: impl std::fmt::Display) -> PortError {
    PortError::terminal(operation, format!("stored item cannot be decoded: {err}"))
}

#[cfg(test)]
mod tests {
    use super::is_transient_code;

    #[test]
    fn service_side_faults_and_throttling_are_transient() {
        for code in [
            "InternalFailure",
            "KmsThrottled",
            "KMSThrottlingException",
            "ServiceUnavailable",
            "ThrottlingException",
            "RequestTimeout",
            "InternalServerError",
            "ProvisionedThroughputExceededException",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "AccessDeniedException",
            "ValidationException",
            "ConditionalCheckFailedException",
            "InvalidMessageContents",
            "ResourceNotFoundException",
        ] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}
