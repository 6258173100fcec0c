//! Workflow validation: every problem at once, each with its JSON path.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::catalogue;
use crate::event::MAX_ID_BYTES;
use crate::template;
use crate::workflow::{Scope, WorkflowDefinition};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub code: ProblemCode,
    pub message: String,
}

/// What kind of problem, as a stable code for programs (the message is for people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// The document does not decode: a missing field, a wrong type, an unknown field.
    InvalidDocument,
    /// An id, name or version that is malformed or empty.
    InvalidField,
    InvalidScope,
    UnknownTriggerType,
    InvalidCondition,
    /// No steps, or too many.
    StepCount,
    /// An edge (`start`, `next`, `on_failure`, a branch) to a step that does not exist.
    UnknownStep,
    SelfLoop,
    /// A Decision with `next`.
    MisplacedNext,
    InvalidAction,
    InvalidTemplate,
    InvalidRetry,
    /// A template in `vars`, which are constants.
    TemplatedVar,
    Cycle,
    Unreachable,
    /// A `Hook.<name>` trigger that no hook of the workspace emits (checked
    /// at publish and by the API's `validate`, which can see the hooks).
    UnknownHook,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

const MAX_STEPS: usize = 200;

/// Ids of workflows, workspaces and steps: they end up in keys and URLs.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

pub fn validate(workflow: &WorkflowDefinition) -> Vec<Problem> {
    let mut problems = vec![];
    let mut push = |path: String, code: ProblemCode, message: String| problems.push(Problem { path, code, message });

    for (field, value) in [("id", &workflow.id), ("workspace_id", &workflow.workspace_id)] {
        if !is_valid_id(value) {
            push(
                format!("$.{field}"),
                ProblemCode::InvalidField,
                format!("{value:?} is not a valid id (1-64 characters of A-Z a-z 0-9 _ -)"),
            );
        }
    }
    if workflow.name.trim().is_empty() {
        push("$.name".into(), ProblemCode::InvalidField, "must not be empty".into());
    }
    if workflow.version == 0 {
        push(
            "$.version".into(),
            ProblemCode::InvalidField,
            "versions start at 1".into(),
        );
    }
    match &workflow.scope {
        Scope::Workspace(false) => push(
            "$.scope.workspace".into(),
            ProblemCode::InvalidScope,
            "must be true; use a site or card scope to narrow".into(),
        ),
        Scope::Site(id) | Scope::Card(id)
            if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) =>
        {
            push(
                format!("$.scope.{}", workflow.scope.kind()),
                ProblemCode::InvalidScope,
                format!("must be a non-empty id of at most {MAX_ID_BYTES} bytes without control characters"),
            )
        }
        _ => {}
    }
    if let Err(err) = catalogue::check_trigger_type(&workflow.trigger.trigger_type) {
        push(
            "$.trigger.type".into(),
            ProblemCode::UnknownTriggerType,
            err.to_string(),
        );
    }
    if let Some(filter) = &workflow.trigger.filter {
        for (path, message) in filter.problems("$.trigger.filter") {
            push(path, ProblemCode::InvalidCondition, message);
        }
    }
    if workflow.steps.is_empty() {
        push(
            "$.steps".into(),
            ProblemCode::StepCount,
            "a workflow needs at least one step".into(),
        );
    }
    if workflow.steps.len() > MAX_STEPS {
        push(
            "$.steps".into(),
            ProblemCode::StepCount,
            format!("at most {MAX_STEPS} steps"),
        );
    }
    if !workflow.steps.contains_key(&workflow.start) {
        push(
            "$.start".into(),
            ProblemCode::UnknownStep,
            format!("start step {:?} does not exist", workflow.start),
        );
    }
    for (step_id, step) in &workflow.steps {
        let at = format!("$.steps.{step_id}");
        if !is_valid_id(step_id) {
            push(
                at.clone(),
                ProblemCode::InvalidField,
                format!("{step_id:?} is not a valid step id (1-64 characters of A-Z a-z 0-9 _ -)"),
            );
        }
        for (field, target) in step.edges() {
            if !workflow.steps.contains_key(target) {
                push(
                    format!("{at}.{field}"),
                    ProblemCode::UnknownStep,
                    format!("step {target:?} does not exist"),
                );
            } else if target == step_id {
                push(
                    format!("{at}.{field}"),
                    ProblemCode::SelfLoop,
                    "a step cannot lead to itself".into(),
                );
            }
        }
        if step.action.plugin().chooses_next() && step.next.is_some() {
            push(
                format!("{at}.next"),
                ProblemCode::MisplacedNext,
                format!(
                    "a {} chooses its next step with branches and default; remove `next`",
                    step.action.kind()
                ),
            );
        }
        for (field, message) in step.action.problems() {
            let path = if field.is_empty() {
                format!("{at}.action")
            } else {
                format!("{at}.action.{field}")
            };
            push(path, ProblemCode::InvalidAction, message);
        }
        for (field, text) in step.action.templates() {
            if let Err(err) = template::check(&text) {
                push(
                    format!("{at}.action.{field}"),
                    ProblemCode::InvalidTemplate,
                    err.to_string(),
                );
            }
        }
        if let Some(retry) = &step.retry {
            for (field, message) in retry.problems() {
                push(
                    format!("{at}.retry.{field}"),
                    ProblemCode::InvalidRetry,
                    message.to_owned(),
                );
            }
        }
    }
    for (key, value) in &workflow.vars {
        template::for_each_string_leaf(value, &format!("$.vars.{key}"), &mut |path, text| {
            if template::is_templated(text) {
                problems.push(Problem {
                    path: path.into(),
                    code: ProblemCode::TemplatedVar,
                    message: "workflow vars are constants; set computed values with a SetVariables step".into(),
                });
            }
        });
    }
    problems.extend(graph_problems(workflow));
    problems
}

/// Cycles and unreachable steps. Dangling edges are reported elsewhere.
fn graph_problems(workflow: &WorkflowDefinition) -> Vec<Problem> {
    let edges: BTreeMap<&str, Vec<&str>> = workflow
        .steps
        .iter()
        .map(|(id, step)| {
            let targets = step
                .edges()
                .into_iter()
                .map(|(_, t)| t)
                .filter(|t| workflow.steps.contains_key(*t) && t != id)
                .collect();
            (id.as_str(), targets)
        })
        .collect();
    let mut problems = vec![];

    // Iterative DFS with colours; each back edge closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: BTreeMap<&str, Colour> = edges.keys().map(|k| (*k, Colour::White)).collect();
    let mut reported = BTreeSet::new();
    for root in edges.keys() {
        if colour[root] != Colour::White {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        colour.insert(root, Colour::Grey);
        while let Some((node, index)) = stack.pop() {
            let targets = &edges[node];
            if index < targets.len() {
                stack.push((node, index + 1));
                let target = targets[index];
                match colour[target] {
                    Colour::White => {
                        colour.insert(target, Colour::Grey);
                        stack.push((target, 0));
                    }
                    Colour::Grey => {
                        let mut cycle: Vec<&str> = stack.iter().map(|(n, _)| *n).skip_while(|n| *n != target).collect();
                        cycle.push(target);
                        if reported.insert(cycle.iter().copied().collect::<BTreeSet<_>>()) {
                            problems.push(Problem {
                                path: format!("$.steps.{node}"),
                                code: ProblemCode::Cycle,
                                message: format!("cycle: {}", cycle.join(" -> ")),
                            });
                        }
                    }
                    Colour::Black => {}
                }
            } else {
                colour.insert(node, Colour::Black);
            }
        }
    }

    if edges.contains_key(workflow.start.as_str()) {
        let mut reachable = BTreeSet::from([workflow.start.as_str()]);
        let mut frontier = vec![workflow.start.as_str()];
        while let Some(node) = frontier.pop() {
            for target in &edges[node] {
                if reachable.insert(target) {
                    frontier.push(target);
                }
            }
        }
        for id in edges.keys().filter(|id| !reachable.contains(*id)) {
            problems.push(Problem {
                path: format!("$.steps.{id}"),
                code: ProblemCode::Unreachable,
                message: format!("step {id:?} is unreachable from start {:?}", workflow.start),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: serde_json::Value) -> WorkflowDefinition {
        WorkflowDefinition::from_value(v).unwrap()
    }

    #[test]
    fn a_valid_workflow_has_no_problems() {
        let wf = decode(
            json!({"id": "wf", "workspace_id": "ws", "name": "n", "scope": {"workspace": true},
            "trigger": {"type": "Prize.Won"}, "start": "a",
            "steps": {"a": {"action": {"type": "SetVariables", "values": {"x": "{{ contact.email }}"}}, "next": "b"},
                      "b": {"action": {"type": "HttpRequest", "method": "POST", "url": "https://x.example/{{ vars.x }}"}}}}),
        );
        assert_eq!(validate(&wf), vec![]);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let wf = decode(
            json!({"id": "bad id", "workspace_id": "ws", "name": "", "scope": {"workspace": false},
            "trigger": {"type": "Gameplay.Endd", "filter": {"path": "x", "op": "matches", "value": "("}},
            "start": "nowhere",
            "steps": {
                "a": {"action": {"type": "Decision", "branches": [{"when": {"path": "x", "op": "huh", "value": 1}, "next": "b"}], "default": "ghost"}},
                "b": {"action": {"type": "HttpRequest", "url": "https://x/{{ oops", "body": {"t": "{{#if}}"}}, "next": "c",
                      "retry": {"max_attempts": 0}},
                "c": {"action": {"type": "Delay", "seconds": 5}, "next": "b", "on_failure": "c"},
                "lonely": {"action": {"type": "SetVariables", "values": {}}}
            }}),
        );
        let problems = validate(&wf);
        let paths: BTreeSet<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for expected in [
            "$.id",
            "$.name",
            "$.scope.workspace",
            "$.trigger.type",
            "$.trigger.filter.value",
            "$.start",
            "$.steps.a.action.default",
            "$.steps.a.action.branches[0].when.op",
            "$.steps.b.action.url",
            "$.steps.b.action.body",
            "$.steps.b.action.body.t",
            "$.steps.b.retry.max_attempts",
            "$.steps.c.on_failure",
        ] {
            assert!(paths.contains(expected), "missing {expected} in {problems:#?}");
        }
        assert!(
            problems
                .iter()
                .any(|p| p.message.starts_with("cycle: b -> c -> b") || p.message.starts_with("cycle: c -> b -> c")),
            "{problems:#?}"
        );
        assert!(problems
            .iter()
            .any(|p| p.message.contains("did you mean Gameplay.Ended")));
    }

    #[test]
    fn unreachable_steps_are_reported() {
        let wf = decode(
            json!({"id": "wf", "workspace_id": "ws", "name": "n", "scope": {"card": "c"},
            "trigger": {"type": "Prize.Won"}, "start": "a",
            "steps": {"a": {"action": {"type": "Delay", "seconds": 1}}, "z": {"action": {"type": "Delay", "seconds": 1}}}}),
        );
        assert_eq!(
            validate(&wf),
            vec![Problem {
                path: "$.steps.z".into(),
                code: ProblemCode::Unreachable,
                message: "step \"z\" is unreachable from start \"a\"".into()
            }]
        );
    }
}
