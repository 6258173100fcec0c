//! The twin of the outbound store: endpoints, messages, the failed index
//! and the attempt log, each keyed as the DynamoDB items are.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::outbound::{attempt_position, AttemptPage, DeliveryAttempt, Endpoint, OutboundMessage, OutboundStore};
use crate::ports::PortResult;

type EndpointKey = (String, String);

#[derive(Default)]
struct Tables {
    endpoints: BTreeMap<EndpointKey, Endpoint>,
    messages: BTreeMap<(EndpointKey, String), OutboundMessage>,
    /// (endpoint, created µs, message id)
    failed: BTreeMap<EndpointKey, BTreeMap<(i64, String), ()>>,
    /// (endpoint) → position → attempt
    attempts: BTreeMap<EndpointKey, BTreeMap<String, DeliveryAttempt>>,
}

#[derive(Default)]
pub struct MemoryOutbound {
    tables: Mutex<Tables>,
}

impl MemoryOutbound {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn key(workspace_id: &str, endpoint_id: &str) -> EndpointKey {
    (workspace_id.to_owned(), endpoint_id.to_owned())
}

#[async_trait]
impl OutboundStore for MemoryOutbound {
    async fn create_endpoint(&self, endpoint: &Endpoint) -> PortResult<bool> {
        let mut tables = self.lock();
        let k = key(&endpoint.workspace_id, &endpoint.id);
        if tables.endpoints.contains_key(&k) {
            return Ok(false);
        }
        tables.endpoints.insert(k, endpoint.clone());
        Ok(true)
    }

    async fn replace_endpoint(&self, endpoint: &Endpoint, read_revision: u64) -> PortResult<bool> {
        let mut tables = self.lock();
        match tables.endpoints.get_mut(&key(&endpoint.workspace_id, &endpoint.id)) {
            Some(stored) if stored.revision == read_revision => {
                *stored = endpoint.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_endpoint(&self, workspace_id: &str, endpoint_id: &str) -> PortResult<Option<Endpoint>> {
        Ok(self.lock().endpoints.get(&key(workspace_id, endpoint_id)).cloned())
    }

    async fn list_endpoints(&self, workspace_id: &str) -> PortResult<Vec<Endpoint>> {
        Ok(self
            .lock()
            .endpoints
            .values()
            .filter(|e| e.workspace_id == workspace_id)
            .cloned()
            .collect())
    }

    async fn delete_endpoint(&self, workspace_id: &str, endpoint_id: &str) -> PortResult<()> {
        self.lock().endpoints.remove(&key(workspace_id, endpoint_id));
        Ok(())
    }

    async fn create_message(&self, message: &OutboundMessage) -> PortResult<Option<OutboundMessage>> {
        let mut tables = self.lock();
        let k = (key(&message.workspace_id, &message.endpoint_id), message.id.clone());
        if let Some(existing) = tables.messages.get(&k) {
            return Ok(Some(existing.clone()));
        }
        tables.messages.insert(k, message.clone());
        Ok(None)
    }

    async fn get_message(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        message_id: &str,
    ) -> PortResult<Option<OutboundMessage>> {
        Ok(self
            .lock()
            .messages
            .get(&(key(workspace_id, endpoint_id), message_id.to_owned()))
            .cloned())
    }

    async fn replace_message(&self, message: &OutboundMessage, read_version: u64) -> PortResult<bool> {
        let mut tables = self.lock();
        let k = (key(&message.workspace_id, &message.endpoint_id), message.id.clone());
        match tables.messages.get_mut(&k) {
            Some(stored) if stored.version == read_version => {
                *stored = message.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn index_failed(&self, message: &OutboundMessage, failed: bool) -> PortResult<()> {
        let mut tables = self.lock();
        let index = tables
            .failed
            .entry(key(&message.workspace_id, &message.endpoint_id))
            .or_default();
        let entry = (message.created_at.timestamp_micros(), message.id.clone());
        if failed {
            index.insert(entry, ());
        } else {
            index.remove(&entry);
        }
        Ok(())
    }

    async fn failed_since(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<String>> {
        let tables = self.lock();
        let Some(index) = tables.failed.get(&key(workspace_id, endpoint_id)) else {
            return Ok(vec![]);
        };
        Ok(index
            .range((since.timestamp_micros(), String::new())..)
            .take(limit)
            .map(|((_, id), ())| id.clone())
            .collect())
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> PortResult<()> {
        self.lock()
            .attempts
            .entry(key(&attempt.workspace_id, &attempt.endpoint_id))
            .or_default()
            .insert(attempt_position(attempt), attempt.clone());
        Ok(())
    }

    async fn list_attempts(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> PortResult<AttemptPage> {
        let tables = self.lock();
        let Some(log) = tables.attempts.get(&key(workspace_id, endpoint_id)) else {
            return Ok(AttemptPage::default());
        };
        let newest_first: Vec<(&String, &DeliveryAttempt)> = match before {
            Some(position) => log
                .range::<str, _>((std::ops::Bound::Unbounded, std::ops::Bound::Excluded(position)))
                .rev()
                .take(limit + 1)
                .collect(),
            None => log.iter().rev().take(limit + 1).collect(),
        };
        let more = newest_first.len() > limit;
        let attempts: Vec<DeliveryAttempt> = newest_first.iter().take(limit).map(|(_, a)| (*a).clone()).collect();
        let next = more.then(|| attempts.last().map(attempt_position)).flatten();
        Ok(AttemptPage { attempts, next })
    }
}
