//! What the run detail shows (`GET …/runs/{run_id}`, `hookflow runs show`):
//! bounded, whatever the run recorded. Each attempt's output and error, and
//! the trigger event, are cut to [`EXCERPT_BYTES`]; the whole output has a
//! URL of its own. A run of 100 failed attempts with 1 MiB responses so
//! answers in well under Lambda's 6 MB response limit.

use serde_json::{json, Map, Value};

use crate::redact::{is_secret_name, is_sensitive_header, REDACTED};
use crate::run::{StepMessage, StepRecord, RESERVED_CONTEXT_KEYS};

/// The most of one value the run detail carries.
pub const EXCERPT_BYTES: usize = 4096;

/// `text` cut to at most `max` bytes on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `value` itself when its JSON fits in `max` bytes; otherwise the start of
/// its JSON text, marked truncated, with the full size.
pub fn excerpt(value: &Value, max: usize) -> Value {
    let text = value.to_string();
    if text.len() <= max {
        return value.clone();
    }
    json!({"truncated": true, "bytes": text.len(), "excerpt": cut(&text, max)})
}

/// A step output in the run detail. An HTTP response (`status`, `headers`,
/// `body`) keeps its status and headers, and its body is excerpted; any
/// other output is excerpted whole.
pub fn bounded_output(output: &Value) -> Value {
    match output.as_object() {
        Some(response) if response.contains_key("status") && response.contains_key("body") => {
            let mut bounded = Map::new();
            for (key, value) in response {
                let budget = if key == "body" {
                    EXCERPT_BYTES
                } else {
                    EXCERPT_BYTES / 4
                };
                bounded.insert(key.clone(), excerpt(value, budget));
            }
            Value::Object(bounded)
        }
        _ => excerpt(output, EXCERPT_BYTES),
    }
}

/// One attempt as the run detail lists it; `output_url` serves it whole.
pub fn attempt_view(step: &StepRecord, output_url: &str) -> Value {
    let duration_ms = (step.ended_at - step.started_at).num_milliseconds().max(0);
    json!({
        "step_id": step.step_id, "action": step.action, "status": step.status, "attempt": step.attempt,
        "started_at": step.started_at, "ended_at": step.ended_at, "duration_ms": duration_ms,
        "retryable": step.retryable, "retry_after_s": step.retry_after_s,
        "error": step.error.as_deref().map(|e| cut(e, EXCERPT_BYTES)),
        "request": step.request,
        "output": step.output.as_ref().map(bounded_output),
        "output_url": step.output.as_ref().map(|_| output_url),
    })
}

/// The trigger event a run started from, rebuilt from its first step
/// message: the event's attributes and its `data` (the context's top-level
/// keys; data keys the engine reserves were never kept). Values under
/// credential-like names are redacted, and the data is excerpted.
pub fn trigger_event(start: &StepMessage) -> Value {
    let context = start.context.as_object().cloned().unwrap_or_default();
    let mut data: Map<String, Value> = context
        .iter()
        .filter(|(key, _)| !RESERVED_CONTEXT_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut data_value = match data.remove("data") {
        // A non-object `data` was kept under `data`.
        Some(scalar) if data.is_empty() => scalar,
        Some(other) => {
            data.insert("data".into(), other);
            Value::Object(data)
        }
        None => Value::Object(data),
    };
    redact_credentials(&mut data_value);
    let mut event = context.get("event").cloned().unwrap_or(Value::Null);
    if let Some(attributes) = event.as_object_mut() {
        attributes.insert("data".into(), excerpt(&data_value, EXCERPT_BYTES));
    }
    event
}

/// Replaces the value of every key named like a credential, at any depth.
pub fn redact_credentials(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_sensitive_header(key) || is_secret_name(key) || key.eq_ignore_ascii_case("password") {
                    *inner = Value::String(REDACTED.into());
                } else {
                    redact_credentials(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_credentials),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_are_cut_on_char_boundaries() {
        let big = Value::String("é".repeat(5000));
        let cut_value = excerpt(&big, 4096);
        assert_eq!(cut_value["truncated"], true);
        assert_eq!(cut_value["bytes"], 10002);
        assert!(cut_value["excerpt"].as_str().unwrap().len() <= 4096);
        assert_eq!(excerpt(&json!({"a": 1}), 4096), json!({"a": 1}));
    }

    #[test]
    fn responses_keep_status_and_headers_and_cut_the_body() {
        let response = json!({"status": 502, "headers": {"x": "y"}, "body": "x".repeat(1 << 20)});
        let bounded = bounded_output(&response);
        assert_eq!(bounded["status"], 502);
        assert_eq!(bounded["headers"], json!({"x": "y"}));
        assert_eq!(bounded["body"]["bytes"], (1 << 20) + 2);
        assert!(bounded.to_string().len() < 2 * EXCERPT_BYTES);
    }

    #[test]
    fn the_trigger_event_comes_back_with_credentials_redacted() {
        let message: StepMessage = serde_json::from_value(json!({
            "run_id": "r", "workspace_id": "w", "workflow_id": "f", "workflow_version": 1, "step_id": "s", "attempt": 1,
            "context": {"contact": {"email": "a@b", "password": "hunter2"}, "api_token": "t",
                        "event": {"id": "e1", "type": "Form.Submitted"}, "steps": {}, "vars": {}, "run": {}}}))
        .unwrap();
        let event = trigger_event(&message);
        assert_eq!(event["id"], "e1");
        assert_eq!(event["data"]["contact"]["email"], "a@b");
        assert_eq!(event["data"]["contact"]["password"], REDACTED);
        assert_eq!(event["data"]["api_token"], REDACTED);
        assert!(event["data"].get("steps").is_none());
    }
}
