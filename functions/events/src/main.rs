//! The `hookflow-events` Lambda function: see the library for what it does.

use function_events::{handler, wire};
use hookflow_lambda::{aws_config, init_tracing, required_env, RUNS_TABLE, TRIGGERS_QUEUE_URL};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let runs_table = required_env(RUNS_TABLE)?;
    let triggers_queue = required_env(TRIGGERS_QUEUE_URL)?;
    let config = aws_config().await;
    let ingest = wire(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
        runs_table,
        triggers_queue,
    );
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event| handler::handle(ingest, event))).await
}
