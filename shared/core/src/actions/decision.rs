//! `Decision`: ordered branches, the first whose condition holds wins.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::condition::Condition;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub branches: Vec<Branch>,
    /// Taken when no branch matches; without one the run ends there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    pub when: Condition,
    pub next: String,
}

impl Decision {
    /// The chosen next step and the index of the branch taken (`None` for the default).
    pub fn choose(&self, context: &Value) -> (Option<String>, Option<usize>) {
        match self.branches.iter().position(|b| b.when.evaluate(context)) {
            Some(i) => (Some(self.branches[i].next.clone()), Some(i)),
            None => (self.default.clone(), None),
        }
    }

    pub(super) fn problems(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        if self.branches.is_empty() {
            out.push(("branches".into(), "a Decision needs at least one branch".into()));
        }
        for (i, branch) in self.branches.iter().enumerate() {
            out.extend(branch.when.problems(&format!("branches[{i}].when")));
        }
        out
    }
}
