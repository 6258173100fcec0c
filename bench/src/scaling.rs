//! Dispatcher scaling: one workspace with 10, 1,000 and 10,000 active
//! workflows over 5 trigger types and 100 cards (a tenth workspace-wide),
//! and what one event's dispatch reads from DynamoDB on the emulator.

use std::time::Instant;

use anyhow::Context;
use hookflow_aws::sqs_queue;
use hookflow_core::subscription::Subscription;
use hookflow_core::workflow::Scope;
use hookflow_core::TriggerEvent;
use serde_json::json;

use crate::cost::{counted_clients, emulator_stack};

const TRIGGERS: [&str; 5] = [
    "Prize.Won",
    "Gameplay.Ended",
    "Gameplay.DataCaptured",
    "Card.Viewed",
    "Coupon.Redeemed",
];
const CARDS: usize = 100;

#[derive(Debug, Clone)]
pub struct ScalingResult {
    pub workflows: usize,
    pub events: usize,
    pub events_per_s: f64,
    pub lookup_requests_per_event: f64,
    pub read_units_per_event: f64,
    pub items_read_per_event: f64,
    /// Subscriptions whose type and scope fit the event: what a lookup has to read at least.
    pub could_match_per_event: f64,
    pub runs_started_per_event: f64,
    pub requests_per_event: f64,
}

/// Workflow `n` of `count`: its trigger type and scope.
fn subscription(n: usize) -> Subscription {
    let scope = if n % 10 == 0 {
        Scope::Workspace(true)
    } else {
        Scope::Card(format!("card_{}", (n / TRIGGERS.len()) % CARDS))
    };
    Subscription {
        workspace_id: "ws_scale".into(),
        trigger_type: TRIGGERS[n % TRIGGERS.len()].into(),
        workflow_id: format!("wf_{n:05}"),
        workflow_version: 1,
        scope,
        filter: None,
        start: "s".into(),
    }
}

fn event(i: usize) -> anyhow::Result<TriggerEvent> {
    Ok(serde_json::from_value(
        json!({"specversion": "1.0", "id": format!("scale-{i}"), "source": "bench",
        "type": TRIGGERS[i % TRIGGERS.len()], "workspaceid": "ws_scale", "cardid": format!("card_{}", (i * 37) % CARDS),
        "data": {}}),
    )?)
}

pub async fn run(endpoint: &str, workflow_counts: &[usize], events: usize) -> anyhow::Result<Vec<ScalingResult>> {
    let mut results = vec![];
    for &count in workflow_counts {
        let (counter, dynamo, sqs) = counted_clients(endpoint).await;
        let (_, urls, stores) = emulator_stack(dynamo, &sqs, &format!("scale-{count}")).await?;
        let all: Vec<Subscription> = (0..count).map(subscription).collect();
        for sub in &all {
            stores.subscriptions.put(sub).await?;
        }
        let dispatcher = stores.dispatcher(sqs_queue(&sqs, urls.steps));
        counter.take();
        let (mut could_match, mut started) = (0usize, 0usize);
        let begun = Instant::now();
        for i in 0..events {
            let event = event(i)?;
            could_match += all
                .iter()
                .filter(|s| s.trigger_type == event.event_type)
                .filter(|s| s.scope.matches(event.siteid.as_deref(), event.cardid.as_deref()))
                .count();
            started += dispatcher.dispatch(&event).await?.started.len();
        }
        let elapsed = begun.elapsed().as_secs_f64();
        let tallies = counter.take();
        let lookups = tallies
            .get(&("DynamoDB".to_owned(), "Query".to_owned()))
            .copied()
            .or_else(|| tallies.iter().find(|((_, op), _)| op == "Query").map(|(_, t)| *t))
            .context("the dispatcher made no Query")?;
        let per_event = |n: f64| n / events as f64;
        results.push(ScalingResult {
            workflows: count,
            events,
            events_per_s: events as f64 / elapsed,
            lookup_requests_per_event: per_event(lookups.requests as f64),
            read_units_per_event: per_event(lookups.read_units),
            items_read_per_event: per_event(lookups.items_read as f64),
            could_match_per_event: per_event(could_match as f64),
            runs_started_per_event: per_event(started as f64),
            requests_per_event: per_event(tallies.values().map(|t| t.requests).sum::<usize>() as f64),
        });
    }
    Ok(results)
}
