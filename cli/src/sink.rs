//! A request sink built into `hookflow dev`, so the example workflows have
//! somewhere to send their HTTP requests without any other service, and
//! where their email and SMS steps' messages show up (`/dev/sink/email`,
//! `/dev/sink/sms`) when dev runs in memory.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use axum::{Json, Router};
use hookflow_core::messaging::{Email, Mailer, Messaging, SendError, Sms, TextSender};
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
    let id = sink.keep(method.as_str(), &format!("/{path}"), Value::Object(headers), body);
    (StatusCode::OK, Json(json!({"id": id})))
}

impl Sink {
    fn keep(&self, method: &str, path: &str, headers: Value, body: Value) -> String {
        let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        let id = format!(
            "sink-{}",
            self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
        );
        received.push(json!({"id": id, "method": method, "path": path, "headers": headers, "body": body}));
        if received.len() > KEPT_REQUESTS {
            received.remove(0);
        }
        id
    }

    /// Email and SMS steps' messages, shown in the sink and handed on to
    /// `then` (the twin that tests read).
    /// `then`'s policy still decides whom they may reach.
    pub(crate) fn messaging(&self, then: Messaging) -> Messaging {
        let policy = then.policy.clone();
        let tee = Arc::new(SinkOutbox {
            sink: self.clone(),
            then,
        });
        Messaging {
            mailer: tee.clone(),
            texts: tee,
            policy,
        }
    }
}

struct SinkOutbox {
    sink: Sink,
    then: Messaging,
}

#[async_trait::async_trait]
impl Mailer for SinkOutbox {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        let id = self.then.mailer.send_email(email).await?;
        self.sink.keep("EMAIL", "/email", json!({}), json!(email));
        Ok(id)
    }
}

#[async_trait::async_trait]
impl TextSender for SinkOutbox {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
        let id = self.then.texts.send_sms(sms).await?;
        self.sink.keep("SMS", "/sms", json!({}), json!(sms));
        Ok(id)
    }
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
