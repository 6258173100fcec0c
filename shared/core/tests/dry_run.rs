//! Dry runs: every request rendered with its credentials redacted and none
//! sent, Decisions followed, Delays skipped, failures routed as a run would.

use hookflow_core::engine::{dry_run, DryStatus, MAX_DRY_RUN_STEPS};
use hookflow_core::{TriggerEvent, WorkflowDefinition};
use serde_json::{json, Value};

fn workflow(steps: Value, start: &str) -> WorkflowDefinition {
    WorkflowDefinition::from_value(json!({
        "id": "wf_dry", "workspace_id": "ws_d", "name": "dry", "status": "draft", "version": 3,
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": start,
        "vars": {"api_secret": "s3cr3t-value", "team": "growth"},
        "steps": steps,
    }))
    .expect("workflow decodes")
}

fn event(score: u32) -> TriggerEvent {
    TriggerEvent::from_cloudevent(
        &json!({"specversion": "1.0", "id": "evt-1", "source": "s", "type": "Prize.Won", "workspaceid": "ws_d",
                "data": {"contact": {"email": "ana@example.com"}, "score": score}}),
        "event",
    )
    .expect("event decodes")
}

fn routing() -> WorkflowDefinition {
    workflow(
        json!({
            "label": {"action": {"type": "SetVariables", "values": {"tier": "gold-{{ vars.team }}"}}, "next": "route"},
            "route": {"action": {"type": "Decision", "branches": [
                {"when": {"path": "score", "op": "gte", "value": 100}, "next": "wait"}], "default": "done"}},
            "wait": {"action": {"type": "Delay", "seconds": 86400}, "next": "push"},
            "push": {"action": {"type": "HttpRequest", "method": "POST", "url": "https://crm.example.com/leads?team={{ vars.team }}",
                "auth": {"type": "bearer", "token": "{{ vars.api_secret }}"},
                "headers": {"X-Trace": "t-{{ vars.api_secret }}"},
                "body": {"email": "{{ contact.email }}", "tier": "{{ vars.tier }}", "key": "{{ vars.api_secret }}"}},
                "next": "done"},
            "done": {"action": {"type": "SetVariables", "values": {"finished": true}}}
        }),
        "label",
    )
}

#[test]
fn a_high_score_renders_the_request_with_secrets_redacted_and_skips_the_delay() {
    let run = dry_run(&routing(), &event(120));
    let walked: Vec<(&str, DryStatus)> = run.steps.iter().map(|s| (s.step_id.as_str(), s.status)).collect();
    assert_eq!(
        walked,
        vec![
            ("label", DryStatus::Succeeded),
            ("route", DryStatus::Succeeded),
            ("wait", DryStatus::Skipped),
            ("push", DryStatus::Rendered),
            ("done", DryStatus::Succeeded),
        ]
    );
    assert_eq!((run.outcome, run.version), ("succeeded", 3));
    let request = run.steps[3].request.as_ref().expect("the request is rendered");
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://crm.example.com/leads?team=growth");
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("authorization"), Some("[REDACTED]"));
    // A header that carries a secret is a credential: shown redacted whole
    // (and never sent across origins on a redirect).
    assert_eq!(header("x-trace"), Some("[REDACTED]"));
    let body: Value = serde_json::from_str(request.body.as_deref().expect("a body")).expect("JSON body");
    assert_eq!(
        body,
        json!({"email": "ana@example.com", "tier": "gold-growth", "key": "[REDACTED]"})
    );
    let shown = serde_json::to_string(&run).expect("serialises");
    assert!(
        !shown.contains("s3cr3t-value"),
        "no secret anywhere in the timeline: {shown}"
    );
}

#[test]
fn a_low_score_takes_the_default_branch_and_sends_nothing() {
    let run = dry_run(&routing(), &event(10));
    let walked: Vec<&str> = run.steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(walked, vec!["label", "route", "done"]);
    assert_eq!(run.steps[1].next.as_deref(), Some("done"));
    assert!(run.steps.iter().all(|s| s.request.is_none()));
}

#[test]
fn a_failing_step_follows_on_failure_or_fails_the_run() {
    let steps = json!({
        "bad": {"action": {"type": "HttpRequest", "method": "POST", "url": "{{ nowhere }}"}, "on_failure": "alert"},
        "alert": {"action": {"type": "SetVariables", "values": {"why": "{{ error.message }}"}}}
    });
    let run = dry_run(&workflow(steps.clone(), "bad"), &event(1));
    assert_eq!(run.steps[0].status, DryStatus::Failed);
    assert_eq!((run.steps[1].step_id.as_str(), run.outcome), ("alert", "succeeded"));

    let mut without = steps;
    without["bad"].as_object_mut().expect("object").remove("on_failure");
    let run = dry_run(&workflow(without, "bad"), &event(1));
    assert_eq!((run.steps.len(), run.outcome), (1, "failed"));
    assert!(run.steps[0].error.is_some());
}

#[test]
fn a_loop_of_decisions_stops_at_the_step_limit() {
    let steps = json!({
        "again": {"action": {"type": "Decision", "branches": [
            {"when": {"path": "score", "op": "gte", "value": 0}, "next": "again"}]}}
    });
    let run = dry_run(&workflow(steps, "again"), &event(1));
    assert_eq!((run.steps.len(), run.outcome), (MAX_DRY_RUN_STEPS, "step_limit"));
}
