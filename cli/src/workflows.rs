//! `hookflow workflows …`: the management API from a terminal. Every verb
//! but `validate` talks to the API (`--api-url`, `HOOKFLOW_API_KEY`);
//! `validate` works offline with the same rules and problem codes.

use std::path::{Path, PathBuf};

use hookflow_core::validate::{validate, Problem, ProblemCode};
use hookflow_core::WorkflowDefinition;
use reqwest::Method;
use serde_json::{json, Value};

/// Where the API is when nothing says otherwise: a local `hookflow dev`.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:3000";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "cannot reach the API at {url}: {reason}\nis `hookflow dev` running? pass --api-url or set HOOKFLOW_API_URL"
    )]
    Unreachable { url: String, reason: String },
    /// The API refused: its code and message, and any problems.
    #[error("{code}: {message}{}", render_details(.details))]
    Refused {
        code: String,
        message: String,
        details: Value,
    },
    #[error("{0}")]
    Failed(String),
    /// The command line asks for something impossible (exit code 2).
    #[error("{0}")]
    Usage(String),
}

fn render_details(details: &Value) -> String {
    let problems = details["problems"].as_array().cloned().unwrap_or_default();
    problems
        .iter()
        .map(|p| {
            format!(
                "\n  {}  {}  {}",
                text(&p["path"]),
                text(&p["code"]),
                text(&p["message"])
            )
        })
        .collect()
}

pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The management API of one workspace.
/// The API's refusal as the CLI reports it: its code, message and details.
fn refusal(status: reqwest::StatusCode, body: &Value) -> CliError {
    CliError::Refused {
        code: body["error"]["code"].as_str().unwrap_or("http_error").to_owned(),
        message: body["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned),
        details: body["error"]["details"].clone(),
    }
}

pub struct Api {
    base: String,
    workspace: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, workspace: &str, key: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            workspace: workspace.to_owned(),
            key,
            http: reqwest::Client::new(),
        }
    }

    /// Sends one request to `…/workflows{path}`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), CliError> {
        self.request(method, &format!("/workflows{path}"), body, if_match).await
    }

    /// Sends one request to `/v1/workspaces/{ws}{path}`; a refusal becomes
    /// [`CliError::Refused`].
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), CliError> {
        let headers: Vec<(&str, &str)> = if_match.map(|revision| ("if-match", revision)).into_iter().collect();
        self.send(method, path, body, &headers).await
    }

    /// A request to `/v1/workspaces/{ws}{path}`, with the key.
    fn begin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/v1/workspaces/{}{path}", self.base, self.workspace);
        let request = self.http.request(method, &url);
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends one request whose successful answer is read as it arrives (an
    /// export); a refusal becomes [`CliError::Refused`].
    pub async fn stream(&self, method: Method, path: &str) -> Result<reqwest::Response, CliError> {
        let response = self
            .begin(method, path)
            .send()
            .await
            .map_err(|e| CliError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(refusal(status, &body))
    }

    /// [`Api::request`] with any extra headers (`Idempotency-Key`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(Value, Option<String>), CliError> {
        let mut request = self.begin(method, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
            Value::Null
        } else {
            response
                .json()
                .await
                .map_err(|e| CliError::Failed(format!("the API answered {status} with a body that is not JSON: {e}")))?
        };
        if status.is_success() {
            return Ok((body, etag));
        }
        Err(refusal(status, &body))
    }

    /// Creates the draft, or replaces it at its current revision.
    pub async fn apply(&self, document: &Value) -> Result<(String, Value), CliError> {
        let id = document["id"]
            .as_str()
            .ok_or_else(|| CliError::Failed("the document has no `id`".into()))?;
        match self.call(Method::GET, &format!("/{id}"), None, None).await {
            Ok((_, etag)) => {
                let (head, _) = self
                    .call(Method::PUT, &format!("/{id}"), Some(document), etag.as_deref())
                    .await?;
                Ok(("updated".into(), head))
            }
            Err(CliError::Refused { code, .. }) if code == "workflow_not_found" => {
                let (head, _) = self.call(Method::POST, "", Some(document), None).await?;
                Ok(("created".into(), head))
            }
            Err(err) => Err(err),
        }
    }

    pub async fn list(&self) -> Result<Vec<Value>, CliError> {
        let mut all = vec![];
        let mut query = "?limit=100".to_owned();
        loop {
            let (page, _) = self.call(Method::GET, &query, None, None).await?;
            all.extend(page["workflows"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(cursor) => query = format!("?limit=100&cursor={cursor}"),
                None => return Ok(all),
            }
        }
    }

    pub async fn show(&self, id: &str, version: Option<u32>) -> Result<Value, CliError> {
        let path = match version {
            Some(n) => format!("/{id}/versions/{n}"),
            None => format!("/{id}"),
        };
        Ok(self.call(Method::GET, &path, None, None).await?.0)
    }

    pub async fn versions(&self, id: &str) -> Result<Vec<Value>, CliError> {
        let (body, _) = self.call(Method::GET, &format!("/{id}/versions"), None, None).await?;
        Ok(body["versions"].as_array().cloned().unwrap_or_default())
    }

    /// `publish`, `pause`, `resume` or `archive`.
    pub async fn verb(&self, id: &str, verb: &str) -> Result<Value, CliError> {
        Ok(self.call(Method::POST, &format!("/{id}/{verb}"), None, None).await?.0)
    }

    /// `POST …/{id}/test`: a dry run unless `live`.
    pub async fn test(
        &self,
        id: &str,
        event: Option<Value>,
        version: Option<u32>,
        live: bool,
    ) -> Result<Value, CliError> {
        let mut body = json!({ "dry_run": !live });
        if let Some(event) = event {
            body["event"] = event;
        }
        if let Some(version) = version {
            body["version"] = json!(version);
        }
        Ok(self
            .call(Method::POST, &format!("/{id}/test"), Some(&body), None)
            .await?
            .0)
    }

    pub async fn clone_as(&self, id: &str, new_id: &str) -> Result<Value, CliError> {
        let body = json!({ "id": new_id });
        Ok(self
            .call(Method::POST, &format!("/{id}/clone"), Some(&body), None)
            .await?
            .0)
    }
}

/// The workflow files of `path`: the file itself, or the `.json`, `.yaml`
/// and `.yml` files of a folder, sorted.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, CliError> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| CliError::Failed(format!("cannot read {}: {e}", path.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "json" || ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A workflow file as JSON: YAML by its extension, JSON otherwise.
pub fn read_document(file: &Path) -> Result<Value, CliError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?;
    let yaml = file.extension().is_some_and(|ext| ext == "yaml" || ext == "yml");
    let parsed = if yaml {
        serde_yaml::from_str::<Value>(&text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str::<Value>(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| CliError::Failed(format!("{} does not parse: {e}", file.display())))
}

/// Every problem of a document, offline: a structural one (it does not
/// decode) or the semantic ones the API's `validate` reports.
pub fn problems_of(document: Value) -> Vec<Problem> {
    match WorkflowDefinition::from_value(document) {
        Ok(workflow) => validate(&workflow),
        Err(err) => vec![Problem {
            path: err.path,
            code: ProblemCode::InvalidDocument,
            message: err.message,
        }],
    }
}

/// Columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

pub fn head_row(head: &Value) -> Vec<String> {
    vec![
        text(&head["id"]),
        text(&head["status"]),
        text(&head["published_version"]),
        text(&head["revision"]),
        text(&head["draft"]["trigger"]["type"]),
        text(&head["updated_at"]),
    ]
}

pub const HEAD_COLUMNS: [&str; 6] = ["ID", "STATUS", "PUBLISHED", "REVISION", "TRIGGER", "UPDATED"];

pub fn problem_rows(problems: &[Problem]) -> Vec<Vec<String>> {
    problems
        .iter()
        .map(|p| vec![p.path.clone(), text(&json!(p.code)), p.message.clone()])
        .collect()
}

/// A live test's answer: the run it started and where to read it.
pub fn render_live_test(started: &Value) -> String {
    format!(
        "test run {} of v{} started on event {}\nits timeline: GET {}",
        text(&started["run_id"]),
        text(&started["workflow_version"]),
        text(&started["event_id"]),
        text(&started["run_url"])
    )
}

/// A dry run's timeline: one row per step, each rendered request under its
/// step (credentials already redacted by the API).
pub fn render_timeline(run: &Value) -> String {
    let steps = run["steps"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = vec![format!(
        "dry run of {} v{}: {} ({} steps, nothing sent)",
        text(&run["workflow_id"]),
        text(&run["version"]),
        text(&run["outcome"]),
        steps.len()
    )];
    for step in steps {
        out.push(format!(
            "\n{}  {}  {}{}",
            text(&step["step_id"]),
            text(&step["action"]),
            text(&step["status"]),
            step["next"]
                .as_str()
                .map(|next| format!("  → {next}"))
                .unwrap_or_default()
        ));
        if let Some(request) = step.get("request") {
            out.push(format!("  {} {}", text(&request["method"]), text(&request["url"])));
            for header in request["headers"].as_array().map(Vec::as_slice).unwrap_or_default() {
                out.push(format!("  {}: {}", text(&header[0]), text(&header[1])));
            }
            if let Some(body) = request["body"].as_str() {
                out.push(format!("  {body}"));
            }
        }
        if let Some(error) = step["error"].as_str() {
            out.push(format!("  error: {error}"));
        }
    }
    out.join("\n")
}
