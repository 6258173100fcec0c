//! The twins of the connection store and the secret vault. `hookflow dev`
//! keeps both in a file by snapshotting them after every change
//! ([`MemoryConnections::snapshot`], [`MemoryVault::snapshot`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::connections::{Connection, ConnectionStore, Credentials, SecretVault, MAX_CONNECTIONS};
use crate::ports::PortResult;

#[derive(Default)]
pub struct MemoryConnections {
    by_name: Mutex<BTreeMap<(String, String), Connection>>,
}

impl MemoryConnections {
    pub fn restore(connections: Vec<Connection>) -> Self {
        let by_name = connections
            .into_iter()
            .map(|c| ((c.workspace_id.clone(), c.name.clone()), c))
            .collect();
        Self {
            by_name: Mutex::new(by_name),
        }
    }

    pub fn snapshot(&self) -> Vec<Connection> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Connection>> {
        self.by_name.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnections {
    async fn create(&self, connection: &Connection) -> PortResult<bool> {
        let key = (connection.workspace_id.clone(), connection.name.clone());
        let mut all = self.lock();
        if all.contains_key(&key) {
            return Ok(false);
        }
        all.insert(key, connection.clone());
        Ok(true)
    }

    async fn get(&self, workspace_id: &str, name: &str) -> PortResult<Option<Connection>> {
        Ok(self.lock().get(&(workspace_id.to_owned(), name.to_owned())).cloned())
    }

    async fn list(&self, workspace_id: &str) -> PortResult<Vec<Connection>> {
        Ok(self
            .lock()
            .range((workspace_id.to_owned(), String::new())..)
            .take_while(|((ws, _), _)| ws == workspace_id)
            .take(MAX_CONNECTIONS)
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn replace(&self, connection: &Connection, previous_ref: &str) -> PortResult<bool> {
        let key = (connection.workspace_id.clone(), connection.name.clone());
        let mut all = self.lock();
        match all.get_mut(&key) {
            Some(current) if current.secret_ref == previous_ref => {
                *current = connection.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, workspace_id: &str, name: &str) -> PortResult<Option<Connection>> {
        Ok(self.lock().remove(&(workspace_id.to_owned(), name.to_owned())))
    }
}

#[derive(Default)]
pub struct MemoryVault {
    secrets: Mutex<BTreeMap<String, Credentials>>,
}

impl MemoryVault {
    pub fn restore(secrets: BTreeMap<String, Credentials>) -> Self {
        Self {
            secrets: Mutex::new(secrets),
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, Credentials> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Credentials>> {
        self.secrets.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SecretVault for MemoryVault {
    async fn put(&self, secret_ref: &str, credentials: &Credentials) -> PortResult<()> {
        self.lock().insert(secret_ref.to_owned(), credentials.clone());
        Ok(())
    }

    async fn get(&self, secret_ref: &str) -> PortResult<Option<Credentials>> {
        Ok(self.lock().get(secret_ref).cloned())
    }

    async fn replace(&self, secret_ref: &str, credentials: &Credentials) -> PortResult<bool> {
        Ok(match self.lock().get_mut(secret_ref) {
            Some(kept) => {
                *kept = credentials.clone();
                true
            }
            None => false,
        })
    }

    async fn delete(&self, secret_ref: &str) -> PortResult<()> {
        self.lock().remove(secret_ref);
        Ok(())
    }
}
