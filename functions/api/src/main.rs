//! The `hookflow-api` Lambda function: see the library for what it does.

use function_api::wire;
use hookflow_aws::sqs_queue;
use hookflow_lambda::{init_tracing, required_env, sdk_config, stores, STEPS_QUEUE_URL};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = sdk_config()?;
    let stores = stores(&config)?;
    let steps = sqs_queue(&aws_sdk_sqs::Client::new(&config), required_env(STEPS_QUEUE_URL)?);
    let stage = std::env::var("HOOKFLOW_API_STAGE").ok();
    lambda_http::run(wire(&stores, steps, stage.as_deref())).await
}
