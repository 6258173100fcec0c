//! Connected apps (brief §9): a connection is a named set of credentials
//! for one app, which a step references by name (`"connection": "mc"`).
//! What a connection is (its app, its host, when it was made) lives in a
//! [`ConnectionStore`]; its credentials live in a [`SecretVault`] (AWS
//! Secrets Manager in Lambda, a mode-0600 file in `hookflow dev`), under a
//! reference that changes on every rotation. Credentials never enter a
//! workflow, a template context, a step message or a run record: a
//! connector action resolves them when it sends, and the values it puts on
//! the wire are added to the step's [`crate::redact::Secrets`].

mod manage;
mod resolve;

pub use manage::{base_url_problem, ConnectionError, ConnectionRequest, Connections, RotateRequest};
pub use resolve::{ConnectionResolver, ResolveError, ResolvedConnection, CREDENTIALS_TTL};

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ports::PortResult;

/// The most connections one workspace may hold: a listing is one read.
pub const MAX_CONNECTIONS: usize = 200;
/// The longest credential value accepted.
pub const MAX_CREDENTIAL_BYTES: usize = 4096;

/// The apps Hookflow has connectors for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum App {
    Salesforce,
    Mailchimp,
    Braze,
}

impl App {
    pub const ALL: [App; 3] = [App::Salesforce, App::Mailchimp, App::Braze];

    pub fn name(self) -> &'static str {
        match self {
            App::Salesforce => "salesforce",
            App::Mailchimp => "mailchimp",
            App::Braze => "braze",
        }
    }

    /// The credential fields the app needs.
    pub fn required_fields(self) -> &'static [&'static str] {
        match self {
            App::Salesforce => &["client_id", "client_secret"],
            App::Mailchimp | App::Braze => &["api_key"],
        }
    }

    /// The credential fields the app may take besides: a Salesforce
    /// connection with a `refresh_token` uses the refresh token flow, one
    /// without it the client credentials flow.
    pub fn optional_fields(self) -> &'static [&'static str] {
        match self {
            App::Salesforce => &["refresh_token"],
            App::Mailchimp | App::Braze => &[],
        }
    }

    /// Where requests go when the connection names no `base_url`: Mailchimp's
    /// data centre is the suffix of its API key; Braze has one REST
    /// endpoint per instance, which the connection must name.
    pub fn default_base_url(self, credentials: &Credentials) -> Option<String> {
        match self {
            App::Mailchimp => {
                let dc = mailchimp_data_centre(credentials.get("api_key")?)?;
                Some(format!("https://{dc}.api.mailchimp.com"))
            }
            // The client credentials flow needs the org's My Domain URL;
            // the refresh token flow works through the login host.
            App::Salesforce => Some("https://login.salesforce.com".into()),
            App::Braze => None,
        }
    }

    /// Problems with credentials for this app, by field.
    pub fn credential_problems(self, credentials: &Credentials) -> Vec<String> {
        let required = self.required_fields();
        let known: Vec<&str> = required.iter().chain(self.optional_fields()).copied().collect();
        let mut problems: Vec<String> = credentials
            .0
            .keys()
            .filter(|name| !known.contains(&name.as_str()))
            .map(|name| {
                format!(
                    "{} credentials have no field {name:?}; expected {}",
                    self.name(),
                    known.join(", ")
                )
            })
            .collect();
        for field in required {
            if credentials.get(field).is_none_or(str::is_empty) {
                problems.push(format!("credentials.{field} is required for {}", self.name()));
            }
        }
        for (field, value) in &credentials.0 {
            if value.len() > MAX_CREDENTIAL_BYTES {
                problems.push(format!("credentials.{field} is over {MAX_CREDENTIAL_BYTES} bytes"));
            }
        }
        if self == App::Mailchimp
            && credentials
                .get("api_key")
                .is_some_and(|key| mailchimp_data_centre(key).is_none())
        {
            problems.push("credentials.api_key must end in its data centre, like \"…-us21\"".into());
        }
        problems
    }
}

impl std::fmt::Display for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `us21` of `0123…-us21`.
fn mailchimp_data_centre(api_key: &str) -> Option<&str> {
    let (_, dc) = api_key.rsplit_once('-')?;
    (!dc.is_empty() && dc.len() <= 8 && dc.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(dc)
}

/// A connection's credentials. Their `Debug` shows field names only, so a
/// stray `{:?}` cannot log them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credentials(BTreeMap<String, String>);

impl Credentials {
    pub fn new(fields: BTreeMap<String, String>) -> Self {
        Self(fields)
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn field_names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }

    /// These credentials with `fields` set (a token a connector obtained).
    pub fn with(&self, fields: &[(&str, &str)]) -> Self {
        let mut all = self.0.clone();
        for (name, value) in fields {
            all.insert((*name).to_owned(), (*value).to_owned());
        }
        Self(all)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What a connection is, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub workspace_id: String,
    pub name: String,
    pub app: App,
    /// Where requests go instead of the app's default host (a sandbox, a
    /// regional endpoint, a local imitation in tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The credentials' field names, to show what is set.
    pub fields: Vec<String>,
    /// Where the vault keeps the credentials: new on every rotation, so a
    /// rotation never overwrites what a running step may be reading.
    pub secret_ref: String,
    pub created_at: DateTime<Utc>,
    pub rotated_at: DateTime<Utc>,
}

impl Connection {
    /// The API's view: never the credentials, nor where they are kept.
    pub fn view(&self) -> Value {
        json!({
            "name": self.name,
            "app": self.app,
            "base_url": self.base_url,
            "credentials": self.fields.iter().map(|f| (f.clone(), json!("set"))).collect::<serde_json::Map<_, _>>(),
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
        })
    }
}

/// Connections' metadata. Every write is conditional, so two administrators
/// racing cannot leave a connection pointing at credentials nobody wrote.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection; `false` when the name is taken.
    async fn create(&self, connection: &Connection) -> PortResult<bool>;
    async fn get(&self, workspace_id: &str, name: &str) -> PortResult<Option<Connection>>;
    /// A workspace's connections by name (at most [`MAX_CONNECTIONS`]).
    async fn list(&self, workspace_id: &str) -> PortResult<Vec<Connection>>;
    /// Replaces a connection if its credentials are still `previous_ref`;
    /// `false` when another rotation or a deletion came first.
    async fn replace(&self, connection: &Connection, previous_ref: &str) -> PortResult<bool>;
    /// Deletes a connection, answering what it was.
    async fn delete(&self, workspace_id: &str, name: &str) -> PortResult<Option<Connection>>;
}

/// Where credentials are kept, by reference.
#[async_trait]
pub trait SecretVault: Send + Sync {
    async fn put(&self, secret_ref: &str, credentials: &Credentials) -> PortResult<()>;
    async fn get(&self, secret_ref: &str) -> PortResult<Option<Credentials>>;
    /// Replaces what is kept under `secret_ref`, only if something is: a
    /// token written back must not bring back credentials a rotation
    /// deleted. `false` when nothing was there.
    async fn replace(&self, secret_ref: &str, credentials: &Credentials) -> PortResult<bool>;
    /// Deleting what is not there is not an error.
    async fn delete(&self, secret_ref: &str) -> PortResult<()>;
}

/// A connection name: 1 to 64 of `a-z 0-9 - _`, starting with a letter or digit.
pub fn is_connection_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
