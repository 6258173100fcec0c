//! Connections: `GET/POST /v1/workspaces/{ws}/connections`,
//! `GET/DELETE …/connections/{name}` and `POST …/connections/{name}/rotate`.
//! Credentials are write-only: no answer carries them, and a body that
//! fails to decode is refused without quoting any of its values.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hookflow_core::connections::{ConnectionError, ConnectionRequest, Connections, RotateRequest};
use hookflow_core::EngineError;
use serde_json::{json, Value};

use crate::params::{path, read_body, PathResult};
use crate::{openapi, ApiError, ApiState, MaxBodyBytes};

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/v1/workspaces/{workspace_id}/connections", get(list).post(create))
        .route(
            "/v1/workspaces/{workspace_id}/connections/{name}",
            get(show).delete(remove),
        )
        .route("/v1/workspaces/{workspace_id}/connections/{name}/rotate", post(rotate))
}

impl From<ConnectionError> for ApiError {
    fn from(err: ConnectionError) -> Self {
        let status = match &err {
            ConnectionError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ConnectionError::NotFound(_) => StatusCode::NOT_FOUND,
            ConnectionError::NameTaken(_) | ConnectionError::Changed(_) => StatusCode::CONFLICT,
            ConnectionError::TooMany => StatusCode::UNPROCESSABLE_ENTITY,
            ConnectionError::Port(port) => return EngineError::from(port.clone()).into(),
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

fn use_case(state: &ApiState) -> Result<Arc<Connections>, ApiError> {
    crate::error::served(&state.connections)
}

/// Decodes a body that carries credentials: the refusal names where the
/// body is wrong, never what it holds (serde's messages quote values).
fn decode_credentials_body<T: serde::de::DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, ApiError> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut reader).map_err(|err| {
        let at = err.path().to_string();
        let problem = match err.inner().classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "is not valid JSON",
            serde_json::error::Category::Data => "has a missing, unknown or mistyped field",
            serde_json::error::Category::Io => "could not be read",
        };
        let place = if at == "." { String::new() } else { format!(" at {at}") };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body {problem}{place}; expected {expected}"),
        )
    })
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/connections", tag = "connections",
    params(openapi::WorkspaceId),
    responses((status = 200, body = openapi::ConnectionList)))]
pub(crate) async fn list(State(state): State<ApiState>, ws: PathResult<String>) -> Result<Json<Value>, ApiError> {
    let ws = path(ws)?;
    let all = use_case(&state)?.list(&ws).await?;
    Ok(Json(
        json!({"connections": all.iter().map(|c| c.view()).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/connections", tag = "connections",
    description = "Store an app's credentials under a name that steps reference (`\"connection\": \"mc\"`). The credentials are write-only.",
    params(openapi::WorkspaceId),
    request_body(content = openapi::NewConnection, content_type = "application/json"),
    responses((status = 201, body = openapi::ConnectionView), (status = 409, body = openapi::ErrorBody),
        (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    ws: PathResult<String>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = path(ws)?;
    let request: ConnectionRequest = decode_credentials_body(
        &read_body(body, limit)?,
        "{\"name\", \"app\": \"mailchimp\" | \"braze\", \"credentials\": {\"api_key\"}, \"base_url\"}",
    )?;
    let created = use_case(&state)?.create(&ws, request).await?;
    Ok((StatusCode::CREATED, Json(created.view())))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/connections/{name}", tag = "connections",
    params(openapi::WorkspaceId, openapi::ConnectionName),
    responses((status = 200, body = openapi::ConnectionView), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, name) = path(ids)?;
    Ok(Json(use_case(&state)?.get(&ws, &name).await?.view()))
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/connections/{name}/rotate", tag = "connections",
    description = "Replace the credentials (and the base URL, if given). Running steps finish with the old ones; the old ones are then deleted.",
    params(openapi::WorkspaceId, openapi::ConnectionName),
    request_body(content = openapi::RotateConnection, content_type = "application/json"),
    responses((status = 200, body = openapi::ConnectionView), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn rotate(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (ws, name) = path(ids)?;
    let request: RotateRequest =
        decode_credentials_body(&read_body(body, limit)?, "{\"credentials\": {…}, \"base_url\"}")?;
    Ok(Json(use_case(&state)?.rotate(&ws, &name, request).await?.view()))
}

#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/connections/{name}", tag = "connections",
    description = "Delete the connection and its credentials. Steps naming it fail with `no connection named …` once functions stop reusing what they read (at most 5 minutes).",
    params(openapi::WorkspaceId, openapi::ConnectionName),
    responses((status = 204, description = "deleted"), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (ws, name) = path(ids)?;
    use_case(&state)?.delete(&ws, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
