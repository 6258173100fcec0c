//! The key check every route makes (brief §7), the audit of management
//! writes, and the routes of keys and the audit trail. One code path for
//! `hookflow dev` and the Lambda functions.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection, RawPathParamsRejection};
use axum::extract::{MatchedPath, Query, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use hookflow_core::access::{Access, AccessError, Actor, Permission, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::params::{encode_cursor, page, path, read_body, Page, PathResult};
use crate::{ApiError, ApiState, MaxBodyBytes};

/// Whether a request without a key is let in. Only `hookflow dev` on a
/// loopback address without `--require-keys` lets it in, as the local
/// developer; a key that is presented is checked either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeylessRequests {
    Refused,
    AllowedAsLocalDeveloper,
}

/// The key check and the audit trail, which every router needs.
#[derive(Clone)]
pub struct Gate {
    pub access: Arc<Access>,
    pub keyless: KeylessRequests,
}

impl From<AccessError> for ApiError {
    fn from(err: AccessError) -> Self {
        let status = match &err {
            AccessError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AccessError::Forbidden(_) => StatusCode::FORBIDDEN,
            AccessError::KeyNotFound(_) => StatusCode::NOT_FOUND,
            AccessError::InvalidKey(_) | AccessError::InvalidId(_) => StatusCode::BAD_REQUEST,
            AccessError::Port(port) => return hookflow_core::EngineError::from(port.clone()).into(),
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

/// What a route needs, from its method and route template. `None`: public.
pub(crate) fn required_permission(method: &Method, route: &str) -> Option<Permission> {
    if route == "/v1/openapi.json" {
        return None;
    }
    if route == "/v1/events" {
        return Some(Permission::Ingest);
    }
    // `hookflow dev`'s dead-letter and replay routes cross workspaces.
    if route.starts_with("/dev/") {
        return Some(Permission::LocalDevelopment);
    }
    // On-call actions are the operator's (brief §7).
    let on_call = method == Method::POST
        && ((route.contains("/runs/") && (route.ends_with("/replay") || route.ends_with("/cancel")))
            || (route.contains("/webhook-endpoints/") && (route.ends_with("/resend") || route.ends_with("/recover"))));
    if on_call {
        return Some(Permission::Operate);
    }
    let admin_only_reads = route.contains("/keys") || route.ends_with("/audit");
    let reads = method == Method::GET || method == Method::HEAD || route.ends_with("/validate");
    if reads && !admin_only_reads {
        Some(Permission::Operate)
    } else {
        Some(Permission::Administer)
    }
}

/// The middleware: authenticate, authorize against the route's workspace,
/// run the handler, and record a successful management write.
pub(crate) async fn check(
    State(gate): State<Gate>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let params = match params {
        Ok(params) => params,
        Err(rejection) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text()).into_response()
        }
    };
    let method = request.method().clone();
    // Without a matched route (never under route_layer) nothing is public.
    let (route, permission) = match request.extensions().get::<MatchedPath>() {
        Some(matched) => {
            let route = matched.as_str().to_owned();
            let Some(permission) = required_permission(&method, &route) else {
                return next.run(request).await;
            };
            (route, permission)
        }
        None => (request.uri().path().to_owned(), Permission::Administer),
    };
    let workspace_id = params
        .iter()
        .find(|(name, _)| *name == "workspace_id")
        .map(|(_, value)| value.to_owned());
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let keyless = match gate.keyless {
        KeylessRequests::AllowedAsLocalDeveloper if from_this_machine(request.headers()) => {
            KeylessRequests::AllowedAsLocalDeveloper
        }
        _ => KeylessRequests::Refused,
    };
    let actor = match authenticate(&gate.access, keyless, authorization.as_ref()).await {
        Ok(actor) => actor,
        Err(err) => return refusal(err),
    };
    if let Err(err) = actor.authorize(permission, workspace_id.as_deref()) {
        return refusal(err);
    }
    let export = is_personal_data_export(&method, &route, request.uri());
    // The query is part of the record: which tag or list an export took,
    // which workspace a site was handed to.
    let target = match request.uri().query() {
        Some(query) => format!("{}?{query}", request.uri().path()),
        None => request.uri().path().to_owned(),
    };
    let mut request = request;
    request.extensions_mut().insert(actor.clone());
    let response = next.run(request).await;
    // Management writes, the on-call actions (replays, cancels) and bulk
    // exports of personal data are kept.
    let is_write = matches!(permission, Permission::Administer | Permission::Operate)
        && method != Method::GET
        && method != Method::HEAD
        && !route.ends_with("/validate");
    if let (true, true, Some(workspace_id)) = (is_write || export, response.status().is_success(), workspace_id) {
        let action = format!("{method} {}", action_route(&route, &params));
        // The write is done; a failed audit record is logged, not turned
        // into an error the caller would retry.
        if let Err(err) = gate.access.record(&workspace_id, &actor, action, target).await {
            tracing::error!(error = %err, workspace_id, "audit record failed");
        }
    }
    response
}

/// The contacts CSV export: every selected contact's personal data in one
/// answer, so who took it, and when, is kept like a write.
fn is_personal_data_export(method: &Method, route: &str, uri: &Uri) -> bool {
    *method == Method::GET
        && route.ends_with("/contacts")
        && Query::<HashMap<String, String>>::try_from_uri(uri)
            .is_ok_and(|query| query.get("format").is_some_and(|format| format == "csv"))
}

async fn authenticate(
    access: &Access,
    keyless: KeylessRequests,
    authorization: Option<&HeaderValue>,
) -> Result<Actor, AccessError> {
    match (authorization, keyless) {
        (None, KeylessRequests::AllowedAsLocalDeveloper) => Ok(Actor::LocalDeveloper),
        (None, KeylessRequests::Refused) => access.authenticate(None).await,
        (Some(value), _) => {
            let value = value
                .to_str()
                .map_err(|_| AccessError::Unauthenticated("the Authorization header is not valid text"))?;
            access.authenticate(Some(value)).await
        }
    }
}

/// A loopback listener is not enough to trust a key-less request: a web page
/// can reach it through DNS rebinding (a foreign `Host`) or a cross-site
/// form or fetch (a foreign `Origin`). Both must name this machine.
fn from_this_machine(headers: &axum::http::HeaderMap) -> bool {
    let local_host = |authority: &str| {
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
    };
    let host_ok = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_none_or(local_host);
    let origin_ok = headers.get(header::ORIGIN).is_none_or(|origin| {
        origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")))
            .is_some_and(local_host)
    });
    host_ok && origin_ok
}

fn refusal(err: AccessError) -> Response {
    let challenge = matches!(err, AccessError::Unauthenticated(_));
    let mut response = ApiError::from(err).into_response();
    if challenge {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The route with its verb filled in and its ids left as names:
/// `/v1/workspaces/{workspace_id}/workflows/{workflow_id}/publish`.
fn action_route(route: &str, params: &RawPathParams) -> String {
    params
        .iter()
        .filter(|(name, _)| !name.ends_with("_id"))
        .fold(route.to_owned(), |route, (name, value)| {
            route.replace(&format!("{{{name}}}"), value)
        })
}

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/v1/workspaces/{workspace_id}/keys", get(list_keys).post(create_key))
        .route("/v1/workspaces/{workspace_id}/keys/{key_id}", delete(revoke_key))
        .route("/v1/workspaces/{workspace_id}/audit", get(audit_trail))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    role: String,
    #[serde(default)]
    name: Option<String>,
}

/// `POST …/keys` `{"role", "name"?}`: the key is in this answer only.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/keys", tag = "keys",
    params(crate::openapi::WorkspaceId), request_body(content = crate::openapi::NewKey, content_type = "application/json"),
    responses((status = 201, body = crate::openapi::KeyCreated)))]
async fn create_key(
    State(state): State<ApiState>,
    workspace_id: PathResult<String>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let workspace_id = path(workspace_id)?;
    let body = read_body(body, limit)?;
    let request: NewKey = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("expected {{\"role\": \"admin|operator|ingest\", \"name\"?: string}}: {e}"),
        )
    })?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_role",
            format!("unknown role {:?}; expected admin, operator or ingest", request.role),
        )
    })?;
    let minted = state.gate.access.create_key(&workspace_id, role, request.name).await?;
    let mut answer = minted.key.summary();
    answer["key"] = json!(minted.secret);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET …/keys`: every key of the workspace, never a secret or hash.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/keys", tag = "keys",
    params(crate::openapi::WorkspaceId), responses((status = 200, body = crate::openapi::KeyList)))]
async fn list_keys(State(state): State<ApiState>, workspace_id: PathResult<String>) -> Result<Json<Value>, ApiError> {
    let workspace_id = path(workspace_id)?;
    let keys = state.gate.access.list_keys(&workspace_id).await?;
    Ok(Json(
        json!({"keys": keys.iter().map(|key| key.summary()).collect::<Vec<_>>()}),
    ))
}

/// `DELETE …/keys/{key_id}`: revoked at once in this process, within
/// [`hookflow_core::access::KEY_CACHE_TTL`] everywhere.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/keys/{key_id}", tag = "keys",
    params(crate::openapi::WorkspaceId, ("key_id" = String, Path)),
    responses((status = 200, body = crate::openapi::KeySummary), (status = 404, body = crate::openapi::ErrorBody)))]
async fn revoke_key(State(state): State<ApiState>, ids: PathResult<(String, String)>) -> Result<Json<Value>, ApiError> {
    let (workspace_id, key_id) = path(ids)?;
    let revoked = state.gate.access.revoke_key(&workspace_id, &key_id).await?;
    Ok(Json(revoked.summary()))
}

/// `GET …/audit[?limit=&cursor=]`: management writes, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/audit", tag = "keys",
    description = "Management writes, newest first.",
    params(crate::openapi::WorkspaceId,
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page")),
    responses((status = 200, body = crate::openapi::AuditPageView)))]
async fn audit_trail(
    State(state): State<ApiState>,
    workspace_id: PathResult<String>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace_id = path(workspace_id)?;
    let Page { limit, cursor, .. } = page(params, &[])?;
    let page = state
        .gate
        .access
        .audit_trail(&workspace_id, limit, cursor.as_deref())
        .await?;
    let mut body = json!({ "entries": page.entries });
    if let Some(next) = page.next_cursor {
        body["next_cursor"] = json!(encode_cursor(&next));
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_the_permission_of_the_role_table() {
        let cases = [
            (Method::POST, "/v1/events", Some(Permission::Ingest)),
            (Method::GET, "/v1/openapi.json", None),
            (
                Method::GET,
                "/v1/workspaces/{workspace_id}/workflows",
                Some(Permission::Operate),
            ),
            (
                Method::GET,
                "/v1/workspaces/{workspace_id}/runs/{run_id}",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/{verb}",
                Some(Permission::Administer),
            ),
            (
                Method::PUT,
                "/v1/workspaces/{workspace_id}/workflows/{workflow_id}",
                Some(Permission::Administer),
            ),
            (
                Method::GET,
                "/v1/workspaces/{workspace_id}/keys",
                Some(Permission::Administer),
            ),
            (
                Method::GET,
                "/v1/workspaces/{workspace_id}/audit",
                Some(Permission::Administer),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/validate",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/dev/dlq/{queue}/redrive",
                Some(Permission::LocalDevelopment),
            ),
            // On-call actions are the operator's, not only the admin's.
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/runs/{run_id}/replay",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/runs/{run_id}/cancel",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/runs/replay",
                Some(Permission::Operate),
            ),
            // Contacts and their export are read by operators; changes,
            // erasure and SSO settings are the admin's.
            (
                Method::GET,
                "/v1/workspaces/{workspace_id}/contacts",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/contacts",
                Some(Permission::Administer),
            ),
            (
                Method::PATCH,
                "/v1/workspaces/{workspace_id}/contacts/{contact_id}",
                Some(Permission::Administer),
            ),
            (
                Method::DELETE,
                "/v1/workspaces/{workspace_id}/contacts/{contact_id}",
                Some(Permission::Administer),
            ),
            // Webhook endpoints are read by operators, who also resend and
            // recover (on-call actions); changes and secrets are the admin's.
            (
                Method::GET,
                "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/attempts",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/resend",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/recover",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/rotate",
                Some(Permission::Administer),
            ),
            (
                Method::PATCH,
                "/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}",
                Some(Permission::Administer),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/webhook-endpoints",
                Some(Permission::Administer),
            ),
            // Connections are listed by operators (never their
            // credentials); every change is the admin's.
            (
                Method::GET,
                "/v1/workspaces/{workspace_id}/connections",
                Some(Permission::Operate),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/connections",
                Some(Permission::Administer),
            ),
            (
                Method::POST,
                "/v1/workspaces/{workspace_id}/connections/{name}/rotate",
                Some(Permission::Administer),
            ),
            (
                Method::DELETE,
                "/v1/workspaces/{workspace_id}/connections/{name}",
                Some(Permission::Administer),
            ),
            (
                Method::GET,
                "/v1/workspaces/{workspace_id}/sites/{site_id}/sso",
                Some(Permission::Operate),
            ),
            (
                Method::PUT,
                "/v1/workspaces/{workspace_id}/sites/{site_id}/sso",
                Some(Permission::Administer),
            ),
            (
                Method::DELETE,
                "/v1/workspaces/{workspace_id}/sites/{site_id}/sso",
                Some(Permission::Administer),
            ),
        ];
        for (method, route, expected) in cases {
            assert_eq!(required_permission(&method, route), expected, "{method} {route}");
        }
    }
}
