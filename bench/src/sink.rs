//! The peer every run ends at. It records when each event's request
//! arrived, so that a run counts as completed only once the sink has it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// Microseconds since the bench started: the clock of send and arrival
/// times, both taken in this process.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub seq: u64,
    pub sent_us: u64,
    pub arrived_us: u64,
}

#[derive(Clone, Default)]
pub struct Sink {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    count: Arc<AtomicU64>,
    unreadable: Arc<AtomicU64>,
}

impl Sink {
    pub async fn serve(&self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/sink", listener.local_addr()?);
        let app = Router::new().route("/sink", post(receive)).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn unreadable(&self) -> u64 {
        self.unreadable.load(Ordering::Relaxed)
    }

    /// Arrivals of the events numbered `from..to`.
    pub fn arrivals(&self, from: u64, to: u64) -> Vec<Arrival> {
        let arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        arrivals
            .iter()
            .filter(|a| (from..to).contains(&a.seq))
            .copied()
            .collect()
    }
}

fn number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str()?.parse().ok())
}

async fn receive(State(sink): State<Sink>, body: Bytes) -> StatusCode {
    let arrived_us = now_us();
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let fields = parsed
        .as_ref()
        .and_then(|v| Some((number(&v["seq"])?, number(&v["sent_us"])?)));
    let Some((seq, sent_us)) = fields else {
        sink.unreadable.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    };
    sink.arrivals.lock().unwrap_or_else(|p| p.into_inner()).push(Arrival {
        seq,
        sent_us,
        arrived_us,
    });
    sink.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}
