use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hookflow_cli::connections::ConnectionsCommand;
use hookflow_cli::contacts::ContactsCommand;
use hookflow_cli::dev::{DevConfig, DevServer, Ports};
use hookflow_cli::hooks::HooksCommand;
use hookflow_cli::keys;
use hookflow_cli::load::load_workflows;
use hookflow_cli::ops::{self, Operator, OpsError};
use hookflow_cli::runs::RunsCommand;
use hookflow_cli::webhook_endpoints::WebhookEndpointsCommand;
use hookflow_cli::workflows::{self, Api, CliError};
use hookflow_core::access::Role;
use hookflow_core::dead_letter::QueueKind;
use hookflow_core::memory::RunRetention;
use serde_json::Value;

/// `hookflow dev` allocates for every message it moves (JSON bodies and
/// contexts) on several threads; under the pipeline bench glibc's allocator
/// took a quarter of its CPU (`bench/profile.txt`), and mimalloc's
/// thread-local heaps raised its runs/s by a quarter or more
/// (`bench/results.md`, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hookflow: event-driven workflows on AWS Lambda, DynamoDB and SQS.
#[derive(Parser)]
#[command(name = "hookflow", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
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
        /// the deployed step function does (by default dev allows them; always
        /// on with --aws against real AWS).
        #[arg(long)]
        deny_private_networks: bool,
        /// With --aws: also run the dispatcher and step workers on those queues.
        /// Off by default, so that pointing dev at a deployed stack serves its
        /// API without competing with its Lambda functions.
        #[arg(long, requires = "aws")]
        consume: bool,
        /// Refuse requests without an API key even on loopback, and print a
        /// bootstrap admin key for --bootstrap-workspace at start (or use
        /// HOOKFLOW_BOOTSTRAP_KEY). Off a loopback address keys are always required.
        #[arg(long)]
        require_keys: bool,
        /// The workspace the bootstrap admin key administers.
        #[arg(long, default_value = "ws_demo")]
        bootstrap_workspace: String,
        /// In memory: ended runs kept (with their steps); older ones are
        /// forgotten. Event ids are deduplicated against as many.
        #[arg(long, default_value_t = RunRetention::DEV.max_runs, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        keep_runs: usize,
        /// In memory: minutes an ended run is kept at most.
        #[arg(long, default_value_t = RunRetention::DEV.max_age.as_secs() / 60, value_parser = clap::value_parser!(u64).range(1..))]
        keep_minutes: u64,
        /// In memory: where connections and their credentials are kept
        /// (created with mode 0600; refused if others may read it). With
        /// --aws they are in the stack's table and Secrets Manager instead.
        #[arg(long, default_value = ".hookflow/connections.json", conflicts_with = "aws")]
        connections_file: std::path::PathBuf,
    },
    /// Workspace API keys: make one (shown once), list them, revoke one.
    Keys {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Inbound hooks: addresses third parties post to, with their sender auth.
    Hooks {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: HooksCommand,
    },
    /// Connected apps (Mailchimp, Braze): credentials steps use by name.
    Connections {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Webhook endpoints: where the workspace's events are sent, signed; their
    /// secrets, delivery attempts, resends and recovery.
    #[command(name = "webhook-endpoints")]
    WebhookEndpoints {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: WebhookEndpointsCommand,
    },
    /// Contacts: list them, export a tag or a list to CSV.
    Contacts {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ContactsCommand,
    },
    /// Inspect dead letters (parked by the queues' consumers, or waiting in a dead-letter queue) and send them on.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Manage workflows through the management API: drafts, the lifecycle, versions.
    Workflows {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Find, read, replay and cancel runs (an operator key on a deployed stack).
    Runs {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: RunsCommand,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List a queue's dead letters: parked ones with why, and any waiting in its dead-letter queue (up to 100 each).
    List {
        /// Which queue's dead letters: triggers or steps.
        #[arg(long, value_parser = ops::parse_queue, default_value = "steps")]
        queue: QueueKind,
        /// Print the messages as a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Send a queue's dead letters on (up to 1000): waiting ones back to their queue, parked trigger events
    /// re-sent, parked step messages' runs replayed from the step they stopped at.
    Redrive {
        /// Which queue's dead letters: triggers or steps.
        #[arg(long, value_parser = ops::parse_queue, default_value = "steps")]
        queue: QueueKind,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the management API is, and whose workspace.
#[derive(Args)]
struct ApiArgs {
    /// The API's base URL.
    #[arg(long, env = "HOOKFLOW_API_URL", default_value = workflows::DEFAULT_API_URL, global = true)]
    api_url: String,
    /// The workspace whose workflows to manage.
    #[arg(long, env = "HOOKFLOW_WORKSPACE", global = true)]
    workspace: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum WorkflowsCommand {
    /// Create or update drafts from a workflow file, or every .json/.yaml/.yml file of a folder.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// The workspace's workflows, newest first.
    List,
    /// One workflow's head (status, revision, draft), or a published version.
    Show {
        id: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Every problem of a workflow file, offline (the rules and codes the API uses).
    Validate {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Validate the draft, store it as a new version and make it live.
    Publish { id: String },
    /// Stop starting runs (runs in flight finish).
    Pause { id: String },
    /// Start runs again on the published version.
    Resume { id: String },
    /// Stop for good; versions and runs stay readable.
    Archive { id: String },
    /// A new draft with the same definition.
    Clone {
        id: String,
        #[arg(long = "as")]
        new_id: String,
    },
    /// The published versions, newest first.
    Versions { id: String },
    /// Run the draft (or a version) against an event, the sample of its
    /// trigger type by default: every request rendered with its secrets
    /// redacted and none sent, Decisions followed, Delays skipped.
    Test {
        id: String,
        /// A CloudEvent file (JSON) to run against.
        #[arg(long)]
        event: Option<PathBuf>,
        /// A published version instead of the draft (with --live: instead of
        /// the published version).
        #[arg(long)]
        version: Option<u32>,
        /// A real run of the published version (or --version), marked `test`:
        /// prints its run id and where the runs API serves its timeline.
        #[arg(long)]
        live: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key and print it, once.
    Create {
        /// What the key may do: admin, operator or ingest.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A label to recognise the key by in `keys list`.
        #[arg(long)]
        name: Option<String>,
        /// Write the key straight to the stack's DynamoDB table with your AWS
        /// credentials (HOOKFLOW_WORKFLOWS_TABLE): how a workspace's first
        /// admin key is made on a deployed stack.
        #[arg(long)]
        aws: bool,
    },
    /// The workspace's keys (never a secret).
    List,
    /// Revoke a key by its id.
    Revoke { key_id: String },
}

fn parse_role(name: &str) -> Result<Role, String> {
    Role::parse(name).ok_or_else(|| format!("unknown role {name:?}; expected admin, operator or ingest"))
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

/// Prints a command's output, or its error on stderr with exit code 1 (2
/// for a usage error).
fn report<E: std::fmt::Display + 'static>(result: Result<String, E>) -> ExitCode {
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("hookflow: {err}");
            let usage = (&err as &dyn std::any::Any)
                .downcast_ref::<CliError>()
                .is_some_and(|e| matches!(e, CliError::Usage(_)));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

async fn dlq(command: DlqCommand) -> Result<String, OpsError> {
    match command {
        DlqCommand::List { queue, json, target } => {
            let listing = target.operator().await?.dlq_list(queue).await?;
            if json {
                serde_json::to_string_pretty(&listing)
                    .map_err(|e| OpsError::Failed(format!("cannot print the messages as JSON: {e}")))
            } else {
                Ok(ops::render_list(&listing))
            }
        }
        DlqCommand::Redrive { queue, target } => {
            let report = target.operator().await?.dlq_redrive(queue).await?;
            Ok(ops::render_redrive(&report))
        }
    }
}

async fn runs_command(args: ApiArgs, command: RunsCommand) -> Result<String, CliError> {
    let api = args.api()?;
    let (value, human) = hookflow_cli::runs::run(&api, command, args.json).await?;
    Ok(if args.json {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        human
    })
}

impl ApiArgs {
    fn workspace(&self) -> Result<String, CliError> {
        self.workspace
            .clone()
            .ok_or_else(|| CliError::Failed("which workspace? pass --workspace or set HOOKFLOW_WORKSPACE".into()))
    }

    /// The API of the workspace, with `HOOKFLOW_API_KEY`.
    fn api(&self) -> Result<Api, CliError> {
        Ok(Api::new(
            &self.api_url,
            &self.workspace()?,
            std::env::var("HOOKFLOW_API_KEY").ok(),
        ))
    }
}

/// Runs a `workflows` verb: its output, or the error to print.
async fn manage(args: ApiArgs, command: WorkflowsCommand) -> Result<String, CliError> {
    // Offline: needs no workspace and no API.
    if let WorkflowsCommand::Validate { file } = &command {
        return validate_offline(file, args.json);
    }
    let api = args.api()?;
    let json_or = |value: &Value, human: String| -> String {
        if args.json {
            serde_json::to_string_pretty(value).unwrap_or_default()
        } else {
            human
        }
    };
    let head_line = |head: &Value| workflows::table(&workflows::HEAD_COLUMNS, &[workflows::head_row(head)]);
    Ok(match command {
        WorkflowsCommand::Validate { file } => validate_offline(&file, args.json)?,
        WorkflowsCommand::Apply { file } => {
            let mut applied = vec![];
            for path in workflows::files(&file)? {
                let (action, head) = api.apply(&workflows::read_document(&path)?).await?;
                applied
                    .push(serde_json::json!({"file": path.display().to_string(), "action": action, "workflow": head}));
            }
            let lines = applied
                .iter()
                .map(|a| {
                    format!(
                        "{} {} (revision {}) from {}",
                        a["action"].as_str().unwrap_or_default(),
                        a["workflow"]["id"].as_str().unwrap_or_default(),
                        a["workflow"]["revision"],
                        a["file"].as_str().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            json_or(&Value::Array(applied), lines)
        }
        WorkflowsCommand::List => {
            let heads = api.list().await?;
            let rows: Vec<Vec<String>> = heads.iter().map(workflows::head_row).collect();
            json_or(&Value::Array(heads), workflows::table(&workflows::HEAD_COLUMNS, &rows))
        }
        WorkflowsCommand::Show { id, version } => {
            let shown = api.show(&id, version).await?;
            let human = match version {
                Some(n) => format!(
                    "{id} v{n} ({}, trigger {})\n\n{}",
                    shown["name"].as_str().unwrap_or_default(),
                    shown["trigger"]["type"].as_str().unwrap_or_default(),
                    serde_json::to_string_pretty(&shown).unwrap_or_default()
                ),
                None => format!(
                    "{}\n\ndraft:\n{}",
                    head_line(&shown),
                    serde_json::to_string_pretty(&shown["draft"]).unwrap_or_default()
                ),
            };
            json_or(&shown, human)
        }
        WorkflowsCommand::Publish { id } => lifecycle(&api, &id, "publish", &json_or, &head_line).await?,
        WorkflowsCommand::Pause { id } => lifecycle(&api, &id, "pause", &json_or, &head_line).await?,
        WorkflowsCommand::Resume { id } => lifecycle(&api, &id, "resume", &json_or, &head_line).await?,
        WorkflowsCommand::Archive { id } => lifecycle(&api, &id, "archive", &json_or, &head_line).await?,
        WorkflowsCommand::Clone { id, new_id } => {
            let head = api.clone_as(&id, &new_id).await?;
            json_or(&head, head_line(&head))
        }
        WorkflowsCommand::Test {
            id,
            event,
            version,
            live,
        } => {
            let event = event.map(|file| workflows::read_document(&file)).transpose()?;
            let tested = api.test(&id, event, version, live).await?;
            let human = if live {
                workflows::render_live_test(&tested)
            } else {
                workflows::render_timeline(&tested["run"])
            };
            json_or(&tested, human)
        }
        WorkflowsCommand::Versions { id } => {
            let versions = api.versions(&id).await?;
            let rows: Vec<Vec<String>> = versions
                .iter()
                .map(|v| {
                    vec![
                        v["version"].to_string(),
                        v["trigger_type"].as_str().unwrap_or_default().to_owned(),
                        v["name"].as_str().unwrap_or_default().to_owned(),
                    ]
                })
                .collect();
            json_or(
                &Value::Array(versions),
                workflows::table(&["VERSION", "TRIGGER", "NAME"], &rows),
            )
        }
    })
}

async fn hooks_command(args: ApiArgs, command: HooksCommand) -> Result<String, CliError> {
    let api = args.api()?;
    let (value, human) = hookflow_cli::hooks::run(&api, command).await?;
    Ok(if args.json {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        human
    })
}

async fn connections_command(args: ApiArgs, command: ConnectionsCommand) -> Result<String, CliError> {
    let api = args.api()?;
    let (value, human) = hookflow_cli::connections::run(&api, command).await?;
    Ok(if args.json {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        human
    })
}

async fn webhook_endpoints_command(args: ApiArgs, command: WebhookEndpointsCommand) -> Result<String, CliError> {
    let api = args.api()?;
    let (value, human) = hookflow_cli::webhook_endpoints::run(&api, command).await?;
    Ok(if args.json {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        human
    })
}

async fn contacts_command(args: ApiArgs, command: ContactsCommand) -> Result<String, CliError> {
    let api = args.api()?;
    let (value, human) = hookflow_cli::contacts::run(&api, command).await?;
    Ok(if args.json {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        human
    })
}

async fn keys_command(args: ApiArgs, command: KeysCommand) -> Result<String, CliError> {
    let workspace = args.workspace()?;
    let api = args.api()?;
    let (value, human) = match command {
        KeysCommand::Create { role, name, aws } => {
            let created = if aws {
                keys::create_with_aws(&workspace, role, name).await?
            } else {
                keys::create(&api, role, name).await?
            };
            let human = keys::render_created(&created);
            (created, human)
        }
        KeysCommand::List => {
            let listed = keys::list(&api).await?;
            let human = keys::render_list(&listed);
            (listed, human)
        }
        KeysCommand::Revoke { key_id } => {
            let revoked = keys::revoke(&api, &key_id).await?;
            let human = keys::render_revoked(&revoked);
            (revoked, human)
        }
    };
    Ok(if args.json {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        human
    })
}

async fn lifecycle(
    api: &Api,
    id: &str,
    verb: &str,
    json_or: &dyn Fn(&Value, String) -> String,
    head_line: &dyn Fn(&Value) -> String,
) -> Result<String, CliError> {
    let head = api.verb(id, verb).await?;
    Ok(json_or(&head, head_line(&head)))
}

/// `workflows validate -f FILE`: the problems, and exit 1 when there are any.
fn validate_offline(file: &std::path::Path, json: bool) -> Result<String, CliError> {
    let problems = workflows::problems_of(workflows::read_document(file)?);
    let output = if json {
        serde_json::to_string_pretty(&serde_json::json!({"valid": problems.is_empty(), "problems": problems}))
            .unwrap_or_default()
    } else if problems.is_empty() {
        format!("{}: valid", file.display())
    } else {
        format!(
            "{}: {} problem(s)\n{}",
            file.display(),
            problems.len(),
            workflows::table(&["PATH", "CODE", "MESSAGE"], &workflows::problem_rows(&problems))
        )
    };
    if problems.is_empty() {
        Ok(output)
    } else {
        // The report goes to stdout; the exit code says it failed.
        println!("{output}");
        Err(CliError::Failed(format!("{} is not valid", file.display())))
    }
}

/// True when `AWS_ENDPOINT_URL` points at this machine (an emulator such as moto).
fn loopback_endpoint() -> bool {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .and_then(|url| reqwest::Url::parse(&url).ok())
        .and_then(|url| url.host_str().map(str::to_owned))
        .is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
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
            consume,
            require_keys,
            bootstrap_workspace,
            keep_runs,
            keep_minutes,
            connections_file,
        } => {
            init_tracing(log_format);
            if aws && require_keys {
                // A bootstrap key would land in the stack's real keys table.
                eprintln!("hookflow dev: --require-keys makes a bootstrap key, which --aws would store in the stack's tables; make keys with `hookflow keys create --aws` instead");
                return ExitCode::from(2);
            }
            let loaded = match load_workflows(&workflows) {
                Ok(loaded) => loaded,
                Err(problems) => {
                    eprintln!("hookflow dev: refusing to start.\n{problems}");
                    return ExitCode::from(2);
                }
            };
            let config_workspace = bootstrap_workspace.clone();
            let config = DevConfig {
                addr,
                step_workers,
                visibility_timeout: Duration::from_secs(visibility_timeout_s.max(1)),
                // Real AWS endpoints never get the guard turned off.
                deny_private_networks: deny_private_networks || (aws && !loopback_endpoint()),
                consume: !aws || consume,
                require_keys,
                bootstrap_key: std::env::var("HOOKFLOW_BOOTSTRAP_KEY")
                    .ok()
                    .filter(|key| !key.is_empty()),
                bootstrap_workspace,
                retention: RunRetention {
                    max_runs: keep_runs,
                    max_age: Duration::from_secs(keep_minutes.saturating_mul(60)),
                },
                connections_file: (!aws).then_some(connections_file),
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
            if aws && !consume {
                println!(
                    "serving the API only: pass --consume to also run the dispatcher and step workers on these queues"
                );
            }
            println!(
                "hookflow dev ready on {base} ({count} workflows from {}, {backend})",
                workflows.display()
            );
            if let Some(key) = &server.bootstrap_key {
                if std::env::var("HOOKFLOW_BOOTSTRAP_KEY").is_ok_and(|given| !given.is_empty()) {
                    println!("bootstrap admin key for workspace {config_workspace}: the one in HOOKFLOW_BOOTSTRAP_KEY");
                } else {
                    println!("bootstrap admin key for workspace {config_workspace}: {key}");
                }
            } else if !server.addr.ip().is_loopback() {
                println!("not on loopback: every request needs an API key (hookflow keys create --aws)");
            }
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
        Command::Runs { api, command } => report(runs_command(api, command).await),
        Command::Workflows { api, command } => report(manage(api, command).await),
        Command::Keys { api, command } => report(keys_command(api, command).await),
        Command::Hooks { api, command } => report(hooks_command(api, command).await),
        Command::Connections { api, command } => report(connections_command(api, command).await),
        Command::Contacts { api, command } => report(contacts_command(api, command).await),
        Command::WebhookEndpoints { api, command } => report(webhook_endpoints_command(api, command).await),
    }
}
