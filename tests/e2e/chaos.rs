//! The chaos suite: thousands of events under injected crashes, duplicate
//! deliveries and a flaky peer; only global invariants are asserted. Set
//! `HOOKFLOW_CHAOS_SEED` to replay a printed seed.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use hookflow_aws::{create_resources, ResourceNames};
use hookflow_cli::dev::Ports;
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::messaging::Sent;
use hookflow_tests::chaos::{self, report, ChaosConfig, SentMessages, Target};

/// Short, so crashed deliveries come back quickly; claims last half of it.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(2);

/// On the emulator a handler's calls can take seconds when moto is busy, and
/// a visibility timeout shorter than that makes moto redeliver messages that
/// are still being handled: duplicate work that slows it further.
const EMULATOR_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(6);

/// No run ending and no message consumed for this long means stuck. The
/// longest quiet gap of a healthy run is a visibility timeout plus a retry
/// interval (seconds), so this is a margin of more than 3× on a machine at
/// half speed.
const STALL: Duration = Duration::from_secs(60);

/// Runs `events` events through `target` with the seed printed first, then
/// prints the summary.
async fn run_chaos(target: Target, events: usize, step_workers: usize, window: usize) {
    let seed = chaos::seed();
    report(&format!("chaos seed={seed} (HOOKFLOW_CHAOS_SEED={seed} replays it)"));
    let config = ChaosConfig {
        seed,
        events,
        crash_per_mille: 100,
        step_workers,
        stall: STALL,
        window,
    };
    report(&chaos::run(target, config).await.line);
}

/// The subjects of the emails and the bodies of the texts the twin kept.
fn twin_messages(sent: &[Sent]) -> SentMessages {
    let mut emails = vec![];
    let mut texts = vec![];
    for message in sent {
        match message {
            Sent::Email(email) => emails.push(email.subject.clone()),
            Sent::Sms(sms) => texts.push(sms.message.clone()),
        }
    }
    SentMessages {
        emails,
        texts: Some(texts),
    }
}

/// The subjects of the emails the chaos sender sent, as moto keeps them
/// (its model listing, `/moto-api/data.json`).
async fn emails_on_moto(endpoint: &str) -> Vec<String> {
    let models: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("moto's models")
        .json()
        .await
        .expect("moto's models as JSON");
    models["ses"]["Message"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|m| m["source"] == chaos::CHAOS_SENDER)
                .filter_map(|m| m["subject"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_events_in_memory_lose_nothing_and_act_once() {
    let backend = Arc::new(MemoryBackend::new(QueueSettings {
        visibility_timeout: VISIBILITY_TIMEOUT,
        max_receive_count: hookflow_aws::MAX_RECEIVE_COUNT,
    }));
    let pending_of = backend.clone();
    let outbox = backend.outbox.clone();
    let target = Target {
        name: "memory",
        ports: Ports::memory(&backend),
        pending: Box::new(move || {
            let backend = pending_of.clone();
            // The dead-letter queues too: what reaches them is still to be parked.
            Box::pin(async move {
                backend.triggers.len() + backend.steps.len() + backend.triggers_dlq.len() + backend.steps_dlq.len()
            })
        }),
        visibility_timeout: VISIBILITY_TIMEOUT,
        sent: Box::new(move || {
            let sent = outbox.sent();
            Box::pin(async move { twin_messages(&sent) })
        }),
    };
    // The twin's queue does not slow with its backlog: no window.
    run_chaos(target, 2000, 8, usize::MAX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventy_events_on_the_emulator_lose_nothing_and_act_once() {
    let config = hookflow_tests::emulator_config(hookflow_tests::CHAOS_EMULATOR).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let prefix = format!(
        "chaos-{}-{}",
        std::process::id(),
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let names = ResourceNames::with_prefix(&prefix);
    let urls = create_resources(&dynamo, &sqs, &names, EMULATOR_VISIBILITY_TIMEOUT)
        .await
        .expect("create resources on the emulator");
    aws_sdk_sesv2::Client::new(&config)
        .create_email_identity()
        .email_identity(chaos::CHAOS_SENDER)
        .send()
        .await
        .expect("verify the chaos sender on SES");
    let endpoint = std::env::var(hookflow_tests::CHAOS_EMULATOR).expect("the chaos emulator");
    // The dead-letter queues count as pending: what reaches them is still to be parked.
    let watched_queues = [
        urls.triggers.clone(),
        urls.steps.clone(),
        urls.triggers_dlq.clone(),
        urls.steps_dlq.clone(),
    ];
    let ports = Ports::on_aws(
        dynamo,
        sqs.clone(),
        hookflow_tests::emulator_services(&config, &names),
        &names,
        urls,
        None,
    );
    let target = Target {
        name: "emulator",
        ports,
        pending: Box::new(move || {
            let sqs = sqs.clone();
            let queues = watched_queues.clone();
            Box::pin(async move {
                let mut pending = 0;
                for url in &queues {
                    let attributes = sqs
                        .get_queue_attributes()
                        .queue_url(url)
                        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                        .send()
                        .await
                        .expect("queue attributes");
                    pending += attributes
                        .attributes()
                        .map(|a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum::<usize>())
                        .unwrap_or(0);
                }
                pending
            })
        }),
        visibility_timeout: EMULATOR_VISIBILITY_TIMEOUT,
        sent: Box::new(move || {
            let endpoint = endpoint.clone();
            Box::pin(async move {
                SentMessages {
                    emails: emails_on_moto(&endpoint).await,
                    texts: None,
                }
            })
        }),
    };
    run_chaos(target, 70, 6, 30).await;
}
