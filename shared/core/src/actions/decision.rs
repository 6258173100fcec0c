//! `Decision`: ordered branches, the first whose condition holds wins.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ActionCall, ActionKind, DryCall, Outcome, Performed, Rehearsal, StepAction};

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

    fn own_problems(&self) -> Vec<(String, String)> {
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

impl Decision {
    /// The chosen step, and the output the run log shows for the choice.
    fn decide(&self, context: &Value) -> (Option<String>, Value) {
        let (next, branch) = self.choose(context);
        let taken = branch.map_or(json!("default"), |i| json!(i));
        let output = json!({"branch": taken, "next": next});
        (next, output)
    }
}

#[async_trait::async_trait]
impl StepAction for Decision {
    fn kind(&self) -> ActionKind {
        ActionKind::Decision
    }

    fn has_side_effects(&self) -> bool {
        false
    }

    fn problems(&self) -> Vec<(String, String)> {
        self.own_problems()
    }

    fn chooses_next(&self) -> bool {
        true
    }

    fn edges(&self) -> Vec<(String, &str)> {
        let mut edges: Vec<(String, &str)> = self
            .branches
            .iter()
            .enumerate()
            .map(|(i, branch)| (format!("action.branches[{i}].next"), branch.next.as_str()))
            .collect();
        if let Some(default) = &self.default {
            edges.push(("action.default".to_owned(), default.as_str()));
        }
        edges
    }

    async fn perform(&self, call: ActionCall<'_>) -> Performed {
        let (next, output) = self.decide(call.context);
        Outcome::Succeeded { output, next }.into()
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        let (next, output) = self.decide(call.context);
        Rehearsal::Ran { output, next }
    }
}
