//! The `hookflow-step` Lambda function: see the library for what it does.

use function_step::{handler, wire};
use hookflow_aws::sqs_queue;
use hookflow_http_client::NetworkPolicy;
use hookflow_lambda::{aws_config, init_tracing, required_env, stores, ALLOW_PRIVATE_NETWORKS, STEPS_QUEUE_URL};
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
    let config = aws_config().await;
    let steps = sqs_queue(&aws_sdk_sqs::Client::new(&config), required_env(STEPS_QUEUE_URL)?);
    let executor = wire(&stores(&config)?, steps, policy)?;
    let executor = &executor;
    lambda_runtime::run(service_fn(move |event| handler::handle(executor, event))).await
}
