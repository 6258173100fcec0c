//! `hookflow runs …`: the on-call engineer's commands, through the runs API
//! (`hookflow dev`, or a deployed stack with an operator key).

use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Value};

use crate::workflows::{table, text, Api, CliError};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// Which runs: a workflow, a status, a window of start times.
#[derive(Args, Debug, Default)]
pub struct RunFilter {
    #[arg(long)]
    workflow: Option<String>,
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Started at or after: a time (RFC 3339) or an age such as 30m, 1h, 2d.
    #[arg(long)]
    since: Option<String>,
    /// Started before: a time (RFC 3339) or an age.
    #[arg(long)]
    until: Option<String>,
}

impl RunFilter {
    fn is_empty(&self) -> bool {
        self.workflow.is_none() && self.status.is_none() && self.since.is_none() && self.until.is_none()
    }

    /// The API's names and values; ages become times before `now`.
    fn pairs(self, now: DateTime<Utc>) -> Result<[(&'static str, Option<String>); 4], CliError> {
        Ok([
            ("workflow_id", self.workflow),
            ("status", self.status.map(|s| s.as_str().to_owned())),
            ("since", when(self.since, now)?),
            ("until", when(self.until, now)?),
        ])
    }
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// Runs, newest first: by workflow, status and start time.
    List {
        #[command(flatten)]
        filter: RunFilter,
        /// How many runs (1 to 1000; pages of 100 are fetched as needed).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// A run's step timeline, then the failing step's request and response.
    Show { run_id: String },
    /// Follow new and changing runs until Ctrl-C.
    Tail {
        #[arg(long)]
        workflow: Option<String>,
        /// Seconds between looks.
        #[arg(long, default_value_t = 2)]
        every: u64,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long, hide = true)]
        stop_after: Option<u64>,
    },
    /// Replay one failed run (`RUN_ID`), or every run that matches
    /// `--workflow`, `--status` and `--since` (at most 1,000).
    Replay {
        run_id: Option<String>,
        /// A new run from the first step, instead of the failed step.
        #[arg(long)]
        from_start: bool,
        /// Bulk: which runs (the status defaults to failed).
        #[command(flatten)]
        filter: RunFilter,
        /// At most this many runs (1 to 1000).
        #[arg(long)]
        limit: Option<usize>,
        /// The bulk replay's key: the same key never replays twice (default: a new one, printed).
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Cancel a running run (also one waiting in a Delay).
    Cancel { run_id: String },
}

/// A time given as RFC 3339 or as an age before `now` (`90s`, `30m`, `1h`, `2d`).
pub fn parse_when(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, CliError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let bad = || {
        CliError::Usage(format!(
            "{text:?} is neither a time (2026-12-01T09:00:00Z) nor an age (30m, 1h, 2d)"
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let amount: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => amount,
        "m" => amount * 60,
        "h" => amount * 3600,
        "d" => amount * 86_400,
        _ => return Err(bad()),
    };
    Ok(now - chrono::Duration::seconds(seconds))
}

/// `?a=1&b=2` of the pairs that have a value, percent-encoded.
pub(crate) fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", encode(v))))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn when(option: Option<String>, now: DateTime<Utc>) -> Result<Option<String>, CliError> {
    option
        .map(|text| parse_when(&text, now).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .transpose()
}

/// Runs a `runs` verb: its JSON and its human rendering.
pub async fn run(api: &Api, command: RunsCommand, json: bool) -> Result<(Value, String), CliError> {
    let now = Utc::now();
    match command {
        RunsCommand::List { filter, limit } => {
            if !(1..=1000).contains(&limit) {
                return Err(CliError::Usage("--limit must be from 1 to 1000".into()));
            }
            let runs = list(api, &filter.pairs(now)?, limit).await?;
            let human = render_list(&runs);
            Ok((json!({"runs": runs}), human))
        }
        RunsCommand::Show { run_id } => {
            let (run, _) = api.request(Method::GET, &format!("/runs/{run_id}"), None, None).await?;
            let human = render_show(&run);
            Ok((run, human))
        }
        RunsCommand::Tail {
            workflow,
            every,
            stop_after,
        } => tail(api, workflow, every, stop_after, json).await,
        RunsCommand::Replay {
            run_id: Some(run_id),
            from_start,
            filter,
            limit: None,
            idempotency_key: None,
        } if filter.is_empty() => {
            let body = json!({"from": if from_start { "start" } else { "failed_step" }});
            let (replayed, _) = api
                .request(Method::POST, &format!("/runs/{run_id}/replay"), Some(&body), None)
                .await?;
            let human = render_replayed(&replayed);
            Ok((replayed, human))
        }
        RunsCommand::Replay { run_id: Some(_), .. } => Err(CliError::Usage(
            "give a RUN_ID, or filters (--workflow, --status, --since, --until, --limit), not both".into(),
        )),
        RunsCommand::Replay {
            run_id: None,
            from_start,
            mut filter,
            limit,
            idempotency_key,
        } => {
            filter.status = filter.status.or(Some(Status::Failed));
            let [(_, workflow_id), (_, status), (_, since), (_, until)] = filter.pairs(now)?;
            let request = json!({
                "workflow_id": workflow_id, "status": status, "since": since, "until": until,
                "from": if from_start { "start" } else { "failed_step" }, "limit": limit,
            });
            let key = idempotency_key.unwrap_or_else(|| ulid::Ulid::new().to_string());
            bulk_replay(api, &request, &key).await
        }
        RunsCommand::Cancel { run_id } => {
            let (run, _) = api
                .request(Method::POST, &format!("/runs/{run_id}/cancel"), None, None)
                .await?;
            let human = format!("cancelled run {} ({})", text(&run["run_id"]), text(&run["workflow_id"]));
            Ok((run, human))
        }
    }
}

/// Up to `limit` runs, following the API's cursor page by page.
async fn list(api: &Api, filter: &[(&str, Option<String>)], limit: usize) -> Result<Vec<Value>, CliError> {
    let mut runs: Vec<Value> = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let page_size = (limit - runs.len()).min(100);
        let mut pairs = filter.to_vec();
        pairs.push(("limit", Some(page_size.to_string())));
        pairs.push(("cursor", cursor.take()));
        let (page, _) = api
            .request(Method::GET, &format!("/runs{}", query_string(&pairs)), None, None)
            .await?;
        runs.extend(page["runs"].as_array().cloned().unwrap_or_default());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || runs.len() >= limit {
            return Ok(runs);
        }
    }
}

const LIST_COLUMNS: [&str; 6] = ["RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION", "ERROR"];

fn list_row(run: &Value) -> Vec<String> {
    vec![
        text(&run["run_id"]),
        format!("{} v{}", text(&run["workflow_id"]), text(&run["workflow_version"])),
        text(&run["status"]),
        text(&run["started_at"]),
        duration(&run["started_at"], &run["ended_at"]),
        printable(&text(&run["error"]).chars().take(60).collect::<String>()),
    ]
}

pub fn render_list(runs: &[Value]) -> String {
    if runs.is_empty() {
        return "no runs match".into();
    }
    table(&LIST_COLUMNS, &runs.iter().map(list_row).collect::<Vec<_>>())
}

fn duration(start: &Value, end: &Value) -> String {
    let parse = |v: &Value| v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    match (parse(start), parse(end)) {
        (Some(start), Some(end)) => {
            let ms = (end - start).num_milliseconds();
            if ms < 1000 {
                format!("{ms}ms")
            } else {
                format!("{:.1}s", ms as f64 / 1000.0)
            }
        }
        _ => "-".into(),
    }
}

/// The timeline table, then the last failed attempt's error and response.
pub fn render_show(run: &Value) -> String {
    let steps = run["steps"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = vec![format!(
        "run {}  {} v{}  {}  started {}{}",
        text(&run["run_id"]),
        text(&run["workflow_id"]),
        text(&run["workflow_version"]),
        text(&run["status"]),
        text(&run["started_at"]),
        run["error"]
            .as_str()
            .map(|e| format!("\nerror: {}", printable(e)))
            .unwrap_or_default()
    )];
    if let Some(of) = run["replay_of"].as_str() {
        out.push(format!("replay of run {of}"));
    }
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                text(&s["step_id"]),
                text(&s["action"]),
                text(&s["attempt"]),
                text(&s["status"]),
                text(&s["started_at"]),
                format!("{}ms", text(&s["duration_ms"])),
            ]
        })
        .collect();
    out.push(String::new());
    out.push(table(
        &["STEP", "ACTION", "ATTEMPT", "STATUS", "STARTED", "DURATION"],
        &rows,
    ));
    if let Some(failing) = steps.iter().rev().find(|s| s["status"] == "failed") {
        out.push(format!(
            "\nfailing step {} (attempt {}): {}",
            text(&failing["step_id"]),
            text(&failing["attempt"]),
            printable(&text(&failing["error"]))
        ));
        if !failing["request"].is_null() {
            out.push("request:".into());
            out.extend(request_lines(&failing["request"]));
        }
        if !failing["output"].is_null() {
            out.push("response:".into());
            out.extend(response_lines(&failing["output"]));
        }
        if let Some(url) = failing["output_url"].as_str() {
            out.push(format!("whole output: GET {url}"));
        }
    }
    if !run["event"].is_null() {
        out.push(format!("\ntrigger event: {}", pretty(&run["event"])));
    }
    out.join("\n")
}

/// The request as sent: the request line, the headers, the body.
fn request_lines(request: &Value) -> Vec<String> {
    let mut lines = vec![format!(
        "  {} {}",
        printable(&text(&request["method"])),
        printable(&text(&request["url"]))
    )];
    for header in request["headers"].as_array().map(Vec::as_slice).unwrap_or_default() {
        lines.push(format!(
            "  {}: {}",
            printable(&text(&header[0])),
            printable(&text(&header[1]))
        ));
    }
    if let Some(body) = request["body"].as_str() {
        lines.push(format!("  {}", printable(body)));
    }
    lines
}

/// An HTTP response output (`status`, `headers`, `body`); any other output
/// as JSON.
fn response_lines(output: &Value) -> Vec<String> {
    let Some(status) = output.get("status").filter(|_| output.get("body").is_some()) else {
        return vec![format!("  {}", pretty(output))];
    };
    let mut lines = vec![format!("  HTTP {}", text(status))];
    if let Some(headers) = output["headers"].as_object() {
        for (name, value) in headers {
            lines.push(format!("  {}: {}", printable(name), printable(&text(value))));
        }
    }
    let body = match &output["body"] {
        Value::String(body) => body.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    lines.push(format!("  {}", printable(&body).replace('\n', "\n  ")));
    lines
}

/// Text from strangers, safe for a terminal: control characters other
/// than newline and tab are shown escaped, so a peer's response cannot move
/// the cursor, recolour the screen or retitle the window.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// JSON for a terminal: serde_json escapes C0 controls; C1 controls (such
/// as U+009B, a CSI on some terminals) are escaped here.
fn pretty(value: &Value) -> String {
    printable(&serde_json::to_string_pretty(value).unwrap_or_default())
}

pub fn render_replayed(replayed: &Value) -> String {
    match replayed["replay_of"].as_str() {
        Some(of) => format!(
            "replaying run {of} from the start as run {} (step {})",
            text(&replayed["run_id"]),
            text(&replayed["step_id"])
        ),
        None => format!(
            "replaying run {} from step {} (attempt {})",
            text(&replayed["run_id"]),
            text(&replayed["step_id"]),
            text(&replayed["attempt"])
        ),
    }
}

async fn bulk_replay(api: &Api, request: &Value, key: &str) -> Result<(Value, String), CliError> {
    let progress = std::io::stderr().is_terminal();
    if progress {
        eprintln!("bulk replay {key}: replaying…");
    }
    let headers = [("idempotency-key", key)];
    let call = api.send(Method::POST, "/runs/replay", Some(request), &headers);
    tokio::pin!(call);
    let mut ticks = 0usize;
    let report = loop {
        tokio::select! {
            answer = &mut call => break answer?.0,
            _ = tokio::time::sleep(Duration::from_millis(250)), if progress => {
                ticks += 1;
                let filled = ticks % 21;
                eprint!("\r[{}{}]", "#".repeat(filled), " ".repeat(20 - filled.min(20)));
            }
        }
    };
    if progress {
        eprintln!("\r[{}] done", "#".repeat(20));
    }
    let human = render_bulk(&report, key);
    Ok((report, human))
}

pub fn render_bulk(report: &Value, key: &str) -> String {
    let replayed = report["replayed"].as_array().map(Vec::as_slice).unwrap_or_default();
    let skipped = report["skipped"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = vec![format!(
        "{} replayed, {} skipped{} (idempotency key {key})",
        replayed.len(),
        skipped.len(),
        if report["repeated"] == true {
            "; this key was used before: nothing more was replayed"
        } else {
            ""
        }
    )];
    for skip in skipped {
        out.push(format!(
            "  skipped {}: {}",
            text(&skip["run_id"]),
            text(&skip["reason"])
        ));
    }
    if report["truncated"] == true {
        out.push("more runs matched than the limit: run it again with a new key for the rest".into());
    }
    out.join("\n")
}

/// Prints each run the first time it is seen and each time its status
/// changes, newest last, until Ctrl-C (or `stop_after`).
async fn tail(
    api: &Api,
    workflow: Option<String>,
    every: u64,
    stop_after: Option<u64>,
    json: bool,
) -> Result<(Value, String), CliError> {
    let started = Utc::now();
    let since = (started - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let deadline = stop_after.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut changes: Vec<Value> = vec![];
    loop {
        let filter = [("workflow_id", workflow.clone()), ("since", Some(since.clone()))];
        let mut runs = list(api, &filter, 1000).await?;
        runs.reverse();
        for run in runs {
            let id = text(&run["run_id"]);
            let status = text(&run["status"]);
            if seen.get(&id) != Some(&status) {
                if json {
                    println!("{run}");
                } else {
                    println!("{}", list_row(&run).join("  "));
                }
                seen.insert(id, status);
                changes.push(run);
            }
        }
        let pause = tokio::time::sleep(Duration::from_secs(every.max(1)));
        tokio::select! {
            _ = pause => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }
    Ok((
        json!({"changes": changes.len()}),
        format!("{} changes seen", changes.len()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_text_cannot_drive_the_terminal() {
        assert_eq!(
            printable("ok\u{1b}[2J\u{7}\nnext\tcol"),
            "ok\\u{1b}[2J\\u{7}\nnext\tcol"
        );
        let lines = response_lines(&json!({"status": 502, "headers": {"x": "y"}, "body": "a\u{1b}]0;pwned\u{7}"}));
        assert_eq!(lines, vec!["  HTTP 502", "  x: y", "  a\\u{1b}]0;pwned\\u{7}"]);
    }

    #[test]
    fn ages_and_times_are_read() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_when("1h", now).unwrap().to_rfc3339(), "2026-12-01T09:00:00+00:00");
        assert_eq!(parse_when("2d", now).unwrap().to_rfc3339(), "2026-11-29T10:00:00+00:00");
        assert_eq!(
            parse_when("2026-11-30T08:00:00+01:00", now).unwrap().to_rfc3339(),
            "2026-11-30T07:00:00+00:00"
        );
        for bad in ["", "h", "1w", "x1h", "yesterday"] {
            assert!(parse_when(bad, now).is_err(), "{bad}");
        }
    }
}
