//! Who may call what (brief §7): workspace API keys with one role each, and
//! the audit trail of management writes.
//!
//! A key reads `hfk_<id>_<secret>`: the id is a lookup prefix (16 hex
//! digits), the secret 32 random bytes. Only the SHA-256 of the whole key is
//! stored; a fast hash is enough because the secret is random, not a
//! password. Hashes are compared in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ports::{Clock, PortError, PortResult};

/// The stored format of a key and of an audit entry (brief §10).
pub const ACCESS_FORMAT: u32 = 1;

/// How long a key lookup may be served from the per-process cache, and so
/// the longest a revoked key keeps working elsewhere.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// Cached lookups beyond this are dropped all at once, so a flood of made-up
/// key ids cannot grow the cache without bound.
const KEY_CACHE_CAPACITY: usize = 10_000;

const KEY_PREFIX: &str = "hfk_";
const KEY_ID_BYTES: usize = 8;
const KEY_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Ingest,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Ingest, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The role table of brief §7: `admin` may everything; `operator` reads
    /// and runs the on-call actions; `ingest` only sends events.
    pub fn may(self, permission: Permission) -> bool {
        matches!(
            (self, permission),
            (
                Self::Admin,
                Permission::Ingest | Permission::Operate | Permission::Administer
            ) | (Self::Operator, Permission::Operate)
                | (Self::Ingest, Permission::Ingest)
        )
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `POST /v1/events`.
    Ingest,
    /// Reads (never secrets) and the on-call actions.
    Operate,
    /// Every write, and keys and the audit trail.
    Administer,
    /// `hookflow dev`'s own operator routes, which cross workspaces: the
    /// local developer's only, never a key's.
    LocalDevelopment,
}

/// A stored API key: never the key itself, only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub format: u32,
    pub id: String,
    pub workspace_id: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Hex SHA-256 of the whole `hfk_…` key.
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// What `keys list` shows: everything but the hash.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "workspace_id": self.workspace_id,
            "role": self.role,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        })
    }

    fn matches(&self, presented: &str) -> bool {
        let hash = hash_key(presented);
        bool::from(hash.as_bytes().ct_eq(self.secret_hash.as_bytes()))
    }
}

/// A key just made: `secret` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    Key {
        key_id: String,
        workspace_id: String,
        role: Role,
    },
    /// A key-less request to `hookflow dev` on loopback: the local developer.
    LocalDeveloper,
    /// The CLI with the operator's AWS credentials (`hookflow keys create --aws`).
    AwsCredentials,
}

impl Actor {
    /// Allowed, or why not (403).
    pub fn authorize(&self, permission: Permission, workspace_id: Option<&str>) -> Result<(), AccessError> {
        let Self::Key {
            workspace_id: own,
            role,
            ..
        } = self
        else {
            return Ok(());
        };
        if let Some(workspace_id) = workspace_id.filter(|ws| *ws != own) {
            return Err(AccessError::Forbidden(format!(
                "this key belongs to workspace {own:?}, not {workspace_id:?}"
            )));
        }
        if permission == Permission::LocalDevelopment {
            return Err(AccessError::Forbidden(
                "hookflow dev's own routes serve the local developer only (key-less, on loopback)".to_owned(),
            ));
        }
        if !role.may(permission) {
            return Err(AccessError::Forbidden(format!(
                "a key with role {:?} may not do this",
                role.as_str()
            )));
        }
        Ok(())
    }

    /// The id recorded in the audit trail.
    pub fn audit_name(&self) -> String {
        match self {
            Self::Key { key_id, .. } => key_id.clone(),
            Self::LocalDeveloper => "local-developer".to_owned(),
            Self::AwsCredentials => "aws-credentials".to_owned(),
        }
    }
}

/// One management write, or one export of contacts' personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub format: u32,
    /// Unique, and orders entries made in the same microsecond.
    pub id: String,
    pub workspace_id: String,
    pub at: DateTime<Utc>,
    /// The key id, `local-developer` or `aws-credentials`.
    pub actor: String,
    /// The method and route, e.g. `POST /v1/workspaces/{workspace_id}/workflows/{workflow_id}/publish`.
    pub action: String,
    /// The path written to, with its query if it had one (what an export
    /// selected, whom a site was handed to).
    pub target: String,
}

impl AuditEntry {
    pub fn new(workspace_id: &str, at: DateTime<Utc>, actor: &Actor, action: String, target: String) -> Self {
        Self {
            format: ACCESS_FORMAT,
            id: next_entry_id(),
            workspace_id: workspace_id.to_owned(),
            at,
            actor: actor.audit_name(),
            action,
            target,
        }
    }

    /// Newest first: time, then id. Also the cursor of the list.
    pub fn list_position(&self) -> String {
        format!("{:020}|{}", self.at.timestamp_micros(), self.id)
    }
}

/// Increasing within this process, even within one millisecond, so entries
/// of the same instant keep the order they were made in.
fn next_entry_id() -> String {
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    generator
        .get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// A page of the audit trail, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key (its id is fresh; an existing id is refused).
    async fn put_key(&self, key: &ApiKey) -> PortResult<()>;
    async fn get_key(&self, key_id: &str) -> PortResult<Option<ApiKey>>;
    /// Every key of a workspace, revoked ones included, newest first.
    async fn list_keys(&self, workspace_id: &str) -> PortResult<Vec<ApiKey>>;
    /// Marks a key of this workspace revoked; `None` when it has no such key.
    /// Revoking twice keeps the first time.
    async fn revoke_key(&self, workspace_id: &str, key_id: &str, at: DateTime<Utc>) -> PortResult<Option<ApiKey>>;
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: &AuditEntry) -> PortResult<()>;
    /// Newest first; `cursor` is the `list_position` of the last entry seen.
    async fn list(&self, workspace_id: &str, limit: usize, cursor: Option<&str>) -> PortResult<AuditPage>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccessError {
    /// 401: no key, a malformed one, an unknown one or a revoked one. The
    /// reason stays vague on purpose: it is for a caller without a key.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// 403: a real key that may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("no key {0:?} in this workspace")]
    KeyNotFound(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("{0}")]
    InvalidId(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl AccessError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::KeyNotFound(_) => "key_not_found",
            Self::InvalidKey(_) => "invalid_key",
            Self::InvalidId(_) => "invalid_id",
            Self::Port(_) => "unavailable",
        }
    }
}

/// Hex SHA-256 of a whole key.
fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The lookup id of a well-formed `hfk_<id>_<secret>` key.
pub fn key_id_of(key: &str) -> Option<&str> {
    let (id, secret) = key.strip_prefix(KEY_PREFIX)?.split_once('_')?;
    let id_ok = id.len() == KEY_ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let secret_ok = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .is_ok_and(|bytes| bytes.len() == KEY_SECRET_BYTES);
    (id_ok && secret_ok).then_some(id)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AccessError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|err| PortError::retryable("random", err.to_string()))?;
    Ok(bytes)
}

/// The key use cases and the check every route makes.
pub struct Access {
    keys: Arc<dyn KeyStore>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    cache: Mutex<KeyCache>,
}

/// Key id → the key found (or none) and when it was read.
type KeyCache = HashMap<String, (Option<ApiKey>, DateTime<Utc>)>;

impl Access {
    pub fn new(keys: Arc<dyn KeyStore>, audit: Arc<dyn AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys,
            audit,
            clock,
            cache: Mutex::default(),
        }
    }

    /// Makes a key; its secret is in the answer and nowhere else.
    pub async fn create_key(
        &self,
        workspace_id: &str,
        role: Role,
        name: Option<String>,
    ) -> Result<MintedKey, AccessError> {
        let id: String = random_bytes::<KEY_ID_BYTES>()?
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<KEY_SECRET_BYTES>()?);
        self.store_key(workspace_id, role, name, format!("{KEY_PREFIX}{id}_{secret}"))
            .await
    }

    /// Stores a key chosen by the operator (`HOOKFLOW_BOOTSTRAP_KEY`). It
    /// must have the shape of a made key, with as much randomness.
    /// Importing the same key again (a restart) is a no-op.
    pub async fn import_key(
        &self,
        workspace_id: &str,
        role: Role,
        name: Option<String>,
        secret: &str,
    ) -> Result<MintedKey, AccessError> {
        let Some(id) = key_id_of(secret) else {
            return Err(AccessError::InvalidKey(
                "a key reads hfk_<16 lowercase hex digits>_<32 bytes in unpadded base64url>".to_owned(),
            ));
        };
        if let Some(existing) = self.keys.get_key(id).await? {
            let same = existing.matches(secret)
                && existing.workspace_id == workspace_id
                && existing.role == role
                && existing.revoked_at.is_none();
            if !same {
                return Err(AccessError::InvalidKey(format!(
                    "key {id} exists already with another secret, workspace or role, or is revoked"
                )));
            }
            return Ok(MintedKey {
                key: existing,
                secret: secret.to_owned(),
            });
        }
        self.store_key(workspace_id, role, name, secret.to_owned()).await
    }

    async fn store_key(
        &self,
        workspace_id: &str,
        role: Role,
        name: Option<String>,
        secret: String,
    ) -> Result<MintedKey, AccessError> {
        if !crate::validate::is_valid_id(workspace_id) {
            return Err(AccessError::InvalidId(format!(
                "workspace id {workspace_id:?} must be 1 to 64 letters, digits, '_' or '-'"
            )));
        }
        let id = key_id_of(&secret).unwrap_or_default().to_owned();
        let key = ApiKey {
            format: ACCESS_FORMAT,
            id,
            workspace_id: workspace_id.to_owned(),
            role,
            name,
            secret_hash: hash_key(&secret),
            created_at: self.clock.now(),
            revoked_at: None,
        };
        self.keys.put_key(&key).await?;
        Ok(MintedKey { key, secret })
    }

    pub async fn list_keys(&self, workspace_id: &str) -> Result<Vec<ApiKey>, AccessError> {
        Ok(self.keys.list_keys(workspace_id).await?)
    }

    /// Revoked here at once; other processes notice within [`KEY_CACHE_TTL`].
    pub async fn revoke_key(&self, workspace_id: &str, key_id: &str) -> Result<ApiKey, AccessError> {
        let revoked = self
            .keys
            .revoke_key(workspace_id, key_id, self.clock.now())
            .await?
            .ok_or_else(|| AccessError::KeyNotFound(key_id.to_owned()))?;
        self.cache_lock().remove(key_id);
        Ok(revoked)
    }

    /// The actor behind an `Authorization` header value, or 401.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Actor, AccessError> {
        let presented = authorization
            .ok_or(AccessError::Unauthenticated(
                "an API key is required: Authorization: Bearer hfk_…",
            ))?
            .strip_prefix("Bearer ")
            .ok_or(AccessError::Unauthenticated(
                "the Authorization header must read Bearer hfk_…",
            ))?
            .trim();
        let id = key_id_of(presented).ok_or(AccessError::Unauthenticated("the API key is not valid"))?;
        let key = self.lookup(id).await?;
        match key {
            Some(key) if key.revoked_at.is_none() && key.matches(presented) => Ok(Actor::Key {
                key_id: key.id,
                workspace_id: key.workspace_id,
                role: key.role,
            }),
            _ => Err(AccessError::Unauthenticated("the API key is not valid")),
        }
    }

    async fn lookup(&self, id: &str) -> Result<Option<ApiKey>, AccessError> {
        let now = self.clock.now();
        let fresh = |fetched: DateTime<Utc>| (now - fetched).to_std().is_ok_and(|age| age < KEY_CACHE_TTL);
        if let Some((key, fetched)) = self.cache_lock().get(id) {
            if fresh(*fetched) {
                return Ok(key.clone());
            }
        }
        let key = self.keys.get_key(id).await?;
        let mut cache = self.cache_lock();
        if cache.len() >= KEY_CACHE_CAPACITY {
            // Made-up ids go first, so a flood of them does not push real
            // keys out.
            cache.retain(|_, (key, _)| key.is_some());
            if cache.len() >= KEY_CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(id.to_owned(), (key.clone(), now));
        Ok(key)
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        // A panic while holding the lock cannot leave the map half-written.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub async fn record(
        &self,
        workspace_id: &str,
        actor: &Actor,
        action: String,
        target: String,
    ) -> Result<(), AccessError> {
        let entry = AuditEntry::new(workspace_id, self.clock.now(), actor, action, target);
        Ok(self.audit.record(&entry).await?)
    }

    pub async fn audit_trail(
        &self,
        workspace_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<AuditPage, AccessError> {
        Ok(self.audit.list(workspace_id, limit, cursor).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_table_of_the_brief() {
        use Permission::*;
        let table: Vec<(Role, Vec<bool>)> = Role::ALL
            .iter()
            .map(|role| {
                (
                    *role,
                    [Ingest, Operate, Administer].iter().map(|p| role.may(*p)).collect(),
                )
            })
            .collect();
        assert_eq!(
            table,
            vec![
                (Role::Ingest, vec![true, false, false]),
                (Role::Operator, vec![false, true, false]),
                (Role::Admin, vec![true, true, true]),
            ]
        );
    }

    #[test]
    fn only_well_formed_keys_have_an_id() {
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let good = format!("hfk_0123456789abcdef_{secret}");
        assert_eq!(key_id_of(&good), Some("0123456789abcdef"));
        for bad in [
            format!("hfk_0123456789ABCDEF_{secret}"),
            format!("hfk_0123456789abcde_{secret}"),
            format!("hfx_0123456789abcdef_{secret}"),
            format!("hfk_0123456789abcdef_{}", &secret[1..]),
            "hfk_".to_owned(),
            String::new(),
        ] {
            assert_eq!(key_id_of(&bad), None, "{bad}");
        }
    }
}
