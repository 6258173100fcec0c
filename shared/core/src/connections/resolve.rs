//! What a connector action calls to reach its app: the connection and its
//! credentials, read once and kept for [`CREDENTIALS_TTL`] so that a busy
//! step function does not read the vault on every step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use super::{App, Connection, ConnectionStore, Credentials, SecretVault};
use crate::ports::{Clock, PortError};

/// How long resolved credentials are reused. A rotation reaches a running
/// function within it, or at once when the app refuses the old credentials
/// (the connector forgets them and resolves again).
pub const CREDENTIALS_TTL: Duration = Duration::minutes(5);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// Terminal: the step names a connection the workspace does not have.
    #[error("no connection named {0:?} in this workspace; create it with `hookflow connections create`")]
    NotFound(String),
    /// Terminal: a Mailchimp step naming a Braze connection.
    #[error("connection {name:?} is a {found} connection; this step needs a {expected} one")]
    WrongApp { name: String, expected: App, found: App },
    /// Retryable or not as the store says: the step is interrupted, not failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// A connection ready to use: where to send, and with what.
#[derive(Debug)]
pub struct ResolvedConnection {
    pub connection: Connection,
    pub credentials: Credentials,
    /// The connection's `base_url`, or the app's default, without a trailing `/`.
    pub base_url: String,
}

/// Resolved connections by (workspace, name), with when each goes stale.
type Cache = HashMap<(String, String), (DateTime<Utc>, Arc<ResolvedConnection>)>;

pub struct ConnectionResolver {
    store: Arc<dyn ConnectionStore>,
    vault: Arc<dyn SecretVault>,
    clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
}

impl ConnectionResolver {
    pub fn new(store: Arc<dyn ConnectionStore>, vault: Arc<dyn SecretVault>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            vault,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn resolve(
        &self,
        workspace_id: &str,
        name: &str,
        app: App,
    ) -> Result<Arc<ResolvedConnection>, ResolveError> {
        let key = (workspace_id.to_owned(), name.to_owned());
        let now = self.clock.now();
        let cached = self
            .lock()
            .get(&key)
            .filter(|(until, _)| *until > now)
            .map(|(_, r)| r.clone());
        let resolved = match cached {
            Some(resolved) => resolved,
            None => {
                let resolved = Arc::new(self.read(workspace_id, name).await?);
                self.lock().insert(key, (now + CREDENTIALS_TTL, resolved.clone()));
                resolved
            }
        };
        if resolved.connection.app != app {
            return Err(ResolveError::WrongApp {
                name: name.to_owned(),
                expected: app,
                found: resolved.connection.app,
            });
        }
        Ok(resolved)
    }

    /// Keeps credentials a connector extended (a Salesforce access token):
    /// in this process at once, and in the vault for the other functions,
    /// unless a rotation replaced the credentials meanwhile.
    pub async fn write_back(&self, resolved: &ResolvedConnection, credentials: Credentials) -> Result<(), PortError> {
        let connection = &resolved.connection;
        let updated = Arc::new(ResolvedConnection {
            connection: connection.clone(),
            credentials: credentials.clone(),
            base_url: resolved.base_url.clone(),
        });
        let key = (connection.workspace_id.clone(), connection.name.clone());
        if let Some(entry) = self.lock().get_mut(&key) {
            if entry.1.connection.secret_ref == connection.secret_ref {
                entry.1 = updated;
            }
        }
        self.vault
            .replace(&connection.secret_ref, &credentials)
            .await
            .map(|_| ())
    }

    /// Drops what is kept of a connection: the app refused its credentials,
    /// which may have been rotated since they were read.
    pub fn forget(&self, workspace_id: &str, name: &str) {
        self.lock().remove(&(workspace_id.to_owned(), name.to_owned()));
    }

    async fn read(&self, workspace_id: &str, name: &str) -> Result<ResolvedConnection, ResolveError> {
        let connection = self
            .store
            .get(workspace_id, name)
            .await?
            .ok_or_else(|| ResolveError::NotFound(name.to_owned()))?;
        // A rotation deletes the old credentials after pointing the
        // connection at the new: reading in between finds nothing, and the
        // next delivery reads the new ones.
        let credentials = self.vault.get(&connection.secret_ref).await?.ok_or_else(|| {
            PortError::retryable(
                "resolve_connection",
                format!("the credentials of {name:?} are being rotated"),
            )
        })?;
        let base_url = connection
            .base_url
            .clone()
            .or_else(|| connection.app.default_base_url(&credentials))
            .ok_or_else(|| PortError::terminal("resolve_connection", format!("connection {name:?} has no base_url")))?
            .trim_end_matches('/')
            .to_owned();
        Ok(ResolvedConnection {
            connection,
            credentials,
            base_url,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
