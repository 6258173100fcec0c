//! The `hookflow-dispatcher` Lambda function: see the library for what it does.

use function_dispatcher::{handler, wire};
use hookflow_aws::sqs_queue;
use hookflow_lambda::{aws_config, init_tracing, required_env, stores, STEPS_QUEUE_URL};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = aws_config().await;
    let steps = sqs_queue(&aws_sdk_sqs::Client::new(&config), required_env(STEPS_QUEUE_URL)?);
    let dispatcher = wire(&stores(&config)?, steps);
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event| handler::handle(dispatcher, event))).await
}
