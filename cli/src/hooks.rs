//! `hookflow hooks …`: inbound hooks through the management API. The API
//! validates every field; the CLI only builds the request and prints the
//! answer.

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::workflows::{table, Api, CliError};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Webhook,
    Form,
    Email,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuthType {
    None,
    Bearer,
    Basic,
    Hmac,
    #[value(name = "standard_webhooks")]
    StandardWebhooks,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    Enabled,
    Disabled,
}

/// The fields `create` and `update` share.
#[derive(Args, Debug, Default)]
pub struct HookFields {
    /// The trigger type its events have (default `Hook.<name>`).
    #[arg(long)]
    trigger_type: Option<String>,
    /// Stamp this `siteid` on its events (site-scoped workflows match).
    #[arg(long)]
    site: Option<String>,
    /// Stamp this `cardid` on its events (card-scoped workflows match).
    #[arg(long)]
    card: Option<String>,
    /// Take the event id from this request header (`webhook-id`, `X-GitHub-Delivery`, …).
    #[arg(long, conflicts_with = "event_id_json_path")]
    event_id_header: Option<String>,
    /// Take the event id from this field of a JSON body (`data.id`).
    #[arg(long)]
    event_id_json_path: Option<String>,
    /// Body limit in bytes (up to 1048576; default 262144).
    #[arg(long)]
    max_body_bytes: Option<u64>,
    /// Requests per second (default 50).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Form hooks: where a browser goes after posting.
    #[arg(long)]
    redirect_url: Option<String>,
}

impl HookFields {
    fn into_json(self, body: &mut Map<String, Value>) {
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                body.insert(key.to_owned(), value);
            }
        };
        put("trigger_type", self.trigger_type.map(Value::from));
        put("siteid", self.site.map(Value::from));
        put("cardid", self.card.map(Value::from));
        put("event_id", self.event_id_header.map(|h| json!({ "header": h })));
        put("event_id", self.event_id_json_path.map(|p| json!({ "json_path": p })));
        put("max_body_bytes", self.max_body_bytes.map(Value::from));
        put("rate_limit", self.rate_limit.map(Value::from));
        put("redirect_url", self.redirect_url.map(Value::from));
    }
}

#[derive(Subcommand, Debug)]
pub enum HooksCommand {
    /// Make a hook and print its address and secret (shown this once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        kind: Kind,
        /// How senders authenticate. `none` is for tests only.
        #[arg(long, value_enum)]
        auth: AuthType,
        /// HMAC format: github, shopify or stripe.
        #[arg(long)]
        preset: Option<String>,
        /// HMAC without a preset: the signature header.
        #[arg(long)]
        header: Option<String>,
        /// HMAC without a preset: text before the signature (`sha256=`).
        #[arg(long)]
        prefix: Option<String>,
        /// HMAC without a preset: hex or base64.
        #[arg(long)]
        encoding: Option<String>,
        /// Basic auth: the user name.
        #[arg(long)]
        username: Option<String>,
        /// The sender's own secret (one is made otherwise).
        #[arg(long, env = "HOOKFLOW_HOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        #[command(flatten)]
        fields: HookFields,
    },
    /// The workspace's hooks (never a secret).
    List,
    /// One hook.
    Show { id: String },
    /// Change a hook's fields, or enable or disable it.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[command(flatten)]
        fields: HookFields,
    },
    /// Delete a hook: its address refuses everything from then on.
    Delete { id: String },
    /// Add a secret; the older ones keep verifying for --overlap-s (24 h) or until revoked.
    Rotate {
        id: String,
        #[arg(long, env = "HOOKFLOW_HOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        #[arg(long)]
        overlap_s: Option<u64>,
    },
    /// Revoke one of a hook's secrets now.
    RevokeSecret { id: String, secret_id: String },
}

/// `auth` as the API takes it: the mode and whichever of its fields were given.
fn auth_json(auth: AuthType, fields: [(&str, Option<String>); 6]) -> Value {
    let kind = match auth {
        AuthType::None => "none",
        AuthType::Bearer => "bearer",
        AuthType::Basic => "basic",
        AuthType::Hmac => "hmac",
        AuthType::StandardWebhooks => "standard_webhooks",
    };
    let mut value = json!({ "type": kind });
    for (key, field) in fields {
        if let Some(field) = field {
            value[key] = json!(field);
        }
    }
    value
}

fn lower(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_ascii_lowercase()
}

/// Runs one command; the answer's JSON and its human rendering.
pub async fn run(api: &Api, command: HooksCommand) -> Result<(Value, String), CliError> {
    let hooks = "/hooks";
    match command {
        HooksCommand::Create {
            name,
            kind,
            auth,
            preset,
            header,
            prefix,
            encoding,
            username,
            secret,
            fields,
        } => {
            let auth = auth_json(
                auth,
                [
                    ("preset", preset),
                    ("header", header),
                    ("prefix", prefix),
                    ("encoding", encoding),
                    ("username", username),
                    ("secret", secret),
                ],
            );
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("kind".into(), json!(lower(kind)));
            body.insert("auth".into(), auth);
            fields.into_json(&mut body);
            let created = api
                .request(Method::POST, hooks, Some(&Value::Object(body)), None)
                .await?
                .0;
            let human = render_created(&created);
            Ok((created, human))
        }
        HooksCommand::List => {
            let listed = api.request(Method::GET, hooks, None, None).await?.0;
            let human = render_list(&listed);
            Ok((listed, human))
        }
        HooksCommand::Show { id } => {
            let hook = api.request(Method::GET, &format!("{hooks}/{id}"), None, None).await?.0;
            let human = render_hook(&hook);
            Ok((hook, human))
        }
        HooksCommand::Update {
            id,
            name,
            status,
            fields,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            if let Some(status) = status {
                body.insert("status".into(), json!(lower(status)));
            }
            fields.into_json(&mut body);
            let path = format!("{hooks}/{id}");
            let hook = api
                .request(Method::PATCH, &path, Some(&Value::Object(body)), None)
                .await?
                .0;
            let human = render_hook(&hook);
            Ok((hook, human))
        }
        HooksCommand::Delete { id } => {
            api.request(Method::DELETE, &format!("{hooks}/{id}"), None, None)
                .await?;
            Ok((json!({ "deleted": id }), format!("deleted hook {id}")))
        }
        HooksCommand::Rotate { id, secret, overlap_s } => {
            let mut body = json!({});
            if let Some(secret) = secret {
                body["secret"] = json!(secret);
            }
            if let Some(overlap) = overlap_s {
                body["overlap_s"] = json!(overlap);
            }
            let path = format!("{hooks}/{id}/rotate");
            let rotated = api.request(Method::POST, &path, Some(&body), None).await?.0;
            let human = render_created(&rotated);
            Ok((rotated, human))
        }
        HooksCommand::RevokeSecret { id, secret_id } => {
            let path = format!("{hooks}/{id}/secrets/{secret_id}");
            let hook = api.request(Method::DELETE, &path, None, None).await?.0;
            let human = format!("revoked secret {secret_id}\n\n{}", render_hook(&hook));
            Ok((hook, human))
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn row(hook: &Value) -> Vec<String> {
    vec![
        text(&hook["id"]),
        text(&hook["name"]),
        text(&hook["kind"]),
        text(&hook["trigger_type"]),
        text(&hook["auth"]["type"]),
        text(&hook["status"]),
    ]
}

const COLUMNS: [&str; 6] = ["ID", "NAME", "KIND", "TRIGGER", "AUTH", "STATUS"];

fn render_hook(hook: &Value) -> String {
    let secrets: Vec<Vec<String>> = hook["secrets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| vec![text(&s["id"]), text(&s["created_at"]), text(&s["expires_at"])])
        .collect();
    format!(
        "{}\nsenders post to: {}\n\n{}",
        table(&COLUMNS, &[row(hook)]),
        text(&hook["path"]),
        table(&["SECRET", "CREATED", "EXPIRES"], &secrets)
    )
}

fn render_created(created: &Value) -> String {
    let mut out = render_hook(created);
    if let Some(secret) = created["secret"].as_str() {
        out.push_str(&format!(
            "\nsecret {}:\n\n{secret}\n\nKeep it now: no answer shows it again.",
            text(&created["secret_id"])
        ));
    }
    out
}

fn render_list(listed: &Value) -> String {
    let rows: Vec<Vec<String>> = listed["hooks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(row)
        .collect();
    table(&COLUMNS, &rows)
}
