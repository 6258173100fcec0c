//! `hookflow keys …`: workspace API keys. Through the API with an admin key,
//! or, for a workspace's first admin key on a deployed stack, straight on
//! DynamoDB with the operator's AWS credentials (`--aws`).

use std::sync::Arc;

use hookflow_aws::DynamoAccess;
use hookflow_core::access::{Access, Actor, Role};
use hookflow_core::ports::SystemClock;
use reqwest::Method;
use serde_json::{json, Value};

use crate::workflows::{table, Api, CliError};

pub async fn create(api: &Api, role: Role, name: Option<String>) -> Result<Value, CliError> {
    let body = json!({"role": role, "name": name});
    Ok(api.request(Method::POST, "/keys", Some(&body), None).await?.0)
}

/// Makes a key on the stack's DynamoDB table (`HOOKFLOW_WORKFLOWS_TABLE`,
/// the stack's `WorkflowsTableName` output) and records it in the audit
/// trail as made with AWS credentials.
pub async fn create_with_aws(workspace: &str, role: Role, name: Option<String>) -> Result<Value, CliError> {
    let table = std::env::var("HOOKFLOW_WORKFLOWS_TABLE").map_err(|_| {
        CliError::Failed(
            "--aws needs HOOKFLOW_WORKFLOWS_TABLE: the stack's WorkflowsTableName output (sam list stack-outputs)"
                .into(),
        )
    })?;
    let config = hookflow_aws::sdk_config_loader().load().await;
    let store = Arc::new(DynamoAccess::new(aws_sdk_dynamodb::Client::new(&config), table));
    let access = Access::new(store.clone(), store, Arc::new(SystemClock));
    let failed = |e: hookflow_core::access::AccessError| CliError::Failed(format!("cannot make the key: {e}"));
    let minted = access.create_key(workspace, role, name).await.map_err(failed)?;
    let action = "POST /v1/workspaces/{workspace_id}/keys".to_owned();
    let target = format!("/v1/workspaces/{workspace}/keys");
    access
        .record(workspace, &Actor::AwsCredentials, action, target)
        .await
        .map_err(failed)?;
    let mut answer = minted.key.summary();
    answer["key"] = json!(minted.secret);
    Ok(answer)
}

pub async fn list(api: &Api) -> Result<Value, CliError> {
    Ok(api.request(Method::GET, "/keys", None, None).await?.0)
}

pub async fn revoke(api: &Api, key_id: &str) -> Result<Value, CliError> {
    Ok(api
        .request(Method::DELETE, &format!("/keys/{key_id}"), None, None)
        .await?
        .0)
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| "-".to_owned(), str::to_owned)
}

pub fn render_created(created: &Value) -> String {
    format!(
        "created {} key {} for workspace {}\n\n{}\n\nKeep it now: it is shown this once and stored only as a hash.",
        text(&created["role"]),
        text(&created["id"]),
        text(&created["workspace_id"]),
        text(&created["key"]),
    )
}

pub fn render_list(listed: &Value) -> String {
    let rows: Vec<Vec<String>> = listed["keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|key| {
            vec![
                text(&key["id"]),
                text(&key["role"]),
                text(&key["name"]),
                text(&key["created_at"]),
                text(&key["revoked_at"]),
            ]
        })
        .collect();
    table(&["ID", "ROLE", "NAME", "CREATED", "REVOKED"], &rows)
}

pub fn render_revoked(revoked: &Value) -> String {
    format!(
        "revoked key {}: refused at once by this API process, and everywhere within {} s",
        text(&revoked["id"]),
        hookflow_core::access::KEY_CACHE_TTL.as_secs()
    )
}
