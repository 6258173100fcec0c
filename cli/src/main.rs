use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hookflow_cli::dev::{DevConfig, DevServer, Ports};
use hookflow_cli::load::load_workflows;
use hookflow_cli::ops::{self, Operator, OpsError, QueueKind};

/// Hookflow: event-driven workflows on AWS Lambda, DynamoDB and SQS.
#[derive(Parser)]
#[command(name = "hookflow", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole stack locally in one process, on in-memory queues and tables.
    Dev {
        /// Address to serve the HTTP API on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        /// Folder of workflow files (*.json) to load.
        #[arg(long, default_value = "examples/workflows")]
        workflows: PathBuf,
        /// Concurrent step workers.
        #[arg(long, default_value_t = 4)]
        step_workers: usize,
        /// Seconds before an unacknowledged message is delivered again (more than the
        /// longest step timeout, 120 s, so a slow step is never run twice at once).
        #[arg(long, default_value_t = 720, value_parser = clap::value_parser!(u64).range(121..))]
        visibility_timeout_s: u64,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Run on DynamoDB and SQS from the standard AWS environment
        /// (AWS_ENDPOINT_URL, AWS_REGION, credentials) instead of in memory.
        #[arg(long)]
        aws: bool,
        /// With --aws: create the tables and queues if missing (for emulators).
        #[arg(long, requires = "aws")]
        create_resources: bool,
        /// Refuse HTTP steps to loopback, private and link-local addresses, as
        /// the deployed step function does (by default dev allows them).
        #[arg(long)]
        deny_private_networks: bool,
    },
    /// Inspect the dead-letter queues and move their messages back.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Operate on workflow runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List the messages in a dead-letter queue (up to 100), without taking them.
    List {
        /// Which queue's dead-letter queue.
        #[arg(long, value_enum, default_value = "steps")]
        queue: QueueKind,
        /// Print the messages as a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Move the messages of a dead-letter queue back to their queue (up to 1000).
    Redrive {
        /// Which queue's dead-letter queue.
        #[arg(long, value_enum, default_value = "steps")]
        queue: QueueKind,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Re-execute a failed run from the step where it failed, with the context
    /// that step had.
    Replay {
        /// The run's id (`run_…`).
        run_id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Where operator commands act.
#[derive(Args)]
struct Target {
    /// The `hookflow dev` server whose operator routes to use.
    #[arg(long, default_value = ops::DEFAULT_SERVER)]
    server: String,
    /// Act on DynamoDB and SQS directly, from the environment `hookflow dev --aws`
    /// reads (AWS_* settings, HOOKFLOW_*_TABLE, and the HOOKFLOW_TRIGGERS_QUEUE_URL,
    /// HOOKFLOW_STEPS_QUEUE_URL, HOOKFLOW_TRIGGERS_DLQ_URL and HOOKFLOW_STEPS_DLQ_URL URLs).
    #[arg(long, conflicts_with = "server")]
    aws: bool,
}

impl Target {
    async fn operator(&self) -> Result<Operator, OpsError> {
        if self.aws {
            Operator::aws().await
        } else {
            Operator::server(&self.server)
        }
    }
}

/// Prints an operator command's output, or its error on stderr with exit code 1.
fn report(result: Result<String, OpsError>) -> ExitCode {
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("hookflow: {err}");
            ExitCode::from(1)
        }
    }
}

async fn dlq(command: DlqCommand) -> Result<String, OpsError> {
    match command {
        DlqCommand::List { queue, json, target } => {
            let messages = target.operator().await?.dlq_list(queue).await?;
            if json {
                serde_json::to_string_pretty(&messages)
                    .map_err(|e| OpsError::Failed(format!("cannot print the messages as JSON: {e}")))
            } else {
                Ok(ops::render_list(queue, &messages))
            }
        }
        DlqCommand::Redrive { queue, target } => {
            let moved = target.operator().await?.dlq_redrive(queue).await?;
            Ok(ops::render_redrive(queue, moved))
        }
    }
}

async fn runs(command: RunsCommand) -> Result<String, OpsError> {
    match command {
        RunsCommand::Replay { run_id, target } => {
            let replayed = target.operator().await?.replay(&run_id).await?;
            Ok(ops::render_replay(&replayed))
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev {
            addr,
            workflows,
            step_workers,
            visibility_timeout_s,
            log_format,
            aws,
            create_resources,
            deny_private_networks,
        } => {
            init_tracing(log_format);
            let loaded = match load_workflows(&workflows) {
                Ok(loaded) => loaded,
                Err(problems) => {
                    eprintln!("hookflow dev: refusing to start.\n{problems}");
                    return ExitCode::from(2);
                }
            };
            let config = DevConfig {
                addr,
                step_workers,
                visibility_timeout: Duration::from_secs(visibility_timeout_s.max(1)),
                deny_private_networks,
                ..DevConfig::default()
            };
            let count = loaded.len();
            let started = if aws {
                match Ports::aws(create_resources, config.visibility_timeout).await {
                    Ok(ports) => DevServer::start_on(config, loaded, ports, None).await,
                    Err(err) => Err(err),
                }
            } else {
                DevServer::start(config, loaded).await
            };
            let backend = if aws {
                "DynamoDB + SQS backend"
            } else {
                "in-memory backend"
            };
            let server = match started {
                Ok(server) => server,
                Err(err) => {
                    eprintln!("hookflow dev: cannot start: {err:#}");
                    return ExitCode::from(1);
                }
            };
            let base = format!("http://{}", server.addr);
            println!(
                "hookflow dev ready on {base} ({count} workflows from {}, {backend})",
                workflows.display()
            );
            println!(
                "try: curl -sS -X POST {base}/v1/events -H 'content-type: application/cloudevents+json' -d @events/triggers/gameplay.data-captured-qualified.json"
            );
            if let Err(err) = tokio::signal::ctrl_c().await {
                eprintln!("hookflow dev: cannot listen for Ctrl-C: {err}");
            }
            eprintln!("hookflow dev: shutting down, draining in-flight steps…");
            server.shutdown().await;
            ExitCode::SUCCESS
        }
        Command::Dlq { command } => report(dlq(command).await),
        Command::Runs { command } => report(runs(command).await),
    }
}
