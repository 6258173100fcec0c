//! Runs for the on-call engineer: list by index (workflow, status, window),
//! read one run's bounded timeline and an attempt's whole output, replay
//! (one run, or many by filter), cancel.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use hookflow_core::engine::{BulkReplay, Recovery, RecoveryError, ReplayFrom, MAX_BULK_REPLAY, START_KEY};
use hookflow_core::ports::{RunLog, RunQuery};
use hookflow_core::run::{RunPosition, RunRecord, RunStatus, StepMessage};
use hookflow_core::run_stats::window_stats;
use hookflow_core::run_view::{attempt_view, trigger_event};
use hookflow_core::EngineError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::params::{bad_query, decode_body, parse_limit, path, read_body, PathResult, DEFAULT_LIMIT};
use crate::{openapi, ApiError, ApiState, MaxBodyBytes};

/// The most attempts one run detail lists (the newest).
const MAX_DETAIL_ATTEMPTS: usize = 100;

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/v1/workspaces/{workspace_id}/runs", get(list_runs))
        .route("/v1/workspaces/{workspace_id}/runs/stats", get(run_stats))
        .route("/v1/workspaces/{workspace_id}/runs/{run_id}", get(get_run))
        .route(
            "/v1/workspaces/{workspace_id}/runs/{run_id}/steps/{step_id}/attempts/{attempt}",
            get(get_attempt),
        )
}

/// The on-call actions: served where the steps queue is wired.
pub(crate) fn action_routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/v1/workspaces/{workspace_id}/runs/replay", post(bulk_replay))
        .route("/v1/workspaces/{workspace_id}/runs/{run_id}/replay", post(replay))
        .route("/v1/workspaces/{workspace_id}/runs/{run_id}/cancel", post(cancel))
}

fn run_log(state: &ApiState) -> Result<Arc<dyn RunLog>, ApiError> {
    crate::error::served(&state.runs)
}

fn recovery(state: &ApiState) -> Result<Arc<Recovery>, ApiError> {
    crate::error::served(&state.recovery)
}

fn parse_status(value: &str) -> Result<RunStatus, ApiError> {
    RunStatus::parse(value).ok_or_else(|| {
        bad_query(format!(
            "unknown status {value:?}; expected running, succeeded, failed or cancelled"
        ))
    })
}

fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            bad_query(format!(
                "{name} must be an RFC 3339 time such as 2026-12-01T09:00:00Z, not {value:?}"
            ))
        })
}

/// `GET /v1/workspaces/{ws}/runs`: one page, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/runs", tag = "runs",
    params(openapi::WorkspaceId,
        ("workflow_id" = Option<String>, Query), ("status" = Option<String>, Query, description = "running, succeeded, failed or cancelled"),
        ("since" = Option<String>, Query, description = "runs started at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, description = "runs started before this RFC 3339 time"),
        ("test" = Option<bool>, Query, description = "true: live tests' runs instead of production runs"),
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "the `next_cursor` of the previous page")),
    responses((status = 200, body = openapi::RunList), (status = 400, body = openapi::ErrorBody)))]
pub(crate) async fn list_runs(
    State(state): State<ApiState>,
    ws: PathResult<String>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace_id = path(ws)?;
    let Query(params) = params.map_err(|rejection| bad_query(rejection.body_text()))?;
    let runs = run_log(&state)?;
    let query = run_query(params)?;
    let page = runs.list_runs(&workspace_id, &query).await.map_err(EngineError::from)?;
    let mut answer = json!({"runs": page.runs.iter().map(run_summary).collect::<Vec<_>>()});
    if let Some(next) = page.next {
        answer["next_cursor"] = json!(next.to_cursor());
    }
    Ok(Json(answer))
}

fn run_query(params: HashMap<String, String>) -> Result<RunQuery, ApiError> {
    let mut query = RunQuery {
        limit: DEFAULT_LIMIT,
        ..RunQuery::default()
    };
    for (key, value) in params {
        match key.as_str() {
            "workflow_id" => query.workflow_id = Some(value),
            "status" => query.status = Some(parse_status(&value)?),
            "since" => query.since = Some(parse_time("since", &value)?),
            "until" => query.until = Some(parse_time("until", &value)?),
            "test" => {
                query.test = value
                    .parse::<bool>()
                    .map_err(|_| bad_query(format!("test must be true or false, not {value:?}")))?
            }
            "limit" => query.limit = parse_limit(&value)?,
            "cursor" => {
                query.after = Some(
                    RunPosition::from_cursor(&value)
                        .ok_or_else(|| bad_query("cursor is not one this API returned".into()))?,
                )
            }
            other => {
                return Err(bad_query(format!(
                "unknown query parameter {other:?}; expected workflow_id, status, since, until, test, limit or cursor"
            )))
            }
        }
    }
    check_window(query.since, query.until)?;
    if let Some(workflow_id) = &query.workflow_id {
        check_workflow_id(workflow_id).map_err(bad_query)?;
    }
    Ok(query)
}

fn check_window(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    match (since, until) {
        (Some(since), Some(until)) if since >= until => Err(bad_query("since must be before until".into())),
        _ => Ok(()),
    }
}

/// Workflow ids are short and plain; anything else names no workflow (and
/// could not be an index key).
fn check_workflow_id(workflow_id: &str) -> Result<(), String> {
    let plain = workflow_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if workflow_id.is_empty() || workflow_id.len() > 128 || !plain {
        return Err(format!(
            "workflow_id {:?} is not a workflow id (1 to 128 letters, digits, _ - . :)",
            crate::params::cut_for_message(workflow_id)
        ));
    }
    Ok(())
}

/// `GET /v1/workspaces/{ws}/runs/stats`: per workflow, runs by status,
/// failure rate and p50/p95 duration over a window (default: the last 24 h).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/runs/stats", tag = "runs",
    params(openapi::WorkspaceId,
        ("since" = Option<String>, Query, description = "runs started at or after this RFC 3339 time (default: 24 h ago)"),
        ("until" = Option<String>, Query, description = "runs started before this RFC 3339 time (default: now)")),
    responses((status = 200, body = openapi::RunStatsView), (status = 400, body = openapi::ErrorBody)))]
pub(crate) async fn run_stats(
    State(state): State<ApiState>,
    ws: PathResult<String>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace_id = path(ws)?;
    let Query(params) = params.map_err(|rejection| bad_query(rejection.body_text()))?;
    let now = Utc::now();
    let (mut since, mut until) = (now - chrono::Duration::hours(24), now);
    for (key, value) in params {
        match key.as_str() {
            "since" => since = parse_time("since", &value)?,
            "until" => until = parse_time("until", &value)?,
            other => {
                return Err(bad_query(format!(
                    "unknown query parameter {other:?}; expected since or until"
                )))
            }
        }
    }
    check_window(Some(since), Some(until))?;
    let runs = run_log(&state)?;
    let stats = window_stats(runs.as_ref(), &workspace_id, since, until)
        .await
        .map_err(EngineError::from)?;
    Ok(Json(json!(stats)))
}

fn run_summary(run: &RunRecord) -> Value {
    json!({"run_id": run.run_id, "workflow_id": run.workflow_id, "workflow_version": run.workflow_version,
           "event_id": run.event_id, "trigger_type": run.trigger_type, "status": run.status,
           "started_at": run.started_at, "ended_at": run.ended_at, "error": run.error, "test": run.test,
           "replays": run.replays, "replay_of": run.replay_of, "contact_id": run.contact_id,
           "erased_at": run.erased_at})
}

async fn workspace_run(runs: &dyn RunLog, workspace_id: &str, run_id: &str) -> Result<RunRecord, ApiError> {
    runs.get_run(run_id)
        .await
        .map_err(EngineError::from)?
        // Runs of another workspace are reported as missing, not forbidden.
        .filter(|run| run.workspace_id == workspace_id)
        .ok_or_else(|| run_not_found(workspace_id, run_id))
}

fn run_not_found(workspace_id: &str, run_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "run_not_found",
        format!("run {run_id:?} does not exist in workspace {workspace_id:?}"),
    )
}

/// `GET /v1/workspaces/{ws}/runs/{run_id}`: the run, the trigger event it
/// started from, and its step timeline, each value bounded.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/runs/{run_id}", tag = "runs",
    params(openapi::WorkspaceId, ("run_id" = String, Path)),
    responses((status = 200, body = openapi::RunDetail), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn get_run(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (workspace_id, run_id) = path(ids)?;
    let runs = run_log(&state)?;
    let run = workspace_run(runs.as_ref(), &workspace_id, &run_id).await?;
    let mut steps = runs.list_step_outlines(&run_id).await.map_err(EngineError::from)?;
    // The newest attempts, when a run has had very many: the answer stays
    // small whatever the retries and replays.
    let attempts = steps.len();
    let hidden = attempts.saturating_sub(MAX_DETAIL_ATTEMPTS);
    steps.drain(..hidden);
    let base = format!("/v1/workspaces/{workspace_id}/runs/{run_id}");
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| attempt_view(s, &format!("{base}/steps/{}/attempts/{}", s.step_id, s.attempt)))
        .collect();
    let start = runs.get_blob(&run_id, START_KEY).await.map_err(EngineError::from)?;
    let event = start
        .and_then(|text| serde_json::from_str::<StepMessage>(&text).ok())
        .map(|message| trigger_event(&message));
    let mut body = run_summary(&run);
    body["workspace_id"] = json!(run.workspace_id);
    body["event"] = event.unwrap_or(Value::Null);
    body["steps"] = Value::Array(steps);
    body["attempts"] = json!(attempts);
    body["attempts_hidden"] = json!(hidden);
    Ok(Json(body))
}

/// `GET …/runs/{run_id}/steps/{step_id}/attempts/{attempt}`: one attempt
/// with its whole output.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/runs/{run_id}/steps/{step_id}/attempts/{attempt}", tag = "runs",
    params(openapi::WorkspaceId, ("run_id" = String, Path), ("step_id" = String, Path), ("attempt" = u32, Path)),
    responses((status = 200, body = openapi::StepView), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn get_attempt(
    State(state): State<ApiState>,
    ids: PathResult<(String, String, String, u32)>,
) -> Result<Json<Value>, ApiError> {
    let (workspace_id, run_id, step_id, attempt) = path(ids)?;
    let runs = run_log(&state)?;
    workspace_run(runs.as_ref(), &workspace_id, &run_id).await?;
    let step = runs
        .get_step(&run_id, &step_id, attempt)
        .await
        .map_err(EngineError::from)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "attempt_not_found",
                format!("run {run_id:?} has no attempt {attempt} of step {step_id:?}"),
            )
        })?;
    Ok(Json(
        json!({"step_id": step.step_id, "action": step.action, "status": step.status,
        "attempt": step.attempt, "started_at": step.started_at, "ended_at": step.ended_at,
        "output": step.output, "error": step.error}),
    ))
}

impl From<RecoveryError> for ApiError {
    fn from(err: RecoveryError) -> Self {
        let (status, code) = match err {
            RecoveryError::Engine(engine) => return engine.into(),
            RecoveryError::Port(port) => return EngineError::from(port).into(),
            RecoveryError::BulkInProgress(until) => {
                let wait = u64::try_from((until - Utc::now()).num_seconds()).unwrap_or(0).max(1);
                return ApiError::new(StatusCode::CONFLICT, "in_progress", err.to_string()).with_retry_after(wait);
            }
            RecoveryError::RunNotFound(_) => (StatusCode::NOT_FOUND, "run_not_found"),
            RecoveryError::NotFailed { .. } => (StatusCode::CONFLICT, "not_failed"),
            RecoveryError::NotRunning { .. } => (StatusCode::CONFLICT, "not_running"),
            RecoveryError::NoResumePoint(_) | RecoveryError::NoStartPoint(_) => {
                (StatusCode::CONFLICT, "not_replayable")
            }
            RecoveryError::AlreadyReplayed { .. } => (StatusCode::CONFLICT, "already_replayed"),
            RecoveryError::Erased(_) => (StatusCode::CONFLICT, "run_erased"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    #[serde(default)]
    from: ReplayFrom,
}

/// `POST …/runs/{run_id}/replay`: from the failed step (the default) or,
/// with `{"from": "start"}`, a new run from the first step.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/runs/{run_id}/replay", tag = "runs",
    params(openapi::WorkspaceId, ("run_id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "from the start: a key already used starts no second run")),
    request_body(content = Option<openapi::ReplayRequest>),
    responses((status = 202, body = openapi::ReplayedView), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody, description = "not failed, or no resume point")))]
pub(crate) async fn replay(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    headers: HeaderMap,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (workspace_id, run_id) = path(ids)?;
    let body = read_body(body, limit)?;
    let request: ReplayRequest = if body.is_empty() {
        ReplayRequest {
            from: ReplayFrom::FailedStep,
        }
    } else {
        decode_body(&body, "{\"from\"?: \"failed_step\" | \"start\"}")?
    };
    let key = idempotency_key(&headers)?;
    let replayed = recovery(&state)?
        .replay(&workspace_id, &run_id, request.from, key.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!(replayed))))
}

/// `POST …/runs/{run_id}/cancel`: the run ends `cancelled`; its next
/// message is acknowledged without running anything.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/runs/{run_id}/cancel", tag = "runs",
    params(openapi::WorkspaceId, ("run_id" = String, Path)),
    responses((status = 200, body = openapi::RunSummary), (status = 404, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody, description = "the run is not running")))]
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (workspace_id, run_id) = path(ids)?;
    let run = recovery(&state)?.cancel(&workspace_id, &run_id).await?;
    Ok(Json(run_summary(&run)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkReplayRequest {
    workflow_id: Option<String>,
    #[serde(default = "failed")]
    status: RunStatus,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    #[serde(default)]
    from: ReplayFrom,
    limit: Option<usize>,
}

fn failed() -> RunStatus {
    RunStatus::Failed
}

/// `POST /v1/workspaces/{ws}/runs/replay`: replays the runs that match, at
/// most 1,000, once per `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/runs/replay", tag = "runs",
    params(openapi::WorkspaceId,
        ("Idempotency-Key" = String, Header, description = "the same key replays nothing more and answers the first report")),
    request_body(content = openapi::BulkReplayRequest),
    responses((status = 200, body = openapi::BulkReplayReportView), (status = 400, body = openapi::ErrorBody),
        (status = 409, body = openapi::ErrorBody, description = "a call with this key is in progress")))]
pub(crate) async fn bulk_replay(
    State(state): State<ApiState>,
    ws: PathResult<String>,
    headers: HeaderMap,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace_id = path(ws)?;
    let body = read_body(body, limit)?;
    let idempotency_key = idempotency_key(&headers)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "a bulk replay needs an Idempotency-Key header (1 to 255 characters)",
        )
    })?;
    let request: BulkReplayRequest = decode_body(
        &body,
        "{\"workflow_id\"?, \"status\"?, \"since\"?, \"until\"?, \"from\"?: \"failed_step\" | \"start\", \"limit\"?: 1-1000}",
    )?;
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message);
    if matches!((request.since, request.until), (Some(since), Some(until)) if since >= until) {
        return Err(invalid("since must be before until".into()));
    }
    if let Some(workflow_id) = &request.workflow_id {
        check_workflow_id(workflow_id).map_err(invalid)?;
    }
    let limit = request.limit.unwrap_or(MAX_BULK_REPLAY);
    if !(1..=MAX_BULK_REPLAY).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("limit must be from 1 to {MAX_BULK_REPLAY}"),
        ));
    }
    let report = recovery(&state)?
        .bulk_replay(&BulkReplay {
            workspace_id,
            workflow_id: request.workflow_id,
            status: request.status,
            since: request.since,
            until: request.until,
            from: request.from,
            limit,
            idempotency_key,
        })
        .await?;
    Ok(Json(json!(report)))
}
