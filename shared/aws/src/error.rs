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

/// Classifies an SDK failure: network trouble, timeouts and throttling are
/// retryable; everything else (access denied, validation) is terminal.
pub(crate) fn port_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => service.err().code().is_some_and(|code| RETRYABLE_CODES.contains(&code)),
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
