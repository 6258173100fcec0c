//! Path, query and body extraction shared by the routes: every refusal is a
//! JSON error naming the problem.

use axum::body::Bytes;
use std::collections::HashMap;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::Extension;

use crate::error::{body_error, path_error};
use crate::{ApiError, MaxBodyBytes};

pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 100;

pub(crate) type PathResult<T> = Result<Path<T>, PathRejection>;

/// Path parameters, or a JSON 400 naming what did not decode.
pub(crate) fn path<T>(extracted: PathResult<T>) -> Result<T, ApiError> {
    extracted
        .map(|Path(value)| value)
        .map_err(|rejection| path_error(&rejection))
}

/// The body, or a JSON 413 naming the limit.
pub(crate) fn read_body(
    body: Result<Bytes, BytesRejection>,
    limit: Option<Extension<MaxBodyBytes>>,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| body_error(&rejection, limit.map(|Extension(MaxBodyBytes(max))| max)))
}

/// A JSON body, or a 400 naming what was `expected`.
pub(crate) fn decode_body<T: serde::de::DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("expected {expected}: {e}"),
        )
    })
}

pub(crate) fn bad_query(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

/// `?limit=`: 1 to [`MAX_LIMIT`].
pub(crate) fn parse_limit(value: &str) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| bad_query(format!("limit must be a number from 1 to {MAX_LIMIT}")))
}

/// Opaque to callers: the position as hex, so nobody builds one by hand.
pub(crate) fn encode_cursor(position: &str) -> String {
    position.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let invalid = || bad_query("cursor is not one this API returned".into());
    if !cursor.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| cursor.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// The query of a list route: `limit`, `cursor` (decoded) and the route's
/// own filters.
pub(crate) struct Page {
    pub(crate) limit: usize,
    pub(crate) cursor: Option<String>,
    pub(crate) filters: HashMap<String, String>,
}

/// Reads a list route's query; any parameter but `limit`, `cursor` and
/// `filters` is refused, naming the ones expected.
pub(crate) fn page(
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
    filters: &[&str],
) -> Result<Page, ApiError> {
    let Query(params) = params.map_err(|rejection| bad_query(rejection.body_text()))?;
    let mut page = Page {
        limit: DEFAULT_LIMIT,
        cursor: None,
        filters: HashMap::new(),
    };
    for (key, value) in params {
        match key.as_str() {
            "limit" => page.limit = parse_limit(&value)?,
            "cursor" => page.cursor = Some(decode_cursor(&value)?),
            filter if filters.contains(&filter) => {
                page.filters.insert(key, value);
            }
            other => {
                let expected: Vec<&str> = filters.iter().copied().chain(["limit", "cursor"]).collect();
                return Err(bad_query(format!(
                    "unknown query parameter {other:?}; expected {}",
                    expected.join(", ")
                )));
            }
        }
    }
    Ok(page)
}

/// Header pairs as sent (values that are not text are left out: no sender
/// signs with them).
pub(crate) fn header_pairs(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect()
}

/// The start of a caller's value, for an error message.
pub(crate) fn cut_for_message(value: &str) -> String {
    value.chars().take(64).collect()
}
