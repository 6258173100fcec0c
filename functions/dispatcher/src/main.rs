//! The `hookflow-dispatcher` Lambda function: see the library for what it does.

use function_dispatcher::{handler, wire};
use hookflow_lambda::{
    aws_config, init_tracing, required_env, run_retention, RUNS_TABLE, STEPS_QUEUE_URL, WORKFLOWS_TABLE,
};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let workflows_table = required_env(WORKFLOWS_TABLE)?;
    let runs_table = required_env(RUNS_TABLE)?;
    let steps_queue = required_env(STEPS_QUEUE_URL)?;
    let config = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dispatcher = wire(dynamo, sqs, workflows_table, runs_table, steps_queue, run_retention()?);
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event| handler::handle(dispatcher, event))).await
}
