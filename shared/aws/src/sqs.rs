use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use hookflow_core::engine::MAX_QUEUE_DELAY;
use hookflow_core::ports::{Delivery, PortResult, Queue};

use crate::error::port_error;

/// SQS's longest long-poll wait.
const MAX_WAIT_S: u64 = 20;

/// An SQS standard queue. Delays round up to whole seconds (SQS's unit).
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    name: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        let url = url.into();
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        Self { client, url, name }
    }
}

fn whole_seconds(duration: Duration, max: u64) -> i32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.min(max) as i32
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, body: String, delay: Duration) -> PortResult<()> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(whole_seconds(delay, MAX_QUEUE_DELAY.as_secs()))
            .send()
            .await
            .map_err(|e| port_error("sqs_send_message", e))?;
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<Delivery>> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(whole_seconds(wait, MAX_WAIT_S))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| port_error("sqs_receive_message", e))?;
        Ok(received
            .messages()
            .iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(Delivery {
                    receipt: m.receipt_handle()?.to_owned(),
                    body: m.body()?.to_owned(),
                    receive_count,
                })
            })
            .collect())
    }

    async fn ack(&self, receipt: &str) -> PortResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| port_error("sqs_delete_message", e))?;
        Ok(())
    }

    /// SQS cannot peek: receive with a zero visibility timeout (the messages
    /// stay visible) until a receive brings nothing new. Each look counts as a
    /// receive, which only matters on a dead-letter queue's own redrive policy
    /// (ours have none).
    async fn peek(&self, max: usize) -> PortResult<Vec<String>> {
        let mut seen = std::collections::HashSet::new();
        let mut bodies = vec![];
        while bodies.len() < max {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages((max - bodies.len()).clamp(1, 10) as i32)
                .visibility_timeout(0)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| port_error("sqs_receive_message", e))?;
            let mut new = 0;
            for message in received.messages() {
                let (Some(id), Some(body)) = (message.message_id(), message.body()) else {
                    continue;
                };
                if seen.insert(id.to_owned()) {
                    new += 1;
                    bodies.push(body.to_owned());
                }
            }
            if new == 0 {
                break;
            }
        }
        bodies.truncate(max);
        Ok(bodies)
    }
}
