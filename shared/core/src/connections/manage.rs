//! The management API's use case: create, list, show, rotate and delete
//! connections. Credentials go into the vault before the metadata that
//! points at them, and a write that loses a race takes its own credentials
//! back out, so no connection ever points at credentials that are not there.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{is_connection_name, App, Connection, ConnectionStore, Credentials, SecretVault, MAX_CONNECTIONS};
use crate::ports::{Clock, PortError};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectionError {
    #[error("{0}")]
    Invalid(String),
    #[error("no connection named {0:?}")]
    NotFound(String),
    #[error("a connection named {0:?} exists; rotate its credentials or delete it first")]
    NameTaken(String),
    #[error("the workspace has {MAX_CONNECTIONS} connections, the most it may have")]
    TooMany,
    #[error("connection {0:?} changed while this request ran; try again")]
    Changed(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl ConnectionError {
    pub fn code(&self) -> &'static str {
        match self {
            ConnectionError::Invalid(_) => "invalid_connection",
            ConnectionError::NotFound(_) => "connection_not_found",
            ConnectionError::NameTaken(_) => "connection_exists",
            ConnectionError::TooMany => "too_many_connections",
            ConnectionError::Changed(_) => "connection_changed",
            ConnectionError::Port(_) => "store_unavailable",
        }
    }
}

pub type ConnectionResult<T> = Result<T, ConnectionError>;

/// `POST …/connections`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRequest {
    pub name: String,
    pub app: App,
    pub credentials: Credentials,
    #[serde(default)]
    pub base_url: Option<String>,
}

/// `POST …/connections/{name}/rotate`: new credentials, and a new host if given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    pub credentials: Credentials,
    #[serde(default)]
    pub base_url: Option<String>,
}

pub struct Connections {
    store: Arc<dyn ConnectionStore>,
    vault: Arc<dyn SecretVault>,
    clock: Arc<dyn Clock>,
}

impl Connections {
    pub fn new(store: Arc<dyn ConnectionStore>, vault: Arc<dyn SecretVault>, clock: Arc<dyn Clock>) -> Self {
        Self { store, vault, clock }
    }

    pub async fn create(&self, workspace_id: &str, request: ConnectionRequest) -> ConnectionResult<Connection> {
        if !is_connection_name(&request.name) {
            return Err(ConnectionError::Invalid(
                "name must be 1 to 64 of a-z 0-9 - _, starting with a letter or digit".into(),
            ));
        }
        check_settings(request.app, &request.credentials, request.base_url.as_deref())?;
        if self.store.list(workspace_id).await?.len() >= MAX_CONNECTIONS {
            return Err(ConnectionError::TooMany);
        }
        let now = self.clock.now();
        let connection = Connection {
            workspace_id: workspace_id.to_owned(),
            name: request.name,
            app: request.app,
            base_url: request.base_url,
            fields: request.credentials.field_names(),
            secret_ref: new_secret_ref(workspace_id, now),
            created_at: now,
            rotated_at: now,
        };
        self.vault.put(&connection.secret_ref, &request.credentials).await?;
        if !self.store.create(&connection).await? {
            self.vault.delete(&connection.secret_ref).await?;
            return Err(ConnectionError::NameTaken(connection.name));
        }
        tracing::info!(workspace_id, connection = %connection.name, app = %connection.app, "connection created");
        Ok(connection)
    }

    pub async fn list(&self, workspace_id: &str) -> ConnectionResult<Vec<Connection>> {
        Ok(self.store.list(workspace_id).await?)
    }

    pub async fn get(&self, workspace_id: &str, name: &str) -> ConnectionResult<Connection> {
        self.store
            .get(workspace_id, name)
            .await?
            .ok_or_else(|| ConnectionError::NotFound(name.to_owned()))
    }

    /// New credentials under a new reference; the old ones are deleted once
    /// nothing points at them. Steps already holding the old ones finish
    /// with them, and a running function picks the new ones up within
    /// [`super::CREDENTIALS_TTL`], or at once when the app refuses the old.
    pub async fn rotate(&self, workspace_id: &str, name: &str, request: RotateRequest) -> ConnectionResult<Connection> {
        let current = self.get(workspace_id, name).await?;
        let base_url = request.base_url.or_else(|| current.base_url.clone());
        check_settings(current.app, &request.credentials, base_url.as_deref())?;
        let now = self.clock.now();
        let rotated = Connection {
            base_url,
            fields: request.credentials.field_names(),
            secret_ref: new_secret_ref(workspace_id, now),
            rotated_at: now,
            ..current.clone()
        };
        self.vault.put(&rotated.secret_ref, &request.credentials).await?;
        if !self.store.replace(&rotated, &current.secret_ref).await? {
            self.vault.delete(&rotated.secret_ref).await?;
            return Err(ConnectionError::Changed(name.to_owned()));
        }
        self.discard(workspace_id, &current.secret_ref).await;
        tracing::info!(workspace_id, connection = name, "connection credentials rotated");
        Ok(rotated)
    }

    pub async fn delete(&self, workspace_id: &str, name: &str) -> ConnectionResult<Connection> {
        let deleted = self
            .store
            .delete(workspace_id, name)
            .await?
            .ok_or_else(|| ConnectionError::NotFound(name.to_owned()))?;
        self.discard(workspace_id, &deleted.secret_ref).await;
        tracing::info!(workspace_id, connection = name, "connection deleted");
        Ok(deleted)
    }

    /// Deletes credentials nothing points at any more. The change is made
    /// by then, so a failure is logged, not answered: the caller must not
    /// see an error and retry a change that happened.
    async fn discard(&self, workspace_id: &str, secret_ref: &str) {
        if let Err(err) = self.vault.delete(secret_ref).await {
            tracing::error!(workspace_id, secret_ref, error = %err, "old credentials not deleted from the vault");
        }
    }
}

/// `<workspace>/<ulid>`: unique, and names nothing a reader could guess.
fn new_secret_ref(workspace_id: &str, now: DateTime<Utc>) -> String {
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or_default();
    format!("{workspace_id}/{}", ulid::Ulid::from_parts(millis, random_u128()))
}

fn random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    // A failed read of the OS's randomness leaves zeros, which the
    // timestamp still makes unique enough for a reference (not a secret).
    let _ = getrandom::fill(&mut bytes);
    u128::from_le_bytes(bytes)
}

fn check_settings(app: App, credentials: &Credentials, base_url: Option<&str>) -> ConnectionResult<()> {
    let mut problems = app.credential_problems(credentials);
    match base_url {
        Some(url) => problems.extend(base_url_problem(url)),
        None if app.default_base_url(credentials).is_none() => problems.push(format!(
            "base_url is required for {app}: its REST endpoint, like https://rest.iad-01.braze.com"
        )),
        None => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConnectionError::Invalid(problems.join("; ")))
    }
}

/// Credentials travel only over TLS, except to this machine (tests and
/// local imitations).
pub fn base_url_problem(url: &str) -> Option<String> {
    let parsed = match crate::web_url::https_or_loopback(url, "base_url") {
        Ok(parsed) => parsed,
        Err(problem) => return Some(problem),
    };
    if crate::web_url::has_credentials(&parsed) {
        return Some("base_url must not carry credentials; put them in credentials".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Some("base_url must not have a query or a fragment".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_need_tls_except_to_this_machine() {
        assert_eq!(base_url_problem("https://rest.iad-01.braze.com"), None);
        assert_eq!(base_url_problem("http://127.0.0.1:8080/x"), None);
        assert_eq!(base_url_problem("http://localhost:9"), None);
        assert!(base_url_problem("http://rest.braze.com").is_some());
        assert!(base_url_problem("http://10.0.0.1").is_some());
        assert!(base_url_problem("https://u:p@host").is_some());
        assert!(base_url_problem("https://host/?a=1").is_some());
        assert!(base_url_problem("ftp://host").is_some());
    }
}
