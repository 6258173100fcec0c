//! What a run costs on AWS: the requests of one 3-step run counted on the
//! emulator, per phase, then priced at the list prices of `bench/prices.json`
//! as deployed (Lambda event-source batching and long polling), next to
//! Step Functions for the same workflow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use aws_sdk_dynamodb::config::{Credentials, Region};
use hookflow_aws::request_count::{RequestCounter, Tallies, Tally};
use hookflow_aws::{create_resources, dynamo_stores, sqs_queue, QueueUrls, ResourceNames};
use hookflow_core::engine::{DeliveryLimits, NextMove};
use hookflow_core::ports::*;
use hookflow_core::subscription::Subscription;
use hookflow_core::wiring::Stores;
use hookflow_core::{TriggerEvent, WorkflowDefinition};
use serde::Deserialize;
use serde_json::json;

/// The counter and its clients on the emulator at `endpoint`.
pub async fn counted_clients(endpoint: &str) -> (RequestCounter, aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let config = hookflow_aws::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "hookflow-bench"))
        .load()
        .await;
    let counter = RequestCounter::default();
    let (dynamo, sqs) = counter.clients(&config);
    (counter, dynamo, sqs)
}

/// A fresh stack on the emulator, its tables and queues named from `prefix`
/// and a ULID, and its stores (the vault and messaging are twins: no
/// measured run uses them).
pub async fn emulator_stack(
    dynamo: aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
) -> anyhow::Result<(ResourceNames, QueueUrls, Stores)> {
    let names = ResourceNames::with_prefix(&format!("{prefix}-{}-{}", std::process::id(), ulid::Ulid::new()));
    let urls = create_resources(&dynamo, sqs, &names, Duration::from_secs(30)).await?;
    let stores = dynamo_stores(
        dynamo,
        hookflow_aws::StackServices::twins(),
        &names.workflows_table,
        &names.runs_table,
        None,
    );
    Ok((names, urls, stores))
}

/// Requests per service and operation of one run, by the function making them.
#[derive(Debug, Clone, Default)]
pub struct RunRequests {
    pub ingest: Tallies,
    pub dispatch: Tallies,
    pub steps: Tallies,
    pub trigger_messages: usize,
    pub step_messages: usize,
    pub http_steps: usize,
}

impl RunRequests {
    pub fn phases(&self) -> [(&'static str, &Tallies); 3] {
        [
            ("ingest", &self.ingest),
            ("dispatch", &self.dispatch),
            ("steps", &self.steps),
        ]
    }

    /// Every phase's tallies added up.
    pub fn total(&self) -> Tallies {
        let mut total = Tallies::new();
        for (_, tallies) in self.phases() {
            for (key, tally) in tallies {
                let sum = total.entry(key.clone()).or_default();
                sum.requests += tally.requests;
                sum.write_units += tally.write_units;
                sum.read_units += tally.read_units;
                sum.items_read += tally.items_read;
            }
        }
        total
    }

    /// Requests to one service, the way the count made them (one receive and
    /// one delete per message).
    pub fn requests_to(&self, service: &str) -> usize {
        self.total()
            .iter()
            .filter(|((s, _), _)| s.eq_ignore_ascii_case(service))
            .map(|(_, t)| t.requests)
            .sum()
    }
}

struct Ok200;

#[async_trait]
impl HttpClient for Ok200 {
    async fn send(&self, _call: HttpCall) -> Result<HttpReply, HttpError> {
        Ok(HttpReply {
            status: 200,
            headers: vec![],
            body: b"{\"ok\":true}".to_vec(),
        })
    }
}

/// SetVariables, then two HTTP POSTs to `peer`: the run the cost is quoted for.
pub fn three_step_workflow(peer: &str) -> anyhow::Result<WorkflowDefinition> {
    Ok(WorkflowDefinition::from_value(
        json!({"id": "wf_three", "workspace_id": "ws_count", "name": "three",
        "status": "active", "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "s",
        "steps": {
            "s": {"action": {"type": "SetVariables", "values": {"email": "{{ contact.email }}"}}, "next": "crm"},
            "crm": {"action": {"type": "HttpRequest", "method": "POST", "url": peer, "body": {"e": "{{ vars.email }}"}}, "next": "notify"},
            "notify": {"action": {"type": "HttpRequest", "method": "POST", "url": peer, "body": {}}}
        }}),
    )?)
}

pub fn prize_won(id: &str) -> anyhow::Result<TriggerEvent> {
    Ok(serde_json::from_value(
        json!({"specversion": "1.0", "id": id, "source": "tests", "type": "Prize.Won",
        "workspaceid": "ws_count", "cardid": "card_1", "data": {"contact": {"email": "a@example.com"}}}),
    )?)
}

/// One event through ingest, dispatch and a 3-step run on the emulator,
/// doing by hand what the Lambda functions do (receive, handle, delete),
/// with every request counted.
pub async fn three_step_run(endpoint: &str) -> anyhow::Result<RunRequests> {
    let (counter, dynamo, sqs) = counted_clients(endpoint).await;
    let (_, urls, stores) = emulator_stack(dynamo, &sqs, "cost").await?;
    let triggers = sqs_queue(&sqs, urls.triggers);
    let steps = sqs_queue(&sqs, urls.steps);
    let workflow = three_step_workflow("http://127.0.0.1:9/peer")?;
    stores.workflows.put_version(&workflow).await?;
    let subscription = Subscription::for_workflow(&workflow).context("the workflow is active")?;
    stores.subscriptions.put(&subscription).await?;
    let ingest = stores.ingest(triggers.clone());
    let dispatcher = stores.dispatcher(steps.clone());
    let executor = stores.step_executor(
        steps.clone(),
        triggers.clone(),
        Arc::new(Ok200),
        DeliveryLimits::for_queue(Duration::from_secs(900), hookflow_aws::MAX_RECEIVE_COUNT),
    );
    counter.take();
    let mut counted = RunRequests {
        http_steps: 2,
        ..RunRequests::default()
    };
    ingest.accept(&[prize_won("run-1")?]).await?;
    counted.ingest = counter.take();
    for delivery in triggers.receive(10, Duration::from_secs(1)).await? {
        dispatcher.handle_message(&delivery.body).await?;
        triggers.ack(&delivery.receipt).await?;
        counted.trigger_messages += 1;
    }
    counted.dispatch = counter.take();
    let mut finished = false;
    for _ in 0..10 {
        for delivery in steps.receive(10, Duration::from_secs(1)).await? {
            let handled = executor.handle_message(&delivery.body).await?;
            finished |= matches!(handled.next, NextMove::Finished(_));
            steps.ack(&delivery.receipt).await?;
            counted.step_messages += 1;
        }
        if finished {
            break;
        }
    }
    counted.steps = counter.take();
    if !finished {
        bail!("the 3-step run did not finish");
    }
    Ok(counted)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Prices {
    pub source: String,
    pub lambda_per_million_requests: f64,
    pub lambda_arm64_per_gb_second: f64,
    pub sqs_per_million_requests: f64,
    pub dynamodb_per_million_write_units: f64,
    pub dynamodb_per_million_read_units: f64,
    pub http_api_per_million_requests: f64,
    pub step_functions_standard_per_thousand_transitions: f64,
    pub step_functions_express_per_million_requests: f64,
    pub step_functions_express_per_gb_second: f64,
    pub assumptions: Assumptions,
}

/// What the count cannot measure on a laptop, stated where it is used.
#[derive(Debug, Clone, Deserialize)]
pub struct Assumptions {
    /// Latency of one DynamoDB or SQS request from Lambda, in the region.
    pub aws_request_ms: f64,
    /// Time the HTTP peer of a step takes to answer (billed Lambda time).
    pub http_peer_ms: f64,
    /// Records per Lambda batch when the queues are busy.
    pub busy_batch_size: f64,
    pub express_memory_mb: f64,
    pub express_billing_increment_ms: f64,
}

impl Prices {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Dollars per million runs, by what is charged.
#[derive(Debug, Clone, Default)]
pub struct CostPerMillion {
    pub lambda_requests: f64,
    pub lambda_compute: f64,
    pub sqs: f64,
    pub dynamodb_writes: f64,
    pub dynamodb_reads: f64,
    pub api_gateway: f64,
    /// Requests per run as deployed, by service.
    pub requests: BTreeMap<&'static str, f64>,
}

impl CostPerMillion {
    /// Everything but API Gateway, which a webhook costs whoever runs it.
    pub fn engine(&self) -> f64 {
        self.lambda_requests + self.lambda_compute + self.sqs + self.dynamodb_writes + self.dynamodb_reads
    }
}

fn tally_sum(tallies: &Tallies, service: &str, f: fn(&Tally) -> f64) -> f64 {
    tallies
        .iter()
        .filter(|((s, _), _)| s.eq_ignore_ascii_case(service))
        .map(|(_, t)| f(t))
        .sum()
}

/// Prices a run as deployed with `batch` records per Lambda batch: each SQS
/// receive and delete (`DeleteMessageBatch`) serves a batch, every send is
/// one request, a batch's records run concurrently (so its duration is one
/// record's), and the webhook function runs once per event.
pub fn price(run: &RunRequests, prices: &Prices, memory_mb: f64, batch: f64) -> CostPerMillion {
    let a = &prices.assumptions;
    let gb = memory_mb / 1024.0;
    let sends = |t: &Tallies| {
        t.iter()
            .filter(|((s, op), _)| s.eq_ignore_ascii_case("sqs") && op.starts_with("SendMessage"))
            .map(|(_, t)| t.requests as f64)
            .sum::<f64>()
    };
    let dynamo_requests = |t: &Tallies| tally_sum(t, "dynamodb", |t| t.requests as f64);
    let messages = (run.trigger_messages + run.step_messages) as f64;
    let sqs_requests = sends(&run.ingest) + sends(&run.dispatch) + sends(&run.steps) + 2.0 * messages / batch;
    let invocations = 1.0 + messages / batch;
    let record_ms = |tallies: &Tallies, records: usize, peer_calls: usize| {
        let records = records.max(1) as f64;
        ((dynamo_requests(tallies) + sends(tallies)) * a.aws_request_ms + peer_calls as f64 * a.http_peer_ms) / records
    };
    let ingest_s = record_ms(&run.ingest, 1, 0) / 1000.0;
    let dispatch_s = record_ms(&run.dispatch, run.trigger_messages, 0) * run.trigger_messages as f64 / batch / 1000.0;
    let steps_s = record_ms(&run.steps, run.step_messages, run.http_steps) * run.step_messages as f64 / batch / 1000.0;
    // Per-run counts times prices per million units: dollars per million runs.
    let total = run.total();
    let dynamo = dynamo_requests(&total);
    CostPerMillion {
        lambda_requests: invocations * prices.lambda_per_million_requests,
        lambda_compute: (ingest_s + dispatch_s + steps_s) * gb * prices.lambda_arm64_per_gb_second * 1e6,
        sqs: sqs_requests * prices.sqs_per_million_requests,
        dynamodb_writes: tally_sum(&total, "dynamodb", |t| t.write_units) * prices.dynamodb_per_million_write_units,
        dynamodb_reads: tally_sum(&total, "dynamodb", |t| t.read_units) * prices.dynamodb_per_million_read_units,
        api_gateway: prices.http_api_per_million_requests,
        requests: BTreeMap::from([("Lambda", invocations), ("SQS", sqs_requests), ("DynamoDB", dynamo)]),
    }
}

/// Step Functions for the same workflow, per million runs: Standard by its
/// state transitions, Express by request and billed duration.
pub fn step_functions(run: &RunRequests, prices: &Prices) -> (f64, f64) {
    let a = &prices.assumptions;
    let transitions = run.step_messages as f64;
    let standard = transitions * prices.step_functions_standard_per_thousand_transitions * 1000.0;
    let duration_ms = run.http_steps as f64 * a.http_peer_ms + a.aws_request_ms;
    let billed_s = (duration_ms / a.express_billing_increment_ms).ceil() * a.express_billing_increment_ms / 1000.0;
    let express = prices.step_functions_express_per_million_requests
        + billed_s * a.express_memory_mb / 1024.0 * prices.step_functions_express_per_gb_second * 1e6;
    (standard, express)
}

/// The default of the template's `Stage` parameter: the HTTP API stage a
/// deployment gets unless it names another.
pub fn template_stage(template: &str) -> anyhow::Result<String> {
    let mut lines = template.lines().skip_while(|line| line.trim_end() != "Parameters:");
    lines
        .find(|line| line.trim_end() == "  Stage:")
        .context("no Stage parameter in template.yaml")?;
    lines
        .take_while(|line| line.starts_with("    "))
        .find_map(|line| line.trim().strip_prefix("Default:"))
        .map(|stage| stage.trim().trim_matches('"').to_owned())
        .context("the Stage parameter has no Default")
}

/// The functions' memory in MB, from `Globals.Function.MemorySize` of the template.
pub fn template_memory_mb(template: &str) -> anyhow::Result<f64> {
    template
        .lines()
        .find_map(|line| line.trim().strip_prefix("MemorySize:"))
        .context("no MemorySize in template.yaml")?
        .trim()
        .parse()
        .context("MemorySize is not a number")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_names_its_default_stage_and_memory() {
        let template = include_str!("../../template.yaml");
        assert!(!template_stage(template).expect("a default stage").is_empty());
        assert!(template_memory_mb(template).expect("a memory size") >= 128.0);
        let other = "Parameters:\n  StageName:\n    Default: x\n  Stage:\n    Type: String\n    Default: \"prod\"\n";
        assert_eq!(template_stage(other).expect("stage"), "prod");
        assert!(template_stage("Parameters:\n  Stage:\n    Type: String\nResources:\n").is_err());
    }
}
