//! Outbound webhook endpoints: `GET/POST /v1/workspaces/{ws}/webhook-endpoints`,
//! `GET/PATCH/DELETE …/webhook-endpoints/{id}`, `POST …/{id}/rotate|resend|recover`
//! and the attempt log `GET …/{id}/attempts`. A secret's value is answered
//! only by `create` and `rotate`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use hookflow_core::outbound::{Endpoint, EndpointError, EndpointRequest, EndpointUpdate, WebhookEndpoints};
use hookflow_core::EngineError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::params::{bad_query, decode_body, decode_cursor, encode_cursor, parse_limit, path, read_body, PathResult};
use crate::{openapi, ApiError, ApiState, MaxBodyBytes};

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    let endpoint = "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}";
    router
        .route(
            "/v1/workspaces/{workspace_id}/webhook-endpoints",
            get(list).post(create),
        )
        .route(endpoint, get(show).patch(update).delete(remove))
        .route(&format!("{endpoint}/rotate"), post(rotate))
        .route(&format!("{endpoint}/resend"), post(resend))
        .route(&format!("{endpoint}/recover"), post(recover))
        .route(&format!("{endpoint}/attempts"), get(attempts))
}

impl From<EndpointError> for ApiError {
    fn from(err: EndpointError) -> Self {
        let status = match &err {
            EndpointError::Invalid(_) | EndpointError::TooMany => StatusCode::UNPROCESSABLE_ENTITY,
            EndpointError::NotFound(_) | EndpointError::MessageNotFound(_) => StatusCode::NOT_FOUND,
            EndpointError::MessagePending(_) | EndpointError::Changed(_) => StatusCode::CONFLICT,
            EndpointError::Port(port) => return EngineError::from(port.clone()).into(),
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

fn use_case(state: &ApiState) -> Result<Arc<WebhookEndpoints>, ApiError> {
    crate::error::served(&state.webhook_endpoints)
}

/// The endpoint and the secret a create or rotate just made.
fn with_secret(endpoint: &Endpoint, secret: String) -> Value {
    let mut view = endpoint.view();
    view["secret"] = json!(secret);
    view
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/webhook-endpoints", tag = "webhook-endpoints",
    params(openapi::WorkspaceId),
    responses((status = 200, body = openapi::WebhookEndpointList)))]
pub(crate) async fn list(State(state): State<ApiState>, ws: PathResult<String>) -> Result<Json<Value>, ApiError> {
    let ws = path(ws)?;
    let all = use_case(&state)?.list(&ws).await?;
    Ok(Json(
        json!({"webhook_endpoints": all.iter().map(Endpoint::view).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/webhook-endpoints", tag = "webhook-endpoints",
    description = "Deliver the workspace's events of these types to `url`, signed (Standard Webhooks). The answer carries the `whsec_` secret, once.",
    params(openapi::WorkspaceId),
    request_body(content = openapi::NewWebhookEndpoint, content_type = "application/json"),
    responses((status = 201, body = openapi::WebhookEndpointWithSecret), (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    ws: PathResult<String>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = path(ws)?;
    let request: EndpointRequest = decode_body(
        &read_body(body, limit)?,
        "{\"url\", \"event_types\": [\"Prize.Won\", \"Run.Failed\"], \"description\"}",
    )?;
    let (endpoint, secret) = use_case(&state)?.create(&ws, request).await?;
    Ok((StatusCode::CREATED, Json(with_secret(&endpoint, secret))))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}", tag = "webhook-endpoints",
    params(openapi::WorkspaceId, openapi::EndpointId),
    responses((status = 200, body = openapi::WebhookEndpointView), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    Ok(Json(use_case(&state)?.get(&ws, &id).await?.view()))
}

#[utoipa::path(patch, path = "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}", tag = "webhook-endpoints",
    description = "Change the URL, event types or description; `enabled: true` re-enables a disabled endpoint (its failed messages wait for `recover`).",
    params(openapi::WorkspaceId, openapi::EndpointId),
    request_body(content = openapi::WebhookEndpointPatch, content_type = "application/json"),
    responses((status = 200, body = openapi::WebhookEndpointView), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn update(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    let update: EndpointUpdate = decode_body(
        &read_body(body, limit)?,
        "{\"url\", \"event_types\", \"description\", \"enabled\"}",
    )?;
    Ok(Json(use_case(&state)?.update(&ws, &id, update).await?.view()))
}

#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}", tag = "webhook-endpoints",
    description = "Delete the endpoint: nothing more is delivered to it; attempts already scheduled are dropped.",
    params(openapi::WorkspaceId, openapi::EndpointId),
    responses((status = 204, description = "deleted"), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (ws, id) = path(ids)?;
    use_case(&state)?.delete(&ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/rotate", tag = "webhook-endpoints",
    description = "A new signing secret. The previous one keeps signing for 24 hours: both signatures are sent meanwhile.",
    params(openapi::WorkspaceId, openapi::EndpointId),
    responses((status = 200, body = openapi::WebhookEndpointWithSecret), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody)))]
pub(crate) async fn rotate(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    let (endpoint, secret) = use_case(&state)?.rotate(&ws, &id).await?;
    Ok(Json(with_secret(&endpoint, secret)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResendRequest {
    message_id: String,
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/resend", tag = "webhook-endpoints",
    description = "One more attempt of a delivered or failed message, now, with the same `webhook-id` and body.",
    params(openapi::WorkspaceId, openapi::EndpointId),
    request_body(content = openapi::ResendMessage, content_type = "application/json"),
    responses((status = 202, body = openapi::ResentMessage), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody)))]
pub(crate) async fn resend(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (ws, id) = path(ids)?;
    let request: ResendRequest = decode_body(&read_body(body, limit)?, "{\"message_id\": \"msg_…\"}")?;
    let message = use_case(&state)?.resend(&ws, &id, &request.message_id).await?;
    let view = json!({"id": message.id, "event_type": message.event_type, "status": message.status,
        "attempts": message.attempts, "created_at": message.created_at});
    Ok((StatusCode::ACCEPTED, Json(json!({"message": view}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverRequest {
    since: DateTime<Utc>,
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/recover", tag = "webhook-endpoints",
    description = "Send again every message created since `since` that failed (at most 1,000 per call; `more` says to call again).",
    params(openapi::WorkspaceId, openapi::EndpointId),
    request_body(content = openapi::RecoverMessages, content_type = "application/json"),
    responses((status = 202, body = openapi::RecoveredMessages), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn recover(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (ws, id) = path(ids)?;
    let request: RecoverRequest = decode_body(&read_body(body, limit)?, "{\"since\": \"<RFC 3339 time>\"}")?;
    let report = use_case(&state)?.recover(&ws, &id, request.since).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(report))))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/attempts", tag = "webhook-endpoints",
    description = "The endpoint's delivery attempts, newest first: status, an excerpt of the answer, what follows.",
    params(openapi::WorkspaceId, openapi::EndpointId, openapi::AttemptQuery),
    responses((status = 200, body = openapi::AttemptLog), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn attempts(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    let Query(params) = params.map_err(|rejection| bad_query(rejection.body_text()))?;
    let limit = params.get("limit").map(|v| parse_limit(v)).transpose()?.unwrap_or(50);
    let before = params.get("cursor").map(|c| decode_cursor(c)).transpose()?;
    let page = use_case(&state)?.attempts(&ws, &id, limit, before.as_deref()).await?;
    let mut body = json!({"attempts": page.attempts});
    if let Some(next) = page.next {
        body["next"] = json!(encode_cursor(&next));
    }
    Ok(Json(body))
}
