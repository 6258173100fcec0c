//! Contacts: `GET/POST /v1/workspaces/{ws}/contacts` (a page of JSON, or
//! with `format=csv` the whole selection as a streamed CSV export), and
//! `GET/PATCH/DELETE …/contacts/{id}` (`DELETE` erases the contact).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use hookflow_core::contacts::{
    Contact, ContactError, ContactPatch, ContactQuery, Contacts, CsvExport, NewContactRequest,
};
use hookflow_core::EngineError;
use serde_json::{json, Value};

use crate::params::{bad_query, decode_body, encode_cursor, page, path, read_body, PathResult};
use crate::{openapi, ApiError, ApiState, MaxBodyBytes};

pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/v1/workspaces/{workspace_id}/contacts", get(list).post(create))
        .route(
            "/v1/workspaces/{workspace_id}/contacts/{contact_id}",
            get(show).patch(update).delete(erase),
        )
}

impl From<ContactError> for ApiError {
    fn from(err: ContactError) -> Self {
        let status = match &err {
            ContactError::NotFound(_) => StatusCode::NOT_FOUND,
            ContactError::Refused(hookflow_core::contacts::ContactRefusal::EmailTaken { .. })
            | ContactError::Refused(hookflow_core::contacts::ContactRefusal::ExternalIdTaken { .. }) => {
                StatusCode::CONFLICT
            }
            ContactError::Refused(_) | ContactError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ContactError::Port(port) => return EngineError::from(port.clone()).into(),
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

fn use_case(state: &ApiState) -> Result<Arc<Contacts>, ApiError> {
    crate::error::served(&state.contacts)
}

/// A contact as the API shows it.
pub(crate) fn contact_json(contact: &Contact) -> Value {
    json!({"id": contact.id, "email": contact.email, "external_id": contact.external_id,
        "properties": contact.properties, "tags": contact.tags, "lists": contact.lists,
        "loyalty": contact.loyalty, "created_at": contact.created_at, "updated_at": contact.updated_at,
        "revision": contact.revision})
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/contacts", tag = "contacts",
    description = "A page of contacts in id order, or with `format=csv` every selected contact as RFC 4180 CSV (streamed; properties as columns; formula-like cells prefixed with `'`).",
    params(openapi::WorkspaceId,
        ("tag" = Option<String>, Query, description = "only contacts with this tag"),
        ("list" = Option<String>, Query, description = "only contacts in this list"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 50); JSON only"),
        ("cursor" = Option<String>, Query, description = "the `next_cursor` of the previous page; JSON only")),
    responses((status = 200, description = "a page of contacts, or with `format=csv` the export",
            content((openapi::ContactList = "application/json"), (String = "text/csv"))),
        (status = 400, body = openapi::ErrorBody), (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<ApiState>,
    ws: PathResult<String>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let ws = path(ws)?;
    let page = page(params, &["tag", "list", "format"])?;
    let query = ContactQuery {
        tag: page.filters.get("tag").cloned(),
        list: page.filters.get("list").cloned(),
        limit: page.limit,
        after: page.cursor.clone(),
    };
    let contacts = use_case(&state)?;
    match page.filters.get("format").map(String::as_str) {
        None | Some("json") => {}
        Some("csv") if page.cursor.is_none() => return export(&contacts, &ws, &query).await,
        Some("csv") => return Err(bad_query("a CSV export is never paged: leave out cursor".into())),
        Some(other) => return Err(bad_query(format!("format {other:?} is not json or csv"))),
    }
    let found = contacts.list(&ws, &query).await?;
    let mut answer = json!({"contacts": found.contacts.iter().map(contact_json).collect::<Vec<_>>()});
    if let Some(next) = found.next {
        answer["next_cursor"] = json!(encode_cursor(&next));
    }
    Ok(Json(answer).into_response())
}

/// The CSV answer: headers now, then a chunk per page of contacts as the
/// caller reads them. A store failure half way cuts the body short (the
/// status was sent); it is logged.
async fn export(contacts: &Contacts, ws: &str, query: &ContactQuery) -> Result<Response, ApiError> {
    let export = CsvExport::start(contacts.store(), ws, query)
        .await
        .map_err(|err| match err.retryable {
            true => ApiError::from(EngineError::from(err)),
            false => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "export_refused", err.message),
        })?;
    let chunks = futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(chunk)), Some(export))),
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, rows = export.rows(), "contacts export cut short");
                Some((Err(std::io::Error::other(err.to_string())), None))
            }
        }
    });
    let filename = match (&query.tag, &query.list) {
        (Some(tag), _) => format!("contacts-tag-{}.csv", file_safe(tag)),
        (None, Some(list)) => format!("contacts-list-{}.csv", file_safe(list)),
        (None, None) => "contacts.csv".to_owned(),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/contacts", tag = "contacts",
    params(openapi::WorkspaceId), request_body(content = openapi::NewContactBody, content_type = "application/json"),
    responses((status = 201, body = openapi::ContactView), (status = 409, body = openapi::ErrorBody),
        (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<ApiState>,
    ws: PathResult<String>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ws = path(ws)?;
    let request: NewContactRequest = decode_body(
        &read_body(body, limit)?,
        "a contact: {\"email\", \"external_id\", \"properties\", \"tags\", \"lists\"}",
    )?;
    let contact = use_case(&state)?.create(&ws, request).await?;
    Ok((StatusCode::CREATED, Json(contact_json(&contact))).into_response())
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/contacts/{contact_id}", tag = "contacts",
    params(openapi::WorkspaceId, openapi::ContactId),
    responses((status = 200, body = openapi::ContactView), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    Ok(Json(contact_json(&use_case(&state)?.get(&ws, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/workspaces/{workspace_id}/contacts/{contact_id}", tag = "contacts",
    description = "Set and unset properties, add and remove tags and lists.",
    params(openapi::WorkspaceId, openapi::ContactId),
    request_body(content = openapi::ContactPatchBody, content_type = "application/json"),
    responses((status = 200, body = openapi::ContactView), (status = 404, body = openapi::ErrorBody),
        (status = 422, body = openapi::ErrorBody)))]
pub(crate) async fn update(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
    limit: Option<Extension<MaxBodyBytes>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id) = path(ids)?;
    let patch: ContactPatch = decode_body(
        &read_body(body, limit)?,
        "the changes: {\"set\", \"unset\", \"add_tags\", \"remove_tags\", \"add_lists\", \"remove_lists\"}",
    )?;
    Ok(Json(contact_json(&use_case(&state)?.update(&ws, &id, patch).await?)))
}

#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/contacts/{contact_id}", tag = "contacts",
    description = "Erase the contact: its properties, tags, lists and balances. Runs that referenced it keep only its id.",
    params(openapi::WorkspaceId, openapi::ContactId),
    responses((status = 204, description = "erased"), (status = 404, body = openapi::ErrorBody)))]
pub(crate) async fn erase(
    State(state): State<ApiState>,
    ids: PathResult<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (ws, id) = path(ids)?;
    use_case(&state)?.erase(&ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
