//! The Lambda functions' footprint: zipped arm64 size (from `make build`),
//! and process start to the first poll of the Lambda runtime API, against a
//! bare `lambda_runtime` binary built the same way (this machine's x86_64
//! release builds, on a loopback runtime-API stub).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::AsyncReadExt;

use crate::process::binary_in;
use crate::stats::median;

pub const FUNCTIONS: [&str; 5] = [
    "hookflow-webhook",
    "hookflow-events",
    "hookflow-dispatcher",
    "hookflow-step",
    "hookflow-api",
];
pub const BASELINE: &str = "bench-lambda-hello";

#[derive(Debug, Clone)]
pub struct Footprint {
    pub function: &'static str,
    /// `zip -9` of the arm64 bootstrap, if `make build` made one.
    pub zip_bytes: Option<u64>,
    pub start_ms: f64,
}

/// Bytes of `bootstrap` zipped at level 9, as it is uploaded.
fn zipped_size(bootstrap: &Path) -> anyhow::Result<u64> {
    let zip = std::env::temp_dir().join(format!("hookflow-bench-{}.zip", std::process::id()));
    let _ = std::fs::remove_file(&zip);
    let status = Command::new("zip")
        .args(["-9", "-j", "-q"])
        .arg(&zip)
        .arg(bootstrap)
        .status()
        .context("running zip")?;
    if !status.success() {
        bail!("zip failed on {}", bootstrap.display());
    }
    let size = std::fs::metadata(&zip)?.len();
    std::fs::remove_file(&zip)?;
    Ok(size)
}

/// What a function is told of its stack: the AWS endpoint, its tables and queues.
#[derive(Debug, Clone)]
pub struct LambdaStack {
    pub endpoint: String,
    pub workflows_table: String,
    pub runs_table: String,
    pub triggers_queue_url: String,
    pub steps_queue_url: String,
    pub dead_letter_queue_arn: String,
    /// The HTTP API stage the webhook and api functions route under.
    pub stage: String,
}

impl LambdaStack {
    /// A stack nothing listens at: the start measurement contacts nothing
    /// before the first poll.
    fn unreachable(stage: &str) -> Self {
        Self {
            endpoint: "http://127.0.0.1:9".into(),
            workflows_table: "bench-workflows".into(),
            runs_table: "bench-runs".into(),
            triggers_queue_url: "http://127.0.0.1:9/000000000000/triggers".into(),
            steps_queue_url: "http://127.0.0.1:9/000000000000/steps".into(),
            dead_letter_queue_arn: "arn:aws:sqs:us-east-1:000000000000:dlq".into(),
            stage: stage.to_owned(),
        }
    }
}

/// What every function reads at start, as the template and Lambda set it.
pub fn lambda_environment(command: &mut Command, runtime_api: &str, stack: &LambdaStack) {
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("HOOKFLOW_WORKFLOWS_TABLE", &stack.workflows_table)
        .env("HOOKFLOW_RUNS_TABLE", &stack.runs_table)
        .env("HOOKFLOW_TRIGGERS_QUEUE_URL", &stack.triggers_queue_url)
        .env("HOOKFLOW_STEPS_QUEUE_URL", &stack.steps_queue_url)
        .env("HOOKFLOW_DEAD_LETTER_QUEUE_ARN", &stack.dead_letter_queue_arn)
        .env("HOOKFLOW_STACK_NAME", "bench")
        .env("HOOKFLOW_API_STAGE", &stack.stage)
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .env("RUST_LOG", "warn");
}

/// Milliseconds from spawning `binary` to its first request to the runtime API.
async fn start_to_first_poll(binary: &Path, stage: &str) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let runtime_api = listener.local_addr()?.to_string();
    let mut command = Command::new(binary);
    lambda_environment(&mut command, &runtime_api, &LambdaStack::unreachable(stage));
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let spawned = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let polled = tokio::time::timeout(Duration::from_secs(10), async {
        let (mut socket, _) = listener.accept().await?;
        let mut buffer = [0u8; 256];
        loop {
            let read = socket.read(&mut buffer).await?;
            if read == 0 || String::from_utf8_lossy(&buffer[..read]).contains("/runtime/invocation/next") {
                return anyhow::Ok(spawned.elapsed());
            }
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    match polled {
        Ok(elapsed) => Ok(elapsed?.as_secs_f64() * 1000.0),
        Err(_) => bail!("{} did not poll the runtime API within 10 s", binary.display()),
    }
}

/// Median starts of each of `binaries`, `starts` of each, taken in rounds
/// (each binary once per round, after one round not counted, which reads
/// them into the page cache): a shift in the machine's load then reaches
/// every binary alike, where one binary's starts taken after another's
/// would each see a different machine.
async fn median_starts(binaries: &[PathBuf], starts: usize, stage: &str) -> anyhow::Result<Vec<f64>> {
    let mut times = vec![Vec::with_capacity(starts); binaries.len()];
    for round in 0..=starts {
        for (binary, times) in binaries.iter().zip(&mut times) {
            let elapsed = start_to_first_poll(binary, stage).await?;
            if round > 0 {
                times.push(elapsed);
            }
        }
    }
    Ok(times.iter().map(|times| median(times)).collect())
}

/// The baseline's median start and each function's, measured in rounds,
/// under the API stage `stage` (the template's: under a stage the routers
/// are built otherwise); their x86_64 binaries are in `functions_dir`, the
/// arm64 bootstraps whose zips are measured in `lambda_dir`.
pub async fn measure(
    lambda_dir: &Path,
    functions_dir: &Path,
    starts: usize,
    stage: &str,
) -> anyhow::Result<(f64, Vec<Footprint>)> {
    let mut binaries = vec![binary_in(functions_dir, BASELINE)?];
    for function in FUNCTIONS {
        binaries.push(binary_in(functions_dir, function)?);
    }
    let medians = median_starts(&binaries, starts, stage).await?;
    let mut footprints = vec![];
    for (function, start_ms) in FUNCTIONS.into_iter().zip(&medians[1..]) {
        let bootstrap: PathBuf = lambda_dir.join(function).join("bootstrap");
        let zip_bytes = if bootstrap.exists() {
            Some(zipped_size(&bootstrap)?)
        } else {
            None
        };
        footprints.push(Footprint {
            function,
            zip_bytes,
            start_ms: *start_ms,
        });
    }
    Ok((medians[0], footprints))
}
