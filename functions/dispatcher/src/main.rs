//! The `hookflow-dispatcher` Lambda function: see the library for what it does.

use function_dispatcher::{handler, wire};
use hookflow_aws::sqs_queue;
use hookflow_core::dead_letter::QueueKind;
use hookflow_lambda::{
    dispatch_stores, init_tracing, required_env, sdk_config, QueueConsumer, DEAD_LETTER_QUEUE_ARN, STEPS_QUEUE_URL,
};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = sdk_config()?;
    let stores = dispatch_stores(&config)?;
    let steps = sqs_queue(&aws_sdk_sqs::Client::new(&config), required_env(STEPS_QUEUE_URL)?);
    let dead_letters = stores.run.dead_letters(QueueKind::Triggers, steps.clone());
    let dispatcher = wire(&stores, steps);
    let dead_letter_queue_arn = required_env(DEAD_LETTER_QUEUE_ARN)?;
    let function = QueueConsumer {
        handler: &dispatcher,
        dead_letters: &dead_letters,
        dead_letter_queue_arn: &dead_letter_queue_arn,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| handler::handle(function, event))).await
}
