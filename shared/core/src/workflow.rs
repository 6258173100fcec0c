//! The public workflow format (brief §3). Field names are a public contract.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::actions::Action;
use crate::condition::Condition;
use crate::retry::RetryPolicy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDefinition {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    #[serde(default)]
    pub status: WorkflowStatus,
    #[serde(default = "first_version")]
    pub version: u32,
    pub scope: Scope,
    pub trigger: Trigger,
    pub start: String,
    pub steps: BTreeMap<String, Step>,
    /// Initial values of `vars` for every run (configuration such as list ids
    /// or endpoint names); steps may add to them with `SetVariables`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub vars: Map<String, Value>,
}

fn first_version() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowStatus {
    #[default]
    Draft,
    Active,
    Paused,
    Archived,
}

/// Where a workflow listens: `{"workspace": true}`, `{"site": "<id>"}` or `{"card": "<id>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Workspace(bool),
    Site(String),
    Card(String),
}

impl Scope {
    /// Workspace scope matches every event of the workspace; site and card
    /// scopes match the event's `siteid` / `cardid`.
    pub fn matches(&self, site_id: Option<&str>, card_id: Option<&str>) -> bool {
        match self {
            Scope::Workspace(enabled) => *enabled,
            Scope::Site(site) => site_id == Some(site.as_str()),
            Scope::Card(card) => card_id == Some(card.as_str()),
        }
    }

    /// The scopes an event at `site_id` / `card_id` is in: its workspace,
    /// and its site and card where it names them. Exactly the scopes that
    /// [`Scope::matches`] the event, so the dispatcher reads the
    /// subscriptions of these and no others.
    pub fn of_event(site_id: Option<&str>, card_id: Option<&str>) -> Vec<Scope> {
        let mut scopes = vec![Scope::Workspace(true)];
        scopes.extend(site_id.map(|site| Scope::Site(site.to_owned())));
        scopes.extend(card_id.map(|card| Scope::Card(card.to_owned())));
        scopes
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Workspace(_) => "workspace",
            Scope::Site(_) => "site",
            Scope::Card(_) => "card",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Scope::Workspace(_) => "*",
            Scope::Site(id) | Scope::Card(id) => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub trigger_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

impl Step {
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.clone().unwrap_or_default()
    }

    /// Every step this one can lead to, with the JSON path of the reference.
    pub fn edges(&self) -> Vec<(String, &str)> {
        let mut edges = vec![];
        if let Some(next) = &self.next {
            edges.push(("next".to_owned(), next.as_str()));
        }
        if let Some(on_failure) = &self.on_failure {
            edges.push(("on_failure".to_owned(), on_failure.as_str()));
        }
        edges.extend(self.action.plugin().edges());
        edges
    }
}

/// Why a workflow document could not be read at all (before validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

impl WorkflowDefinition {
    /// Decodes the public JSON format, naming the JSON path of the first
    /// structural problem. Semantic problems are [`crate::validate`]'s job.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let decoded = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let path = if err.inner().is_syntax() || err.inner().is_eof() {
                "$".to_owned()
            } else {
                format!("$.{}", err.path())
                    .replace("$..", "$.")
                    .trim_end_matches('.')
                    .to_owned()
            };
            DecodeError {
                path,
                message: err.inner().to_string(),
            }
        })?;
        deserializer.end().map_err(|err| DecodeError {
            path: "$".into(),
            message: err.to_string(),
        })?;
        Ok(decoded)
    }

    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        Self::from_json(&value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_events_scopes_are_exactly_those_that_match_it() {
        let ids = [None, Some("a"), Some("b")];
        let scopes = [
            Scope::Workspace(true),
            Scope::Workspace(false),
            Scope::Site("a".into()),
            Scope::Site("b".into()),
            Scope::Card("a".into()),
            Scope::Card("b".into()),
        ];
        for site in ids {
            for card in ids {
                let of_event = Scope::of_event(site, card);
                for scope in &scopes {
                    assert_eq!(
                        of_event.contains(scope),
                        scope.matches(site, card),
                        "{scope:?} for an event at site {site:?}, card {card:?}"
                    );
                }
            }
        }
    }

    pub(crate) fn issue_example() -> Value {
        json!({"id": "wf_hot_leads", "workspace_id": "ws_demo", "name": "Route hot Sponsor A leads", "status": "active",
        "scope": {"card": "card_sponsor_a"},
        "trigger": {"type": "Gameplay.DataCapturedQualified", "filter": {"path": "form_fields.consent", "op": "eq", "value": true}},
        "start": "route",
        "steps": {
          "route": {"action": {"type": "Decision", "branches": [{"when": {"path": "gameplay.score", "op": "gte", "value": 100}, "next": "hot"}], "default": "cold"}},
          "hot":  {"action": {"type": "HttpRequest", "method": "POST", "url": "https://crm.example/leads",
                   "headers": {"Authorization": "Bearer {{ vars.token }}"},
                   "body": {"email": "{{ contact.email }}", "source": "Komo - {{ card.name }}", "score": "{{ gameplay.score }}"}},
                   "retry": {"max_attempts": 4, "initial_interval_s": 2, "backoff_rate": 2.0, "max_interval_s": 60, "jitter": "full"},
                   "on_failure": "alert"},
          "cold": {"action": {"type": "SetVariables", "values": {"tier": "cold"}}},
          "alert": {"action": {"type": "HttpRequest", "method": "POST", "url": "https://hooks.example/alerts", "body": {"text": "lead {{ contact.email }} failed"}}}
        }})
    }

    #[test]
    fn the_issue_example_decodes_and_round_trips() {
        let wf = WorkflowDefinition::from_value(issue_example()).unwrap();
        assert_eq!(wf.scope, Scope::Card("card_sponsor_a".into()));
        assert_eq!(wf.status, WorkflowStatus::Active);
        assert_eq!(wf.steps.len(), 4);
        let again = WorkflowDefinition::from_value(serde_json::to_value(&wf).unwrap()).unwrap();
        assert_eq!(again, wf);
    }

    #[test]
    fn decode_errors_name_the_path() {
        let mut doc = issue_example();
        doc["steps"]["hot"]["retry"]["max_attempts"] = json!("four");
        let err = WorkflowDefinition::from_value(doc).unwrap_err();
        assert_eq!(err.path, "$.steps.hot.retry.max_attempts");
        let mut doc = issue_example();
        doc["steps"]["cold"]["action"]["type"] = json!("Teleport");
        let err = WorkflowDefinition::from_value(doc).unwrap_err();
        assert!(err.path.starts_with("$.steps.cold.action"), "{err}");
        assert!(err.message.contains("Teleport"), "{err}");
    }

    #[test]
    fn scopes_match_as_documented() {
        assert!(Scope::Workspace(true).matches(None, None));
        assert!(Scope::Site("s1".into()).matches(Some("s1"), Some("c9")));
        assert!(!Scope::Site("s1".into()).matches(Some("s2"), None));
        assert!(Scope::Card("c1".into()).matches(None, Some("c1")));
        assert!(!Scope::Card("c1".into()).matches(Some("c1"), Some("c2")));
        assert_eq!(
            serde_json::to_value(Scope::Site("s".into())).unwrap(),
            json!({"site": "s"})
        );
    }
}
