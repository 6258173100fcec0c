use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookflow_core::event::IngestError;
use hookflow_core::EngineError;
use serde_json::json;

/// An HTTP error with a stable code and a message that names the problem.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Machine-readable detail, such as a draft's problems (boxed: most
    /// errors have none, and every `Result` carries the error's size).
    pub details: Option<Box<serde_json::Value>>,
    /// Seconds for a `Retry-After` header (a 429).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_s: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(details) = self.details {
            error["details"] = *details;
        }
        let body = json!({ "error": error });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        let status = match err {
            IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, err.code(), err.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        if let EngineError::EventTooLarge { .. } = err {
            return Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", err.to_string());
        }
        // Our fault, not the caller's: the caller should retry a retryable one.
        tracing::error!(error = %err, retryable = err.is_retryable(), "request failed");
        if err.is_retryable() {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "temporarily unavailable; retry the request",
            )
        } else {
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
    }
}

/// A body that could not be read: too large (413, naming the limit) or cut off.
pub(crate) fn body_error(rejection: &axum::extract::rejection::BytesRejection, limit: Option<usize>) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            match limit {
                Some(max) => format!("request body is larger than the limit of {max} bytes"),
                None => "request body is too large".to_owned(),
            },
        ),
        status => ApiError::new(status, "bad_request", rejection.body_text()),
    }
}

/// A path segment that does not decode (`%FF`) or parse.
pub(crate) fn path_error(rejection: &axum::extract::rejection::PathRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text())
}

pub(crate) async fn not_found() -> ApiError {
    no_route()
}

pub(crate) fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The use case a route needs, or 404 when this process does not serve it.
pub(crate) fn served<T: ?Sized>(use_case: &Option<std::sync::Arc<T>>) -> Result<std::sync::Arc<T>, ApiError> {
    use_case.clone().ok_or_else(no_route)
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
