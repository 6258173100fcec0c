//! Counts and durations of a workspace's runs over a window, per workflow,
//! for the dashboard (`GET …/runs/stats`).
//!
//! Served by bounded queries of the runs-by-status index, not by a
//! maintained aggregate: an aggregate costs a counter write on every run end
//! (a hot item in a busy workspace) to answer a question asked a few times
//! a minute, and it cannot give percentiles. Each status reads at most
//! [`MAX_STATS_RUNS`] runs (ten pages); past that the answer says
//! `truncated` and its figures cover the newest runs of the window.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ports::{collect_runs, PortResult, RunLog, RunQuery};
use crate::run::{RunRecord, RunStatus};

/// The most runs of one status a window's statistics read.
pub const MAX_STATS_RUNS: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkflowStats {
    pub workflow_id: String,
    pub runs: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    /// failed / (succeeded + failed); absent before any run ended either way.
    pub failure_rate: Option<f64>,
    /// Durations of the runs that ended, nearest rank.
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowStats {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub workflows: Vec<WorkflowStats>,
    /// A status had more than [`MAX_STATS_RUNS`] runs in the window.
    pub truncated: bool,
}

/// Per workflow, by workflow id.
pub fn summarize(runs: &[RunRecord]) -> Vec<WorkflowStats> {
    let mut by_workflow: std::collections::BTreeMap<&str, (WorkflowStats, Vec<i64>)> = Default::default();
    for run in runs {
        let (stats, durations) = by_workflow.entry(run.workflow_id.as_str()).or_insert_with(|| {
            (
                WorkflowStats {
                    workflow_id: run.workflow_id.clone(),
                    ..WorkflowStats::default()
                },
                vec![],
            )
        });
        stats.runs += 1;
        match run.status {
            RunStatus::Running => stats.running += 1,
            RunStatus::Succeeded => stats.succeeded += 1,
            RunStatus::Failed => stats.failed += 1,
            RunStatus::Cancelled => stats.cancelled += 1,
        }
        if let Some(ended) = run.ended_at {
            durations.push((ended - run.started_at).num_milliseconds().max(0));
        }
    }
    by_workflow
        .into_values()
        .map(|(mut stats, mut durations)| {
            let decided = stats.succeeded + stats.failed;
            stats.failure_rate = (decided > 0).then(|| stats.failed as f64 / decided as f64);
            durations.sort_unstable();
            stats.p50_ms = nearest_rank(&durations, 50);
            stats.p95_ms = nearest_rank(&durations, 95);
            stats
        })
        .collect()
}

fn nearest_rank(sorted: &[i64], percentile: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percentile * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The statistics of production runs started in [since, until).
pub async fn window_stats(
    log: &dyn RunLog,
    workspace_id: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> PortResult<WindowStats> {
    let mut runs = vec![];
    let mut truncated = false;
    for status in RunStatus::ALL {
        let query = RunQuery {
            status: Some(status),
            since: Some(since),
            until: Some(until),
            ..RunQuery::default()
        };
        let mut found = collect_runs(log, workspace_id, &query, MAX_STATS_RUNS + 1).await?;
        truncated |= found.len() > MAX_STATS_RUNS;
        found.truncate(MAX_STATS_RUNS);
        runs.extend(found);
    }
    Ok(WindowStats {
        since,
        until,
        workflows: summarize(&runs),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workflow: &str, status: RunStatus, seconds: Option<i64>) -> RunRecord {
        let started = Utc::now();
        RunRecord {
            run_id: "r".into(),
            workspace_id: "ws".into(),
            workflow_id: workflow.into(),
            workflow_version: 1,
            event_id: "e".into(),
            trigger_type: "Prize.Won".into(),
            status,
            started_at: started,
            ended_at: seconds.map(|s| started + chrono::Duration::seconds(s)),
            error: None,
            replays: 0,
            test: false,
            replay_of: None,
            due_at: None,
            contact_id: None,
            erased_at: None,
        }
    }

    #[test]
    fn counts_rates_and_percentiles_per_workflow() {
        let mut runs: Vec<RunRecord> = (1..=19).map(|s| run("wf_a", RunStatus::Succeeded, Some(s))).collect();
        runs.push(run("wf_a", RunStatus::Failed, Some(100)));
        runs.push(run("wf_a", RunStatus::Running, None));
        runs.push(run("wf_b", RunStatus::Cancelled, Some(1)));
        let stats = summarize(&runs);
        assert_eq!(stats.len(), 2);
        let a = &stats[0];
        assert_eq!((a.runs, a.succeeded, a.failed, a.running), (21, 19, 1, 1));
        assert_eq!(a.failure_rate, Some(0.05));
        assert_eq!((a.p50_ms, a.p95_ms), (Some(10_000), Some(19_000)));
        let b = &stats[1];
        assert_eq!((b.cancelled, b.failure_rate, b.p50_ms), (1, None, Some(1000)));
    }
}
