//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout per
//! measurement, which CloudWatch Logs turns into metrics with no API call.
//! The only dimension is the stack (so two stacks in one account keep
//! their alarms apart); the workspace, workflow and run are properties,
//! searchable in Logs Insights and free.

use std::time::Duration;

use chrono::Utc;
use hookflow_core::metrics::{Counter, Metrics, Subject, NAMESPACE, STACK_DIMENSION};
use hookflow_core::run::StepStatus;
use serde_json::{json, Value};

/// The environment variable naming the stack (the template sets it).
pub const STACK_NAME: &str = "HOOKFLOW_STACK_NAME";
/// The step duration metric's name.
pub const STEP_DURATION: &str = "StepDuration";

/// Writes EMF lines for one function of one stack.
#[derive(Debug, Clone)]
pub struct EmfMetrics {
    stack: String,
    function: String,
}

impl EmfMetrics {
    pub fn new(stack: impl Into<String>, function: impl Into<String>) -> Self {
        Self {
            stack: stack.into(),
            function: function.into(),
        }
    }

    /// One EMF document: `metric` = `value` in `unit`, with the subject as
    /// properties and `extra` properties beside them.
    pub fn document(&self, metric: &str, value: f64, unit: &str, subject: &Subject<'_>, extra: Value) -> Value {
        let mut document = json!({
            "_aws": {
                "Timestamp": Utc::now().timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[STACK_DIMENSION]],
                    "Metrics": [{"Name": metric, "Unit": unit}],
                }],
            },
            STACK_DIMENSION: self.stack,
            metric: value,
            "function": self.function,
            "workspace_id": subject.workspace_id,
            "workflow_id": subject.workflow_id,
            "run_id": subject.run_id,
        });
        if let (Some(document), Value::Object(extra)) = (document.as_object_mut(), extra) {
            document.extend(extra);
        }
        document
    }
}

impl Metrics for EmfMetrics {
    fn count(&self, counter: Counter, subject: &Subject<'_>) {
        println!("{}", self.document(counter.name(), 1.0, "Count", subject, Value::Null));
    }

    fn step_duration(&self, action: &str, status: StepStatus, duration: Duration, subject: &Subject<'_>) {
        let extra = json!({"action": action, "status": status});
        let milliseconds = duration.as_secs_f64() * 1000.0;
        println!(
            "{}",
            self.document(STEP_DURATION, milliseconds, "Milliseconds", subject, extra)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_has_one_stack_dimension_and_the_workflow_as_a_property() {
        let emf = EmfMetrics::new("hookflow-prod", "step");
        let subject = Subject {
            workspace_id: "ws",
            workflow_id: "wf_1",
            run_id: "run_1",
        };
        let doc = emf.document("RunsFailed", 1.0, "Count", &subject, json!({"action": "HttpRequest"}));
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Hookflow");
        assert_eq!(
            directive["Dimensions"],
            json!([["Stack"]]),
            "the workflow is never a dimension"
        );
        assert_eq!(directive["Metrics"], json!([{"Name": "RunsFailed", "Unit": "Count"}]));
        assert!(doc["_aws"]["Timestamp"].as_i64().is_some_and(|t| t > 1_700_000_000_000));
        assert_eq!(doc["Stack"], "hookflow-prod");
        assert_eq!(doc["RunsFailed"], 1.0);
        assert_eq!(
            (doc["workflow_id"].as_str(), doc["action"].as_str()),
            (Some("wf_1"), Some("HttpRequest"))
        );
        // Every dimension and metric the directive names is a member.
        for name in ["Stack", "RunsFailed"] {
            assert!(doc.get(name).is_some(), "{name}");
        }
    }
}
