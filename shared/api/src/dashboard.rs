//! The web dashboard at `/`: three static files compiled into the binary,
//! served by `hookflow dev` and the api function alike. The page holds no
//! data of its own: it calls the runs API with the key the user pastes,
//! which it keeps in `sessionStorage` and sends as a Bearer token.
//!
//! Everything the page shows (event data, peers' responses) comes from
//! strangers. The script only ever sets `textContent`, and this policy
//! forbids inline script and style, other origins, framing and plugins, so
//! a payload that slipped through would still not run.

use axum::extract::OriginalUri;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::ApiState;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// Same-origin script, style and requests only; nothing inline, no frames,
/// no forms posting elsewhere, no `<base>` rewrites.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                          img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/", get(index))
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, POLICY),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (REFERRER_POLICY, "no-referrer"),
            (X_FRAME_OPTIONS, "DENY"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The page. Behind an API Gateway stage it is `/prod`, and its assets are
/// under `/prod/dashboard/`: the links name the prefix the page was served
/// under (only a matched route's own path, checked to be plain).
async fn index(OriginalUri(uri): OriginalUri) -> Response {
    let prefix = uri.path().trim_end_matches('/');
    let plain = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b));
    let base = if plain { format!("{prefix}/") } else { "/".to_owned() };
    let page = INDEX.replace("{{base}}", &base);
    asset("text/html; charset=utf-8", page)
}
