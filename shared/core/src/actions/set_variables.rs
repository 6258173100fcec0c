//! `SetVariables`: render values into `vars` for the steps that follow.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
