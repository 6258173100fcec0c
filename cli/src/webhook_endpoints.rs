//! `hookflow webhook-endpoints …`: the addresses the workspace's events are
//! sent to, signed, through the management API. A signing secret is shown
//! once, by `create` and `rotate`; every other answer lists only its dates.

use chrono::Utc;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::runs::{encode, parse_when, printable, query_string};
use crate::workflows::{table, text, Api, CliError};

const ENDPOINTS: &str = "/webhook-endpoints";

#[derive(Subcommand, Debug)]
pub enum WebhookEndpointsCommand {
    /// Send events of the given types to a URL; prints its signing secret, once.
    Create {
        /// Where to POST the events: https, or http to localhost.
        #[arg(long)]
        url: String,
        /// An event type to send, such as Prize.Won or Run.Failed (repeatable).
        #[arg(long = "event-type", required = true)]
        event_types: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// The workspace's endpoints (never their secrets).
    List,
    /// One endpoint, then its latest delivery attempts.
    Show {
        id: String,
        /// How many attempts, newest first (1 to 100).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        attempts: u32,
    },
    /// Change an endpoint's URL, event types or description, or disable or
    /// re-enable it.
    Update {
        id: String,
        #[command(flatten)]
        changes: Changes,
    },
    /// A new signing secret (shown once); the previous one signs for 24 hours more.
    Rotate { id: String },
    /// Send one delivered or failed message again, now.
    Resend { id: String, message_id: String },
    /// Send again every message that failed since a time.
    Recover {
        id: String,
        /// A time (RFC 3339) or an age such as 30m, 2h, 3d.
        #[arg(long)]
        since: String,
    },
    /// Delete an endpoint: nothing more is sent to it.
    Delete { id: String },
}

/// What `update` changes: only what is given.
#[derive(Args, Debug, Default)]
pub struct Changes {
    #[arg(long)]
    url: Option<String>,
    /// Replaces the event types sent (repeatable).
    #[arg(long = "event-type")]
    event_types: Vec<String>,
    #[arg(long)]
    description: Option<String>,
    /// Send to it again (also forgets its run of failures).
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Stop sending to it until `--enable`.
    #[arg(long)]
    disable: bool,
}

impl Changes {
    /// The PATCH body; asking to change nothing is a usage mistake, not a no-op.
    fn body(self) -> Result<Value, CliError> {
        let mut body = Map::new();
        if let Some(url) = self.url {
            body.insert("url".into(), json!(url));
        }
        if !self.event_types.is_empty() {
            body.insert("event_types".into(), json!(self.event_types));
        }
        if let Some(description) = self.description {
            body.insert("description".into(), json!(description));
        }
        if self.enable || self.disable {
            body.insert("enabled".into(), json!(self.enable));
        }
        if body.is_empty() {
            return Err(CliError::Usage(
                "nothing to change: give --url, --event-type, --description, --enable or --disable".into(),
            ));
        }
        Ok(Value::Object(body))
    }
}

/// Runs one command; the answer's JSON and its human rendering.
pub async fn run(api: &Api, command: WebhookEndpointsCommand) -> Result<(Value, String), CliError> {
    match command {
        WebhookEndpointsCommand::Create {
            url,
            event_types,
            description,
        } => create(api, url, event_types, description).await,
        WebhookEndpointsCommand::List => list(api).await,
        WebhookEndpointsCommand::Show { id, attempts } => show(api, &id, attempts).await,
        WebhookEndpointsCommand::Update { id, changes } => {
            let body = changes.body()?;
            let updated = api.request(Method::PATCH, &path(&id, ""), Some(&body), None).await?.0;
            let human = format!("updated webhook endpoint {id}\n\n{}", render_endpoint(&updated));
            Ok((updated, human))
        }
        WebhookEndpointsCommand::Rotate { id } => rotate(api, &id).await,
        WebhookEndpointsCommand::Resend { id, message_id } => resend(api, &id, &message_id).await,
        WebhookEndpointsCommand::Recover { id, since } => recover(api, &id, &since).await,
        WebhookEndpointsCommand::Delete { id } => {
            api.request(Method::DELETE, &path(&id, ""), None, None).await?;
            let human = format!("deleted webhook endpoint {id}");
            Ok((json!({ "deleted": id }), human))
        }
    }
}

/// `/webhook-endpoints/{id}{rest}`: the id is encoded so that it stays one
/// path segment whatever was typed.
fn path(id: &str, rest: &str) -> String {
    format!("{ENDPOINTS}/{}{rest}", encode(id))
}

async fn create(
    api: &Api,
    url: String,
    event_types: Vec<String>,
    description: Option<String>,
) -> Result<(Value, String), CliError> {
    let mut body = json!({ "url": url, "event_types": event_types });
    if let Some(description) = description {
        body["description"] = json!(description);
    }
    let created = api.request(Method::POST, ENDPOINTS, Some(&body), None).await?.0;
    let id = text(&created["id"]);
    let human = format!(
        "created webhook endpoint {id}\nurl: {}\nevent types: {}\nsigning secret: {}\n\
         this secret is shown once: store it now (`hookflow webhook-endpoints rotate {id}` issues a new one)",
        text(&created["url"]),
        event_types_of(&created),
        text(&created["secret"]),
    );
    Ok((created, human))
}

async fn list(api: &Api) -> Result<(Value, String), CliError> {
    let listed = api.request(Method::GET, ENDPOINTS, None, None).await?.0;
    let all = listed["webhook_endpoints"].as_array().cloned().unwrap_or_default();
    let human = if all.is_empty() {
        "no webhook endpoints; make one with `hookflow webhook-endpoints create`".to_owned()
    } else {
        render_list(&all)
    };
    Ok((listed, human))
}

/// The endpoint and a page of its attempt log, in one answer.
async fn show(api: &Api, id: &str, attempts: u32) -> Result<(Value, String), CliError> {
    let endpoint = api.request(Method::GET, &path(id, ""), None, None).await?.0;
    let query = query_string(&[("limit", Some(attempts.to_string()))]);
    let page = api
        .request(Method::GET, &path(id, &format!("/attempts{query}")), None, None)
        .await?
        .0;
    let human = format!("{}\n\n{}", render_endpoint(&endpoint), render_attempts(&page));
    Ok((json!({ "endpoint": endpoint, "attempts": page }), human))
}

async fn rotate(api: &Api, id: &str) -> Result<(Value, String), CliError> {
    let rotated = api
        .request(Method::POST, &path(id, "/rotate"), Some(&json!({})), None)
        .await?
        .0;
    let human = format!(
        "rotated the signing secret of webhook endpoint {id}\nsigning secret: {}\n\
         this secret is shown once: store it now\n\
         the previous secret keeps signing for 24 hours: until then every message carries both signatures, \
         so receivers can switch over",
        text(&rotated["secret"]),
    );
    Ok((rotated, human))
}

async fn resend(api: &Api, id: &str, message_id: &str) -> Result<(Value, String), CliError> {
    let body = json!({ "message_id": message_id });
    let answer = api
        .request(Method::POST, &path(id, "/resend"), Some(&body), None)
        .await?
        .0;
    let message = &answer["message"];
    let human = format!(
        "message {} ({}) sent again to webhook endpoint {id}: {}, {} attempts so far",
        text(&message["id"]),
        text(&message["event_type"]),
        text(&message["status"]),
        text(&message["attempts"]),
    );
    Ok((answer, human))
}

/// `--since` is read as the runs commands read it; the API takes a time,
/// so an age becomes one here.
async fn recover(api: &Api, id: &str, since: &str) -> Result<(Value, String), CliError> {
    let since = parse_when(since, Utc::now())?.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = json!({ "since": since });
    let report = api
        .request(Method::POST, &path(id, "/recover"), Some(&body), None)
        .await?
        .0;
    let count = report["resent"].as_array().map_or(0, Vec::len);
    let mut human = format!("{count} failed messages sent again (failed since {since})");
    if report["more"] == true {
        human.push_str(&format!(
            "\nmore failed messages remain: run `hookflow webhook-endpoints recover {id} --since {since}` again"
        ));
    }
    Ok((report, human))
}

fn event_types_of(endpoint: &Value) -> String {
    endpoint["event_types"]
        .as_array()
        .map(|types| types.iter().map(text).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn render_list(endpoints: &[Value]) -> String {
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            vec![
                text(&e["id"]),
                text(&e["status"]),
                printable(&text(&e["url"])),
                event_types_of(e),
                text(&e["failing_since"]),
            ]
        })
        .collect();
    table(&["ID", "STATUS", "URL", "EVENT TYPES", "FAILING SINCE"], &rows)
}

/// One `label: value` line, the values aligned.
fn field(label: &str, value: &str) -> String {
    format!("{:<17}{value}", format!("{label}:"))
}

/// The endpoint's fields, one a line; its secrets by date only.
fn render_endpoint(endpoint: &Value) -> String {
    let description = endpoint["description"]
        .as_str()
        .filter(|d| !d.is_empty())
        .unwrap_or("-");
    let mut lines = vec![
        field("id", &text(&endpoint["id"])),
        field("url", &printable(&text(&endpoint["url"]))),
        field("description", &printable(description)),
        field("status", &text(&endpoint["status"])),
        field("event types", &event_types_of(endpoint)),
    ];
    let disabled = &endpoint["disabled"];
    if disabled.is_object() {
        let why = format!(
            "{} ({}): {}",
            text(&disabled["at"]),
            text(&disabled["because"]),
            printable(&text(&disabled["detail"]))
        );
        lines.push(field("disabled", &why));
    }
    for (label, key) in [
        ("failing since", "failing_since"),
        ("throttled until", "throttled_until"),
    ] {
        if let Some(at) = endpoint[key].as_str() {
            lines.push(field(label, at));
        }
    }
    for secret in endpoint["secrets"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let until = secret["expires_at"]
            .as_str()
            .map_or_else(|| "current".to_owned(), |at| format!("signs until {at}"));
        lines.push(field(
            "secret",
            &format!("created {}, {until}", text(&secret["created_at"])),
        ));
    }
    lines.push(field("created", &text(&endpoint["created_at"])));
    lines.push(field("updated", &text(&endpoint["updated_at"])));
    lines.join("\n")
}

/// The attempt log, newest first: the answer's status code, or why there
/// was none.
fn render_attempts(page: &Value) -> String {
    let attempts = page["attempts"].as_array().map(Vec::as_slice).unwrap_or_default();
    if attempts.is_empty() {
        return "no delivery attempts yet".into();
    }
    let rows: Vec<Vec<String>> = attempts
        .iter()
        .map(|a| {
            let answer = a["status_code"]
                .as_u64()
                .map_or_else(|| printable(&text(&a["error"])), |code| code.to_string());
            let manual = if a["manual"] == true { " (manual)" } else { "" };
            vec![
                text(&a["at"]),
                text(&a["message_id"]),
                text(&a["attempt"]),
                answer,
                format!("{}{manual}", text(&a["outcome"])),
                text(&a["next_attempt_at"]),
            ]
        })
        .collect();
    let mut out = table(
        &["AT", "MESSAGE", "ATTEMPT", "STATUS", "OUTCOME", "NEXT ATTEMPT"],
        &rows,
    );
    if page["next"].is_string() {
        out.push_str("\nolder attempts not shown: pass a larger --attempts (up to 100)");
    }
    out
}
