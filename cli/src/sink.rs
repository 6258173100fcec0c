//! A request sink built into `hookflow dev`, so the example workflows have
//! somewhere to send their HTTP requests without any other service.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

const KEPT_REQUESTS: usize = 1000;

#[derive(Clone, Default)]
pub(crate) struct Sink {
    received: Arc<Mutex<Vec<Value>>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

pub(crate) fn routes(sink: Sink) -> Router {
    Router::new()
        .route("/dev/sink", any(list))
        .route("/dev/sink/{*path}", any(receive))
        .with_state(sink)
}

async fn receive(
    State(sink): State<Sink>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    if method == Method::GET {
        return (StatusCode::OK, Json(json!({"requests": filtered(&sink, &path)})));
    }
    let text = String::from_utf8_lossy(&body);
    let body = serde_json::from_str::<Value>(&text).unwrap_or_else(|_| Value::String(text.into_owned()));
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "cookie" | "x-api-key"))
        .filter_map(|(k, v)| Some((k.to_string(), Value::String(v.to_str().ok()?.to_owned()))))
        .collect();
    let mut received = sink.received.lock().unwrap_or_else(|p| p.into_inner());
    let id = format!(
        "sink-{}",
        sink.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    );
    received.push(
        json!({"id": id, "method": method.as_str(), "path": format!("/{path}"), "headers": headers, "body": body}),
    );
    if received.len() > KEPT_REQUESTS {
        received.remove(0);
    }
    (StatusCode::OK, Json(json!({"id": id})))
}

fn filtered(sink: &Sink, path: &str) -> Vec<Value> {
    let prefix = format!("/{path}");
    let received = sink.received.lock().unwrap_or_else(|p| p.into_inner());
    received
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(&prefix)))
        .cloned()
        .collect()
}

async fn list(State(sink): State<Sink>) -> Json<Value> {
    Json(json!({"requests": filtered(&sink, "")}))
}
