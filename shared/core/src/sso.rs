//! SSO identify (recipe "SSO Setup"): a site signs its visitors in and
//! hands Hookflow a JWT; a valid token upserts the contact it names and
//! emits `Contact.Identified`, then `Contact.Verified.Sso`.
//!
//! Each site's settings say which algorithm and key its tokens use. A site
//! id belongs to one workspace: the first settings claim it (a conditional
//! write), so no other workspace can take over a site's sign-in.
//!
//! A token is checked against the site's algorithm before anything else:
//! a token whose header names another algorithm is refused, so an RS256
//! site's public key can never serve as an HS256 secret, and `alg: none`
//! is refused by name.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::contacts::{Contact, ContactChange, ContactEffect, ContactKey, ContactStore, NewContact};
use crate::event::{TriggerEvent, SPEC_VERSION};
use crate::ports::{Clock, EventSink, PortError, PortResult};

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_S: i64 = 60;
/// Tokens longer than this are refused before they are parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// A token may not be valid for longer than this from now: ingest drops a
/// repeated identify for 24 hours, so an older token is expired by then.
pub const MAX_TOKEN_LIFETIME_S: i64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SsoAlgorithm {
    HS256,
    RS256,
    ES256,
}

impl SsoAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            SsoAlgorithm::HS256 => Algorithm::HS256,
            SsoAlgorithm::RS256 => Algorithm::RS256,
            SsoAlgorithm::ES256 => Algorithm::ES256,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SsoAlgorithm::HS256 => "HS256",
            SsoAlgorithm::RS256 => "RS256",
            SsoAlgorithm::ES256 => "ES256",
        }
    }
}

/// `PUT …/sites/{site}/sso`: `secret` for HS256, `public_key` (PEM) for
/// RS256 and ES256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoRequest {
    pub algorithm: SsoAlgorithm,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsoSettings {
    pub site_id: String,
    pub workspace_id: String,
    pub algorithm: SsoAlgorithm,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl SsoSettings {
    /// The settings as the API shows them: a secret never.
    pub fn view(&self) -> Value {
        json!({"site_id": self.site_id, "workspace_id": self.workspace_id, "algorithm": self.algorithm,
            "has_secret": self.secret.is_some(), "public_key": self.public_key, "issuer": self.issuer,
            "audience": self.audience, "updated_at": self.updated_at,
            "identify_path": format!("/v1/sites/{}/identify", self.site_id)})
    }

    fn decoding_key(&self) -> Result<DecodingKey, String> {
        if self.public_key.as_ref().is_some_and(|pem| pem.contains("PRIVATE")) {
            return Err(
                "public_key is a private key: give the public half only (never store a signing key here)".into(),
            );
        }
        match (self.algorithm, &self.secret, &self.public_key) {
            (SsoAlgorithm::HS256, Some(secret), _) => Ok(DecodingKey::from_secret(secret.as_bytes())),
            (SsoAlgorithm::RS256, _, Some(pem)) => {
                DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| format!("public_key is not an RSA PEM key: {e}"))
            }
            (SsoAlgorithm::ES256, _, Some(pem)) => {
                DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| format!("public_key is not an EC PEM key: {e}"))
            }
            (SsoAlgorithm::HS256, None, _) => Err("HS256 needs a `secret`".into()),
            (_, _, None) => Err(format!("{} needs a `public_key` (PEM)", self.algorithm.name())),
        }
    }
}

/// How long a released site stays out of other workspaces' reach (unless
/// it was handed to one): a site's pages may still post their visitors'
/// tokens after its workspace let go, and whoever claimed it then would
/// receive those visitors' identities.
pub const RELEASE_HOLD: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// A workspace letting go of a site: its settings are removed and the site
/// is held for [`RELEASE_HOLD`], claimable meanwhile by the releasing
/// workspace and by `handed_to` only.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRelease {
    pub site_id: String,
    pub workspace_id: String,
    pub handed_to: Option<String>,
    pub released_at: DateTime<Utc>,
}

impl SiteRelease {
    /// Whether `workspace_id` may claim the site at `at`. Times count in
    /// whole milliseconds, as the stores keep them.
    pub fn lets_claim(&self, workspace_id: &str, at: DateTime<Utc>) -> bool {
        workspace_id == self.workspace_id
            || self.handed_to.as_deref() == Some(workspace_id)
            || at.timestamp_millis() >= (self.released_at + RELEASE_HOLD).timestamp_millis()
    }
}

/// Where sites' SSO settings are kept.
#[async_trait]
pub trait SiteStore: Send + Sync {
    /// Stores `settings` if the site is unclaimed, already the same
    /// workspace's, or released in a way that lets this workspace claim it
    /// at `settings.updated_at` ([`SiteRelease::lets_claim`]); false
    /// (nothing written) otherwise.
    async fn put_sso(&self, settings: &SsoSettings) -> PortResult<bool>;
    /// The settings of a claimed site; `None` for an unknown or released one.
    async fn get_sso(&self, site_id: &str) -> PortResult<Option<SsoSettings>>;
    /// Removes the site's settings and holds the site, if the releasing
    /// workspace has it claimed or had already released it (true: a repeat
    /// replaces the earlier release, so a retried call is no error and a
    /// corrected `handed_to` takes effect); false otherwise.
    async fn release_sso(&self, release: &SiteRelease) -> PortResult<bool>;
}

/// Why a token was refused (HTTP 401); `code` names the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("the token is not a JWT (header.payload.signature, base64url)")]
    Malformed,
    #[error("the token is unsigned (alg none)")]
    Unsigned,
    #[error("the token is signed with {token}; this site accepts {site} only")]
    AlgorithmNotAllowed { token: String, site: &'static str },
    #[error("the token's signature does not verify with this site's key")]
    BadSignature,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token is from another issuer")]
    WrongIssuer,
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("the token is valid for more than 24 hours from now; issue short-lived tokens")]
    LifetimeTooLong,
}

impl TokenRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            TokenRefusal::Malformed => "malformed_token",
            TokenRefusal::Unsigned => "unsigned_token",
            TokenRefusal::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            TokenRefusal::BadSignature => "invalid_signature",
            TokenRefusal::Expired => "token_expired",
            TokenRefusal::NotYetValid => "token_not_yet_valid",
            TokenRefusal::WrongAudience => "wrong_audience",
            TokenRefusal::WrongIssuer => "wrong_issuer",
            TokenRefusal::MissingClaim(_) => "missing_claim",
            TokenRefusal::LifetimeTooLong => "token_lifetime_too_long",
        }
    }
}

/// The claims identify reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IdentityClaims {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// `false` means the site has not checked the email: it is neither
    /// stored nor used to find a contact.
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
}

/// The algorithm a token's header names, read before any verification.
fn header_algorithm(token: &str) -> Result<String, TokenRefusal> {
    let header = token.split('.').next().ok_or(TokenRefusal::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| TokenRefusal::Malformed)?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| TokenRefusal::Malformed)?;
    header
        .get("alg")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(TokenRefusal::Malformed)
}

/// Checks `token` against the site's settings at `now`.
pub fn verify(settings: &SsoSettings, token: &str, now: DateTime<Utc>) -> Result<IdentityClaims, TokenRefusal> {
    if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
        return Err(TokenRefusal::Malformed);
    }
    let alg = header_algorithm(token)?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenRefusal::Unsigned);
    }
    if alg != settings.algorithm.name() {
        return Err(TokenRefusal::AlgorithmNotAllowed {
            token: alg.chars().take(16).collect(),
            site: settings.algorithm.name(),
        });
    }
    // Stored settings were checked when they were set.
    let key = settings.decoding_key().map_err(|_| TokenRefusal::BadSignature)?;
    let mut validation = Validation::new(settings.algorithm.jwt());
    // Times are checked below against our clock; issuer and audience here.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    // A configured issuer or audience must be in the token: jsonwebtoken
    // checks only the claims that are there unless they are required.
    let mut required = vec!["exp", "sub"];
    required.extend(settings.issuer.as_ref().map(|_| "iss"));
    required.extend(settings.audience.as_ref().map(|_| "aud"));
    validation.set_required_spec_claims(&required);
    validation.validate_aud = settings.audience.is_some();
    if let Some(audience) = &settings.audience {
        validation.set_audience(&[audience]);
    }
    if let Some(issuer) = &settings.issuer {
        validation.set_issuer(&[issuer]);
    }
    let claims = jsonwebtoken::decode::<IdentityClaims>(token, &key, &validation)
        .map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            match err.kind() {
                ErrorKind::InvalidSignature => TokenRefusal::BadSignature,
                ErrorKind::InvalidAudience => TokenRefusal::WrongAudience,
                ErrorKind::InvalidIssuer => TokenRefusal::WrongIssuer,
                ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                    "iss" => TokenRefusal::MissingClaim("iss"),
                    "aud" => TokenRefusal::MissingClaim("aud"),
                    "exp" => TokenRefusal::MissingClaim("exp"),
                    _ => TokenRefusal::MissingClaim("sub"),
                },
                ErrorKind::Json(err) if err.to_string().contains("missing field `sub`") => {
                    TokenRefusal::MissingClaim("sub")
                }
                _ => TokenRefusal::Malformed,
            }
        })?
        .claims;
    let now = now.timestamp();
    let exp = claims.exp.ok_or(TokenRefusal::MissingClaim("exp"))?;
    if now > exp.saturating_add(LEEWAY_S) {
        return Err(TokenRefusal::Expired);
    }
    if exp > now.saturating_add(MAX_TOKEN_LIFETIME_S + LEEWAY_S) {
        return Err(TokenRefusal::LifetimeTooLong);
    }
    if claims.nbf.is_some_and(|nbf| now < nbf.saturating_sub(LEEWAY_S)) {
        return Err(TokenRefusal::NotYetValid);
    }
    if claims.sub.trim().is_empty() {
        return Err(TokenRefusal::MissingClaim("sub"));
    }
    let mut claims = claims;
    if claims.email_verified == Some(false) {
        claims.email = None;
    }
    Ok(claims)
}

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("site {0} has no SSO settings")]
    NotConfigured(String),
    #[error("site {0} belongs to another workspace")]
    SiteTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Refused(TokenRefusal),
    /// The token's identity belongs to another contact (its email, or the
    /// contact the site's `sub` would have, is someone else's); the detail
    /// is logged, not answered.
    #[error("the token's identity conflicts with another contact of the workspace")]
    IdentityConflict,
    #[error("site ids are 1-64 characters of A-Z a-z 0-9 _ -")]
    BadSiteId,
    #[error("transfer_to must be another workspace's id (1-64 characters of A-Z a-z 0-9 _ -)")]
    BadTransfer,
    #[error(transparent)]
    Port(#[from] PortError),
}

impl SsoError {
    pub fn code(&self) -> &'static str {
        match self {
            SsoError::NotConfigured(_) => "sso_not_configured",
            SsoError::SiteTaken(_) => "site_taken",
            SsoError::Invalid(_) => "invalid_sso_settings",
            SsoError::Refused(refusal) => refusal.code(),
            SsoError::IdentityConflict => "identity_conflict",
            SsoError::BadSiteId => "invalid_site_id",
            SsoError::BadTransfer => "invalid_transfer",
            SsoError::Port(_) => "store_unavailable",
        }
    }
}

/// What an identify did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identified {
    pub contact_id: String,
    pub created: bool,
    /// The ids of the events emitted (repeats of a token emit the same ids,
    /// which ingest drops).
    pub events: Vec<String>,
}

/// Sites' SSO settings (the management API).
pub struct SsoSites {
    sites: Arc<dyn SiteStore>,
    clock: Arc<dyn Clock>,
}

fn digest_hex(text: &str, bytes: usize) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl SsoSites {
    pub fn new(sites: Arc<dyn SiteStore>, clock: Arc<dyn Clock>) -> Self {
        Self { sites, clock }
    }

    /// Sets a site's SSO settings, claiming the site for the workspace.
    pub async fn configure(
        &self,
        workspace_id: &str,
        site_id: &str,
        request: SsoRequest,
    ) -> Result<SsoSettings, SsoError> {
        if !crate::validate::is_valid_id(site_id) {
            return Err(SsoError::BadSiteId);
        }
        let settings = SsoSettings {
            site_id: site_id.to_owned(),
            workspace_id: workspace_id.to_owned(),
            algorithm: request.algorithm,
            secret: request.secret.filter(|_| request.algorithm == SsoAlgorithm::HS256),
            public_key: request.public_key.filter(|_| request.algorithm != SsoAlgorithm::HS256),
            issuer: request.issuer.filter(|s| !s.is_empty()),
            audience: request.audience.filter(|s| !s.is_empty()),
            updated_at: self.clock.now(),
        };
        settings.decoding_key().map_err(SsoError::Invalid)?;
        if settings.secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(SsoError::Invalid("an HS256 secret must be at least 32 bytes".into()));
        }
        if !self.sites.put_sso(&settings).await? {
            return Err(SsoError::SiteTaken(site_id.to_owned()));
        }
        tracing::info!(
            workspace_id,
            site_id,
            algorithm = settings.algorithm.name(),
            "SSO settings stored"
        );
        Ok(settings)
    }

    /// Removes a site's settings and lets go of the site: for a site claimed
    /// by mistake, or moving to `handed_to`, which may claim it at once;
    /// any other workspace only after [`RELEASE_HOLD`]. Its visitors cannot
    /// sign in until the site is configured again.
    pub async fn release(&self, workspace_id: &str, site_id: &str, handed_to: Option<&str>) -> Result<(), SsoError> {
        if !crate::validate::is_valid_id(site_id) {
            return Err(SsoError::BadSiteId);
        }
        if handed_to.is_some_and(|to| !crate::validate::is_valid_id(to) || to == workspace_id) {
            return Err(SsoError::BadTransfer);
        }
        let release = SiteRelease {
            site_id: site_id.to_owned(),
            workspace_id: workspace_id.to_owned(),
            handed_to: handed_to.map(str::to_owned),
            released_at: self.clock.now(),
        };
        if !self.sites.release_sso(&release).await? {
            return Err(SsoError::NotConfigured(site_id.to_owned()));
        }
        tracing::info!(workspace_id, site_id, handed_to, "SSO settings removed, site released");
        Ok(())
    }

    /// A workspace's settings of one of its sites.
    pub async fn settings(&self, workspace_id: &str, site_id: &str) -> Result<SsoSettings, SsoError> {
        self.sites
            .get_sso(site_id)
            .await?
            .filter(|s| s.workspace_id == workspace_id)
            .ok_or_else(|| SsoError::NotConfigured(site_id.to_owned()))
    }
}

/// The public identify route: a site's token in, a contact and two events out.
pub struct Identify {
    sites: Arc<dyn SiteStore>,
    contacts: Arc<dyn ContactStore>,
    events: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
}

impl Identify {
    pub fn new(
        sites: Arc<dyn SiteStore>,
        contacts: Arc<dyn ContactStore>,
        events: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sites,
            contacts,
            events,
            clock,
        }
    }

    /// The contact a verified token is about: the one whose external id is
    /// the `sub`, else the one with the (verified) email, else the one at
    /// the id this `sub` gets. One that belongs to another `sub` is a
    /// conflict, never taken over.
    async fn existing_contact(
        &self,
        ws: &str,
        site_id: &str,
        claims: &IdentityClaims,
    ) -> Result<Option<Contact>, SsoError> {
        if let Some(found) = self
            .contacts
            .find_contact(ws, &ContactKey::ExternalId(claims.sub.clone()))
            .await?
        {
            return Ok(Some(found));
        }
        let by_email = match &claims.email {
            Some(email) => {
                self.contacts
                    .find_contact(ws, &ContactKey::Email(email.clone()))
                    .await?
            }
            None => None,
        };
        let candidate = match by_email {
            Some(found) => Some(found),
            None => {
                self.contacts
                    .get_contact(ws, &sso_contact_id(site_id, &claims.sub))
                    .await?
            }
        };
        match candidate {
            Some(contact) if contact.external_id.as_ref().is_some_and(|other| *other != claims.sub) => {
                tracing::warn!(workspace_id = ws, site_id, contact_id = %contact.id, "identify: the contact belongs to another sub");
                Err(SsoError::IdentityConflict)
            }
            other => Ok(other),
        }
    }

    /// Checks the token, upserts its contact (by `sub`, else by email) and
    /// emits `Contact.Identified` then `Contact.Verified.Sso`.
    pub async fn identify(&self, site_id: &str, token: &str) -> Result<Identified, SsoError> {
        let settings = self
            .sites
            .get_sso(site_id)
            .await?
            .ok_or_else(|| SsoError::NotConfigured(site_id.to_owned()))?;
        let now = self.clock.now();
        let claims = verify(&settings, token, now).map_err(SsoError::Refused)?;
        let ws = settings.workspace_id.as_str();
        // The sign-in's identity, not the token's bytes: an ES256 signature
        // can be re-encoded into another valid token of the same sign-in.
        let sign_in = digest_hex(
            &format!("{site_id}\n{}\n{:?}\n{:?}", claims.sub, claims.iat, claims.exp),
            16,
        );
        let existing = self.existing_contact(ws, site_id, &claims).await?;
        let change = identify_change(site_id, &claims, existing.as_ref());
        let applied = match self.contacts.apply(ws, &change, &format!("sso:{sign_in}"), now).await? {
            Ok(applied) => applied,
            Err(refusal) => {
                tracing::warn!(workspace_id = ws, site_id, refusal = %refusal, "identify refused by the contact store");
                return Err(SsoError::IdentityConflict);
            }
        };
        let created = applied.effects.contains(&ContactEffect::Created);
        let events: Vec<TriggerEvent> = ["Contact.Identified", "Contact.Verified.Sso"]
            .into_iter()
            .map(|event_type| TriggerEvent {
                specversion: SPEC_VERSION.to_owned(),
                id: format!("{}-{sign_in}", event_type.to_ascii_lowercase()),
                source: format!("hookflow/sites/{site_id}/identify"),
                event_type: event_type.to_owned(),
                time: Some(now.to_rfc3339()),
                datacontenttype: Some("application/json".into()),
                data: json!({"contact": {"id": applied.contact.id, "email": applied.contact.email,
                    "external_id": applied.contact.external_id, "first_name": claims.first_name,
                    "last_name": claims.last_name}, "sso": {"sub": claims.sub, "issuer": settings.issuer}}),
                workspaceid: ws.to_owned(),
                siteid: Some(site_id.to_owned()),
                cardid: None,
                contactid: Some(applied.contact.id.clone()),
                depth: 0,
            })
            .collect();
        self.events.emit(&events).await?;
        tracing::info!(workspace_id = ws, site_id, contact_id = %applied.contact.id, created, "contact identified by SSO");
        Ok(Identified {
            contact_id: applied.contact.id,
            created,
            events: events.into_iter().map(|e| e.id).collect(),
        })
    }
}

/// The id a site's `sub` gets when no contact has it yet.
fn sso_contact_id(site_id: &str, sub: &str) -> String {
    format!("c_{}", digest_hex(&format!("{site_id}\n{sub}"), 10))
}

/// The change a verified token makes: the contact gets the token's `sub` as
/// its external id, and its email and names where it has none yet.
fn identify_change(site_id: &str, claims: &IdentityClaims, existing: Option<&Contact>) -> ContactChange {
    let has = |name: &str| existing.is_some_and(|c| c.properties.contains_key(name));
    let mut properties = Map::new();
    for (name, value) in [("first_name", &claims.first_name), ("last_name", &claims.last_name)] {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty() && !has(name)) {
            properties.insert(name.to_owned(), Value::String(value.clone()));
        }
    }
    let new = NewContact {
        email: claims.email.clone(),
        external_id: Some(claims.sub.clone()),
        properties,
    };
    ContactChange {
        contact_id: existing.map_or_else(|| sso_contact_id(site_id, &claims.sub), |c| c.id.clone()),
        edits: new.as_edits(),
        create: Some(new),
    }
}
