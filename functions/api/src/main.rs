//! API Gateway (HTTP API, payload v2) → the management API of workflows
//! (`…/workflows…`), the runs read API (`GET …/runs`, `GET …/runs/{id}`),
//! keys (`…/keys`) and the audit trail (`GET …/audit`).

mod handler;

use std::sync::Arc;

use hookflow_aws::{DynamoAccess, DynamoRuns, DynamoWorkflows};
use hookflow_core::access::Access;
use hookflow_core::lifecycle::Workflows;
use hookflow_core::ports::SystemClock;
use hookflow_lambda::{aws_config, init_tracing, required_env, RUNS_TABLE, WORKFLOWS_TABLE};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let runs_table = required_env(RUNS_TABLE)?;
    let workflows_table = required_env(WORKFLOWS_TABLE)?;
    let config = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let runs = DynamoRuns::new(dynamo.clone(), runs_table);
    let keys = Arc::new(DynamoAccess::new(dynamo.clone(), workflows_table.clone()));
    let access = Access::new(keys.clone(), keys, Arc::new(SystemClock));
    let catalog = DynamoWorkflows::new(dynamo, workflows_table);
    let workflows = Workflows::new(Arc::new(catalog), Arc::new(SystemClock));
    let stage = std::env::var("HOOKFLOW_API_STAGE").ok();
    let router = handler::router(Arc::new(access), Arc::new(runs), Arc::new(workflows), stage.as_deref());
    lambda_http::run(router).await
}
