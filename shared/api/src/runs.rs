use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use hookflow_core::ports::RunQuery;
use hookflow_core::run::RunStatus;
use serde_json::{json, Value};

use crate::params::bad_query;
use crate::{ApiError, ApiState};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// `GET /v1/workspaces/{ws}/runs[?workflow_id=&status=&test=&limit=]`, newest
/// first: production runs, or with `test=true` live tests' runs.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/runs", tag = "runs",
    params(crate::openapi::WorkspaceId,
        ("workflow_id" = Option<String>, Query), ("status" = Option<String>, Query, description = "running, succeeded or failed"),
        ("test" = Option<bool>, Query, description = "true: live tests' runs instead of production runs"),
        ("limit" = Option<u32>, Query, description = "1 to 500 (default 50)")),
    responses((status = 200, body = crate::openapi::RunList)))]
pub(crate) async fn list_runs(
    State(state): State<ApiState>,
    Path(workspace_id): Path<String>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|rejection| bad_query(rejection.body_text()))?;
    let runs = state
        .runs
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route"))?;
    let mut query = RunQuery {
        limit: DEFAULT_LIMIT,
        ..RunQuery::default()
    };
    for (key, value) in params {
        match key.as_str() {
            "workflow_id" => query.workflow_id = Some(value),
            "status" => {
                query.status = Some(RunStatus::parse(&value).ok_or_else(|| {
                    bad_query(format!(
                        "unknown status {value:?}; expected running, succeeded or failed"
                    ))
                })?)
            }
            "test" => {
                query.test = value
                    .parse::<bool>()
                    .map_err(|_| bad_query(format!("test must be true or false, not {value:?}")))?
            }
            "limit" => {
                query.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad_query(format!("limit must be a number from 1 to {MAX_LIMIT}")))?
            }
            other => {
                return Err(bad_query(format!(
                    "unknown query parameter {other:?}; expected workflow_id, status, test or limit"
                )))
            }
        }
    }
    let found = runs
        .list_runs(&workspace_id, &query)
        .await
        .map_err(hookflow_core::EngineError::from)?;
    let runs: Vec<Value> = found
        .iter()
        .map(|r| {
            json!({"run_id": r.run_id, "workflow_id": r.workflow_id, "workflow_version": r.workflow_version,
                   "event_id": r.event_id, "trigger_type": r.trigger_type, "status": r.status,
                   "started_at": r.started_at, "ended_at": r.ended_at, "error": r.error, "test": r.test})
        })
        .collect();
    Ok(Json(json!({"runs": runs})))
}

/// `GET /v1/workspaces/{ws}/runs/{run_id}`: the run and its step timeline.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/runs/{run_id}", tag = "runs",
    params(crate::openapi::WorkspaceId, ("run_id" = String, Path)),
    responses((status = 200, body = crate::openapi::RunDetail), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn get_run(
    State(state): State<ApiState>,
    Path((workspace_id, run_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let runs = state
        .runs
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route"))?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "run_not_found",
            format!("run {run_id:?} does not exist in workspace {workspace_id:?}"),
        )
    };
    let run = runs
        .get_run(&run_id)
        .await
        .map_err(hookflow_core::EngineError::from)?
        .ok_or_else(not_found)?;
    // Runs of another workspace are reported as missing, not forbidden.
    if run.workspace_id != workspace_id {
        return Err(not_found());
    }
    let steps = runs
        .list_steps(&run_id)
        .await
        .map_err(hookflow_core::EngineError::from)?;
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| {
            json!({"step_id": s.step_id, "action": s.action, "status": s.status, "attempt": s.attempt,
                   "started_at": s.started_at, "ended_at": s.ended_at, "output": s.output, "error": s.error})
        })
        .collect();
    let mut body = serde_json::to_value(&run)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    if let Value::Object(map) = &mut body {
        map.insert("steps".into(), Value::Array(steps));
    }
    Ok(Json(body))
}
