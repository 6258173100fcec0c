//! What the engine counts, for dashboards and alarms: runs started and
//! ended by status, step durations, retries and dead-letter moves. The use
//! cases report each change once (the delivery whose write made it); a sink
//! turns the reports into CloudWatch Embedded Metric Format lines in Lambda
//! (`hookflow_lambda::EmfMetrics`) or Prometheus counters in `hookflow dev`
//! ([`MemoryMetrics`]).
//!
//! The workspace and workflow are *properties* of a measurement, never
//! dimensions: every dimension combination is billed as a custom metric, so
//! per-workflow figures come from Logs Insights or the runs index.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::run::{RunStatus, StepStatus};

/// The CloudWatch namespace of every metric (the template's alarms use it).
pub const NAMESPACE: &str = "Hookflow";
/// The one CloudWatch dimension: the stack's name, so two stacks in one
/// account keep their metrics and alarms apart.
pub const STACK_DIMENSION: &str = "Stack";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    RunsStarted,
    RunsSucceeded,
    RunsFailed,
    RunsCancelled,
    /// Step attempts after the first (a retry or a replay).
    StepRetries,
    /// Messages parked as dead letters (a terminal error, or deliveries
    /// exhausted); a parked step message's run ends `failed`.
    DeadLetterMoves,
    /// Running runs the reaper ended: nothing could still deliver their
    /// next step.
    RunsReaped,
    /// Webhook endpoints disabled by a 410 or by failing for five days (the
    /// stack's alarm watches it).
    WebhookEndpointsDisabled,
}

impl Counter {
    pub const ALL: [Counter; 8] = [
        Counter::RunsStarted,
        Counter::RunsSucceeded,
        Counter::RunsFailed,
        Counter::RunsCancelled,
        Counter::StepRetries,
        Counter::DeadLetterMoves,
        Counter::RunsReaped,
        Counter::WebhookEndpointsDisabled,
    ];

    /// The CloudWatch metric name.
    pub fn name(self) -> &'static str {
        match self {
            Counter::RunsStarted => "RunsStarted",
            Counter::RunsSucceeded => "RunsSucceeded",
            Counter::RunsFailed => "RunsFailed",
            Counter::RunsCancelled => "RunsCancelled",
            Counter::StepRetries => "StepRetries",
            Counter::DeadLetterMoves => "DeadLetterMoves",
            Counter::RunsReaped => "RunsReaped",
            Counter::WebhookEndpointsDisabled => "WebhookEndpointsDisabled",
        }
    }

    fn prometheus(self) -> (&'static str, &'static str) {
        match self {
            Counter::RunsStarted => ("hookflow_runs_started_total", "Runs started."),
            Counter::RunsSucceeded => ("hookflow_runs_succeeded_total", "Runs that ended succeeded."),
            Counter::RunsFailed => ("hookflow_runs_failed_total", "Runs that ended failed."),
            Counter::RunsCancelled => ("hookflow_runs_cancelled_total", "Runs cancelled by an operator."),
            Counter::StepRetries => ("hookflow_step_retries_total", "Step attempts after the first."),
            Counter::DeadLetterMoves => ("hookflow_dead_letter_moves_total", "Messages parked as dead letters."),
            Counter::RunsReaped => ("hookflow_runs_reaped_total", "Stuck runs the reaper ended."),
            Counter::WebhookEndpointsDisabled => (
                "hookflow_webhook_endpoints_disabled_total",
                "Webhook endpoints disabled by a 410 or five days of failures.",
            ),
        }
    }

    /// The counter a run's end moves.
    pub fn run_ended(status: RunStatus) -> Option<Counter> {
        match status {
            RunStatus::Running => None,
            RunStatus::Succeeded => Some(Counter::RunsSucceeded),
            RunStatus::Failed => Some(Counter::RunsFailed),
            RunStatus::Cancelled => Some(Counter::RunsCancelled),
        }
    }
}

/// What a measurement is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub workspace_id: &'a str,
    pub workflow_id: &'a str,
    pub run_id: &'a str,
}

/// Where measurements go.
pub trait Metrics: Send + Sync {
    fn count(&self, counter: Counter, subject: &Subject<'_>);
    fn step_duration(&self, action: &str, status: StepStatus, duration: Duration, subject: &Subject<'_>);
}

/// Upper bounds (seconds) of the step duration histogram's buckets.
const BUCKETS_S: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or under each bound of [`BUCKETS_S`].
    buckets: [u64; BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

#[derive(Debug, Default)]
struct Tallies {
    counters: BTreeMap<Counter, u64>,
    /// By (action, status).
    durations: BTreeMap<(String, &'static str), Histogram>,
}

/// Counts in memory; `hookflow dev` serves them at `/metrics`.
#[derive(Debug, Default)]
pub struct MemoryMetrics(Mutex<Tallies>);

impl MemoryMetrics {
    fn tallies(&self) -> std::sync::MutexGuard<'_, Tallies> {
        // A panic while counting leaves counts that are still counts.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.tallies().counters.get(&counter).copied().unwrap_or(0)
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let tallies = self.tallies();
        let mut out = String::new();
        for counter in Counter::ALL {
            let (name, help) = counter.prometheus();
            let value = tallies.counters.get(&counter).copied().unwrap_or(0);
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        }
        let name = "hookflow_step_duration_seconds";
        let _ = write!(out, "# HELP {name} Step attempt durations.\n# TYPE {name} histogram\n");
        for ((action, status), histogram) in &tallies.durations {
            let labels = format!("action=\"{}\",status=\"{status}\"", escape_label(action));
            for (bound, count) in BUCKETS_S.iter().zip(histogram.buckets) {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", histogram.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum_s);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", histogram.count);
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn status_label(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
    }
}

impl Metrics for MemoryMetrics {
    fn count(&self, counter: Counter, _subject: &Subject<'_>) {
        *self.tallies().counters.entry(counter).or_default() += 1;
    }

    fn step_duration(&self, action: &str, status: StepStatus, duration: Duration, _subject: &Subject<'_>) {
        let seconds = duration.as_secs_f64();
        let mut tallies = self.tallies();
        let histogram = tallies
            .durations
            .entry((action.to_owned(), status_label(status)))
            .or_default();
        for (bound, bucket) in BUCKETS_S.iter().zip(histogram.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_s += seconds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: Subject<'static> = Subject {
        workspace_id: "ws",
        workflow_id: "wf",
        run_id: "run_1",
    };

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let metrics = MemoryMetrics::default();
        metrics.count(Counter::RunsStarted, &SUBJECT);
        metrics.count(Counter::RunsStarted, &SUBJECT);
        metrics.count(Counter::RunsFailed, &SUBJECT);
        metrics.step_duration("HttpRequest", StepStatus::Failed, Duration::from_millis(40), &SUBJECT);
        metrics.step_duration("HttpRequest", StepStatus::Failed, Duration::from_secs(60), &SUBJECT);
        assert_eq!(metrics.get(Counter::RunsStarted), 2);
        let text = metrics.prometheus();
        assert!(text.contains("# TYPE hookflow_runs_started_total counter\nhookflow_runs_started_total 2\n"));
        assert!(text.contains("hookflow_runs_failed_total 1\n"));
        assert!(text.contains("hookflow_runs_cancelled_total 0\n"));
        let labels = "action=\"HttpRequest\",status=\"failed\"";
        assert!(text.contains(&format!(
            "hookflow_step_duration_seconds_bucket{{{labels},le=\"0.025\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "hookflow_step_duration_seconds_bucket{{{labels},le=\"0.05\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "hookflow_step_duration_seconds_bucket{{{labels},le=\"30\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "hookflow_step_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2\n"
        )));
        assert!(text.contains(&format!("hookflow_step_duration_seconds_count{{{labels}}} 2\n")));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("a sample line is `series value`");
            assert!(!series.is_empty() && value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn a_run_end_moves_its_status_counter() {
        assert_eq!(Counter::run_ended(RunStatus::Running), None);
        assert_eq!(Counter::run_ended(RunStatus::Cancelled), Some(Counter::RunsCancelled));
    }
}
