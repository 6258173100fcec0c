//! The `hookflow-events` Lambda function: see the library for what it does.

use function_events::{handler, wire};
use hookflow_aws::sqs_queue;
use hookflow_lambda::{init_tracing, required_env, sdk_config, tables, TRIGGERS_QUEUE_URL};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = sdk_config()?;
    let triggers = sqs_queue(&aws_sdk_sqs::Client::new(&config), required_env(TRIGGERS_QUEUE_URL)?);
    let ingest = wire(tables(&config)?.dedupe(), triggers);
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event| handler::handle(ingest, event))).await
}
