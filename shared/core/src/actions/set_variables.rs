//! `SetVariables`: render values into `vars` for the steps that follow.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ActionCall, ActionKind, DryCall, Failure, Outcome, Performed, Rehearsal, StepAction};
use crate::template::{self, TemplateError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVariables {
    pub values: Map<String, Value>,
}

impl SetVariables {
    pub fn render(&self, context: &Value) -> Result<Map<String, Value>, TemplateError> {
        self.values
            .iter()
            .map(|(k, v)| Ok((k.clone(), template::render_json(v, context)?)))
            .collect()
    }
}

#[async_trait::async_trait]
impl StepAction for SetVariables {
    fn kind(&self) -> ActionKind {
        ActionKind::SetVariables
    }

    fn has_side_effects(&self) -> bool {
        false
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        template::for_each_string_leaf(&Value::Object(self.values.clone()), "values", &mut |path, text| {
            out.push((path.to_owned(), text.to_owned()))
        });
    }

    fn variables(&self, context: &Value) -> Option<Map<String, Value>> {
        self.render(context).ok()
    }

    async fn perform(&self, call: ActionCall<'_>) -> Performed {
        match self.render(call.context) {
            Ok(values) => call.succeeded(Value::Object(values)),
            Err(err) => Outcome::Failed(Failure::terminal(err)),
        }
        .into()
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        match self.render(call.context) {
            Ok(values) => call.ran(Value::Object(values)),
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}
