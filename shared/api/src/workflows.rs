//! The management API of workflows (brief §7, §8): drafts, the lifecycle
//! verbs and published versions, under `/v1/workspaces/{ws}/workflows`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{OriginalUri, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use hookflow_core::lifecycle::{status_name, HeadQuery, LifecycleError, WorkflowHead, Workflows};
use hookflow_core::workflow::WorkflowStatus;
use hookflow_core::{TriggerEvent, WorkflowDefinition};
use serde_json::{json, Value};

use crate::params::{bad_query, encode_cursor, page, path, read_body, Page, PathResult};
use crate::{openapi, ApiError, ApiState, MaxBodyBytes};

const WORKFLOW: &str = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}";

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/v1/workspaces/{workspace_id}/workflows", get(list).post(create))
        .route(
            "/v1/workspaces/{workspace_id}/workflows/{workflow_id}",
            get(show).put(update).delete(delete),
        )
        .route(
            "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/validate",
            post(validate),
        )
        .route(&format!("{WORKFLOW}/publish"), post(publish))
        .route(&format!("{WORKFLOW}/pause"), post(pause))
        .route(&format!("{WORKFLOW}/resume"), post(resume))
        .route(&format!("{WORKFLOW}/archive"), post(archive))
        .route(&format!("{WORKFLOW}/rollback"), post(rollback))
        .route(&format!("{WORKFLOW}/clone"), post(clone))
        .route(&format!("{WORKFLOW}/test"), post(test))
        .route(
            "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/versions",
            get(versions),
        )
        .route(
            "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/versions/{version}",
            get(version),
        )
}

impl From<LifecycleError> for ApiError {
    fn from(err: LifecycleError) -> Self {
        let status = match &err {
            LifecycleError::NotFound(_) | LifecycleError::VersionNotFound { .. } => StatusCode::NOT_FOUND,
            LifecycleError::Undecodable(_) | LifecycleError::IdMismatch { .. } | LifecycleError::InvalidId { .. } => {
                StatusCode::BAD_REQUEST
            }
            LifecycleError::RevisionRequired => StatusCode::PRECONDITION_REQUIRED,
            LifecycleError::RevisionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            LifecycleError::AlreadyExists(_)
            | LifecycleError::Conflict
            | LifecycleError::InvalidTransition { .. }
            | LifecycleError::Published(_)
            | LifecycleError::NotPublished(_) => StatusCode::CONFLICT,
            LifecycleError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            LifecycleError::Port(port) => return hookflow_core::EngineError::from(port.clone()).into(),
        };
        let api = ApiError::new(status, err.code(), err.to_string());
        match err {
            LifecycleError::Invalid(problems) => api.with_details(json!({ "problems": problems })),
            LifecycleError::RevisionMismatch { current, .. } => api.with_details(json!({ "revision": current })),
            _ => api,
        }
    }
}

fn use_case(state: &ApiState) -> Result<Arc<Workflows>, ApiError> {
    crate::error::served(&state.workflows)
}

/// A head as the API shows it, with its revision as the `ETag`.
fn head_response(status: StatusCode, head: &WorkflowHead) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", head.revision)).ok();
    let mut response = (status, Json(head_json(head))).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn head_json(head: &WorkflowHead) -> Value {
    json!({
        "id": head.id, "workspace_id": head.workspace_id, "status": head.status,
        "revision": head.revision, "published_version": head.published_version,
        "latest_version": head.latest_version, "created_at": head.created_at,
        "updated_at": head.updated_at, "draft": head.draft,
    })
}

/// The request body as a workflow document, with the JSON path of the first
/// structural problem.
fn document(body: &Bytes) -> Result<WorkflowDefinition, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not JSON: {e}"),
        )
    })?;
    WorkflowDefinition::from_value(value).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_document", e.to_string())
            .with_details(json!({ "path": e.path }))
    })
}

/// `If-Match: "3"` (also unquoted, or weak `W/"3"`) → 3.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_if_match",
                "If-Match must be the workflow's revision, as its ETag gives it (for example \"3\")",
            )
        })
}

/// `GET …/workflows[?status=&trigger_type=&limit=&cursor=]`, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/workflows", tag = "workflows",
    description = "The workspace's workflows, newest first.",
    params(openapi::WorkspaceId,
        ("status" = Option<String>, Query, description = "draft, active, paused or archived"),
        ("trigger_type" = Option<String>, Query, description = "the published (or draft) trigger type"),
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page")),
    responses((status = 200, body = openapi::WorkflowList)))]
async fn list(
    State(state): State<ApiState>,
    workspace_id: PathResult<String>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace_id = path(workspace_id)?;
    let Page {
        limit,
        cursor: after,
        mut filters,
    } = page(params, &["status", "trigger_type"])?;
    let query = HeadQuery {
        status: filters.get("status").map(|s| parse_status(s)).transpose()?,
        trigger_type: filters.remove("trigger_type"),
    };
    let heads = use_case(&state)?.list(&workspace_id, &query).await?;
    // Resume after the cursor's place in the order, so a page never ends
    // early when the head it names was deleted or no longer matches.
    let start = match &after {
        Some(position) => heads.iter().take_while(|h| h.list_position() >= *position).count(),
        None => 0,
    };
    let page: Vec<&WorkflowHead> = heads.iter().skip(start).take(limit).collect();
    let mut body = json!({ "workflows": page.iter().map(|h| head_json(h)).collect::<Vec<_>>() });
    if start + page.len() < heads.len() {
        if let Some(last) = page.last() {
            body["next_cursor"] = json!(encode_cursor(&last.list_position()));
        }
    }
    Ok(Json(body))
}

fn parse_status(value: &str) -> Result<WorkflowStatus, ApiError> {
    serde_json::from_value(json!(value)).map_err(|_| {
        bad_query(format!(
            "unknown status {value:?}; expected draft, active, paused or archived"
        ))
    })
}

/// `POST …/workflows`: a new draft from a document; its `id` names it.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows", tag = "workflows",
    description = "Create a draft from a workflow document; its `id` names it, its `status` is ignored. The draft may be invalid.",
    params(openapi::WorkspaceId),
    request_body(content = Object, description = "a workflow document (public format)", content_type = "application/json"),
    responses((status = 201, body = openapi::WorkflowHeadView, headers(("etag" = String, description = "the revision, quoted"))),
        (status = 409, body = openapi::ErrorBody)))]
async fn create(
    State(state): State<ApiState>,
    workspace_id: PathResult<String>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let workspace_id = path(workspace_id)?;
    let body = read_body(body, limit)?;
    let head = use_case(&state)?.create(&workspace_id, document(&body)?).await?;
    Ok(head_response(StatusCode::CREATED, &head))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}", tag = "workflows",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    responses((status = 200, body = openapi::WorkflowHeadView, headers(("etag" = String, description = "the revision, quoted"))),
        (status = 404, body = openapi::ErrorBody)))]
async fn show(State(state): State<ApiState>, ids: PathResult<(String, String)>) -> Result<Response, ApiError> {
    let (workspace_id, workflow_id) = path(ids)?;
    let head = use_case(&state)?.get(&workspace_id, &workflow_id).await?;
    Ok(head_response(StatusCode::OK, &head))
}

/// `PUT …/workflows/{id}` with `If-Match: <revision>`: replaces the draft.
#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}", tag = "workflows",
    description = "Replace the draft; `If-Match` must carry the current revision.",
    params(openapi::WorkspaceId, openapi::WorkflowId,
        ("If-Match" = String, Header, description = "the revision from the ETag, e.g. \"3\"")),
    request_body(content = Object, description = "a workflow document with the same id", content_type = "application/json"),
    responses((status = 200, body = openapi::WorkflowHeadView), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody), (status = 412, body = openapi::ErrorBody), (status = 428, body = openapi::ErrorBody)))]
async fn update(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    headers: HeaderMap,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (workspace_id, workflow_id) = path(ids)?;
    let body = read_body(body, limit)?;
    let revision = if_match(&headers)?;
    let head = use_case(&state)?
        .update_draft(&workspace_id, &workflow_id, document(&body)?, revision)
        .await?;
    Ok(head_response(StatusCode::OK, &head))
}

#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}", tag = "workflows",
    description = "Delete a draft that was never published.",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    responses((status = 204, description = "deleted"), (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody)))]
async fn delete(State(state): State<ApiState>, ids: PathResult<(String, String)>) -> Result<StatusCode, ApiError> {
    let (workspace_id, workflow_id) = path(ids)?;
    use_case(&state)?.delete(&workspace_id, &workflow_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/validate`: every problem of the draft (200 either way).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/validate", tag = "workflows",
    description = "Every problem of the draft (200 whether or not it is valid).",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    responses((status = 200, body = openapi::ValidationReport), (status = 404, body = openapi::ErrorBody)))]
async fn validate(State(state): State<ApiState>, ids: PathResult<(String, String)>) -> Result<Json<Value>, ApiError> {
    let (workspace_id, workflow_id) = path(ids)?;
    let problems = use_case(&state)?.validate(&workspace_id, &workflow_id).await?;
    Ok(Json(json!({"valid": problems.is_empty(), "problems": problems})))
}

/// A lifecycle verb: each has a route of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Publish,
    Pause,
    Resume,
    Archive,
    Rollback,
    Clone,
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/publish", tag = "workflows",
    description = "Validate the draft, store it as a new immutable version and make it live (422 with its problems when invalid; an unchanged draft makes no new version).",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    responses((status = 200, body = openapi::WorkflowHeadView), (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
async fn publish(
    state: State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    verb_handler(state, ids, limit, body, Verb::Publish).await
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/pause", tag = "workflows",
    description = "Stop starting runs; runs in flight finish on their version.",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    responses((status = 200, body = openapi::WorkflowHeadView), (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
async fn pause(
    state: State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    verb_handler(state, ids, limit, body, Verb::Pause).await
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/resume", tag = "workflows",
    description = "Start runs again on the published version.",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    responses((status = 200, body = openapi::WorkflowHeadView), (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
async fn resume(
    state: State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    verb_handler(state, ids, limit, body, Verb::Resume).await
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/archive", tag = "workflows",
    description = "Stop for good; versions and runs stay readable.",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    responses((status = 200, body = openapi::WorkflowHeadView), (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
async fn archive(
    state: State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    verb_handler(state, ids, limit, body, Verb::Archive).await
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/rollback", tag = "workflows",
    description = "Publish an older version again, as a new version.",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    request_body(content = Option<openapi::RollbackRequest>, content_type = "application/json"),
    responses((status = 200, body = openapi::WorkflowHeadView), (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
async fn rollback(
    state: State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    verb_handler(state, ids, limit, body, Verb::Rollback).await
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/clone", tag = "workflows",
    description = "A new draft with the same definition under a new id.",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    request_body(content = Option<openapi::CloneRequest>, content_type = "application/json"),
    responses((status = 201, body = openapi::WorkflowHeadView), (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
async fn clone(
    state: State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    verb_handler(state, ids, limit, body, Verb::Clone).await
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/test", tag = "workflows",
    description = "Run the draft or a version against an event (the sample of its trigger type by default): a dry run renders every request with secrets redacted and sends nothing; a live test (`dry_run: false`) starts a real run of a stored version, marked `test` (409 `not_published` when there is none).",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    request_body(content = Option<openapi::TestRequest>, content_type = "application/json"),
    responses((status = 200, body = openapi::TestResult, description = "a dry run's timeline"),
        (status = 202, body = openapi::LiveTestStarted, description = "a live test's run, started"),
        (status = 404, body = openapi::ErrorBody), (status = 409, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
async fn test(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    uri: OriginalUri,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (workspace_id, workflow_id) = path(ids)?;
    let body = read_body(body, limit)?;
    // Behind an API Gateway stage (`/dev/v1/…`) the run's URL keeps it.
    let path = uri.path();
    let stage = &path[..path.find("/v1/").unwrap_or(0)];
    test_run(&state, &workspace_id, &workflow_id, &body, stage).await
}

async fn verb_handler(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
    verb: Verb,
) -> Result<Response, ApiError> {
    let (workspace_id, workflow_id) = path(ids)?;
    let body = read_body(body, limit)?;
    lifecycle(&*use_case(&state)?, &workspace_id, &workflow_id, verb, &body).await
}

async fn lifecycle(workflows: &Workflows, ws: &str, id: &str, verb: Verb, body: &Bytes) -> Result<Response, ApiError> {
    let head = match verb {
        Verb::Publish => workflows.publish(ws, id).await?,
        Verb::Pause => workflows.pause(ws, id).await?,
        Verb::Resume => workflows.resume(ws, id).await?,
        Verb::Archive => workflows.archive(ws, id).await?,
        Verb::Rollback => {
            let version = body_field(body, "version")?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid_body("`version` must be a version number"))?;
            workflows.rollback(ws, id, version).await?
        }
        Verb::Clone => {
            let new_id = body_field(body, "id")?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid_body("`id` must be the new workflow's id"))?;
            let head = workflows.clone_as(ws, id, &new_id).await?;
            return Ok(head_response(StatusCode::CREATED, &head));
        }
    };
    tracing::info!(workspace_id = ws, workflow_id = id, action = ?verb, status = status_name(head.status), revision = head.revision, "workflow lifecycle change");
    Ok(head_response(StatusCode::OK, &head))
}

/// The body of `POST …/test`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    #[serde(default)]
    event: Option<Value>,
    #[serde(default = "dry_run_by_default")]
    dry_run: bool,
    #[serde(default)]
    version: Option<u32>,
}

fn dry_run_by_default() -> bool {
    true
}

/// `POST …/test` `{"event"?, "dry_run"?, "version"?}` against the event, or
/// the sample of the workflow's trigger type. A dry run (the default) walks
/// the draft (or a version) and answers the whole timeline, every request
/// rendered and none sent. A live test starts a test run of a stored version
/// (the published one by default) and answers 202 with its id.
async fn test_run(state: &ApiState, ws: &str, id: &str, body: &Bytes, stage: &str) -> Result<Response, ApiError> {
    let workflows = use_case(state)?;
    let request: TestRequest = if body.is_empty() {
        TestRequest {
            event: None,
            dry_run: true,
            version: None,
        }
    } else {
        serde_json::from_slice(body).map_err(|e| {
            invalid_body(&format!(
                "expected {{\"event\"?: CloudEvent, \"dry_run\"?: bool, \"version\"?: number}}: {e}"
            ))
        })?
    };
    if request.dry_run {
        let workflow = match request.version {
            Some(version) => workflows.version(ws, id, version).await?,
            None => Arc::new(workflows.get(ws, id).await?.draft),
        };
        let event = test_event(request.event, &workflow, ws)?;
        let run = hookflow_core::engine::dry_run(&workflow, &event);
        return Ok((
            StatusCode::OK,
            Json(json!({"dry_run": true, "event_id": event.id, "run": run})),
        )
            .into_response());
    }
    let starter = state.live_tests.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "live_test_unavailable",
            "this server starts no runs (no steps queue): send {\"dry_run\": true}",
        )
    })?;
    let workflow = workflows.version_to_run(ws, id, request.version).await?;
    let event = test_event(request.event, &workflow, ws)?;
    let run_id = starter.start_test_run(&workflow, &event).await?;
    let location = format!("{stage}/v1/workspaces/{ws}/runs/{run_id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({"dry_run": false, "event_id": event.id, "run_id": run_id,
                    "workflow_version": workflow.version, "run_url": location})),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    Ok(response)
}

/// The event a test runs on: the one sent, or the sample of the workflow's
/// trigger type. Either way it must belong to this workspace.
fn test_event(sent: Option<Value>, workflow: &WorkflowDefinition, ws: &str) -> Result<TriggerEvent, ApiError> {
    let event = match sent {
        Some(event) => event,
        None => {
            let trigger_type = &workflow.trigger.trigger_type;
            hookflow_core::samples::sample_event(trigger_type, ws).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no_sample_event",
                    format!("no sample event of type {trigger_type:?} in events/triggers/; send one as `event`"),
                )
            })?
        }
    };
    let event = TriggerEvent::from_cloudevent(&event, "event")?;
    if event.workspaceid != ws {
        return Err(invalid_body(&format!(
            "the event's workspaceid is {:?}, not this workspace {ws:?}",
            event.workspaceid
        )));
    }
    Ok(event)
}

fn invalid_body(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

fn body_field(body: &Bytes, field: &str) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid_body(&format!("the body must be a JSON object with `{field}`: {e}")))?;
    value
        .get(field)
        .cloned()
        .ok_or_else(|| invalid_body(&format!("the body must have `{field}`")))
}

/// `GET …/versions`: the published versions, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/versions", tag = "workflows",
    params(openapi::WorkspaceId, openapi::WorkflowId),
    responses((status = 200, body = openapi::VersionList), (status = 404, body = openapi::ErrorBody)))]
async fn versions(State(state): State<ApiState>, ids: PathResult<(String, String)>) -> Result<Json<Value>, ApiError> {
    let (workspace_id, workflow_id) = path(ids)?;
    let versions = use_case(&state)?.versions(&workspace_id, &workflow_id).await?;
    let listed: Vec<Value> = versions
        .iter()
        .rev()
        .map(|v| json!({"version": v.version, "name": v.name, "trigger_type": v.trigger.trigger_type}))
        .collect();
    Ok(Json(json!({ "versions": listed })))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/workflows/{workflow_id}/versions/{version}", tag = "workflows",
    params(openapi::WorkspaceId, openapi::WorkflowId, ("version" = u32, Path, description = "a published version number")),
    responses((status = 200, body = Object, description = "the immutable workflow document of that version"), (status = 404, body = openapi::ErrorBody)))]
async fn version(
    State(state): State<ApiState>,
    ids: PathResult<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (workspace_id, workflow_id, version) = path(ids)?;
    let number = version.parse::<u32>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_version",
            format!("{version:?} is not a version number"),
        )
    })?;
    let definition = use_case(&state)?.version(&workspace_id, &workflow_id, number).await?;
    Ok(Json(json!(*definition)))
}
