//! The Markdown the bench prints and writes to `bench/results.md`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::burst::Burst;
use crate::cost::{price, step_functions, CostPerMillion, Prices, RunRequests};
use crate::flatness::FlatnessResult;
use crate::footprint::Footprint;
use crate::pipeline::LevelResult;
use crate::scaling::ScalingResult;
use crate::stats::median;

/// One line of the cost table: what it reads from a priced run.
type CostPart = fn(&CostPerMillion) -> f64;

/// One acceptance target: what was wanted, what was measured, and whether it holds.
struct Target {
    name: String,
    measured: String,
    met: bool,
}

#[derive(Default)]
pub struct Report {
    header: String,
    sections: Vec<String>,
    targets: Vec<Target>,
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores ({model})")
}

impl Report {
    /// `profile`: the Cargo profile `hookflow dev` and the relay were built with.
    pub fn new(dev_args: &[String], profile: &str) -> Self {
        let retention = if dev_args.is_empty() {
            "default retention".to_owned()
        } else {
            format!("`hookflow dev {}`", dev_args.join(" "))
        };
        Self {
            header: format!(
                "# Hookflow bench\n\nMeasured by `make bench` on {}, `hookflow dev` and the relay built with the `{profile}` profile (`Cargo.toml`), in-memory backend, {retention}. \
                 The load generator, the sink and both systems share the machine: compare ratios, not absolute figures.\n",
                machine()
            ),
            ..Self::default()
        }
    }

    fn target(&mut self, name: impl Into<String>, measured: impl Into<String>, met: bool) {
        self.targets.push(Target {
            name: name.into(),
            measured: measured.into(),
            met,
        });
    }

    pub fn pipeline(&mut self, levels: &[LevelResult], hookflow_accepted: u64, hookflow_succeeded: u64) {
        let mut by_key: BTreeMap<(usize, &'static str), Vec<&LevelResult>> = BTreeMap::new();
        for level in levels {
            by_key.entry((level.connections, level.system)).or_default().push(level);
        }
        let med =
            |rows: &[&LevelResult], f: fn(&LevelResult) -> f64| median(&rows.iter().map(|r| f(r)).collect::<Vec<_>>());
        let mut out = String::from(
            "## Pipeline\n\nCloudEvent → trigger filter → Decision on `gameplay.score` → HttpRequest POST of a templated \
             JSON body to a loopback sink. Closed loop: each connection sends its next event once the last was accepted. \
             A run counts once the sink has its request; runs/s is over the time from the level's start to its last \
             arrival, so a backlog that drains late counts against it. Medians of the repetitions.\n\n\
             | system | conns | completed runs/s | of relay | ingest p50 / p99 ms | event→sink p50 / p99 ms | CPU ms/run | peak RSS MiB | lost | dup |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        let levels_seen: Vec<usize> = by_key.keys().map(|(c, _)| *c).collect();
        for connections in dedup(levels_seen) {
            let relay = by_key
                .get(&(connections, "bare relay"))
                .map(|rows| med(rows, |r| r.runs_per_s));
            for system in ["Hookflow", "bare relay"] {
                let Some(rows) = by_key.get(&(connections, system)) else {
                    continue;
                };
                let rate = med(rows, |r| r.runs_per_s);
                let share = relay.map_or(f64::NAN, |relay| rate / relay);
                let lost: u64 = rows.iter().map(|r| r.lost).sum();
                let dup: u64 = rows.iter().map(|r| r.duplicates).sum();
                let _ = writeln!(
                    out,
                    "| {system} | {connections} | {rate:.0} | {:.0} % | {:.2} / {:.2} | {:.1} / {:.1} | {:.3} | {:.0} | {lost} | {dup} |",
                    share * 100.0,
                    med(rows, |r| r.ingest_p50_ms),
                    med(rows, |r| r.ingest_p99_ms),
                    med(rows, |r| r.to_sink_p50_ms),
                    med(rows, |r| r.to_sink_p99_ms),
                    med(rows, |r| r.cpu_ms_per_run),
                    med(rows, |r| r.peak_rss_mib),
                );
                if system == "Hookflow" {
                    self.target(
                        format!("pipeline ≥ 50 % of the relay's runs/s at c{connections}"),
                        format!("{:.0} %", share * 100.0),
                        share >= 0.5,
                    );
                }
            }
        }
        let lost: u64 = levels
            .iter()
            .filter(|l| l.system == "Hookflow")
            .map(|l| l.lost + l.duplicates)
            .sum();
        let _ = writeln!(
            out,
            "\nHookflow accepted {hookflow_accepted} events in the measured levels and counted {hookflow_succeeded} succeeded runs (`/metrics`); \
             the sink got {} of them missing or twice.",
            lost
        );
        self.target(
            "every run recorded and deduplicated",
            format!("{hookflow_succeeded} runs of {hookflow_accepted} events, {lost} missing or twice"),
            lost == 0 && hookflow_succeeded == hookflow_accepted,
        );
        self.sections.push(out);
    }

    pub fn flatness(&mut self, flat: &FlatnessResult) {
        let mut out = format!(
            "## Flatness\n\n{} events at a steady {:.0}/s over 8 connections; the first tenth of the events against the last.\n\n\
             | tenth | completed runs/s | CPU ms/run |\n|---|---|---|\n",
            flat.events, flat.offered_per_s
        );
        for (name, tenth) in [("first", &flat.first), ("last", &flat.last)] {
            let _ = writeln!(
                out,
                "| {name} | {:.0} | {:.3} |",
                tenth.runs_per_s, tenth.cpu_ms_per_run
            );
        }
        let _ = writeln!(
            out,
            "\nlast/first runs/s: {:.2}; CPU per run last/first: {:.2}; {} accepted, {} lost, {} twice; peak RSS {:.0} MiB.",
            flat.ratio(),
            flat.last.cpu_ms_per_run / flat.first.cpu_ms_per_run,
            flat.accepted,
            flat.lost,
            flat.duplicates,
            flat.peak_rss_mib
        );
        self.target(
            format!(
                "last tenth's runs/s within 10 % of the first's ({} events)",
                flat.events
            ),
            format!("{:.2}", flat.ratio()),
            (flat.ratio() - 1.0).abs() <= 0.10,
        );
        self.sections.push(out);
    }

    pub fn machine_peak_rss(&mut self, mib: f64) {
        self.target(
            "peak RSS ≤ 64 MiB at the default retention",
            format!("{mib:.0} MiB"),
            mib <= 64.0,
        );
    }

    /// How long the measurements took (builds not counted). `whole` is
    /// false for a run of some parts only, which is no test of the limit.
    pub fn duration(&mut self, took: std::time::Duration, whole: bool) {
        let minutes = took.as_secs_f64() / 60.0;
        if whole {
            self.target(
                "`make bench`'s measurements under 10 minutes",
                format!("{minutes:.1} min"),
                minutes < 10.0,
            );
        } else {
            self.sections
                .push(format!("## Duration\n\nThese parts took {minutes:.1} min.\n"));
        }
    }

    pub fn skipped(&mut self, part: &str, why: &str) {
        self.sections.push(format!("## {part}\n\nNot measured: {why}.\n"));
    }

    pub fn scaling(&mut self, results: &[ScalingResult]) {
        let mut out = String::from(
            "## Dispatcher scaling\n\nOne workspace, its active workflows over 5 trigger types and 100 cards, a tenth of them \
             workspace-wide; a few events dispatched per size, each request counted on the emulator. \"could match\": \
             subscriptions of the event's type whose scope fits it, what a lookup must read at least. Events/s is the \
             emulator's speed, not DynamoDB's.\n\n\
             | workflows | lookup requests/event | items read/event | could match/event | read units/event | runs started/event | requests/event | events/s |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for r in results {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                r.workflows,
                r.lookup_requests_per_event,
                r.items_read_per_event,
                r.could_match_per_event,
                r.read_units_per_event,
                r.runs_started_per_event,
                r.requests_per_event,
                r.events_per_s
            );
        }
        if let (Some(first), Some(last)) = (results.first(), results.last()) {
            self.target(
                format!(
                    "DynamoDB lookup requests per event flat from {} to {} workflows",
                    first.workflows, last.workflows
                ),
                format!(
                    "{:.1} → {:.1}",
                    first.lookup_requests_per_event, last.lookup_requests_per_event
                ),
                last.lookup_requests_per_event <= first.lookup_requests_per_event,
            );
            // Nothing read at all would mean the count is broken, not a perfect index.
            let extra = last.items_read_per_event / last.could_match_per_event.max(1.0);
            self.target(
                format!(
                    "items read follow the subscriptions that could match ({} workflows)",
                    last.workflows
                ),
                format!(
                    "{:.0} read for {:.0} that could match ({extra:.1}x)",
                    last.items_read_per_event, last.could_match_per_event
                ),
                last.items_read_per_event > 0.0 && extra <= 1.5,
            );
        }
        self.sections.push(out);
    }

    pub fn cost(&mut self, run: &RunRequests, prices: &Prices, memory_mb: f64) {
        let mut out = String::from(
            "## AWS cost per run\n\nOne event through ingest, dispatch and a 3-step run (SetVariables, two HTTP POSTs), \
             every request counted on the emulator:\n\n| function | service | operation | requests | write units | read units |\n|---|---|---|---|---|---|\n",
        );
        for (phase, tallies) in run.phases() {
            for ((service, operation), t) in tallies {
                let _ = writeln!(
                    out,
                    "| {phase} | {service} | {operation} | {} | {:.1} | {:.1} |",
                    t.requests, t.write_units, t.read_units
                );
            }
        }
        let a = &prices.assumptions;
        let _ = write!(
            out,
            "\nPriced as deployed at {memory_mb:.0} MB arm64: every send is a request; each Lambda batch costs one receive, one \
             `DeleteMessageBatch` and one invocation, its records running concurrently; the webhook function runs once per \
             event. Write units: a unit per KiB per item written and per index it carries; read units: half a unit per 4 KiB \
             read. A function's billed time: {} ms per AWS request it makes and {} ms per HTTP peer (assumed, `bench/prices.json`). \
             {}.\n\n| $ per million runs | quiet (batches of 1) | busy (batches of {}) |\n|---|---|---|\n",
            a.aws_request_ms, a.http_peer_ms, prices.source, a.busy_batch_size
        );
        let quiet = price(run, prices, memory_mb, 1.0);
        let busy = price(run, prices, memory_mb, a.busy_batch_size);
        let rows: [(&str, CostPart); 7] = [
            ("Lambda requests", |c| c.lambda_requests),
            ("Lambda compute", |c| c.lambda_compute),
            ("SQS", |c| c.sqs),
            ("DynamoDB writes", |c| c.dynamodb_writes),
            ("DynamoDB reads", |c| c.dynamodb_reads),
            ("**engine total**", |c| c.engine()),
            ("API Gateway (HTTP API), not in the total", |c| c.api_gateway),
        ];
        for (name, f) in rows {
            let _ = writeln!(out, "| {name} | {:.2} | {:.2} |", f(&quiet), f(&busy));
        }
        let requests = |c: &CostPerMillion| {
            c.requests
                .iter()
                .map(|(s, n)| format!("{s} {n:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (standard, express) = step_functions(run, prices);
        let _ = writeln!(
            out,
            "\nRequests per run: quiet {}; busy {}. The event-source pollers' idle long polls are a fixed cost per queue, \
             not per run.\n\nThe same workflow on Step Functions: Standard ${standard:.2} per million runs ({} transitions \
             at ${} per 1,000), Express ${express:.2} ({} MB, {} ms billing increments).",
            requests(&quiet),
            requests(&busy),
            run.step_messages,
            prices.step_functions_standard_per_thousand_transitions,
            a.express_memory_mb,
            a.express_billing_increment_ms
        );
        self.target(
            "≤ $5 per million 3-step runs (busy, API Gateway excluded)",
            format!("${:.2} (quiet ${:.2})", busy.engine(), quiet.engine()),
            busy.engine() <= 5.0,
        );
        self.sections.push(out);
    }

    pub fn footprint(&mut self, baseline_ms: f64, footprints: &[Footprint]) {
        let mut out = format!(
            "## Lambda footprint\n\nZip: `zip -9` of each arm64 bootstrap from `make build`. Start: process start to the first \
             poll of the runtime API on a loopback stub, median of the starts, taken in rounds of one start per binary, the bare one included; x86_64 release builds; the bare \
             `lambda_runtime` binary takes {baseline_ms:.1} ms.\n\n| function | zip MB | start ms | of bare |\n|---|---|---|---|\n"
        );
        for f in footprints {
            let zip = f
                .zip_bytes
                .map_or("not built".to_owned(), |b| format!("{:.2}", b as f64 / 1e6));
            let _ = writeln!(
                out,
                "| {} | {zip} | {:.1} | {:.2}x |",
                f.function,
                f.start_ms,
                f.start_ms / baseline_ms
            );
        }
        let largest = footprints.iter().filter_map(|f| f.zip_bytes).max();
        self.target(
            "each function zip ≤ 3 MB",
            largest.map_or("not built (run `make build`)".to_owned(), |b| {
                format!("largest {:.2} MB", b as f64 / 1e6)
            }),
            largest.is_some_and(|b| b <= 3_000_000),
        );
        let slowest = footprints.iter().map(|f| f.start_ms).fold(0.0, f64::max);
        self.target(
            "start to first poll within 1.5x the bare lambda_runtime binary",
            format!("slowest {:.2}x", slowest / baseline_ms),
            slowest <= 1.5 * baseline_ms,
        );
        self.sections.push(out);
    }

    pub fn burst(&mut self, bursts: &[Burst]) {
        let mut out = String::from(
            "## Lambda memory in a burst\n\nOne warm instance of each function (x86_64 release build) on a loopback runtime-API \
             stub, its tables and queues on the emulator, handed a burst one invocation after another: the webhook and events \
             functions one event each, the dispatcher and step functions ten SQS records a batch (the records the functions \
             before them queued), the api function the workflow's detail (`GET …/workflows/{id}`). Peak RSS is the process's high-water \
             mark (`VmHWM`), against the template's 256 MB.\n\n\
             | function | messages | invocations | failed | peak RSS MiB | seconds |\n|---|---|---|---|---|---|\n",
        );
        for b in bursts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {:.1} |",
                b.function, b.messages, b.invocations, b.failed, b.peak_rss_mib, b.seconds
            );
        }
        let largest = bursts.iter().map(|b| b.peak_rss_mib).fold(0.0, f64::max);
        let messages = bursts.iter().map(|b| b.messages).min().unwrap_or(0);
        let failed: usize = bursts.iter().map(|b| b.failed).sum();
        self.target(
            format!("peak RSS ≤ 64 MiB through a {messages}-message burst, per function"),
            format!("largest {largest:.1} MiB, {failed} failed"),
            largest <= 64.0 && failed == 0,
        );
        self.sections.push(out);
    }

    pub fn render(&self) -> String {
        let mut out = self.header.clone();
        out.push_str("\n## Targets\n\n| target | measured | met |\n|---|---|---|\n");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                t.name,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            );
        }
        for section in &self.sections {
            out.push('\n');
            out.push_str(section);
        }
        out
    }
}

fn dedup(mut values: Vec<usize>) -> Vec<usize> {
    values.dedup();
    values
}
