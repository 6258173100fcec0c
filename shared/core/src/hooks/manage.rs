//! The hook use cases behind `…/hooks` and `hookflow hooks`: create, read,
//! list, update, delete, rotate a secret and revoke an old one.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::auth::standard_webhooks_key;
use super::receive::DEFAULT_RATE_LIMIT;
use super::{
    EventIdSource, Hook, HookAuth, HookKind, HookSecret, HookStatus, HookStore, DEFAULT_HOOK_BODY_BYTES, HOOK_FORMAT,
    HOOK_ID_PREFIX, MAX_HOOK_BODY_BYTES,
};
use crate::catalogue::{check_trigger_type, is_hook_type};
use crate::ports::{Clock, PortError};
use crate::validate::is_valid_id;

/// How long a rotated-out secret keeps verifying by default.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// The longest overlap a rotation may ask for.
pub const MAX_ROTATION_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);
/// Live secrets a hook may hold: each costs an HMAC per request.
pub const MAX_LIVE_SECRETS: usize = 3;
/// Headers that carry credentials or signatures: never an event id, which
/// is echoed in answers and logs.
const SECRET_HEADERS: [&str; 8] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-shopify-hmac-sha256",
    "stripe-signature",
    "webhook-signature",
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HookError {
    #[error("hook {0:?} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the hook changed while this request ran; read it again and retry")]
    Conflict,
    #[error("secret {0:?} is the hook's only live secret; rotate first")]
    LastSecret(String),
    #[error("secret {0:?} does not exist on this hook")]
    SecretNotFound(String),
    #[error("the hook has {MAX_LIVE_SECRETS} live secrets already; revoke one first")]
    TooManySecrets,
    #[error(transparent)]
    Port(#[from] PortError),
}

impl HookError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "hook_not_found",
            Self::Invalid(_) => "invalid_hook",
            Self::Conflict => "conflict",
            Self::LastSecret(_) => "last_secret",
            Self::SecretNotFound(_) => "secret_not_found",
            Self::TooManySecrets => "too_many_secrets",
            Self::Port(_) => "unavailable",
        }
    }
}

type HookResult<T> = Result<T, HookError>;

fn invalid(message: impl Into<String>) -> HookError {
    HookError::Invalid(message.into())
}

/// `auth` as a request gives it: the mode, and the sender's own secret
/// (left out of `Debug`).
#[derive(Clone)]
pub struct AuthRequest {
    pub auth: HookAuth,
    pub secret: Option<String>,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("auth", &self.auth)
            .field("secret", &self.secret.as_ref().map(|_| crate::redact::REDACTED))
            .finish()
    }
}

impl<'de> Deserialize<'de> for AuthRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        let secret = match value.as_object_mut().and_then(|o| o.remove("secret")) {
            None | Some(Value::Null) => None,
            Some(Value::String(secret)) => Some(secret),
            Some(_) => return Err(serde::de::Error::custom("`auth.secret` must be a string")),
        };
        let auth = HookAuth::deserialize(value).map_err(serde::de::Error::custom)?;
        Ok(Self { auth, secret })
    }
}

/// `POST …/hooks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookRequest {
    pub name: String,
    pub kind: HookKind,
    /// `Hook.<name>` when absent.
    #[serde(default)]
    pub trigger_type: Option<String>,
    #[serde(default)]
    pub siteid: Option<String>,
    #[serde(default)]
    pub cardid: Option<String>,
    pub auth: AuthRequest,
    #[serde(default)]
    pub event_id: Option<EventIdSource>,
    #[serde(default)]
    pub status: Option<HookStatus>,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    #[serde(default)]
    pub rate_limit: Option<u32>,
    #[serde(default)]
    pub redirect_url: Option<String>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH …/hooks/{id}`: the fields given change; `null` clears an optional
/// one. The auth mode stays (rotate changes secrets; a new mode is a new hook).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookChange {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub trigger_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub siteid: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub cardid: Option<Option<String>>,
    #[serde(default)]
    pub event_id: Option<EventIdSource>,
    #[serde(default)]
    pub status: Option<HookStatus>,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    #[serde(default)]
    pub rate_limit: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pub redirect_url: Option<Option<String>>,
}

/// A hook with the secret just made: shown in this answer and never again
/// (and never in `Debug`).
#[derive(Clone)]
pub struct MintedHook {
    pub hook: Hook,
    /// (secret id, secret).
    pub secret: Option<(String, String)>,
}

impl std::fmt::Debug for MintedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedHook")
            .field("hook", &self.hook)
            .field(
                "secret",
                &self.secret.as_ref().map(|(id, _)| (id, crate::redact::REDACTED)),
            )
            .finish()
    }
}

pub struct Hooks {
    store: Arc<dyn HookStore>,
    clock: Arc<dyn Clock>,
}

fn random_hex<const N: usize>() -> HookResult<String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| PortError::retryable("random", e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A hook id as the public route accepts it: `hk_` and 32 lowercase hex digits.
pub fn is_hook_id(id: &str) -> bool {
    id.strip_prefix(HOOK_ID_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn new_secret(auth: &HookAuth) -> HookResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| PortError::retryable("random", e.to_string()))?;
    Ok(match auth {
        HookAuth::StandardWebhooks => format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
        _ => format!("hks_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)),
    })
}

fn check_secret(auth: &HookAuth, secret: &str) -> HookResult<()> {
    match auth {
        HookAuth::None => Err(invalid("`auth.secret` makes no sense with `auth.type` none")),
        HookAuth::StandardWebhooks => match standard_webhooks_key(secret.as_bytes()) {
            Some(key) if key.len() >= 16 => Ok(()),
            _ => Err(invalid(
                "a Standard Webhooks secret is `whsec_` and the base64 of at least 16 bytes",
            )),
        },
        _ if (16..=256).contains(&secret.len()) && !secret.chars().any(char::is_control) => Ok(()),
        _ => Err(invalid(
            "`auth.secret` must be 16 to 256 characters, with no control characters",
        )),
    }
}

fn check_auth(auth: &HookAuth) -> HookResult<()> {
    let token = |name: &str| {
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    match auth {
        HookAuth::Basic { username } if username.is_empty() || username.contains(':') => {
            Err(invalid("`auth.username` must be non-empty and without ':'"))
        }
        HookAuth::Hmac {
            preset: Some(_),
            header,
            prefix,
            encoding,
        } if header.is_some() || prefix.is_some() || encoding.is_some() => Err(invalid(
            "`auth.preset` fixes the header, prefix and encoding: give either a preset or those",
        )),
        HookAuth::Hmac {
            preset: None, header, ..
        } if !header.as_deref().is_some_and(token) => {
            Err(invalid("`auth.header` (a header name) is required without a preset"))
        }
        _ => Ok(()),
    }
}

fn check_id_field(field: &str, value: &Option<String>) -> HookResult<()> {
    match value {
        Some(id) if !is_valid_id(id) => Err(invalid(format!("`{field}` must be 1-64 characters of A-Z a-z 0-9 _ -"))),
        _ => Ok(()),
    }
}

/// The rules every stored hook keeps, checked after each create and change.
fn check_hook(hook: &Hook) -> HookResult<()> {
    if !is_valid_id(&hook.name) {
        return Err(invalid("`name` must be 1-64 characters of A-Z a-z 0-9 _ -"));
    }
    check_trigger_type(&hook.trigger_type).map_err(|e| invalid(format!("`trigger_type`: {e}")))?;
    check_id_field("siteid", &hook.siteid)?;
    check_id_field("cardid", &hook.cardid)?;
    check_auth(&hook.auth)?;
    if !(1..=MAX_HOOK_BODY_BYTES).contains(&hook.max_body_bytes) {
        return Err(invalid(format!("`max_body_bytes` must be 1 to {MAX_HOOK_BODY_BYTES}")));
    }
    if !(1..=10_000).contains(&hook.rate_limit) {
        return Err(invalid("`rate_limit` must be 1 to 10000 requests per second"));
    }
    match (&hook.redirect_url, hook.kind) {
        (Some(_), kind) if kind != HookKind::Form => Err(invalid("`redirect_url` is for form hooks")),
        (Some(url), _) if !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) => {
            Err(invalid("`redirect_url` must be an absolute http(s) URL"))
        }
        _ => Ok(()),
    }?;
    match &hook.event_id {
        EventIdSource::MessageId if hook.kind != HookKind::Email => {
            Err(invalid("`event_id` message_id is for email hooks"))
        }
        EventIdSource::Header(name) | EventIdSource::JsonPath(name) if name.is_empty() || name.len() > 200 => Err(
            invalid("`event_id` names a header or a JSON path of 1 to 200 characters"),
        ),
        EventIdSource::Header(name) if is_secret_header(&hook.auth, name) => Err(invalid(format!(
            "`event_id` cannot come from {name}: it carries a credential or a signature"
        ))),
        _ => Ok(()),
    }?;
    // Anyone may post to an open hook: it may not pass for the platform.
    if hook.auth == HookAuth::None && !is_hook_type(&hook.trigger_type) {
        return Err(invalid(
            "a hook with `auth.type` none may only emit `Hook.<name>` types, not catalogue events",
        ));
    }
    Ok(())
}

fn is_secret_header(auth: &HookAuth, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let own = match auth {
        HookAuth::Hmac {
            header: Some(header), ..
        } => header.eq_ignore_ascii_case(&name),
        _ => false,
    };
    own || SECRET_HEADERS.contains(&name.as_str())
}

impl Hooks {
    pub fn new(store: Arc<dyn HookStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    fn secret(&self, value: String) -> HookResult<HookSecret> {
        Ok(HookSecret {
            id: format!("hs_{}", random_hex::<8>()?),
            value,
            created_at: self.clock.now(),
            expires_at: None,
        })
    }

    pub async fn create(&self, workspace_id: &str, request: HookRequest) -> HookResult<MintedHook> {
        if !is_valid_id(workspace_id) {
            return Err(invalid("the workspace id must be 1-64 characters of A-Z a-z 0-9 _ -"));
        }
        let auth = request.auth.auth;
        let secret = match (&auth, request.auth.secret) {
            (HookAuth::None, None) => None,
            (_, Some(given)) => {
                check_secret(&auth, &given)?;
                Some(self.secret(given)?)
            }
            (_, None) => Some(self.secret(new_secret(&auth)?)?),
        };
        let now = self.clock.now();
        let hook = Hook {
            format: HOOK_FORMAT,
            id: format!("{HOOK_ID_PREFIX}{}", random_hex::<16>()?),
            workspace_id: workspace_id.to_owned(),
            trigger_type: request.trigger_type.unwrap_or_else(|| format!("Hook.{}", request.name)),
            name: request.name,
            kind: request.kind,
            siteid: request.siteid,
            cardid: request.cardid,
            event_id: request
                .event_id
                .unwrap_or_else(|| EventIdSource::default_for(request.kind, &auth)),
            auth,
            status: request.status.unwrap_or(HookStatus::Enabled),
            max_body_bytes: request.max_body_bytes.unwrap_or(DEFAULT_HOOK_BODY_BYTES),
            rate_limit: request.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT),
            redirect_url: request.redirect_url,
            secrets: secret.iter().cloned().collect(),
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        check_hook(&hook)?;
        self.store.create_hook(&hook).await?;
        tracing::info!(workspace_id, hook_id = %hook.id, kind = ?hook.kind, "hook created");
        Ok(MintedHook {
            hook,
            secret: secret.map(|s| (s.id, s.value)),
        })
    }

    /// A hook of this workspace (another workspace's reads as missing).
    pub async fn get(&self, workspace_id: &str, hook_id: &str) -> HookResult<Hook> {
        match self.store.get_hook(hook_id).await? {
            Some(hook) if hook.workspace_id == workspace_id => Ok(hook),
            _ => Err(HookError::NotFound(hook_id.to_owned())),
        }
    }

    pub async fn list(&self, workspace_id: &str) -> HookResult<Vec<Hook>> {
        Ok(self.store.list_hooks(workspace_id).await?)
    }

    /// Whether an enabled or disabled hook of the workspace emits `trigger_type`.
    pub async fn emits(&self, workspace_id: &str, trigger_type: &str) -> Result<bool, PortError> {
        Ok(self
            .store
            .list_hooks(workspace_id)
            .await?
            .iter()
            .any(|h| h.trigger_type == trigger_type))
    }

    async fn replace(&self, before: &Hook, mut after: Hook) -> HookResult<Hook> {
        after.revision = before.revision + 1;
        after.updated_at = self.clock.now();
        check_hook(&after)?;
        if !self.store.replace_hook(&after, before.revision).await? {
            return Err(HookError::Conflict);
        }
        Ok(after)
    }

    pub async fn update(&self, workspace_id: &str, hook_id: &str, change: HookChange) -> HookResult<Hook> {
        let before = self.get(workspace_id, hook_id).await?;
        let mut after = before.clone();
        if let Some(name) = change.name {
            after.name = name;
        }
        if let Some(trigger_type) = change.trigger_type {
            after.trigger_type = trigger_type;
        }
        if let Some(siteid) = change.siteid {
            after.siteid = siteid;
        }
        if let Some(cardid) = change.cardid {
            after.cardid = cardid;
        }
        if let Some(event_id) = change.event_id {
            after.event_id = event_id;
        }
        if let Some(status) = change.status {
            after.status = status;
        }
        if let Some(max) = change.max_body_bytes {
            after.max_body_bytes = max;
        }
        if let Some(rate) = change.rate_limit {
            after.rate_limit = rate;
        }
        if let Some(url) = change.redirect_url {
            after.redirect_url = url;
        }
        self.replace(&before, after).await
    }

    pub async fn delete(&self, workspace_id: &str, hook_id: &str) -> HookResult<()> {
        if !self.store.delete_hook(workspace_id, hook_id).await? {
            return Err(HookError::NotFound(hook_id.to_owned()));
        }
        tracing::info!(workspace_id, hook_id, "hook deleted");
        Ok(())
    }

    /// Adds a secret (the sender's, or a new one). The live secrets before it
    /// keep verifying for `overlap` (24 h by default), or until revoked.
    pub async fn rotate(
        &self,
        workspace_id: &str,
        hook_id: &str,
        secret: Option<String>,
        overlap: Option<Duration>,
    ) -> HookResult<MintedHook> {
        let before = self.get(workspace_id, hook_id).await?;
        if !before.auth.needs_secret() {
            return Err(invalid("a hook with `auth.type` none has no secret to rotate"));
        }
        let value = match secret {
            Some(given) => {
                check_secret(&before.auth, &given)?;
                given
            }
            None => new_secret(&before.auth)?,
        };
        let now = self.clock.now();
        let overlap = overlap.unwrap_or(ROTATION_OVERLAP);
        if overlap > MAX_ROTATION_OVERLAP {
            return Err(invalid(format!(
                "the overlap may be at most {} s",
                MAX_ROTATION_OVERLAP.as_secs()
            )));
        }
        let until = now + chrono::Duration::from_std(overlap).map_err(|_| invalid("the overlap is too long"))?;
        let mut after = before.clone();
        after.secrets.retain(|s| s.is_live(now));
        if after.secrets.len() >= MAX_LIVE_SECRETS {
            return Err(HookError::TooManySecrets);
        }
        for old in &mut after.secrets {
            old.expires_at = Some(old.expires_at.map_or(until, |at| at.min(until)));
        }
        let added = self.secret(value)?;
        after.secrets.push(added.clone());
        let hook = self.replace(&before, after).await?;
        tracing::info!(workspace_id, hook_id, secret_id = %added.id, "hook secret rotated");
        Ok(MintedHook {
            hook,
            secret: Some((added.id, added.value)),
        })
    }

    /// Revokes one secret now. The last live secret cannot go: the hook
    /// would refuse everything.
    pub async fn revoke_secret(&self, workspace_id: &str, hook_id: &str, secret_id: &str) -> HookResult<Hook> {
        let before = self.get(workspace_id, hook_id).await?;
        let now = self.clock.now();
        if !before.secrets.iter().any(|s| s.id == secret_id) {
            return Err(HookError::SecretNotFound(secret_id.to_owned()));
        }
        let mut after = before.clone();
        after.secrets.retain(|s| s.id != secret_id && s.is_live(now));
        if after.secrets.is_empty() {
            return Err(HookError::LastSecret(secret_id.to_owned()));
        }
        let hook = self.replace(&before, after).await?;
        tracing::info!(workspace_id, hook_id, secret_id, "hook secret revoked");
        Ok(hook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryHooks;
    use crate::ports::SystemClock;

    fn hooks() -> Hooks {
        Hooks::new(Arc::new(MemoryHooks::default()), Arc::new(SystemClock))
    }

    fn request(value: Value) -> HookRequest {
        serde_json::from_value(value).expect("hook request")
    }

    #[tokio::test]
    async fn refuses_what_would_leak_a_secret_or_let_anyone_pass_for_the_platform() {
        let hooks = hooks();
        let bearer_id = request(
            serde_json::json!({"name": "a", "kind": "webhook", "auth": {"type": "bearer"},
            "event_id": {"header": "Authorization"}}),
        );
        assert!(matches!(
            hooks.create("ws", bearer_id).await,
            Err(HookError::Invalid(_))
        ));
        let own_signature = request(serde_json::json!({"name": "b", "kind": "webhook",
            "auth": {"type": "hmac", "header": "X-Acme-Sig"}, "event_id": {"header": "x-acme-sig"}}));
        assert!(matches!(
            hooks.create("ws", own_signature).await,
            Err(HookError::Invalid(_))
        ));
        let open_platform = request(
            serde_json::json!({"name": "c", "kind": "webhook", "auth": {"type": "none"},
            "trigger_type": "Prize.Won"}),
        );
        assert!(matches!(
            hooks.create("ws", open_platform).await,
            Err(HookError::Invalid(_))
        ));
        let debug = format!(
            "{:?}",
            request(serde_json::json!({"name": "d", "kind": "webhook",
            "auth": {"type": "bearer", "secret": "a-very-secret-token-1"}}))
        );
        assert!(!debug.contains("a-very-secret-token-1"), "{debug}");
    }

    #[tokio::test]
    async fn rotation_is_bounded_in_secrets_and_overlap() {
        let hooks = hooks();
        let minted = hooks
            .create(
                "ws",
                request(serde_json::json!({"name": "r", "kind": "webhook", "auth": {"type": "bearer"}})),
            )
            .await
            .expect("create");
        let id = &minted.hook.id;
        let too_long = hooks.rotate("ws", id, None, Some(MAX_ROTATION_OVERLAP * 2)).await;
        assert!(matches!(too_long, Err(HookError::Invalid(_))), "{too_long:?}");
        hooks.rotate("ws", id, None, None).await.expect("second secret");
        hooks.rotate("ws", id, None, None).await.expect("third secret");
        let fourth = hooks.rotate("ws", id, None, None).await;
        assert!(matches!(fourth, Err(HookError::TooManySecrets)), "{fourth:?}");
        assert!(format!("{:?}", hooks.get("ws", id).await.expect("get")).contains("[REDACTED]"));
    }
}
