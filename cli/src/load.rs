//! Loading workflow files from a folder, with every problem reported at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hookflow_core::validate::validate;
use hookflow_core::WorkflowDefinition;

/// Every problem found in a folder of workflow files.
#[derive(Debug, Default)]
pub struct LoadProblems {
    pub problems: Vec<FileProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub file: PathBuf,
    /// JSON path inside the file, `$` for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for LoadProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in workflow files:", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {}: {}: {}", p.file.display(), p.path, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadProblems {}

/// Reads every `*.json` file in `dir` (not recursive), decodes and validates
/// each, and refuses the lot if any file has a problem.
pub fn load_workflows(dir: &Path) -> Result<Vec<WorkflowDefinition>, LoadProblems> {
    let mut report = LoadProblems::default();
    let mut problem = |file: &Path, path: &str, message: String| {
        report.problems.push(FileProblem {
            file: file.to_owned(),
            path: path.to_owned(),
            message,
        });
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            problem(dir, "$", format!("cannot read workflow folder: {err}"));
            return Err(report);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut workflows = vec![];
    let mut seen: BTreeMap<(String, String, u32), PathBuf> = BTreeMap::new();
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(err) => {
                problem(file, "$", format!("cannot read file: {err}"));
                continue;
            }
        };
        let workflow = match WorkflowDefinition::from_json(&text) {
            Ok(workflow) => workflow,
            Err(err) => {
                problem(file, &err.path, err.message);
                continue;
            }
        };
        for p in validate(&workflow) {
            problem(file, &p.path, p.message);
        }
        let key = (workflow.workspace_id.clone(), workflow.id.clone(), workflow.version);
        if let Some(other) = seen.get(&key) {
            problem(
                file,
                "$.id",
                format!(
                    "workflow {} version {} is also defined in {}",
                    workflow.id,
                    workflow.version,
                    other.display()
                ),
            );
        } else {
            seen.insert(key, file.clone());
        }
        workflows.push(workflow);
    }
    if report.problems.is_empty() {
        Ok(workflows)
    } else {
        Err(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_examples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/workflows");
        let workflows = load_workflows(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(workflows.len() >= 4);
    }

    #[test]
    fn every_problem_of_every_file_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), "{ not json").unwrap();
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"id": "b", "workspace_id": "ws", "name": "b", "scope": {"workspace": true},
                "trigger": {"type": "Prize.Wonn"}, "start": "x", "steps": {"s": {"action": {"type": "Delay", "seconds": 1}, "next": "ghost"}}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "not a workflow").unwrap();
        let problems = load_workflows(dir.path()).unwrap_err();
        let text = problems.to_string();
        assert!(text.contains("a.json: $"), "{text}");
        assert!(
            text.contains("b.json: $.trigger.type: unknown trigger type \"Prize.Wonn\"; did you mean Prize.Won"),
            "{text}"
        );
        assert!(text.contains("b.json: $.start"), "{text}");
        assert!(text.contains("b.json: $.steps.s.next"), "{text}");
        assert_eq!(problems.problems.len(), 4, "{text}");
        assert!(text.contains("a.json: $: key must be a string"), "{text}");
    }

    #[test]
    fn ids_with_control_characters_or_over_256_bytes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let workflow = |id: &str, workspace: &str, scope: serde_json::Value| {
            serde_json::json!({"id": id, "workspace_id": workspace, "name": "n", "scope": scope,
                               "trigger": {"type": "Prize.Won"}, "start": "s",
                               "steps": {"s": {"action": {"type": "Delay", "seconds": 1}}}})
            .to_string()
        };
        let files = [
            (
                "a.json",
                workflow("wf\u{7}bell", "ws", serde_json::json!({"workspace": true})),
            ),
            (
                "b.json",
                workflow("wf_b", "ws\nx", serde_json::json!({"workspace": true})),
            ),
            (
                "c.json",
                workflow("wf_c", "ws", serde_json::json!({"card": "card\u{1b}[2J"})),
            ),
            (
                "d.json",
                workflow("wf_d", "ws", serde_json::json!({"site": "s".repeat(257)})),
            ),
            (
                "e.json",
                workflow("wf_e", "ws", serde_json::json!({"site": "s".repeat(256)})),
            ),
        ];
        for (name, text) in &files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let problems = load_workflows(dir.path()).unwrap_err();
        let found: Vec<(String, String)> = problems
            .problems
            .iter()
            .map(|p| {
                (
                    p.file.file_name().unwrap().to_string_lossy().into_owned(),
                    p.path.clone(),
                )
            })
            .collect();
        let expected = [
            ("a.json", "$.id"),
            ("b.json", "$.workspace_id"),
            ("c.json", "$.scope.card"),
            ("d.json", "$.scope.site"),
        ];
        assert_eq!(
            found,
            expected.map(|(f, p)| (f.to_owned(), p.to_owned())).to_vec(),
            "{problems}"
        );
        assert!(
            problems.to_string().contains("without control characters"),
            "{problems}"
        );
    }
}
