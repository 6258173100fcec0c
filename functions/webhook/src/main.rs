//! The `hookflow-webhook` Lambda function: see the library for what it does.

use function_webhook::wire;
use hookflow_aws::sqs_queue;
use hookflow_lambda::{init_tracing, required_env, sdk_config, tables, TRIGGERS_QUEUE_URL};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = sdk_config()?;
    let triggers = sqs_queue(&aws_sdk_sqs::Client::new(&config), required_env(TRIGGERS_QUEUE_URL)?);
    let stage = std::env::var("HOOKFLOW_API_STAGE").ok();
    lambda_http::run(wire(&tables(&config)?.doors(), triggers, stage.as_deref())).await
}
