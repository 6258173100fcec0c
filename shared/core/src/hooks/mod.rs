//! Inbound hooks (Kustomer-style): an address third parties post to, which
//! turns what they send into a trigger event of the hook's workspace. A hook
//! authenticates its sender ([`auth`]), reads the body its kind expects
//! ([`body`]) and hands the event to ingest ([`receive`]). The management use
//! cases are in [`Hooks`].

pub mod auth;
pub mod body;
mod manage;
pub mod receive;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::PortResult;

pub use manage::{is_hook_id, AuthRequest, HookChange, HookError, HookRequest, Hooks, MintedHook, ROTATION_OVERLAP};
pub use receive::{HookReceiver, Received, Refusal, DEFAULT_RATE_LIMIT};

/// The stored format of a hook (brief §10).
pub const HOOK_FORMAT: u32 = 1;
/// Hook ids: `hk_` and 128 random bits in hex.
pub const HOOK_ID_PREFIX: &str = "hk_";
/// A body limit when the hook names none.
pub const DEFAULT_HOOK_BODY_BYTES: usize = 256 * 1024;
/// The most a hook may accept.
pub const MAX_HOOK_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// JSON of any shape, `text/plain` or a urlencoded form, as `data`.
    Webhook,
    /// An HTML form (urlencoded or multipart) as `data.form_fields`.
    Form,
    /// Inbound mail as a provider posts it (Postmark, SendGrid) as `data.email`.
    Email,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStatus {
    Enabled,
    Disabled,
}

/// The HMAC signature formats of the big platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacPreset {
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify,
    /// `Stripe-Signature: t=<unix>,v1=<hex>` over `<t>.<body>`, within the tolerance.
    Stripe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// How a sender proves who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HookAuth {
    /// Anyone may post: for tests only, and only when chosen explicitly.
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic base64(<username>:<secret>)`.
    Basic { username: String },
    /// HMAC-SHA256 of the raw body: a preset, or an explicit header, prefix
    /// and encoding.
    Hmac {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preset: Option<HmacPreset>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoding: Option<SignatureEncoding>,
    },
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature: v1,<base64> …`, `whsec_` secrets.
    StandardWebhooks,
}

impl HookAuth {
    pub fn needs_secret(&self) -> bool {
        !matches!(self, HookAuth::None)
    }
}

/// Where a hook's event id comes from. Without a value there, the event gets
/// a fresh ULID (and so cannot be deduplicated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EventIdSource {
    /// A request header, such as `webhook-id`, `X-GitHub-Delivery` or
    /// `Idempotency-Key`.
    Header(String),
    /// A field of a JSON body, as a dotted path (`data.object.id`).
    JsonPath(String),
    /// An email's `Message-ID`.
    MessageId,
    /// Always a fresh ULID.
    Generated,
}

impl EventIdSource {
    /// The natural source for a hook: the id its senders already send.
    pub fn default_for(kind: HookKind, auth: &HookAuth) -> Self {
        match (kind, auth) {
            (HookKind::Email, _) => Self::MessageId,
            (_, HookAuth::StandardWebhooks) => Self::Header("webhook-id".into()),
            (
                _,
                HookAuth::Hmac {
                    preset: Some(HmacPreset::Github),
                    ..
                },
            ) => Self::Header("X-GitHub-Delivery".into()),
            (
                _,
                HookAuth::Hmac {
                    preset: Some(HmacPreset::Shopify),
                    ..
                },
            ) => Self::Header("X-Shopify-Webhook-Id".into()),
            // Stripe's event id is in the signed body.
            (
                _,
                HookAuth::Hmac {
                    preset: Some(HmacPreset::Stripe),
                    ..
                },
            ) => Self::JsonPath("id".into()),
            _ => Self::Header("Idempotency-Key".into()),
        }
    }
}

/// One of a hook's secrets. Rotation adds one and lets the older ones expire.
/// Its `Debug` leaves the value out, so no log line can carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSecret {
    pub id: String,
    pub value: String,
    pub created_at: DateTime<Utc>,
    /// Set on rotation: the old secret verifies until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSecret")
            .field("id", &self.id)
            .field("value", &crate::redact::REDACTED)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl HookSecret {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub format: u32,
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub kind: HookKind,
    /// `Hook.<name>` or a catalogue type.
    pub trigger_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siteid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardid: Option<String>,
    pub auth: HookAuth,
    pub event_id: EventIdSource,
    pub status: HookStatus,
    pub max_body_bytes: usize,
    /// Requests per second the hook accepts (its token bucket's rate and burst).
    pub rate_limit: u32,
    /// Form hooks: where a browser goes after posting (a thank-you page when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    pub secrets: Vec<HookSecret>,
    /// Bumped by every change; a change is written only over the revision it read.
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Hook {
    /// The CloudEvents `source` of the hook's events: event ids are unique
    /// per source, so a redelivery is recognised per hook.
    pub fn event_source(&self) -> String {
        format!("hookflow/hooks/{}", self.id)
    }

    pub fn live_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &HookSecret> {
        self.secrets.iter().filter(move |s| s.is_live(now))
    }
}

#[async_trait]
pub trait HookStore: Send + Sync {
    /// Stores a new hook (its id is fresh; an existing id is refused).
    async fn create_hook(&self, hook: &Hook) -> PortResult<()>;
    async fn get_hook(&self, hook_id: &str) -> PortResult<Option<Hook>>;
    /// Every hook of a workspace, newest first.
    async fn list_hooks(&self, workspace_id: &str) -> PortResult<Vec<Hook>>;
    /// Writes `hook` over the stored one if that is still at
    /// `expected_revision`; false when it changed or is gone.
    async fn replace_hook(&self, hook: &Hook, expected_revision: u64) -> PortResult<bool>;
    /// Deletes a hook of this workspace; false when there is none.
    async fn delete_hook(&self, workspace_id: &str, hook_id: &str) -> PortResult<bool>;
}
