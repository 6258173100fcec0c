//! `hookflow connections …`: connected apps' credentials through the
//! management API. Credentials are read from a file or standard input
//! (`--credentials-file -`) or given as `--credential name=value`; the API
//! never shows them again.

use std::collections::BTreeMap;

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Value};

use crate::workflows::{table, Api, CliError};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum App {
    Salesforce,
    Mailchimp,
    Braze,
}

/// Where the credentials come from.
#[derive(Args, Debug, Default)]
pub struct CredentialArgs {
    /// A JSON object of credential fields, from this file or `-` (standard
    /// input): keeps them out of the shell's history.
    #[arg(long, conflicts_with = "credential")]
    credentials_file: Option<String>,
    /// One credential field, `name=value` (repeatable).
    #[arg(long)]
    credential: Vec<String>,
    /// Another host: a sandbox, or Braze's REST endpoint (required for Braze).
    #[arg(long)]
    base_url: Option<String>,
}

impl CredentialArgs {
    fn credentials(&self) -> Result<Value, CliError> {
        if let Some(file) = &self.credentials_file {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(file)
            }
            .map_err(|e| CliError::Usage(format!("cannot read credentials from {file}: {e}")))?;
            let fields: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|_| {
                CliError::Usage(format!(
                    "{file} must hold a JSON object of strings, like {{\"api_key\": \"…\"}}"
                ))
            })?;
            return Ok(json!(fields));
        }
        if self.credential.is_empty() {
            return Err(CliError::Usage(
                "give the credentials: --credentials-file FILE (or - for standard input), or --credential name=value"
                    .into(),
            ));
        }
        let mut fields = BTreeMap::new();
        for pair in &self.credential {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| CliError::Usage("--credential takes name=value (the value is not shown)".to_owned()))?;
            fields.insert(name.to_owned(), value.to_owned());
        }
        Ok(json!(fields))
    }

    fn body(&self) -> Result<Value, CliError> {
        let mut body = json!({ "credentials": self.credentials()? });
        if let Some(url) = &self.base_url {
            body["base_url"] = json!(url);
        }
        Ok(body)
    }
}

#[derive(Subcommand, Debug)]
pub enum ConnectionsCommand {
    /// Store an app's credentials under a name steps reference.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        app: App,
        #[command(flatten)]
        credentials: CredentialArgs,
    },
    /// The workspace's connections (never their credentials).
    List,
    /// Replace a connection's credentials.
    Rotate {
        name: String,
        #[command(flatten)]
        credentials: CredentialArgs,
    },
    /// Delete a connection and its credentials.
    Delete { name: String },
}

/// Runs one command; the answer's JSON and its human rendering.
pub async fn run(api: &Api, command: ConnectionsCommand) -> Result<(Value, String), CliError> {
    let connections = "/connections";
    match command {
        ConnectionsCommand::Create { name, app, credentials } => {
            let mut body = credentials.body()?;
            body["name"] = json!(name);
            body["app"] = json!(format!("{app:?}").to_ascii_lowercase());
            let created = api.request(Method::POST, connections, Some(&body), None).await?.0;
            let human = format!(
                "created connection {name}\n\n{}",
                render(std::slice::from_ref(&created))
            );
            Ok((created, human))
        }
        ConnectionsCommand::List => {
            let listed = api.request(Method::GET, connections, None, None).await?.0;
            let all = listed["connections"].as_array().cloned().unwrap_or_default();
            let human = if all.is_empty() {
                "no connections; make one with `hookflow connections create`".to_owned()
            } else {
                render(&all)
            };
            Ok((listed, human))
        }
        ConnectionsCommand::Rotate { name, credentials } => {
            let path = format!("{connections}/{name}/rotate");
            let rotated = api
                .request(Method::POST, &path, Some(&credentials.body()?), None)
                .await?
                .0;
            let human = format!(
                "rotated connection {name}\n\n{}",
                render(std::slice::from_ref(&rotated))
            );
            Ok((rotated, human))
        }
        ConnectionsCommand::Delete { name } => {
            api.request(Method::DELETE, &format!("{connections}/{name}"), None, None)
                .await?;
            Ok((json!({ "deleted": name }), format!("deleted connection {name}")))
        }
    }
}

fn render(connections: &[Value]) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = connections
        .iter()
        .map(|c| {
            let fields = c["credentials"]
                .as_object()
                .map(|f| f.keys().cloned().collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            vec![
                text(&c["name"]),
                text(&c["app"]),
                text(&c["base_url"]),
                fields,
                text(&c["rotated_at"]),
            ]
        })
        .collect();
    table(&["NAME", "APP", "BASE URL", "CREDENTIALS", "ROTATED"], &rows)
}
