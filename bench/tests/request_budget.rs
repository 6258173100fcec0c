#![allow(clippy::unwrap_used)] // test support code: a panic is the failure report
//! The AWS requests of one 3-step run (ingest, dispatch, three steps),
//! counted on the emulator `make test` starts, held to a budget: a change
//! that makes a run dearer fails here, not on the bill. `make bench` prices
//! the same count (`bench/results.md`).

use hookflow_bench::cost::{three_step_run, RunRequests};

/// Requests of one run, as counted here: one SQS receive and one delete per
/// message (Lambda's event source batches them; `make bench` prices that).
/// The run is a cold process's first: the dispatcher and the step function
/// each list the workspace's webhook endpoints once (2 of the 27), which a
/// warm process does once per workspace every 30 s. The event names a card,
/// so the dispatcher reads two scopes' subscriptions (2 of the 27): a
/// request more than one read of every subscription to the type, so that
/// what is read stays what could match as workflows grow.
const DYNAMODB_REQUESTS_PER_RUN: usize = 27;
const SQS_REQUESTS_PER_RUN: usize = 12;
/// Estimated DynamoDB write units of one run (a unit per KiB per item and
/// per index it carries).
const DYNAMODB_WRITE_UNITS_PER_RUN: f64 = 20.0;

fn print(run: &RunRequests) {
    for (phase, tallies) in run.phases() {
        println!("{phase}:");
        for ((service, operation), t) in tallies {
            println!(
                "  {service:<10} {operation:<22} {:>4} requests {:>6.1} WRU {:>5.1} RRU",
                t.requests, t.write_units, t.read_units
            );
        }
    }
}

#[tokio::test]
async fn a_three_step_run_stays_within_its_request_budget() {
    let endpoint = std::env::var("HOOKFLOW_TEST_AWS_ENDPOINT")
        .expect("HOOKFLOW_TEST_AWS_ENDPOINT is not set: run the tests with `make test`, which starts moto");
    let run = three_step_run(&endpoint).await.unwrap();
    print(&run);
    assert_eq!((run.trigger_messages, run.step_messages), (1, 3));
    let dynamodb = run.requests_to("dynamodb");
    let sqs = run.requests_to("sqs");
    let write_units: f64 = run
        .total()
        .iter()
        .filter(|((s, _), _)| s.eq_ignore_ascii_case("dynamodb"))
        .map(|(_, t)| t.write_units)
        .sum();
    println!("per run: {dynamodb} DynamoDB requests, {sqs} SQS requests, {write_units:.1} write units");
    assert!(
        dynamodb <= DYNAMODB_REQUESTS_PER_RUN,
        "{dynamodb} DynamoDB requests per run, over the budget of {DYNAMODB_REQUESTS_PER_RUN}"
    );
    assert!(
        sqs <= SQS_REQUESTS_PER_RUN,
        "{sqs} SQS requests per run, over the budget of {SQS_REQUESTS_PER_RUN}"
    );
    assert!(
        write_units <= DYNAMODB_WRITE_UNITS_PER_RUN,
        "{write_units:.1} write units per run, over the budget of {DYNAMODB_WRITE_UNITS_PER_RUN}"
    );
}
