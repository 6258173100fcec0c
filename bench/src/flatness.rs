//! Flatness: many events through the pipeline at a steady rate, and the
//! first tenth of them compared with the last. A cost that grows with the
//! work done shows as a slower, dearer last tenth.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::load::{drive, Numbers, Pace};
use crate::pipeline::{unique_and_duplicates, wait_for, System};
use crate::sink::{now_us, Arrival, Sink};

#[derive(Debug, Clone)]
pub struct Tenth {
    pub runs_per_s: f64,
    pub cpu_ms_per_run: f64,
}

#[derive(Debug, Clone)]
pub struct FlatnessResult {
    pub events: u64,
    pub offered_per_s: f64,
    pub accepted: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub first: Tenth,
    pub last: Tenth,
    pub peak_rss_mib: f64,
}

impl FlatnessResult {
    /// Last tenth's runs/s over the first's.
    pub fn ratio(&self) -> f64 {
        self.last.runs_per_s / self.first.runs_per_s
    }
}

/// (time, CPU ms) samples of the measured process, every 100 ms.
type CpuSamples = Arc<Mutex<Vec<(u64, f64)>>>;

fn sample_cpu(system: &System) -> (CpuSamples, tokio::task::JoinHandle<()>) {
    let samples: CpuSamples = Arc::default();
    let pid = system.process.pid();
    let kept = samples.clone();
    let task = tokio::spawn(async move {
        while let Ok(cpu) = crate::process::cpu_ms(pid) {
            kept.lock().unwrap_or_else(|p| p.into_inner()).push((now_us(), cpu));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (samples, task)
}

/// CPU used by `at_us`, from the nearest sample before it.
fn cpu_at(samples: &[(u64, f64)], at_us: u64) -> f64 {
    samples
        .iter()
        .take_while(|(t, _)| *t <= at_us)
        .last()
        .or(samples.first())
        .map_or(0.0, |(_, cpu)| *cpu)
}

fn tenth(arrivals: &[Arrival], samples: &[(u64, f64)]) -> Tenth {
    let begun = arrivals.iter().map(|a| a.sent_us).min().unwrap_or(0);
    let ended = arrivals.iter().map(|a| a.arrived_us).max().unwrap_or(begun);
    let span_s = (ended.saturating_sub(begun)) as f64 / 1e6;
    let runs = arrivals.len().max(1) as f64;
    Tenth {
        runs_per_s: runs / span_s.max(1e-3),
        cpu_ms_per_run: (cpu_at(samples, ended) - cpu_at(samples, begun)) / runs,
    }
}

pub async fn run(
    system: &System,
    sink: &Sink,
    numbers: &Numbers,
    events: u64,
    per_second: f64,
) -> anyhow::Result<FlatnessResult> {
    system.peak.reset();
    let (samples, sampler) = sample_cpu(system);
    let arrived_before = sink.count();
    let from = numbers.issued();
    let pace = Pace::Steady { per_second, events };
    let report = drive(&system.events_url(), 8, pace, numbers).await?;
    wait_for(sink, arrived_before + report.accepted).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    sampler.abort();
    let samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let to = numbers.issued();
    let (unique, duplicates) = unique_and_duplicates(&sink.arrivals(from, to));
    let tenth_size = (to - from) / 10;
    Ok(FlatnessResult {
        events,
        offered_per_s: per_second,
        accepted: report.accepted,
        lost: report.accepted.saturating_sub(unique),
        duplicates,
        first: tenth(&sink.arrivals(from, from + tenth_size), &samples),
        last: tenth(&sink.arrivals(to - tenth_size, to), &samples),
        peak_rss_mib: system.peak.mib(),
    })
}
