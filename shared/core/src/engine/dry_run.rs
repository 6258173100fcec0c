//! A dry run (`POST …/workflows/{id}/test` with `dry_run: true`): the
//! workflow walked against one event with nothing sent and nothing stored.
//! Each HTTP request is rendered as it would go out, with its credentials
//! redacted; Decisions are followed; Delays are skipped; variables are set.
//! A request that is not sent has no response, so the steps after it see
//! `null` as its output.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::execute::{apply_output, with_workflow_vars};
use crate::actions::{ActionKind, DryCall, Rehearsal};
use crate::event::TriggerEvent;
use crate::ports::HttpCall;
use crate::redact::{redact_url, Secrets, REDACTED};
use crate::run::initial_context;
use crate::run_view::{cut, EXCERPT_BYTES};
use crate::workflow::{Step, WorkflowDefinition};

/// Dry runs stop after this many steps: a loop of Decisions on a condition
/// no step changes would otherwise never end.
pub const MAX_DRY_RUN_STEPS: usize = 200;

/// The id a dry run gives its run, in `run.id` of the context.
const DRY_RUN_ID: &str = "dry_run";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DryStatus {
    /// An HTTP request, rendered and not sent.
    Rendered,
    /// A pure step that ran (Decision, SetVariables).
    Succeeded,
    /// A Delay, not waited for.
    Skipped,
    Failed,
}

/// A request as it is sent, for people to read: credential headers and
/// credential-named query values read `[REDACTED]`, every other known
/// secret is scrubbed, and the body is cut to [`EXCERPT_BYTES`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body's size when it was cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<usize>,
}

/// Bounds on what a recorded request keeps, whatever the templates made of
/// event data: the record stays well inside one DynamoDB item.
const MAX_URL_BYTES: usize = 2048;
const MAX_HEADER_BYTES: usize = 512;
const MAX_HEADERS: usize = 50;

impl RenderedRequest {
    pub fn of(call: &HttpCall, secrets: &Secrets) -> Self {
        let headers = call
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if call.is_secret_header(name) {
                    REDACTED.to_owned()
                } else {
                    secrets.scrub_text(value)
                };
                (
                    cut(name, MAX_HEADER_BYTES).to_owned(),
                    cut(&shown, MAX_HEADER_BYTES).to_owned(),
                )
            })
            .take(MAX_HEADERS)
            .collect();
        let body = call
            .body
            .as_ref()
            .map(|b| secrets.scrub_text(&String::from_utf8_lossy(b)));
        let body_bytes = body.as_ref().map(String::len).filter(|n| *n > EXCERPT_BYTES);
        Self {
            method: call.method.clone(),
            url: cut(&secrets.scrub_text(&redact_url(&call.url)), MAX_URL_BYTES).to_owned(),
            headers,
            body: body.map(|b| cut(&b, EXCERPT_BYTES).to_owned()),
            body_bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryStep {
    pub step_id: String,
    /// `None` for a step the workflow does not have.
    pub action: Option<ActionKind>,
    pub status: DryStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RenderedRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    pub workflow_id: String,
    pub version: u32,
    pub steps: Vec<DryStep>,
    /// `succeeded`, `failed` (a step failed and had no `on_failure`), or
    /// `step_limit` (stopped after [`MAX_DRY_RUN_STEPS`]).
    pub outcome: &'static str,
}

/// Walks `workflow` from its start step against `event`.
pub fn dry_run(workflow: &WorkflowDefinition, event: &TriggerEvent) -> DryRun {
    let context = initial_context(event, DRY_RUN_ID, &workflow.id, workflow.version);
    let mut context = with_workflow_vars(context, workflow);
    let mut steps = vec![];
    let mut current = Some(workflow.start.clone());
    let mut outcome = "succeeded";
    while let Some(step_id) = current.take() {
        if steps.len() == MAX_DRY_RUN_STEPS {
            outcome = "step_limit";
            break;
        }
        let Some(step) = workflow.steps.get(&step_id) else {
            steps.push(failed(&step_id, None, format!("no step {step_id:?} in the workflow")));
            outcome = "failed";
            break;
        };
        let (dry, output, vars) = dry_step(&step_id, step, &context);
        if dry.status == DryStatus::Failed {
            current = step.on_failure.clone();
            if let (Some(_), Value::Object(ctx)) = (&current, &mut context) {
                ctx.insert(
                    "error".into(),
                    json!({"step_id": step_id, "message": dry.error, "attempts": 1}),
                );
            } else {
                outcome = "failed";
            }
        } else {
            apply_output(&mut context, &step_id, output, vars);
            current = dry.next.clone();
        }
        steps.push(dry);
    }
    DryRun {
        workflow_id: workflow.id.clone(),
        version: workflow.version,
        steps,
        outcome,
    }
}

fn failed(step_id: &str, action: Option<ActionKind>, error: String) -> DryStep {
    DryStep {
        step_id: step_id.to_owned(),
        action,
        status: DryStatus::Failed,
        request: None,
        output: None,
        next: None,
        error: Some(error),
    }
}

/// One step: what the timeline shows, the output later steps see, and the
/// variables it set.
fn dry_step(step_id: &str, step: &Step, context: &Value) -> (DryStep, Value, Option<Map<String, Value>>) {
    let plugin = step.action.plugin();
    let kind = Some(plugin.kind());
    let mut secrets = Secrets::of_context(context);
    let mut dry = DryStep {
        step_id: step_id.to_owned(),
        action: kind,
        status: DryStatus::Succeeded,
        request: None,
        output: None,
        next: step.next.clone(),
        error: None,
    };
    let call = DryCall {
        run_id: DRY_RUN_ID,
        step_id,
        context,
        next: step.next.as_deref(),
        secrets: &mut secrets,
    };
    let output = match plugin.rehearse(call) {
        Rehearsal::Ran { output, next } => {
            dry.next = next;
            output
        }
        Rehearsal::Rendered { request, output } => {
            dry.status = DryStatus::Rendered;
            dry.request = request;
            output
        }
        Rehearsal::Skipped => {
            dry.status = DryStatus::Skipped;
            json!({"skipped": true})
        }
        Rehearsal::Failed(error) => return (failed(step_id, kind, secrets.scrub_text(&error)), Value::Null, None),
    };
    let mut shown = output.clone();
    secrets.scrub_value(&mut shown);
    dry.output = (!shown.is_null()).then_some(shown);
    (dry, output, plugin.variables(context))
}
