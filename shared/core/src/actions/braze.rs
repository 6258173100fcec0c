//! Braze: `BrazeTrackUser` records attributes, events and purchases of one
//! user through `POST /users/track`, by `external_id` or by an email alias
//! (`user_alias` with the label `email`). Braze takes no idempotency key:
//! an event sent twice (a crash between the send and its record) is
//! counted twice, as the README's guarantees say.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::connector::{self, Sent};
use super::{ActionCall, ActionKind, DryCall, Outcome, Performed, Rehearsal, StepAction};
use crate::connections::{App, ResolvedConnection};
use crate::template::{self, TemplateError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrazeTrackUser {
    pub connection: String,
    /// The user's id in Braze; or else `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// An email alias, for users Braze knows by email only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    /// Custom events: objects with a `name`, and `properties`; `time`
    /// defaults to the triggering event's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Value>,
    /// Purchases: objects with `product_id`, `currency` and `price`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purchases: Vec<Value>,
}

/// What Braze counted, as later steps see it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tracked {
    #[serde(default)]
    attributes_processed: u64,
    #[serde(default)]
    events_processed: u64,
    #[serde(default)]
    purchases_processed: u64,
}

impl BrazeTrackUser {
    /// The `/users/track` body, every object carrying the user's identifier.
    fn body(&self, context: &Value, now: chrono::DateTime<chrono::Utc>) -> Result<Value, TemplateError> {
        let identifier = match (&self.external_id, &self.email) {
            (Some(id), _) => json!({"external_id": template::render_text(id, context)?}),
            (None, Some(email)) => json!({"user_alias": {
                "alias_name": template::render_text(email, context)?.trim().to_lowercase(),
                "alias_label": "email",
            }}),
            (None, None) => return Err(TemplateError::Render("external_id or email is required".into())),
        };
        let with_identifier = |object: Value| -> Value {
            let mut merged = identifier.as_object().cloned().unwrap_or_default();
            if let Value::Object(fields) = object {
                merged.extend(fields);
            }
            Value::Object(merged)
        };
        // Deterministic across retries when the event has a time.
        let time = context
            .pointer("/event/time")
            .and_then(Value::as_str)
            .map_or_else(|| now.to_rfc3339(), str::to_owned);
        let timed = |object: Value| -> Value {
            let mut object = with_identifier(object);
            if let Some(fields) = object.as_object_mut() {
                fields.entry("time").or_insert_with(|| Value::String(time.clone()));
            }
            object
        };
        let mut body = Map::new();
        if !self.attributes.is_empty() {
            let mut attributes = template::render_json(&Value::Object(self.attributes.clone()), context)?;
            if self.external_id.is_none() {
                // An alias-only user is created by its first attributes.
                if let Some(fields) = attributes.as_object_mut() {
                    fields.insert("_update_existing_only".into(), Value::Bool(false));
                }
            }
            body.insert("attributes".into(), json!([with_identifier(attributes)]));
        }
        for (field, objects) in [("events", &self.events), ("purchases", &self.purchases)] {
            if !objects.is_empty() {
                let rendered = template::render_json(&Value::Array(objects.clone()), context)?;
                let items = rendered.as_array().cloned().unwrap_or_default();
                body.insert(field.into(), Value::Array(items.into_iter().map(&timed).collect()));
            }
        }
        Ok(Value::Object(body))
    }
}

/// Braze's errors: `message`, and `errors` naming the objects refused.
fn explain(body: &Value) -> Option<String> {
    let message = body.get("message").and_then(Value::as_str).unwrap_or_default();
    let errors = body
        .get("errors")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
        .map(|errors| format!(" ({})", Value::Array(errors.clone())));
    let text = format!("{message}{}", errors.unwrap_or_default());
    (!text.is_empty()).then_some(text)
}

fn object_problems(field: &str, objects: &[Value], required: &[&str]) -> Vec<(String, String)> {
    let mut out = vec![];
    for (i, object) in objects.iter().enumerate() {
        match object.as_object() {
            None => out.push((format!("{field}[{i}]"), "must be an object".into())),
            Some(fields) => {
                for name in required.iter().filter(|name| !fields.contains_key(**name)) {
                    out.push((format!("{field}[{i}].{name}"), "is required".into()));
                }
            }
        }
    }
    out
}

#[async_trait::async_trait]
impl StepAction for BrazeTrackUser {
    fn kind(&self) -> ActionKind {
        ActionKind::BrazeTrackUser
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        for (field, value) in [("external_id", &self.external_id), ("email", &self.email)] {
            if let Some(value) = value {
                out.push((field.into(), value.clone()));
            }
        }
        let mut leaves = |value: &Value, path: &str| {
            template::for_each_string_leaf(value, path, &mut |path, text| {
                out.push((path.to_owned(), text.to_owned()))
            })
        };
        leaves(&Value::Object(self.attributes.clone()), "attributes");
        leaves(&Value::Array(self.events.clone()), "events");
        leaves(&Value::Array(self.purchases.clone()), "purchases");
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = connector::connection_problems(&self.connection);
        match (&self.external_id, &self.email) {
            (Some(_), Some(_)) => out.push((
                "email".into(),
                "name the user by external_id or by email, not both".into(),
            )),
            (None, None) => out.push(("external_id".into(), "external_id or email is required".into())),
            _ => {}
        }
        if self.attributes.is_empty() && self.events.is_empty() && self.purchases.is_empty() {
            out.push((
                "attributes".into(),
                "track at least one of attributes, events, purchases".into(),
            ));
        }
        out.extend(object_problems("events", &self.events, &["name"]));
        out.extend(object_problems(
            "purchases",
            &self.purchases,
            &["product_id", "currency", "price"],
        ));
        out
    }

    async fn perform(&self, mut call: ActionCall<'_>) -> Performed {
        let body = match self.body(call.context, call.now) {
            Ok(body) => body,
            Err(err) => return Outcome::Failed(super::Failure::terminal(err)).into(),
        };
        let build = |c: &ResolvedConnection| {
            let url = connector::url(&c.base_url, &["users", "track"])?;
            let key = c.credentials.get("api_key").unwrap_or_default();
            Ok(connector::json_call("POST", url, format!("Bearer {key}"), Some(&body)))
        };
        let Sent { reply, request } = match connector::send(&mut call, App::Braze, &self.connection, build).await {
            Ok(sent) => sent,
            Err(performed) => return performed,
        };
        let answer = connector::body(&reply);
        let refused_objects = answer
            .get("errors")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let outcome = if (200..300).contains(&reply.status) && !refused_objects {
            let tracked: Tracked = serde_json::from_value(answer).unwrap_or_default();
            call.succeeded(serde_json::to_value(tracked).unwrap_or(Value::Null))
        } else {
            // Objects Braze refused in a 201 are refused for good: sending
            // them again cannot help.
            Outcome::Failed(connector::failure(App::Braze, &reply, call.now, explain))
        };
        Performed { outcome, request }
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        match self.body(call.context, chrono::Utc::now()) {
            Ok(body) => Rehearsal::Rendered {
                request: None,
                output: json!({"would_track": body}),
            },
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}
