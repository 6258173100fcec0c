//! Hooks: the management routes under `/v1/workspaces/{ws}/hooks` (behind a
//! key) and the public `POST /v1/hooks/{hook_id}`, which only the hook's own
//! sender auth guards.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use hookflow_core::hooks::{
    Hook, HookChange, HookError, HookKind, HookReceiver, HookRequest, Hooks, MintedHook, Received, Refusal,
    MAX_HOOK_BODY_BYTES,
};
use serde_json::{json, Value};

use crate::params::{decode_body, header_pairs, path, read_body, PathResult};
use crate::{openapi, ApiError, ApiState, MaxBodyBytes};

const HOOK: &str = "/v1/workspaces/{workspace_id}/hooks/{hook_id}";

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/v1/workspaces/{workspace_id}/hooks", get(list).post(create))
        .route(HOOK, get(show).patch(update).delete(remove))
        .route(&format!("{HOOK}/rotate"), post(rotate))
        .route(&format!("{HOOK}/secrets/{{secret_id}}"), delete(revoke_secret))
}

/// The public door, outside the key check: its own body limit (hooks may
/// take up to 1 MiB), and no key.
pub(crate) fn public_routes(router: Router<ApiState>) -> Router<ApiState> {
    router.route(
        "/v1/hooks/{hook_id}",
        post(receive)
            .layer::<_, Infallible>(DefaultBodyLimit::max(MAX_HOOK_BODY_BYTES))
            .layer::<_, Infallible>(Extension(MaxBodyBytes(MAX_HOOK_BODY_BYTES))),
    )
}

impl From<HookError> for ApiError {
    fn from(err: HookError) -> Self {
        let status = match &err {
            HookError::NotFound(_) | HookError::SecretNotFound(_) => StatusCode::NOT_FOUND,
            HookError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            HookError::Conflict | HookError::LastSecret(_) | HookError::TooManySecrets => StatusCode::CONFLICT,
            HookError::Port(port) => return hookflow_core::EngineError::from(port.clone()).into(),
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

fn use_case(state: &ApiState) -> Result<Arc<Hooks>, ApiError> {
    crate::error::served(&state.hooks)
}

/// A hook as the API shows it: its secrets by id and age, never by value.
fn hook_json(hook: &Hook) -> Value {
    let secrets: Vec<Value> = hook
        .secrets
        .iter()
        .map(|s| json!({"id": s.id, "created_at": s.created_at, "expires_at": s.expires_at}))
        .collect();
    json!({"id": hook.id, "workspace_id": hook.workspace_id, "name": hook.name, "kind": hook.kind,
        "trigger_type": hook.trigger_type, "siteid": hook.siteid, "cardid": hook.cardid, "auth": hook.auth,
        "event_id": hook.event_id, "status": hook.status, "max_body_bytes": hook.max_body_bytes,
        "rate_limit": hook.rate_limit, "redirect_url": hook.redirect_url, "secrets": secrets,
        "revision": hook.revision, "created_at": hook.created_at, "updated_at": hook.updated_at,
        "path": format!("/v1/hooks/{}", hook.id)})
}

/// The hook, and the secret just made: this answer is the only one that shows it.
fn minted_json(minted: &MintedHook) -> Value {
    let mut answer = hook_json(&minted.hook);
    if let Some((id, value)) = &minted.secret {
        answer["secret_id"] = json!(id);
        answer["secret"] = json!(value);
    }
    answer
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/hooks", tag = "hooks",
    params(openapi::WorkspaceId), responses((status = 200, body = openapi::HookList)))]
pub(crate) async fn list(State(state): State<ApiState>, ws: PathResult<String>) -> Result<Json<Value>, ApiError> {
    let ws = path(ws)?;
    let hooks = use_case(&state)?.list(&ws).await?;
    Ok(Json(json!({"hooks": hooks.iter().map(hook_json).collect::<Vec<_>>()})))
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/hooks", tag = "hooks",
    description = "Create a hook. The answer holds its secret (`secret`), which no other answer shows.",
    params(openapi::WorkspaceId), request_body(content = openapi::NewHook, content_type = "application/json"),
    responses((status = 201, body = openapi::HookCreated), (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    ws: PathResult<String>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ws = path(ws)?;
    let request: HookRequest = decode_body(&read_body(body, limit)?, "a hook: {\"name\", \"kind\", \"auth\", …}")?;
    let minted = use_case(&state)?.create(&ws, request).await?;
    Ok((StatusCode::CREATED, Json(minted_json(&minted))).into_response())
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/hooks/{hook_id}", tag = "hooks",
    params(openapi::WorkspaceId, openapi::HookId),
    responses((status = 200, body = openapi::HookView), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    Ok(Json(hook_json(&use_case(&state)?.get(&ws, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/workspaces/{workspace_id}/hooks/{hook_id}", tag = "hooks",
    description = "Change a hook's name, trigger type, scope ids, event id source, status, limits or redirect; `null` clears an optional field.",
    params(openapi::WorkspaceId, openapi::HookId), request_body(content = openapi::HookPatch, content_type = "application/json"),
    responses((status = 200, body = openapi::HookView), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn update(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    let change: HookChange = decode_body(&read_body(body, limit)?, "the fields to change")?;
    Ok(Json(hook_json(&use_case(&state)?.update(&ws, &id, change).await?)))
}

#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/hooks/{hook_id}", tag = "hooks",
    params(openapi::WorkspaceId, openapi::HookId),
    responses((status = 204, description = "deleted"), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (ws, id) = path(ids)?;
    use_case(&state)?.delete(&ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    overlap_s: Option<u64>,
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/hooks/{hook_id}/rotate", tag = "hooks",
    description = "Add a secret (the sender's own, or a new one, shown in this answer only). The older secrets keep verifying for `overlap_s` (24 h by default) or until revoked.",
    params(openapi::WorkspaceId, openapi::HookId), request_body(content = Option<openapi::RotateRequest>, content_type = "application/json"),
    responses((status = 200, body = openapi::HookCreated), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn rotate(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    let body = read_body(body, limit)?;
    let request: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        decode_body(&body, "{\"secret\"?: string, \"overlap_s\"?: seconds}")?
    };
    let overlap = request.overlap_s.map(Duration::from_secs);
    let minted = use_case(&state)?.rotate(&ws, &id, request.secret, overlap).await?;
    Ok(Json(minted_json(&minted)))
}

#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/hooks/{hook_id}/secrets/{secret_id}", tag = "hooks",
    description = "Revoke one secret now (not the last live one).",
    params(openapi::WorkspaceId, openapi::HookId, ("secret_id" = String, Path)),
    responses((status = 200, body = openapi::HookView), (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody)))]
pub(crate) async fn revoke_secret(
    State(state): State<ApiState>,
    ids: PathResult<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id, secret_id) = path(ids)?;
    Ok(Json(hook_json(
        &use_case(&state)?.revoke_secret(&ws, &id, &secret_id).await?,
    )))
}

/// The one answer to every request that did not authenticate: an unknown
/// id, a disabled hook and a bad signature cannot be told apart.
fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the request did not authenticate for this hook",
    )
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthorized(_) => unauthorized(),
            Refusal::RateLimited { retry_after_s, .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", refusal.to_string())
                    .with_retry_after(retry_after_s)
            }
            Refusal::TooLarge { .. } | Refusal::EventTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", refusal.to_string())
            }
            Refusal::Body(hookflow_core::hooks::body::BodyError::UnsupportedMediaType { .. }) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                refusal.to_string(),
            ),
            Refusal::Body(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", refusal.to_string()),
            Refusal::Internal(_) => {
                tracing::error!(error = %refusal, "hook request not accepted");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
            Refusal::Unavailable(_) => {
                tracing::error!(error = %refusal, "hook request not accepted");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the event could not be accepted now; retry",
                )
            }
        }
    }
}

fn receiver(state: &ApiState) -> Result<Arc<HookReceiver>, ApiError> {
    state.hook_receiver.clone().ok_or_else(unauthorized)
}

/// A browser's form post wants a page, not JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

const THANK_YOU: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Thank you</title>\
<body style=\"font-family:system-ui;margin:4rem auto;max-width:32rem\"><h1>Thank you</h1>\
<p>Your submission was received.</p></body></html>";

#[utoipa::path(post, path = "/v1/hooks/{hook_id}", tag = "hooks",
    description = "An inbound hook: the body becomes an event of the hook's trigger type. No API key: the hook's own sender auth (bearer, basic, HMAC, Standard Webhooks) is checked over the raw body. An unknown or disabled hook and a failed check get the same 401.",
    params(openapi::HookId),
    request_body(content = Object, description = "JSON, text, a form or an email, by the hook's kind"),
    responses((status = 202, body = openapi::HookAccepted), (status = 303, description = "a browser's form post, sent to the hook's redirect_url"),
        (status = 200, description = "a browser's form post: a thank-you page", content_type = "text/html"),
        (status = 400, body = openapi::ErrorBody), (status = 401, body = openapi::ErrorBody), (status = 413, body = openapi::ErrorBody),
        (status = 415, body = openapi::ErrorBody), (status = 429, body = openapi::ErrorBody), (status = 503, body = openapi::ErrorBody)))]
pub(crate) async fn receive(
    State(state): State<ApiState>,
    hook_id: PathResult<String>,
    headers: HeaderMap,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // An id that does not even decode is refused like any unknown one.
    let hook_id = hook_id.map(|Path(id)| id).unwrap_or_default();
    let body = read_body(body, limit)?;
    let received = receiver(&state)?
        .receive(&hook_id, &header_pairs(&headers), &body)
        .await?;
    Ok(accepted(&received, wants_html(&headers)))
}

fn accepted(received: &Received, wants_html: bool) -> Response {
    if received.hook.kind == HookKind::Form && wants_html {
        return match received
            .hook
            .redirect_url
            .as_deref()
            .and_then(|url| HeaderValue::from_str(url).ok())
        {
            Some(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
            None => (StatusCode::OK, Html(THANK_YOU)).into_response(),
        };
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"event_id": received.event_id, "duplicate": received.duplicate})),
    )
        .into_response()
}
