//! The OpenAPI 3.1 document (`GET /v1/openapi.json`), generated from the
//! handlers' `#[utoipa::path]` annotations and the schemas below, which
//! describe the JSON the handlers write. Every secured operation gets the
//! refusals the key check and the stores can answer with (401, 403, 503) in
//! one place, [`CommonRefusals`].

use std::collections::HashMap;

use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// Every refusal: `{"error": {"code", "message", "details"?}}`.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unauthenticated`, `forbidden`, `workflow_not_found`, `revision_mismatch`, …
    pub code: String,
    pub message: String,
    /// Machine-readable detail, such as `{"problems": [...]}` of an invalid draft.
    pub details: Option<Value>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkspaceId {
    /// The workspace; an API key works in its own workspace only.
    pub workspace_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkflowId {
    pub workflow_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HookId {
    /// `hk_` and 32 hex digits.
    pub hook_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ContactId {
    pub contact_id: String,
}

/// A contact: its properties, tags, lists and loyalty balances.
#[derive(ToSchema)]
pub struct ContactView {
    pub id: String,
    pub email: Option<String>,
    /// An id from elsewhere, such as an SSO `sub`.
    pub external_id: Option<String>,
    pub properties: Value,
    pub tags: Vec<String>,
    pub lists: Vec<String>,
    /// `{"<program>": {"points": n, "tiers": [...]}}`.
    pub loyalty: Value,
    pub created_at: String,
    pub updated_at: String,
    pub revision: u64,
}

#[derive(ToSchema)]
pub struct ContactList {
    pub contacts: Vec<ContactView>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

/// `POST …/contacts`: the email (unique in the workspace, any case) or the external id.
#[derive(ToSchema)]
pub struct NewContactBody {
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub properties: Option<Value>,
    pub tags: Option<Vec<String>>,
    pub lists: Option<Vec<String>>,
}

/// `PATCH …/contacts/{id}`: at most 50 changes.
#[derive(ToSchema)]
pub struct ContactPatchBody {
    pub set: Option<Value>,
    pub unset: Option<Vec<String>>,
    pub add_tags: Option<Vec<String>>,
    pub remove_tags: Option<Vec<String>>,
    pub add_lists: Option<Vec<String>>,
    pub remove_lists: Option<Vec<String>>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteId {
    /// A site id belongs to the workspace whose SSO settings claimed it.
    pub site_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConnectionName {
    /// The name steps reference: 1 to 64 of a-z 0-9 - _.
    pub name: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EndpointId {
    /// `ep_` and a ULID.
    pub endpoint_id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptQuery {
    /// 1 to 100; 50 by default.
    pub limit: Option<u32>,
    /// The `next` of the page before.
    pub cursor: Option<String>,
}

/// `POST …/webhook-endpoints`.
#[derive(ToSchema)]
pub struct NewWebhookEndpoint {
    /// https (or http to localhost); checked against private networks when sent.
    pub url: String,
    /// Catalogue types, `Hook.<name>`, `Run.Succeeded`, `Run.Failed`, `WebhookEndpoint.Disabled`.
    pub event_types: Vec<String>,
    pub description: Option<String>,
}

/// `PATCH …/webhook-endpoints/{endpoint_id}`: what is given changes.
#[derive(ToSchema)]
pub struct WebhookEndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    /// `true` re-enables a disabled endpoint; `false` disables it.
    pub enabled: Option<bool>,
}

/// Why an endpoint is disabled.
#[derive(ToSchema)]
pub struct EndpointDisabled {
    #[schema(format = DateTime)]
    pub at: String,
    /// `gone` (it answered 410), `failing_too_long` (5 days of failures) or `operator`.
    pub because: String,
    pub detail: String,
}

/// A signing secret's dates (never its value).
#[derive(ToSchema)]
pub struct SecretDates {
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Set on a rotated-out secret: it signs until then.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A webhook endpoint.
#[derive(ToSchema)]
pub struct WebhookEndpointView {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    pub disabled: Option<EndpointDisabled>,
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
    #[schema(format = DateTime)]
    pub throttled_until: Option<String>,
    pub secrets: Vec<SecretDates>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A webhook endpoint and, besides its fields, the `whsec_` secret just
/// made (shown once).
#[derive(ToSchema)]
pub struct WebhookEndpointWithSecret {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub status: String,
    pub secrets: Vec<SecretDates>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub secret: String,
}

#[derive(ToSchema)]
pub struct WebhookEndpointList {
    pub webhook_endpoints: Vec<WebhookEndpointView>,
}

/// `POST …/resend`.
#[derive(ToSchema)]
pub struct ResendMessage {
    pub message_id: String,
}

#[derive(ToSchema)]
pub struct ResentMessage {
    pub message: serde_json::Value,
}

/// `POST …/recover`.
#[derive(ToSchema)]
pub struct RecoverMessages {
    #[schema(format = DateTime)]
    pub since: String,
}

#[derive(ToSchema)]
pub struct RecoveredMessages {
    pub resent: Vec<String>,
    /// More failed messages remain: call again.
    pub more: bool,
}

/// One delivery attempt.
#[derive(ToSchema)]
pub struct AttemptView {
    pub message_id: String,
    pub event_type: String,
    pub attempt: u32,
    #[schema(format = DateTime)]
    pub at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// The first 512 bytes of the answer.
    pub response: Option<String>,
    pub duration_ms: u64,
    /// `delivered`, `will_retry`, `failed` or `endpoint_disabled`.
    pub outcome: String,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    pub manual: bool,
}

#[derive(ToSchema)]
pub struct AttemptLog {
    pub attempts: Vec<AttemptView>,
    pub next: Option<String>,
}

/// `POST …/connections`.
#[derive(ToSchema)]
pub struct NewConnection {
    pub name: String,
    /// `mailchimp` or `braze`.
    pub app: String,
    /// Mailchimp: `{"api_key": "…-us21"}`; Braze: `{"api_key"}`. Never shown again.
    pub credentials: HashMap<String, String>,
    /// Another host: a sandbox, or Braze's REST endpoint (required for Braze).
    pub base_url: Option<String>,
}

/// `POST …/connections/{name}/rotate`.
#[derive(ToSchema)]
pub struct RotateConnection {
    pub credentials: HashMap<String, String>,
    pub base_url: Option<String>,
}

/// A connection: which credential fields are set, never their values.
#[derive(ToSchema)]
pub struct ConnectionView {
    pub name: String,
    pub app: String,
    pub base_url: Option<String>,
    /// Each credential field, as `"set"`.
    pub credentials: HashMap<String, String>,
    pub created_at: String,
    pub rotated_at: String,
}

#[derive(ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionView>,
}

/// `PUT …/sites/{site}/sso`.
#[derive(ToSchema)]
pub struct SsoBody {
    /// `HS256`, `RS256` or `ES256`.
    pub algorithm: String,
    /// HS256: the shared secret, at least 32 bytes.
    pub secret: Option<String>,
    /// RS256 / ES256: the PEM public key.
    pub public_key: Option<String>,
    /// When set, a token's `iss` must be this.
    pub issuer: Option<String>,
    /// When set, a token's `aud` must hold this.
    pub audience: Option<String>,
}

/// A site's SSO settings; the secret is never shown.
#[derive(ToSchema)]
pub struct SsoView {
    pub site_id: String,
    pub workspace_id: String,
    pub algorithm: String,
    pub has_secret: bool,
    pub public_key: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub updated_at: String,
    pub identify_path: String,
}

#[derive(ToSchema)]
pub struct IdentifyBody {
    /// The site's JWT: `sub`, `email`, `first_name`, `last_name`; `exp` required.
    pub token: String,
}

#[derive(ToSchema)]
pub struct IdentifiedView {
    pub contact_id: String,
    /// The token's contact was new.
    pub created: bool,
    /// The ids of `Contact.Identified` and `Contact.Verified.Sso`.
    pub events: Vec<String>,
}

/// `POST …/hooks`.
#[derive(ToSchema)]
pub struct NewHook {
    /// 1-64 characters of A-Z a-z 0-9 _ -.
    pub name: String,
    /// `webhook`, `form` or `email`.
    pub kind: String,
    /// `Hook.<name>` (the default) or a catalogue type.
    pub trigger_type: Option<String>,
    /// Stamped on the hook's events, so that site- and card-scoped workflows match.
    pub siteid: Option<String>,
    pub cardid: Option<String>,
    /// `{"type": "none" | "bearer" | "basic" (with `username`) | "hmac" (with `preset`
    /// github|shopify|stripe, or `header`, `prefix`, `encoding` hex|base64) |
    /// "standard_webhooks", "secret"?: the sender's own secret}`.
    pub auth: Value,
    /// `{"header": name}`, `{"json_path": "a.b"}`, `"message_id"` or `"generated"`.
    pub event_id: Option<Value>,
    /// `enabled` (the default) or `disabled`.
    pub status: Option<String>,
    /// Up to 1048576 (default 262144).
    pub max_body_bytes: Option<u64>,
    /// Requests per second (default 50).
    pub rate_limit: Option<u32>,
    /// Form hooks: where a browser goes after posting.
    pub redirect_url: Option<String>,
}

/// `PATCH …/hooks/{id}`: any of these; `null` clears `siteid`, `cardid` or `redirect_url`.
#[derive(ToSchema)]
pub struct HookPatch {
    pub name: Option<String>,
    pub trigger_type: Option<String>,
    pub siteid: Option<String>,
    pub cardid: Option<String>,
    pub event_id: Option<Value>,
    pub status: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub rate_limit: Option<u32>,
    pub redirect_url: Option<String>,
}

#[derive(ToSchema)]
pub struct RotateRequest {
    /// The sender's own new secret; a new one is made when absent.
    pub secret: Option<String>,
    /// How long the older secrets keep verifying (default 86400).
    pub overlap_s: Option<u64>,
}

#[derive(ToSchema)]
pub struct HookSecretView {
    pub id: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// A hook; its secrets by id only.
#[derive(ToSchema)]
pub struct HookView {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub kind: String,
    pub trigger_type: String,
    pub siteid: Option<String>,
    pub cardid: Option<String>,
    pub auth: Value,
    pub event_id: Value,
    pub status: String,
    pub max_body_bytes: u64,
    pub rate_limit: u32,
    pub redirect_url: Option<String>,
    pub secrets: Vec<HookSecretView>,
    pub revision: u64,
    pub created_at: String,
    pub updated_at: String,
    /// Where senders post: `/v1/hooks/<id>`.
    pub path: String,
}

/// A hook and the secret just made (shown in this answer only).
#[derive(ToSchema)]
pub struct HookCreated {
    #[schema(inline)]
    #[serde(flatten)]
    pub hook: HookView,
    pub secret_id: Option<String>,
    pub secret: Option<String>,
}

#[derive(ToSchema)]
pub struct HookList {
    pub hooks: Vec<HookView>,
}

#[derive(ToSchema)]
pub struct HookAccepted {
    pub event_id: String,
    /// The hook accepted this event before: no second run.
    pub duplicate: bool,
}

/// The mutable head of a workflow; its `revision` is also the `ETag`.
#[derive(ToSchema)]
pub struct WorkflowHeadView {
    pub id: String,
    pub workspace_id: String,
    #[schema(inline)]
    pub status: Status,
    pub revision: u64,
    /// The live version while active or paused.
    pub published_version: Option<u32>,
    /// The highest version ever stored.
    pub latest_version: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The editable workflow document (it may be invalid until published).
    pub draft: Value,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Active,
    Paused,
    Archived,
}

#[derive(ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowHeadView>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct Problem {
    /// JSON path in the document, e.g. `steps.push.action.url`.
    pub path: String,
    pub code: String,
    pub message: String,
}

#[derive(ToSchema)]
pub struct ValidationReport {
    pub valid: bool,
    pub problems: Vec<Problem>,
}

#[derive(ToSchema)]
pub struct VersionSummary {
    pub version: u32,
    pub name: String,
    pub trigger_type: String,
}

#[derive(ToSchema)]
pub struct VersionList {
    pub versions: Vec<VersionSummary>,
}

#[derive(ToSchema)]
pub struct RollbackRequest {
    /// The version to publish again.
    pub version: u32,
}

#[derive(ToSchema)]
pub struct CloneRequest {
    /// The new workflow's id.
    pub id: String,
}

#[derive(ToSchema)]
pub struct TestRequest {
    /// A CloudEvent (structured JSON); the sample of the workflow's trigger type when absent.
    pub event: Option<Value>,
    /// `true` (the default): render requests, send nothing. `false`: a live
    /// test, a real run of a stored version, marked `test`.
    pub dry_run: Option<bool>,
    /// A published version instead of the draft (a dry run) or the published
    /// version (a live test).
    pub version: Option<u32>,
}

/// A live test's run, started: read its timeline at `run_url`.
#[derive(ToSchema)]
pub struct LiveTestStarted {
    pub dry_run: bool,
    pub event_id: String,
    pub run_id: String,
    pub workflow_version: u32,
    pub run_url: String,
}

#[derive(ToSchema)]
pub struct TestResult {
    pub dry_run: bool,
    pub event_id: String,
    pub run: DryRunView,
}

#[derive(ToSchema)]
pub struct DryRunView {
    pub workflow_id: String,
    pub version: u32,
    pub steps: Vec<DryStepView>,
    /// `succeeded`, `failed` or `step_limit`.
    pub outcome: String,
}

#[derive(ToSchema)]
pub struct DryStepView {
    pub step_id: String,
    pub action: String,
    /// `rendered`, `succeeded`, `skipped` or `failed`.
    pub status: String,
    pub request: Option<RenderedRequestView>,
    pub output: Option<Value>,
    pub next: Option<String>,
    pub error: Option<String>,
}

#[derive(ToSchema)]
pub struct RenderedRequestView {
    pub method: String,
    pub url: String,
    /// `[name, value]` pairs; credential headers read `[REDACTED]`.
    pub headers: Vec<Vec<String>>,
    pub body: Option<String>,
}

#[derive(ToSchema)]
pub struct NewKey {
    /// `admin`, `operator` or `ingest`.
    pub role: String,
    pub name: Option<String>,
}

#[derive(ToSchema)]
pub struct KeySummary {
    pub id: String,
    pub workspace_id: String,
    pub role: String,
    pub name: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A new key: `key` is shown in this answer only.
#[derive(ToSchema)]
pub struct KeyCreated {
    pub id: String,
    pub workspace_id: String,
    pub role: String,
    pub name: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// `hfk_…`
    pub key: String,
}

#[derive(ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeySummary>,
}

#[derive(ToSchema)]
pub struct AuditEntryView {
    pub id: String,
    pub workspace_id: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// The key id, `local-developer` or `aws-credentials`.
    pub actor: String,
    /// Method and route, e.g. `POST /v1/workspaces/{workspace_id}/workflows/{workflow_id}/publish`.
    pub action: String,
    pub target: String,
}

#[derive(ToSchema)]
pub struct AuditPageView {
    pub entries: Vec<AuditEntryView>,
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct RunSummary {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub event_id: String,
    pub trigger_type: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    #[schema(format = DateTime)]
    pub started_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    /// A live test's run (listed only with `test=true`).
    pub test: bool,
    /// How many times the run was replayed from its failed step.
    pub replays: u32,
    /// A replay from the start: the failed run it replays.
    pub replay_of: Option<String>,
    /// The contact the trigger event was about (`contactid`).
    pub contact_id: Option<String>,
    /// When that contact's erasure erased the run's event, step outputs,
    /// requests and errors.
    pub erased_at: Option<String>,
}

#[derive(ToSchema)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

/// One attempt of one step. In a run's timeline the output, error and
/// response body are cut to 4 KiB (`{"truncated": true, "bytes", "excerpt"}`);
/// `output_url` serves the attempt whole.
#[derive(ToSchema)]
pub struct StepView {
    pub step_id: String,
    pub action: String,
    pub status: String,
    pub attempt: u32,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub retryable: Option<bool>,
    pub retry_after_s: Option<f64>,
    /// An HTTP attempt's request as sent: credentials redacted, body cut to 4 KiB.
    pub request: Option<Value>,
    pub output: Option<Value>,
    pub output_url: Option<String>,
    pub error: Option<String>,
}

/// A run, the trigger event it started from (credentials redacted, data cut
/// to 4 KiB) and its step timeline.
#[derive(ToSchema)]
pub struct RunDetail {
    pub run_id: String,
    pub workspace_id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    pub test: bool,
    pub replays: u32,
    pub replay_of: Option<String>,
    pub contact_id: Option<String>,
    pub erased_at: Option<String>,
    /// Absent for runs that started before start points were recorded, and
    /// for erased runs.
    pub event: Option<Value>,
    /// The newest 100 attempts at most, in time order.
    pub steps: Vec<StepView>,
    /// Every recorded attempt of the run.
    pub attempts: u32,
    /// The older attempts left out of `steps`.
    pub attempts_hidden: u32,
}

/// Where a replay starts: `failed_step` (the default) or `start`.
#[derive(ToSchema)]
pub struct ReplayRequest {
    pub from: Option<String>,
}

#[derive(ToSchema)]
pub struct ReplayedView {
    /// The run that goes on: the failed run, or the new run of a replay from the start.
    pub run_id: String,
    pub step_id: String,
    pub attempt: u32,
    pub replay_of: Option<String>,
}

/// Which runs to replay: by default every failed run, at most 1,000.
#[derive(ToSchema)]
pub struct BulkReplayRequest {
    pub workflow_id: Option<String>,
    /// `failed` (the default) or, with `from: start`, `cancelled`.
    pub status: Option<String>,
    #[schema(format = DateTime)]
    pub since: Option<String>,
    #[schema(format = DateTime)]
    pub until: Option<String>,
    pub from: Option<String>,
    pub limit: Option<u32>,
}

#[derive(ToSchema)]
pub struct WorkflowStatsView {
    pub workflow_id: String,
    pub runs: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
    /// failed / (succeeded + failed); null before any run ended either way.
    pub failure_rate: Option<f64>,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
}

/// Per workflow over a window, from bounded reads of the runs-by-status index.
#[derive(ToSchema)]
pub struct RunStatsView {
    #[schema(format = DateTime)]
    pub since: String,
    #[schema(format = DateTime)]
    pub until: String,
    pub workflows: Vec<WorkflowStatsView>,
    /// A status had more than 1,000 runs in the window: figures cover the newest.
    pub truncated: bool,
}

#[derive(ToSchema)]
pub struct SkippedView {
    pub run_id: String,
    pub reason: String,
}

#[derive(ToSchema)]
pub struct BulkReplayReportView {
    pub replayed: Vec<ReplayedView>,
    pub skipped: Vec<SkippedView>,
    /// More runs matched than the limit.
    pub truncated: bool,
    /// The stored report of an earlier call with the same key.
    pub repeated: bool,
}

/// `event_id` for one event, `event_ids` for a batch.
#[derive(ToSchema)]
pub struct EventsAccepted {
    pub event_id: Option<String>,
    pub event_ids: Option<Vec<String>>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Hookflow API", description = "Events in, workflows managed, runs read. Every route but this document, `POST /v1/hooks/{hook_id}` (which checks the hook's own sender auth) and `POST /v1/sites/{site_id}/identify` (which checks the site's JWT) needs `Authorization: Bearer hfk_…` (brief §7)."),
    paths(
        serve,
        crate::events::post_events,
        crate::runs::list_runs,
        crate::runs::get_run,
        crate::runs::get_attempt,
        crate::runs::run_stats,
        crate::runs::replay,
        crate::runs::cancel,
        crate::runs::bulk_replay,
        crate::workflows::list,
        crate::workflows::create,
        crate::workflows::show,
        crate::workflows::update,
        crate::workflows::delete,
        crate::workflows::validate,
        crate::workflows::publish,
        crate::workflows::pause,
        crate::workflows::resume,
        crate::workflows::archive,
        crate::workflows::rollback,
        crate::workflows::clone,
        crate::workflows::test,
        crate::workflows::versions,
        crate::workflows::version,
        crate::access::list_keys,
        crate::access::create_key,
        crate::access::revoke_key,
        crate::access::audit_trail,
        crate::hooks::list,
        crate::hooks::create,
        crate::hooks::show,
        crate::hooks::update,
        crate::hooks::remove,
        crate::hooks::rotate,
        crate::hooks::revoke_secret,
        crate::hooks::receive,
        crate::connections::list,
        crate::connections::create,
        crate::connections::show,
        crate::connections::rotate,
        crate::connections::remove,
        crate::webhook_endpoints::list,
        crate::webhook_endpoints::create,
        crate::webhook_endpoints::show,
        crate::webhook_endpoints::update,
        crate::webhook_endpoints::remove,
        crate::webhook_endpoints::rotate,
        crate::webhook_endpoints::resend,
        crate::webhook_endpoints::recover,
        crate::webhook_endpoints::attempts,
        crate::contacts::list,
        crate::contacts::create,
        crate::contacts::show,
        crate::contacts::update,
        crate::contacts::erase,
        crate::sso::configure,
        crate::sso::show,
        crate::sso::release,
        crate::sso::identify,
    ),
    modifiers(&CommonRefusals)
)]
pub struct ApiDoc;

/// Adds the bearer scheme, and to every operation but this document's the
/// key requirement and the refusals any request can get.
struct CommonRefusals;

impl Modify for CommonRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hfk_<id>_<secret>")
                    .build(),
            ),
        );
        for (route, item) in openapi.paths.paths.iter_mut() {
            // Public: the document, hooks and identify, which check their sender instead.
            if route == "/v1/openapi.json" || route.starts_with("/v1/hooks/") || route.starts_with("/v1/sites/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_refusals(operation);
            }
        }
    }
}

fn refusal(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn add_refusals(operation: &mut Operation) {
    operation.security = Some(vec![SecurityRequirement::new("api_key", Vec::<String>::new())]);
    let common = [
        (
            "400",
            "a path, query or body that does not parse (`invalid_path`, `invalid_query`, `invalid_body`, …)",
        ),
        (
            "401",
            "no API key, or one that is malformed, unknown or revoked (`unauthenticated`)",
        ),
        (
            "403",
            "a key of another workspace, or a role that may not do this (`forbidden`)",
        ),
        ("413", "a body over the size limit (`payload_too_large`)"),
        ("503", "a store is briefly unavailable: retry (`unavailable`)"),
    ];
    for (status, description) in common {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| refusal(description));
    }
}

/// `GET /v1/openapi.json`: this document. Public.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub(crate) async fn serve() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// The document as [`ApiDoc`] generates it, kept in the repository
/// (`shared/api/openapi.json`) and checked against the generator by this
/// module's tests: served from the binary as written, the functions link no
/// generator (half a megabyte of the api function's code).
const DOCUMENT: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    use super::*;

    /// `HOOKFLOW_WRITE_OPENAPI=1 cargo test -p hookflow-api openapi` rewrites
    /// the file after a change to the handlers' annotations.
    #[test]
    fn the_served_document_is_the_generated_one() {
        let generated = ApiDoc::openapi().to_pretty_json().expect("serialises") + "\n";
        if DOCUMENT != generated && std::env::var("HOOKFLOW_WRITE_OPENAPI").is_ok_and(|v| v == "1") {
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"), &generated)
                .expect("write openapi.json");
            panic!("rewrote shared/api/openapi.json: run the tests again, which serve what was compiled in");
        }
        assert!(
            DOCUMENT == generated,
            "shared/api/openapi.json is not what the annotations generate: \
             run `HOOKFLOW_WRITE_OPENAPI=1 cargo test -p hookflow-api openapi` and commit it"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_route() {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
        let mut paths: Vec<&str> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(String::as_str)
            .collect();
        paths.sort_unstable();
        let ws = "/v1/workspaces/{workspace_id}";
        let wf = format!("{ws}/workflows/{{workflow_id}}");
        let mut expected = vec![
            "/v1/events".to_owned(),
            "/v1/openapi.json".to_owned(),
            "/v1/hooks/{hook_id}".to_owned(),
            "/v1/sites/{site_id}/identify".to_owned(),
            format!("{ws}/audit"),
            format!("{ws}/connections"),
            format!("{ws}/connections/{{name}}"),
            format!("{ws}/connections/{{name}}/rotate"),
            format!("{ws}/webhook-endpoints"),
            format!("{ws}/webhook-endpoints/{{endpoint_id}}"),
            format!("{ws}/webhook-endpoints/{{endpoint_id}}/rotate"),
            format!("{ws}/webhook-endpoints/{{endpoint_id}}/resend"),
            format!("{ws}/webhook-endpoints/{{endpoint_id}}/recover"),
            format!("{ws}/webhook-endpoints/{{endpoint_id}}/attempts"),
            format!("{ws}/contacts"),
            format!("{ws}/contacts/{{contact_id}}"),
            format!("{ws}/sites/{{site_id}}/sso"),
            format!("{ws}/hooks"),
            format!("{ws}/hooks/{{hook_id}}"),
            format!("{ws}/hooks/{{hook_id}}/rotate"),
            format!("{ws}/hooks/{{hook_id}}/secrets/{{secret_id}}"),
            format!("{ws}/keys"),
            format!("{ws}/keys/{{key_id}}"),
            format!("{ws}/runs"),
            format!("{ws}/runs/{{run_id}}"),
            format!("{ws}/runs/replay"),
            format!("{ws}/runs/stats"),
            format!("{ws}/runs/{{run_id}}/replay"),
            format!("{ws}/runs/{{run_id}}/cancel"),
            format!("{ws}/runs/{{run_id}}/steps/{{step_id}}/attempts/{{attempt}}"),
            format!("{ws}/workflows"),
            wf.clone(),
        ];
        for tail in [
            "archive",
            "clone",
            "pause",
            "publish",
            "resume",
            "rollback",
            "test",
            "validate",
            "versions",
            "versions/{version}",
        ] {
            expected.push(format!("{wf}/{tail}"));
        }
        expected.sort_unstable();
        assert_eq!(paths, expected);
        let publish = &doc["paths"][format!("{wf}/publish")]["post"];
        assert!(publish["responses"]["401"].is_object() && publish["responses"]["422"].is_object());
        assert!(
            doc["paths"]["/v1/openapi.json"]["get"]["security"].is_null(),
            "the document is public"
        );
        assert!(
            doc["paths"]["/v1/hooks/{hook_id}"]["post"]["security"].is_null(),
            "hooks check their sender, not a key"
        );
    }
}
