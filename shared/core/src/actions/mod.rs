//! Step actions: one enum, one module per action.

mod decision;
mod delay;
mod http_request;
mod set_variables;

pub use decision::{Branch, Decision};
pub use delay::Delay;
pub use http_request::{Auth, BodyFormat, HttpRequest, StatusMatch, DEFAULT_TIMEOUT_S};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Action {
    // Boxed: the largest action by far, and steps hold one each.
    HttpRequest(Box<HttpRequest>),
    Decision(Decision),
    Delay(Delay),
    SetVariables(set_variables::SetVariables),
}

pub use set_variables::SetVariables;

impl Action {
    pub fn type_name(&self) -> &'static str {
        match self {
            Action::HttpRequest(_) => "HttpRequest",
            Action::Decision(_) => "Decision",
            Action::Delay(_) => "Delay",
            Action::SetVariables(_) => "SetVariables",
        }
    }

    /// A side-effecting action costs a queue hop of its own so that it is
    /// retried, recorded and deduplicated alone; pure actions run inline
    /// right after the step before them.
    pub fn has_side_effects(&self) -> bool {
        matches!(self, Action::HttpRequest(_))
    }

    /// Every template string in the action, with its JSON path relative to
    /// the action, for validation.
    pub fn templates(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        match self {
            Action::HttpRequest(http) => http.templates(&mut out),
            Action::Decision(_) => {}
            Action::Delay(delay) => {
                if let Some(until) = &delay.until {
                    out.push(("until".into(), until.clone()));
                }
            }
            Action::SetVariables(set) => {
                crate::template::for_each_string_leaf(
                    &serde_json::Value::Object(set.values.clone()),
                    "values",
                    &mut |path, text| out.push((path.to_owned(), text.to_owned())),
                );
            }
        }
        out
    }

    /// Problems with the action's own settings, as (relative path, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        match self {
            Action::HttpRequest(http) => http.problems(),
            Action::Decision(decision) => decision.problems(),
            Action::Delay(delay) => delay.problems(),
            Action::SetVariables(_) => vec![],
        }
    }
}
