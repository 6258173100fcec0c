//! `make bench`: prints one table and writes `bench/results.md`. See the
//! library for what each part measures.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hookflow_bench::load::{drive, Numbers, Pace};
use hookflow_bench::pipeline::{run_level, runs_succeeded, wait_for, LevelResult, System};
use hookflow_bench::report::Report;
use hookflow_bench::sink::Sink;
use hookflow_bench::{burst, cost, flatness, footprint, process, profile, scaling, stats};

#[derive(Parser)]
struct Args {
    /// Connection levels of the pipeline bench.
    #[arg(long, value_delimiter = ',', default_value = "8,32,64")]
    levels: Vec<usize>,
    /// Seconds of load per level and repetition.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    repetitions: usize,
    /// Events of the flatness run (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    flat_events: u64,
    /// Steady rate of the flatness run, as a share of Hookflow's completed
    /// runs/s at the lowest level.
    #[arg(long, default_value_t = 0.7)]
    flat_load: f64,
    /// Where the Markdown results go.
    #[arg(long, default_value = "bench/results.md")]
    out: PathBuf,
    /// Extra arguments for `hookflow dev` (e.g. `--keep-runs=10000`).
    #[arg(long, allow_hyphen_values = true)]
    dev_arg: Vec<String>,
    /// The AWS emulator for dispatcher scaling and cost per run (the bench
    /// script starts moto); without it those parts are skipped.
    #[arg(long, env = "HOOKFLOW_BENCH_AWS_ENDPOINT")]
    aws_endpoint: Option<String>,
    /// Emulators for the burst, comma-separated (the bench script starts
    /// two). The burst always runs beside the scaling and cost parts, as two
    /// chains of functions, on the first and the last of these; a moto serves
    /// one request at a time, so with one the parts take longer. Without any,
    /// the burst shares the scaling part's emulator.
    #[arg(long, env = "HOOKFLOW_BENCH_BURST_AWS_ENDPOINTS", value_delimiter = ',')]
    burst_aws_endpoints: Vec<String>,
    /// Active workflows of the dispatcher scaling part.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
    workflows: Vec<usize>,
    /// Events dispatched per size in the scaling part (each starts about 2 % of the workflows' runs).
    #[arg(long, default_value_t = 3)]
    scaling_events: usize,
    /// Where `make build` leaves the arm64 bootstraps.
    #[arg(long, default_value = "target/lambda")]
    lambda_dir: PathBuf,
    /// Where the x86_64 builds of the functions and of the bare
    /// `lambda_runtime` binary are, built as SAM builds them (`--release`);
    /// `hookflow` and the relay are taken from beside the bench itself.
    #[arg(long, default_value = "target/release")]
    functions_dir: PathBuf,
    /// Starts per function of the footprint part (0 skips it).
    #[arg(long, default_value_t = 21)]
    starts: usize,
    /// Messages of each function's burst, on the emulator (0 skips it).
    #[arg(long, default_value_t = 1000)]
    burst: usize,
    /// Skip the pipeline and flatness parts.
    #[arg(long)]
    no_pipeline: bool,
    /// Record a CPU profile of `hookflow dev` during the first repetition
    /// and write its top functions here (needs perf and a build with symbols).
    #[arg(long)]
    profile_to: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = std::time::Instant::now();
    let template = std::fs::read_to_string("template.yaml")?;
    let stage = cost::template_stage(&template)?;
    let mut report = Report::new(&args.dev_arg, &process::build_profile()?);
    if !args.no_pipeline {
        pipeline_and_flatness(&args, &mut report).await?;
    }
    match &args.aws_endpoint {
        Some(endpoint) => emulated_parts(&args, endpoint, &template, &stage, &mut report).await?,
        None => report.skipped(
            "Dispatcher scaling, cost per run and Lambda memory in a burst",
            "no AWS emulator (HOOKFLOW_BENCH_AWS_ENDPOINT)",
        ),
    }
    if args.starts > 0 {
        eprintln!("Lambda footprint: {} starts per function", args.starts);
        let (baseline, footprints) =
            footprint::measure(&args.lambda_dir, &args.functions_dir, args.starts, &stage).await?;
        report.footprint(baseline, &footprints);
    }
    let whole = !args.no_pipeline
        && args.repetitions >= 3
        && args.flat_events <= 100_000
        && args.aws_endpoint.is_some()
        && args.starts > 0
        && args.burst > 0;
    report.duration(started.elapsed(), whole);
    let text = report.render();
    println!("{text}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &text)?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}

/// Dispatcher scaling and cost per run on `endpoint`, beside the Lambda
/// burst on emulators of its own: both spend most of their time waiting on a
/// moto, which serves one request at a time.
async fn emulated_parts(
    args: &Args,
    endpoint: &str,
    template: &str,
    stage: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let burst_endpoints = match args.burst_aws_endpoints.as_slice() {
        [] => vec![endpoint.to_owned()],
        endpoints => endpoints.to_vec(),
    };
    let scaling_and_cost = async {
        eprintln!("dispatcher scaling on {endpoint}");
        let scaling = scaling::run(endpoint, &args.workflows, args.scaling_events).await?;
        eprintln!("requests of a 3-step run on {endpoint}");
        anyhow::Ok((scaling, cost::three_step_run(endpoint).await?))
    };
    let bursts = async {
        match args.burst {
            0 => Ok(None),
            messages => burst::run(&burst_endpoints, messages, stage, &args.functions_dir)
                .await
                .map(Some),
        }
    };
    let ((scaling, run), bursts) = tokio::try_join!(scaling_and_cost, bursts)?;
    report.scaling(&scaling);
    let prices = cost::Prices::load(std::path::Path::new("bench/prices.json"))?;
    report.cost(&run, &prices, cost::template_memory_mb(template)?);
    if let Some(bursts) = bursts {
        report.burst(&bursts);
    }
    Ok(())
}

async fn pipeline_and_flatness(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let sink = Sink::default();
    let sink_url = sink.serve().await?;
    let workdir = tempdir()?;
    let hookflow = System::hookflow(&sink_url, &workdir, &args.dev_arg).await?;
    let relay = System::relay(&sink_url).await?;
    let numbers = Numbers::default();

    for system in [&hookflow, &relay] {
        eprintln!("warming up {}", system.label);
        let pace = Pace::ClosedLoop {
            until: tokio::time::Instant::now() + Duration::from_secs(5),
        };
        let arrived_before = sink.count();
        let warm = drive(&system.events_url(), 8, pace, &numbers).await?;
        wait_for(&sink, arrived_before + warm.accepted).await;
    }
    let succeeded_before = runs_succeeded(&hookflow).await?;
    let mut hookflow_accepted = 0;
    let mut levels: Vec<LevelResult> = vec![];
    for repetition in 1..=args.repetitions {
        let recording = match (&args.profile_to, repetition) {
            (Some(_), 1) => Some(profile::Recording::start(hookflow.process.pid())?),
            _ => None,
        };
        for &connections in &args.levels {
            for system in [&hookflow, &relay] {
                let level = run_level(system, &sink, &numbers, connections, Duration::from_secs(args.seconds)).await?;
                eprintln!(
                    "rep {repetition} {:>10} c{connections:<3} {:>8.0} runs/s  cpu {:.3} ms/run  rss {:.0} MiB  lost {} dup {}",
                    level.system, level.runs_per_s, level.cpu_ms_per_run, level.peak_rss_mib, level.lost, level.duplicates
                );
                if system.label == hookflow.label {
                    hookflow_accepted += level.accepted;
                }
                levels.push(level);
            }
        }
        if let (Some(recording), Some(out)) = (recording, &args.profile_to) {
            recording.finish(out, "Profile of the pipeline bench")?;
            eprintln!("profile written to {}", out.display());
        }
    }
    let succeeded = runs_succeeded(&hookflow).await? - succeeded_before;
    report.pipeline(&levels, hookflow_accepted, succeeded);

    if args.flat_events > 0 {
        let c8 = stats::median(
            &levels
                .iter()
                .filter(|l| l.system == hookflow.label && l.connections == args.levels[0])
                .map(|l| l.runs_per_s)
                .collect::<Vec<_>>(),
        );
        let rate = (c8 * args.flat_load).max(50.0);
        eprintln!("flatness: {} events at {rate:.0}/s", args.flat_events);
        let flat = flatness::run(&hookflow, &sink, &numbers, args.flat_events, rate).await?;
        report.flatness(&flat);
    }
    report.machine_peak_rss(process::status_kib(hookflow.process.pid(), "VmHWM:")? as f64 / 1024.0);
    let _ = std::fs::remove_dir_all(&workdir);
    Ok(())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hookflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
