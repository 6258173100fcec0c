//! Hookflow's HTTP surface: the routers of `hookflow dev` and the Lambda
//! functions (`router`, and `doors_router` for the webhook function).
//! Every refusal is a JSON body `{"error": {"code", "message"}}`.

mod access;
mod connections;
mod contacts;
mod dashboard;
mod error;
mod events;
mod hooks;
pub mod openapi;
mod params;
mod runs;
mod sso;
mod webhook_endpoints;
mod workflows;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Extension;
use hookflow_core::engine::Recovery;
use hookflow_core::hooks::{HookReceiver, Hooks};
use hookflow_core::lifecycle::Workflows;
use hookflow_core::ports::RunLog;
use hookflow_core::{Dispatcher, Ingest};
use tower::ServiceExt;

pub use access::{Gate, KeylessRequests};
pub use axum::Router;
pub use error::ApiError;

/// Request bodies larger than this are refused with 413 (`router`'s
/// `max_body_bytes` overrides it). The limit is enforced while the body is
/// read, so a chunked body without `Content-Length` is cut off as well.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// The body limit the router was built with, so that a 413 can name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxBodyBytes(pub(crate) usize);

/// What the routes need. The gate is always there: every route but the
/// OpenAPI document and the public hook route checks a key. The rest is optional so that a Lambda
/// function can serve only its own routes (least privilege): a route whose
/// use case is missing answers 404.
#[derive(Clone)]
pub struct ApiState {
    pub gate: Gate,
    pub ingest: Option<Arc<Ingest>>,
    pub runs: Option<Arc<dyn RunLog>>,
    /// The workflow lifecycle (the management API).
    pub workflows: Option<Arc<Workflows>>,
    /// Starts live tests' runs (`POST …/test` with `dry_run: false`); without
    /// it, live tests answer 422 `live_test_unavailable`.
    pub live_tests: Option<Arc<Dispatcher>>,
    /// Hooks' management routes.
    pub hooks: Option<Arc<Hooks>>,
    /// The public hook route (`POST /v1/hooks/{hook_id}`).
    pub hook_receiver: Option<Arc<HookReceiver>>,
    /// The on-call actions: replay, bulk replay, cancel.
    pub recovery: Option<Arc<Recovery>>,
    /// Contacts: list, read, change, erase, export.
    pub contacts: Option<Arc<hookflow_core::contacts::Contacts>>,
    /// Connected apps' credentials.
    pub connections: Option<Arc<hookflow_core::connections::Connections>>,
    /// Outbound webhook endpoints and their operator controls.
    pub webhook_endpoints: Option<Arc<hookflow_core::outbound::WebhookEndpoints>>,
    /// Sites' SSO settings.
    pub sso_sites: Option<Arc<hookflow_core::sso::SsoSites>>,
    /// The public identify route (`POST /v1/sites/{site_id}/identify`).
    pub identify: Option<Arc<hookflow_core::sso::Identify>>,
}

/// `routes` behind API Gateway: an HTTP API stage other than `$default`
/// puts `/<stage>` in front of every path on the API's own endpoint (and
/// none through a custom domain), so the routes are served both with and
/// without it. The template sets `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`, so
/// that `lambda_http` hands over the path as sent: otherwise it adds the
/// stage to a path without it, and the stage's root `/prod` became
/// `/prod/prod`. The prefix is cut off before routing, so each route is
/// inserted once (nesting and merging the router inserted each one twice
/// more, and building the router dominates the API function's start).
/// Handlers that link back to the stage read it from `OriginalUri`. A stage
/// named like a route's first segment (`v1`, `dashboard`) would hide that
/// route when it is called without the prefix: the template refuses both.
pub fn for_stage(routes: Router, stage: Option<&str>) -> Router {
    let Some(stage) = stage
        .map(|s| s.trim_matches('/'))
        .filter(|s| !s.is_empty() && *s != "$default")
    else {
        return routes;
    };
    let root: Arc<str> = format!("/{stage}").into();
    Router::new().fallback_service(tower::service_fn(move |request: axum::extract::Request| {
        let root = root.clone();
        let routes = routes.clone();
        async move {
            // `/prod/` is `/prod` (the dashboard's address, typed either way).
            let page = matches!(*request.method(), Method::GET | Method::HEAD);
            if page && request.uri().path().strip_prefix(&*root) == Some("/") {
                return Ok(axum::response::Redirect::permanent(&root).into_response());
            }
            routes.oneshot(without_stage(request, &root)).await
        }
    }))
}

/// The request with `root` (`/prod`) cut off the front of its path; any
/// other path (`/v1/…`, `/products`) is left as it is.
fn without_stage(mut request: axum::extract::Request, root: &str) -> axum::extract::Request {
    let uri = request.uri();
    let rest = match uri.path().strip_prefix(root) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return request,
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    // A path cut from a valid URI at a `/` is itself valid.
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(stripped) = axum::http::Uri::from_parts(parts) {
        *request.uri_mut() = stripped;
    }
    request
}

/// Every route whose use case `state` wires: the management API, the
/// dashboard, the OpenAPI document and the doors events come in by. Each
/// group adds its routes to one router: merging routers re-inserted every
/// route, and building the router was a third of the API function's start.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let mut keyed = access::routes(events_door(&state, Router::new()));
    if state.runs.is_some() {
        keyed = runs::routes(keyed);
    }
    if state.recovery.is_some() {
        keyed = runs::action_routes(keyed);
    }
    if state.workflows.is_some() {
        keyed = workflows::routes(keyed);
    }
    if state.hooks.is_some() {
        keyed = hooks::routes(keyed);
    }
    if state.connections.is_some() {
        keyed = connections::routes(keyed);
    }
    if state.webhook_endpoints.is_some() {
        keyed = webhook_endpoints::routes(keyed);
    }
    if state.contacts.is_some() {
        keyed = contacts::routes(keyed);
    }
    if state.sso_sites.is_some() {
        keyed = sso::routes(keyed);
    }
    let mut public = public_doors(&state, Router::new().route("/v1/openapi.json", get(openapi::serve)));
    if state.runs.is_some() {
        public = dashboard::routes(public);
    }
    finish(keyed, public, state, max_body_bytes)
}

/// Only the doors events come in by (`POST /v1/events`, hooks and
/// identify), as the webhook function serves them. Built apart from
/// [`router`] so that the function links none of the management handlers.
pub fn doors_router(state: ApiState, max_body_bytes: usize) -> Router {
    let public = public_doors(&state, Router::new());
    finish(events_door(&state, Router::new()), public, state, max_body_bytes)
}

fn events_door(state: &ApiState, keyed: Router<ApiState>) -> Router<ApiState> {
    match state.ingest {
        Some(_) => keyed.route("/v1/events", post(events::post_events)),
        None => keyed,
    }
}

fn public_doors(state: &ApiState, mut public: Router<ApiState>) -> Router<ApiState> {
    if state.hook_receiver.is_some() {
        public = hooks::public_routes(public);
    }
    if state.identify.is_some() {
        public = sso::public_routes(public);
    }
    public
}

/// The key check in front of `keyed` (if it has any route), `public` beside
/// them, and the JSON refusals and body limit around both.
fn finish(keyed: Router<ApiState>, public: Router<ApiState>, state: ApiState, max_body_bytes: usize) -> Router {
    let keyed = if keyed.has_routes() {
        guard(keyed, state.gate.clone())
    } else {
        keyed
    };
    keyed
        .merge(public)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(Extension(MaxBodyBytes(max_body_bytes)))
        .with_state(state)
}

/// Puts the key check and the audit of writes in front of every route of
/// `routes` (routes added later are not covered: guard last).
pub fn guard<S: Clone + Send + Sync + 'static>(routes: Router<S>, gate: Gate) -> Router<S> {
    routes.route_layer(axum::middleware::from_fn_with_state(gate, access::check))
}

#[cfg(test)]
mod tests {
    use axum::extract::{OriginalUri, Request};
    use axum::routing::get;

    use super::*;

    /// Answers with the path it was routed by and the path the client sent.
    fn echo() -> Router {
        let echo = get(|OriginalUri(original): OriginalUri, request: Request| async move {
            format!("{} {}", request.uri(), original)
        });
        Router::new().route("/", echo.clone()).route("/{*rest}", echo)
    }

    async fn served(path: &str) -> (u16, String) {
        let request = Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = for_stage(echo(), Some("/prod/"))
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let location = response.headers().get("location").cloned();
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("body");
        let text = String::from_utf8_lossy(&body).into_owned();
        (
            status,
            location.map_or(text, |l| format!("-> {}", l.to_str().unwrap_or("?"))),
        )
    }

    #[tokio::test]
    async fn the_stage_is_cut_off_before_routing_and_kept_in_the_original_uri() {
        assert_eq!(
            served("/prod/v1/runs?status=failed").await,
            (200, "/v1/runs?status=failed /prod/v1/runs?status=failed".to_owned())
        );
        assert_eq!(served("/v1/runs").await, (200, "/v1/runs /v1/runs".to_owned()));
        assert_eq!(
            served("/products/1").await,
            (200, "/products/1 /products/1".to_owned()),
            "only a whole path segment is the stage"
        );
        assert_eq!(served("/prod").await, (200, "/ /prod".to_owned()));
        assert_eq!(served("/prod/").await, (308, "-> /prod".to_owned()));
        let post = Request::post("/prod/")
            .body(axum::body::Body::empty())
            .expect("request");
        let response = for_stage(echo(), Some("prod")).oneshot(post).await.expect("infallible");
        assert_eq!(response.status().as_u16(), 405, "only a page is redirected");
    }
}
