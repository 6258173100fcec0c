//! SSO: a site's settings under `/v1/workspaces/{ws}/sites/{site}/sso`
//! (behind a key; the secret is never shown), and the public
//! `POST /v1/sites/{site}/identify`, which the site's JWT authenticates.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hookflow_core::sso::{Identify, SsoError, SsoRequest, SsoSites};
use hookflow_core::EngineError;
use serde::Deserialize;
use serde_json::Value;

use crate::params::{bad_query, decode_body, path, read_body, PathResult};
use crate::{openapi, ApiError, ApiState, MaxBodyBytes};

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router.route(
        "/v1/workspaces/{workspace_id}/sites/{site_id}/sso",
        get(show).put(configure).delete(release),
    )
}

pub(crate) fn public_routes(router: Router<ApiState>) -> Router<ApiState> {
    router.route("/v1/sites/{site_id}/identify", post(identify))
}

impl From<SsoError> for ApiError {
    fn from(err: SsoError) -> Self {
        let status = match &err {
            SsoError::NotConfigured(_) => StatusCode::NOT_FOUND,
            SsoError::SiteTaken(_) => StatusCode::CONFLICT,
            SsoError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SsoError::Refused(_) => StatusCode::UNAUTHORIZED,
            SsoError::IdentityConflict => StatusCode::CONFLICT,
            SsoError::BadSiteId | SsoError::BadTransfer => StatusCode::BAD_REQUEST,
            SsoError::Port(port) => return EngineError::from(port.clone()).into(),
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

fn sites(state: &ApiState) -> Result<Arc<SsoSites>, ApiError> {
    crate::error::served(&state.sso_sites)
}

fn identify_use_case(state: &ApiState) -> Result<Arc<Identify>, ApiError> {
    crate::error::served(&state.identify)
}

#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/sites/{site_id}/sso", tag = "sso",
    description = "Set a site's SSO settings: the first call claims the site for the workspace; another workspace gets 409.",
    params(openapi::WorkspaceId, openapi::SiteId),
    request_body(content = openapi::SsoBody, content_type = "application/json"),
    responses((status = 200, body = openapi::SsoView), (status = 409, body = openapi::ErrorBody),
        (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn configure(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (ws, site) = path(ids)?;
    let request: SsoRequest = decode_body(
        &read_body(body, limit)?,
        "SSO settings: {\"algorithm\": \"HS256\" | \"RS256\" | \"ES256\", \"secret\" | \"public_key\", \"issuer\", \"audience\"}",
    )?;
    Ok(Json(sites(&state)?.configure(&ws, &site, request).await?.view()))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/sites/{site_id}/sso", tag = "sso",
    params(openapi::WorkspaceId, openapi::SiteId),
    responses((status = 200, body = openapi::SsoView), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, site) = path(ids)?;
    Ok(Json(sites(&state)?.settings(&ws, &site).await?.view()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseQuery {
    transfer_to: Option<String>,
}

#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/sites/{site_id}/sso", tag = "sso",
    description = "Remove a site's SSO settings and release the site. The workspace named by `transfer_to` may claim it at once; any other only after 7 days, since the site's pages may still post their visitors' tokens. Its visitors cannot sign in until the site is configured again. Releasing a released site again replaces the earlier release (a corrected `transfer_to` takes effect).",
    params(openapi::WorkspaceId, openapi::SiteId,
        ("transfer_to" = Option<String>, Query, description = "the workspace that may claim the site at once")),
    responses((status = 204), (status = 400, body = openapi::ErrorBody), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn release(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    query: Result<Query<ReleaseQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let (ws, site) = path(ids)?;
    let Query(query) = query.map_err(|rejection| bad_query(rejection.body_text()))?;
    sites(&state)?.release(&ws, &site, query.transfer_to.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifyRequest {
    token: String,
}

#[utoipa::path(post, path = "/v1/sites/{site_id}/identify", tag = "sso",
    description = "A visitor signed in on the site: its JWT upserts the contact and emits `Contact.Identified`, then `Contact.Verified.Sso`. A refused token is a 401 whose code names the reason.",
    params(openapi::SiteId), request_body(content = openapi::IdentifyBody, content_type = "application/json"),
    responses((status = 200, body = openapi::IdentifiedView), (status = 401, body = openapi::ErrorBody),
        (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn identify(
    State(state): State<ApiState>,
    site: PathResult<String>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let site = path(site)?;
    let request: IdentifyRequest = decode_body(&read_body(body, limit)?, "{\"token\": \"<the site's JWT>\"}")?;
    let identified = identify_use_case(&state)?.identify(&site, &request.token).await?;
    Ok(Json(serde_json::to_value(identified).unwrap_or(Value::Null)))
}
