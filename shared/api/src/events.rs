use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hookflow_core::access::{AccessError, Actor, Permission};
use hookflow_core::event::{self, Mode};
use serde_json::json;

use crate::{ApiError, ApiState, MaxBodyBytes};

/// `POST /v1/events`: one CloudEvent or a batch. The whole request is
/// validated before anything is enqueued.
///
/// The body is read through `DefaultBodyLimit` (see [`crate::router`]): a
/// body over the limit is refused as soon as the limit is passed, whether or
/// not it has a `Content-Length`, and never buffered whole.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    description = "One CloudEvent (structured `application/cloudevents+json` or `application/json`, or binary with `ce-*` headers) or a batch (`application/cloudevents-batch+json`). An `ingest` or `admin` key, for events of its own workspace.",
    request_body(content = Object, content_type = "application/cloudevents+json"),
    responses((status = 202, body = crate::openapi::EventsAccepted), (status = 415, body = crate::openapi::ErrorBody)))]
pub(crate) async fn post_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    actor: Option<Extension<Actor>>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(ingest) = state.ingest else {
        return Err(crate::error::no_route());
    };
    let body =
        body.map_err(|rejection| crate::error::body_error(&rejection, limit.map(|Extension(MaxBodyBytes(max))| max)))?;
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "content type is not valid text",
            )
        })?),
    };
    let binary = headers.contains_key("ce-specversion");
    let (mode, events) = if binary {
        let pairs = crate::params::header_pairs(&headers);
        (Mode::Single, vec![event::parse_binary(&pairs, content_type, &body)?])
    } else {
        event::parse_request(content_type, &body)?
    };
    // A key sends events of its own workspace only; a batch is refused
    // whole, before anything is enqueued. The key check always names the
    // actor: without one, nothing is accepted.
    let Some(Extension(actor)) = actor else {
        return Err(AccessError::Unauthenticated("an API key is required").into());
    };
    for event in &events {
        actor.authorize(Permission::Ingest, Some(&event.workspaceid))?;
    }
    let receipts = ingest.accept(&events).await?;
    let body = match mode {
        Mode::Single => json!({"event_id": receipts.first().map(|r| r.event_id.clone())}),
        Mode::Batch => json!({"event_ids": receipts.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>()}),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
