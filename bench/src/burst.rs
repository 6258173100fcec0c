//! Each Lambda function's peak memory through a burst of messages, the way
//! one warm instance meets it: invocations one after another on a loopback
//! Lambda runtime-API stub, the function's tables and queues on the
//! emulator. The messages are real: the webhook and events functions ingest
//! the burst's events, the dispatcher gets what the webhook function queued
//! (ten records a batch, as an SQS event source sends them), the step
//! function what the dispatcher queued, and the api function shows the
//! workflow they ran.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use hookflow_core::access::Role;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::cost::{counted_clients, emulator_stack, three_step_workflow};
use crate::footprint::{lambda_environment, LambdaStack};
use crate::process::{binary_in, status_kib};

/// One function's burst.
#[derive(Debug, Clone)]
pub struct Burst {
    pub function: &'static str,
    /// What it was handed: events, SQS records or API requests.
    pub messages: usize,
    pub invocations: usize,
    /// Invocations that answered an error, plus SQS records it reported failed.
    pub failed: usize,
    pub peak_rss_mib: f64,
    pub seconds: f64,
}

/// What a function answered to one invocation.
#[derive(Debug)]
enum Answer {
    Response(Value),
    Error(String),
}

type Invocation = (String, oneshot::Sender<Answer>);

/// The Lambda runtime API, as much of it as a function uses: it hands out
/// one invocation at a time and takes the function's answer.
#[derive(Clone)]
struct RuntimeApi {
    next: Arc<tokio::sync::Mutex<mpsc::Receiver<Invocation>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
}

impl RuntimeApi {
    async fn serve() -> anyhow::Result<(String, mpsc::Sender<Invocation>)> {
        let (sender, receiver) = mpsc::channel(1);
        let api = Self {
            next: Arc::new(tokio::sync::Mutex::new(receiver)),
            waiting: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok((address, sender))
    }
}

async fn next_invocation(State(api): State<RuntimeApi>) -> (StatusCode, HeaderMap, String) {
    let Some((event, answer)) = api.next.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let id = ulid::Ulid::new().to_string();
    let deadline = epoch_ms() + 900_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:bench".into(),
    );
    set("lambda-runtime-trace-id", format!("Root=1-00000000-{id}"));
    if let Ok(mut waiting) = api.waiting.lock() {
        waiting.insert(id, answer);
    }
    (StatusCode::OK, headers, event)
}

fn answer(api: &RuntimeApi, id: &str, answer: Answer) -> StatusCode {
    match api.waiting.lock().ok().and_then(|mut waiting| waiting.remove(id)) {
        Some(waiter) => {
            let _ = waiter.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn response(State(api): State<RuntimeApi>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    answer(&api, &id, Answer::Response(value))
}

async fn error(State(api): State<RuntimeApi>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    answer(&api, &id, Answer::Error(String::from_utf8_lossy(&body).into_owned()))
}

fn epoch_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or_default()
}

/// A function process on the stub, killed when dropped.
struct Instance {
    child: Child,
    invocations: mpsc::Sender<Invocation>,
    started: Instant,
    count: usize,
    failed: usize,
}

impl Instance {
    async fn start(function: &str, stack: &BurstStack, extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let (runtime_api, invocations) = RuntimeApi::serve().await?;
        let mut command = Command::new(binary_in(&stack.functions_dir, function)?);
        lambda_environment(&mut command, &runtime_api, &stack.lambda);
        command.envs(extra_env.iter().copied());
        let log_path = std::env::temp_dir().join(format!("hookflow-bench-burst-{function}.log"));
        let log = std::fs::File::create(log_path)?;
        let child = command
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {function}"))?;
        Ok(Self {
            child,
            invocations,
            started: Instant::now(),
            count: 0,
            failed: 0,
        })
    }

    async fn invoke(&mut self, event: Value) -> anyhow::Result<Answer> {
        let (sender, receiver) = oneshot::channel();
        self.invocations
            .send((event.to_string(), sender))
            .await
            .context("the runtime-API stub stopped")?;
        let answer = tokio::time::timeout(Duration::from_secs(60), receiver)
            .await
            .context("no answer within 60 s")?
            .context("the invocation was dropped")?;
        self.count += 1;
        if let Answer::Error(error) = &answer {
            if self.failed == 0 {
                eprintln!("burst: the first failed invocation answered {error}");
            }
            self.failed += 1;
        }
        Ok(answer)
    }

    fn finish(mut self, function: &'static str, messages: usize) -> anyhow::Result<Burst> {
        let peak = status_kib(self.child.id(), "VmHWM:")?;
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(Burst {
            function,
            messages,
            invocations: self.count,
            failed: self.failed,
            peak_rss_mib: peak as f64 / 1024.0,
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP steps' peer: it answers every POST at once.
async fn ok_peer() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/peer", listener.local_addr()?);
    let app = Router::new().route("/peer", post(|| async { axum::Json(json!({"ok": true})) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// The burst's event `n`, as a CloudEvent.
fn prize_won(source: &str, n: usize) -> Value {
    json!({"specversion": "1.0", "id": format!("{source}-{n}"), "source": "bench", "type": "Prize.Won",
        "workspaceid": "ws_count", "cardid": "card_1",
        "data": {"contact": {"email": format!("player{n}@example.com")}}})
}

/// An API Gateway (HTTP API, payload 2.0) request under `stage`, which
/// API Gateway puts in front of the path.
fn api_gateway(stage: &str, method: &str, path: &str, key: &str, body: Option<String>) -> Value {
    let path = format!("/{stage}{path}");
    json!({"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {key}"), "content-type": "application/cloudevents+json",
            "host": "bench.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {"accountId": "000000000000", "apiId": "bench", "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": ulid::Ulid::new().to_string(), "routeKey": "$default", "stage": stage,
            "time": "02/Dec/2026:00:00:00 +0000", "timeEpoch": 0},
        "body": body, "isBase64Encoded": false})
}

/// The emulator's stack for the burst, with the three-step workflow (its
/// HTTP steps call `peer`) and an admin key, and where the functions'
/// binaries are.
struct BurstStack {
    lambda: LambdaStack,
    functions_dir: PathBuf,
    sqs: aws_sdk_sqs::Client,
    key: String,
}

/// What the burst's two chains share.
struct Chain<'a> {
    /// Where the functions' binaries are.
    functions_dir: &'a Path,
    /// The local server the three-step workflow's HTTP steps call.
    peer: &'a str,
    messages: usize,
    /// The API stage the webhook and api functions are called under.
    stage: &'a str,
}

async fn burst_stack(chain: &Chain<'_>, endpoint: &str, prefix: &str) -> anyhow::Result<BurstStack> {
    let (_, dynamo, sqs) = counted_clients(endpoint).await;
    let (names, urls, stores) = emulator_stack(dynamo, &sqs, prefix).await?;
    stores.workflows().apply_file(three_step_workflow(chain.peer)?).await?;
    let key = stores.access().create_key("ws_count", Role::Admin, None).await?.secret;
    Ok(BurstStack {
        lambda: LambdaStack {
            endpoint: endpoint.to_owned(),
            workflows_table: names.workflows_table.clone(),
            runs_table: names.runs_table.clone(),
            triggers_queue_url: urls.triggers,
            steps_queue_url: urls.steps,
            dead_letter_queue_arn: "arn:aws:sqs:us-east-1:000000000000:burst-dlq".into(),
            stage: chain.stage.to_owned(),
        },
        functions_dir: chain.functions_dir.to_owned(),
        sqs,
        key,
    })
}

/// Every function through a burst of `messages`, in the order the messages
/// flow; a function's burst fails the bench if any invocation goes unanswered.
/// The webhook and api functions are called under the API stage `stage`;
/// the functions' binaries are in `functions_dir`.
///
/// The bursts run as two chains, side by side: the webhook, dispatcher and
/// step functions pass the messages on, on the first emulator; the events
/// and api functions, which feed nothing measured, on the last. A moto
/// serves one request at a time, so a second one halves the wait.
pub async fn run(
    endpoints: &[String],
    messages: usize,
    stage: &str,
    functions_dir: &Path,
) -> anyhow::Result<Vec<Burst>> {
    let (Some(first), Some(last)) = (endpoints.first(), endpoints.last()) else {
        bail!("the burst needs an AWS emulator");
    };
    let peer = ok_peer().await?;
    let chain = Chain {
        functions_dir,
        peer: &peer,
        messages,
        stage,
    };
    let (flow, side) = tokio::try_join!(flow_chain(&chain, first), side_chain(&chain, last))?;
    let [webhook, dispatcher, step] = flow;
    let [events, api] = side;
    Ok(vec![webhook, events, dispatcher, step, api])
}

/// The webhook function ingests the events the dispatcher then dispatches
/// and whose steps the step function runs.
async fn flow_chain(chain: &Chain<'_>, endpoint: &str) -> anyhow::Result<[Burst; 3]> {
    let (messages, stage) = (chain.messages, chain.stage);
    let stack = burst_stack(chain, endpoint, "burst-flow").await?;
    let webhook = invocation_burst(&stack, "hookflow-webhook", messages, |n| {
        api_gateway(
            stage,
            "POST",
            "/v1/events",
            &stack.key,
            Some(prize_won("webhook", n).to_string()),
        )
    })
    .await?;
    let triggers = &stack.lambda.triggers_queue_url;
    let dispatcher = queue_burst(&stack, "hookflow-dispatcher", triggers, messages, &[]).await?;
    let steps = &stack.lambda.steps_queue_url;
    let step = queue_burst(
        &stack,
        "hookflow-step",
        steps,
        messages,
        &[("ALLOW_PRIVATE_NETWORKS", "true")],
    )
    .await?;
    Ok([webhook, dispatcher, step])
}

/// The events function's ingest and the api function's reads, on a stack
/// of their own.
async fn side_chain(chain: &Chain<'_>, endpoint: &str) -> anyhow::Result<[Burst; 2]> {
    let stack = burst_stack(chain, endpoint, "burst-side").await?;
    let events = invocation_burst(&stack, "hookflow-events", chain.messages, eventbridge).await?;
    Ok([events, api_burst(&stack, chain.messages).await?])
}

/// The workflow's detail (`GET …/workflows/{id}`: its versions and
/// subscription), the dashboard's and the CLI's first read. Run details
/// would be the heavier read, but the side chain's stack has no runs, and
/// the emulator answers a query by scanning the whole runs table, which the
/// flow chain fills with thousands of items: a thousand run details read
/// there took nine minutes.
async fn api_burst(stack: &BurstStack, messages: usize) -> anyhow::Result<Burst> {
    invocation_burst(stack, "hookflow-api", messages, |_| {
        api_gateway(
            &stack.lambda.stage,
            "GET",
            "/v1/workspaces/ws_count/workflows/wf_three",
            &stack.key,
            None,
        )
    })
    .await
}

fn eventbridge(n: usize) -> Value {
    let event = prize_won("events", n);
    json!({"version": "0", "id": event["id"], "detail-type": "Prize.Won", "source": "bench",
        "account": "000000000000", "time": "2026-12-02T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"workspaceid": "ws_count", "cardid": "card_1", "data": event["data"]}})
}

/// `messages` invocations of one event each.
async fn invocation_burst(
    stack: &BurstStack,
    function: &'static str,
    messages: usize,
    event: impl Fn(usize) -> Value,
) -> anyhow::Result<Burst> {
    eprintln!("burst: {messages} invocations of {function}");
    let mut instance = Instance::start(function, stack, &[]).await?;
    for n in 0..messages {
        if let Answer::Response(answer) = instance.invoke(event(n)).await? {
            if answer["statusCode"].as_u64().is_some_and(|status| status >= 400) {
                if instance.failed == 0 {
                    eprintln!("burst: {function} first refused with {}", answer["body"]);
                }
                instance.failed += 1;
            }
        }
    }
    instance.finish(function, messages)
}

/// `messages` records off `queue_url`, ten to a batch; the records a batch
/// did not report failed are deleted, as the event source mapping does.
async fn queue_burst(
    stack: &BurstStack,
    function: &'static str,
    queue_url: &str,
    messages: usize,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Burst> {
    eprintln!("burst: {messages} records through {function}");
    let mut instance = Instance::start(function, stack, extra_env).await?;
    let mut handed = 0;
    let mut empty_polls = 0;
    while handed < messages && empty_polls < 10 {
        let batch = stack
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10.min((messages - handed) as i32))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            empty_polls += 1;
            continue;
        }
        empty_polls = 0;
        handed += batch.len();
        let failed = match instance.invoke(sqs_event(&batch)).await? {
            Answer::Response(answer) => failed_records(&answer),
            Answer::Error(_) => batch.iter().filter_map(|m| m.message_id.clone()).collect(),
        };
        instance.failed += failed.len();
        delete_handled(&stack.sqs, queue_url, &batch, &failed).await?;
    }
    if handed < messages {
        bail!("{function}: only {handed} of {messages} records arrived on its queue");
    }
    instance.finish(function, handed)
}

fn sqs_event(batch: &[aws_sdk_sqs::types::Message]) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|message| {
            json!({"messageId": message.message_id, "receiptHandle": message.receipt_handle,
                "body": message.body, "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {}, "md5OfBody": message.md5_of_body, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:burst", "awsRegion": "us-east-1"})
        })
        .collect();
    json!({"Records": records})
}

fn failed_records(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|failure| failure["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

async fn delete_handled(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &[aws_sdk_sqs::types::Message],
    failed: &[String],
) -> anyhow::Result<()> {
    let entries: Vec<DeleteMessageBatchRequestEntry> = batch
        .iter()
        .enumerate()
        .filter(|(_, message)| !message.message_id.as_ref().is_some_and(|id| failed.contains(id)))
        .filter_map(|(i, message)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(message.receipt_handle.clone())
                .build()
                .ok()
        })
        .collect();
    if !entries.is_empty() {
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(())
}
