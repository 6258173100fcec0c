//! The load generator: one keep-alive connection per worker, CloudEvents
//! numbered from one shared counter, each carrying its send time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::sink::now_us;

/// The trigger the bench workflow (and the relay) react to.
pub const TRIGGER: &str = "Gameplay.DataCapturedQualified";

/// Hands out event numbers across levels, so that every event of a bench is unique.
#[derive(Clone, Default)]
pub struct Numbers(Arc<AtomicU64>);

impl Numbers {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    pub fn issued(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub fn event(seq: u64) -> String {
    json!({
        "specversion": "1.0", "id": format!("bench-{seq}"), "source": "bench", "type": TRIGGER,
        "workspaceid": "ws_bench", "cardid": "card_bench",
        "data": {
            "card": {"name": "Bench card"},
            "contact": {"email": format!("player{seq}@example.com")},
            "form_fields": {"consent": true},
            "gameplay": {"score": 100 + seq % 900},
            "bench": {"seq": seq, "sent_us": now_us()}
        }
    })
    .to_string()
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub accepted: u64,
    pub refused: u64,
    /// Ingest latency of every accepted request, in microseconds.
    pub latencies_us: Vec<u64>,
}

impl LoadReport {
    fn merge(&mut self, other: LoadReport) {
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// When each worker sends: as fast as answers come (closed loop), or on a
/// fixed schedule whatever the answers (a steady rate).
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    ClosedLoop { until: Instant },
    Steady { per_second: f64, events: u64 },
}

pub async fn drive(url: &str, connections: usize, pace: Pace, numbers: &Numbers) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..connections {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()?;
        let (url, numbers) = (url.to_owned(), numbers.clone());
        workers.spawn(async move {
            let mut report = LoadReport::default();
            let mut sent = 0u64;
            loop {
                match pace {
                    Pace::ClosedLoop { until } if Instant::now() >= until => break,
                    Pace::ClosedLoop { .. } => {}
                    Pace::Steady { per_second, events } => {
                        let turn = sent * connections as u64 + worker as u64;
                        if turn >= events {
                            break;
                        }
                        tokio::time::sleep_until(started + Duration::from_secs_f64(turn as f64 / per_second)).await;
                    }
                }
                sent += 1;
                let body = event(numbers.next());
                let begun = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/cloudevents+json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(reply) if reply.status() == reqwest::StatusCode::ACCEPTED => {
                        let _ = reply.bytes().await;
                        report.accepted += 1;
                        report.latencies_us.push(begun.elapsed().as_micros() as u64);
                    }
                    _ => report.refused += 1,
                }
            }
            report
        });
    }
    let mut total = LoadReport::default();
    while let Some(report) = workers.join_next().await {
        total.merge(report?);
    }
    Ok(total)
}
