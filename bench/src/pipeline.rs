//! The pipeline bench: `hookflow dev` (speed profile, in-memory backend)
//! and the bare relay, side by side, at each level of connections.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use tokio::time::Instant;

use crate::load::{drive, Numbers, Pace, TRIGGER};
use crate::process::{free_port, sibling_binary, Measured, PeakRss};
use crate::sink::{now_us, Arrival, Sink};
use crate::stats::percentile;

/// How long a level may take to drain once its load stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

/// A system under test: where events go, and the process doing the work.
pub struct System {
    pub label: &'static str,
    pub process: Measured,
    pub peak: PeakRss,
}

impl System {
    pub fn events_url(&self) -> String {
        format!("{}/v1/events", self.process.base)
    }

    /// `hookflow dev` with one workflow that forwards hot leads to the sink.
    pub async fn hookflow(sink_url: &str, workdir: &Path, extra_args: &[String]) -> anyhow::Result<Self> {
        let folder = workdir.join("workflows");
        std::fs::create_dir_all(&folder)?;
        std::fs::write(
            folder.join("bench.json"),
            serde_json::to_string_pretty(&bench_workflow(sink_url))?,
        )?;
        let port = free_port()?;
        let mut command = Command::new(sibling_binary("hookflow")?);
        command
            .args(["dev", "--addr", &format!("127.0.0.1:{port}"), "--workflows"])
            .arg(&folder)
            .args(extra_args)
            .env("RUST_LOG", "warn");
        let process = Measured::start(
            "hookflow",
            command,
            format!("http://127.0.0.1:{port}"),
            "/v1/openapi.json",
        )
        .await?;
        let peak = PeakRss::watch(process.pid());
        Ok(Self {
            label: "Hookflow",
            process,
            peak,
        })
    }

    pub async fn relay(sink_url: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(sibling_binary("bench-relay")?);
        command.args(["--listen", &format!("127.0.0.1:{port}"), "--forward", sink_url]);
        let base = format!("http://127.0.0.1:{port}");
        let process = Measured::start("relay", command, base, "/v1/events").await?;
        let peak = PeakRss::watch(process.pid());
        Ok(Self {
            label: "bare relay",
            process,
            peak,
        })
    }
}

/// A CloudEvent, a trigger filter, a Decision on `gameplay.score`, then an
/// HttpRequest POST of a templated JSON body.
pub fn bench_workflow(sink_url: &str) -> serde_json::Value {
    json!({
        "id": "wf_bench", "workspace_id": "ws_bench", "name": "Bench: hot leads to the CRM", "status": "active",
        "scope": {"workspace": true},
        "trigger": {"type": TRIGGER, "filter": {"path": "form_fields.consent", "op": "eq", "value": true}},
        "start": "route",
        "steps": {
            "route": {"action": {"type": "Decision",
                "branches": [{"when": {"path": "gameplay.score", "op": "gte", "value": 100}, "next": "push"}],
                "default": "cold"}},
            "push": {"action": {"type": "HttpRequest", "method": "POST", "url": sink_url,
                "body": {"email": "{{ contact.email }}", "source": "Komo - {{ card.name }}", "score": "{{ gameplay.score }}",
                         "seq": "{{ bench.seq }}", "sent_us": "{{ bench.sent_us }}"}}},
            "cold": {"action": {"type": "SetVariables", "values": {"tier": "cold"}}}
        }
    })
}

#[derive(Debug, Clone)]
pub struct LevelResult {
    pub system: &'static str,
    pub connections: usize,
    pub accepted: u64,
    pub refused: u64,
    /// Accepted events whose request never reached the sink.
    pub lost: u64,
    /// Requests the sink got more than once for one event.
    pub duplicates: u64,
    pub runs_per_s: f64,
    pub ingest_p50_ms: f64,
    pub ingest_p99_ms: f64,
    pub to_sink_p50_ms: f64,
    pub to_sink_p99_ms: f64,
    pub cpu_ms_per_run: f64,
    pub peak_rss_mib: f64,
}

/// Drives `connections` for `duration`, waits until the sink has every
/// accepted event (or gives up), and reports.
pub async fn run_level(
    system: &System,
    sink: &Sink,
    numbers: &Numbers,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LevelResult> {
    system.peak.reset();
    let cpu_before = system.process.cpu_ms()?;
    let arrived_before = sink.count();
    let from = numbers.issued();
    let started_us = now_us();
    let pace = Pace::ClosedLoop {
        until: Instant::now() + duration,
    };
    let mut report = drive(&system.events_url(), connections, pace, numbers).await?;
    let to = numbers.issued();
    let drained = wait_for(sink, arrived_before + report.accepted).await;
    let cpu_used = system.process.cpu_ms()? - cpu_before;
    let arrivals = sink.arrivals(from, to);
    let (unique, duplicates) = unique_and_duplicates(&arrivals);
    if !drained {
        eprintln!(
            "{} c{connections}: {} of {} accepted events reached the sink within {DRAIN_TIMEOUT:?}",
            system.label, unique, report.accepted
        );
    }
    let last_us = arrivals.iter().map(|a| a.arrived_us).max().unwrap_or(started_us);
    let span_s = (last_us.saturating_sub(started_us)) as f64 / 1e6;
    let mut to_sink: Vec<u64> = arrivals
        .iter()
        .map(|a| a.arrived_us.saturating_sub(a.sent_us))
        .collect();
    Ok(LevelResult {
        system: system.label,
        connections,
        accepted: report.accepted,
        refused: report.refused,
        lost: report.accepted.saturating_sub(unique),
        duplicates,
        runs_per_s: unique as f64 / span_s.max(1e-3),
        ingest_p50_ms: percentile(&mut report.latencies_us, 50.0) / 1000.0,
        ingest_p99_ms: percentile(&mut report.latencies_us, 99.0) / 1000.0,
        to_sink_p50_ms: percentile(&mut to_sink, 50.0) / 1000.0,
        to_sink_p99_ms: percentile(&mut to_sink, 99.0) / 1000.0,
        cpu_ms_per_run: cpu_used / unique.max(1) as f64,
        peak_rss_mib: system.peak.mib(),
    })
}

pub fn unique_and_duplicates(arrivals: &[Arrival]) -> (u64, u64) {
    let mut seqs: Vec<u64> = arrivals.iter().map(|a| a.seq).collect();
    seqs.sort_unstable();
    let total = seqs.len() as u64;
    seqs.dedup();
    (seqs.len() as u64, total - seqs.len() as u64)
}

/// Waits until the sink has seen `count` requests; false on timeout.
pub async fn wait_for(sink: &Sink, count: u64) -> bool {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while sink.count() < count {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// The engine's own count of runs (`/metrics`), to check every accepted
/// event became exactly one succeeded run.
pub async fn runs_succeeded(system: &System) -> anyhow::Result<u64> {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(format!("{}/metrics", system.process.base))
        .send()
        .await?
        .text()
        .await?;
    let line = text
        .lines()
        .find(|l| l.starts_with("hookflow_runs_succeeded_total "))
        .context("no hookflow_runs_succeeded_total in /metrics")?;
    match line.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
        Some(count) => Ok(count),
        None => bail!("unreadable metrics line {line:?}"),
    }
}
