//! The `hookflow-step` Lambda function: see the library for what it does.

use function_step::handler::{self, StepFunction};
use function_step::{steps_limits, wire};
use hookflow_aws::sqs_queue;
use hookflow_core::dead_letter::QueueKind;
use hookflow_http_client::NetworkPolicy;
use hookflow_lambda::{
    init_tracing, required_env, sdk_config, step_stores, QueueConsumer, ALLOW_PRIVATE_NETWORKS, DEAD_LETTER_QUEUE_ARN,
    STEPS_QUEUE_URL, TRIGGERS_QUEUE_URL,
};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let policy = if std::env::var(ALLOW_PRIVATE_NETWORKS).is_ok_and(|v| v == "true") {
        tracing::warn!("{ALLOW_PRIVATE_NETWORKS}=true: HTTP steps may call private networks");
        NetworkPolicy::allow_all()
    } else {
        NetworkPolicy::deny_private()
    };
    let config = sdk_config()?;
    let stores = step_stores(&config)?;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let steps = sqs_queue(&sqs, required_env(STEPS_QUEUE_URL)?);
    let triggers = sqs_queue(&sqs, required_env(TRIGGERS_QUEUE_URL)?);
    let dead_letters = stores.run.dead_letters(QueueKind::Steps, steps.clone());
    let reaper = stores.run.reaper(steps_limits(), steps.clone());
    let executor = wire(&stores, steps, triggers, policy)?;
    let dead_letter_queue_arn = required_env(DEAD_LETTER_QUEUE_ARN)?;
    let function = StepFunction {
        queue: QueueConsumer {
            handler: &executor,
            dead_letters: &dead_letters,
            dead_letter_queue_arn: &dead_letter_queue_arn,
        },
        reaper: &reaper,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| handler::handle(function, event))).await
}
