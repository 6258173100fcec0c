//! `hookflow dev`: the whole pipeline in one process on the in-memory twins.
//! Next to the public API it serves the operator routes `hookflow dlq` calls
//! (local only: never deployed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hookflow_api::{guard, router, ApiError, ApiState, Gate, KeylessRequests, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::access::{Access, Role};
use hookflow_core::dead_letter::QueueKind;
use hookflow_core::engine::{DeliveryLimits, Reaper};
use hookflow_core::memory::{MemoryBackend, QueueSettings, RunRetention};
use hookflow_core::metrics::MemoryMetrics;
use hookflow_core::ports::{HttpClient, Queue};
use hookflow_core::worker::{consume, ConsumerSettings, MessageHandler};
use hookflow_core::WorkflowDefinition;
use hookflow_http_client::{NetworkPolicy, ReqwestHttpClient};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admission::{Admission, MAX_PENDING};
use crate::ops;
pub use crate::ports::Ports;
use crate::sink;

#[derive(Debug, Clone)]
pub struct DevConfig {
    pub addr: SocketAddr,
    pub step_workers: usize,
    pub visibility_timeout: Duration,
    pub max_receive_count: u32,
    pub max_body_bytes: usize,
    /// Refuse HTTP steps to loopback, private and link-local addresses, as the
    /// deployed step function does. Off by default: local workflows call local
    /// services.
    pub deny_private_networks: bool,
    /// Run the dispatcher and step workers. `hookflow dev --aws` runs them
    /// only with `--consume`: on a deployed stack's queues they would
    /// compete with the Lambda functions.
    pub consume: bool,
    /// Refuse key-less requests even on loopback (`--require-keys`), and
    /// make a bootstrap admin key at start.
    pub require_keys: bool,
    /// The bootstrap admin key to use instead of a new one
    /// (`HOOKFLOW_BOOTSTRAP_KEY`), so that a test knows it in advance.
    pub bootstrap_key: Option<String>,
    /// The workspace the bootstrap key administers.
    pub bootstrap_workspace: String,
    /// How many ended runs the in-memory backend keeps, and for how long
    /// (`--keep-runs`, `--keep-minutes`): what bounds its memory.
    pub retention: RunRetention,
    /// Where connections and their credentials are kept
    /// (`--connections-file`); `None` keeps them in memory only.
    pub connections_file: Option<std::path::PathBuf>,
}

/// Seconds before an unacknowledged message is delivered again: 6x the
/// longest HttpRequest timeout (120 s), as SQS wants for Lambda.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(720);

impl Default for DevConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            step_workers: 4,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            max_receive_count: 5,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            deny_private_networks: false,
            consume: true,
            require_keys: false,
            bootstrap_key: None,
            bootstrap_workspace: "ws_demo".to_owned(),
            retention: RunRetention::DEV,
            connections_file: None,
        }
    }
}

/// A running local stack. Dropping it without [`DevServer::shutdown`] aborts
/// nothing: call `shutdown` to drain.
pub struct DevServer {
    pub addr: SocketAddr,
    pub ports: Ports,
    /// The twins themselves when running in memory, for inspection.
    pub memory: Option<Arc<MemoryBackend>>,
    /// With `require_keys`: the bootstrap admin key (printed once at start).
    pub bootstrap_key: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DevServer {
    /// Registers the workflows, starts the dispatcher and step workers, and
    /// serves the HTTP API.
    pub async fn start(config: DevConfig, workflows: Vec<WorkflowDefinition>) -> anyhow::Result<Self> {
        let settings = QueueSettings {
            visibility_timeout: config.visibility_timeout,
            max_receive_count: config.max_receive_count,
        };
        let backend = Arc::new(MemoryBackend::with_retention(settings, config.retention));
        let ports = Ports::memory(&backend);
        Self::start_on(config, workflows, ports, Some(backend)).await
    }

    /// The same stack on any ports (DynamoDB and SQS for `--aws`).
    pub async fn start_on(
        config: DevConfig,
        workflows: Vec<WorkflowDefinition>,
        backend: Ports,
        memory: Option<Arc<MemoryBackend>>,
    ) -> anyhow::Result<Self> {
        // What this server's engine counts, served at `/metrics`.
        let metrics = Arc::new(MemoryMetrics::default());
        let mut backend = backend;
        backend.stores.metrics = metrics.clone();
        // In memory, email and SMS steps' messages show in the sink.
        let dev_sink = sink::Sink::default();
        if memory.is_some() {
            backend.stores.messaging = dev_sink.messaging(backend.stores.messaging.clone());
        }
        if let Some(path) = &config.connections_file {
            let file = crate::connections_file::ConnectionsFile::open(path)?;
            backend.stores.connections = file.clone();
            backend.stores.vault = file;
        }
        let stores = &backend.stores;
        // Each file becomes a draft and is published when its status asks
        // for it, through the same use cases as the management API.
        let lifecycle = Arc::new(stores.workflows());
        // Several files of one workflow: the highest `version` ends up live.
        let mut workflows = workflows;
        workflows.sort_by(|a, b| (&a.workspace_id, &a.id, a.version).cmp(&(&b.workspace_id, &b.id, b.version)));
        for workflow in workflows {
            let id = workflow.id.clone();
            lifecycle
                .apply_file(workflow)
                .await
                .map_err(|e| anyhow::anyhow!("workflow {id}: {e}"))?;
        }
        let policy = if config.deny_private_networks {
            NetworkPolicy::deny_private()
        } else {
            NetworkPolicy::allow_all()
        };
        let http: Arc<dyn HttpClient> = Arc::new(ReqwestHttpClient::with_policy(policy)?);
        // In memory, ingest waits while the pipeline is full (`Admission`);
        // on SQS a send never waits.
        let door: Arc<dyn Queue> = match &memory {
            Some(twins) => Arc::new(Admission::new(
                twins.triggers.clone(),
                vec![twins.triggers.clone(), twins.steps.clone()],
                MAX_PENDING,
            )),
            None => backend.triggers.clone(),
        };
        let ingest = Arc::new(stores.ingest(door.clone()));
        let dispatcher = Arc::new(stores.dispatcher(backend.steps.clone()));
        // Claims outlast any HTTP step (120 s at most; the visibility timeout
        // is over that) and expire just before a crashed delivery comes back.
        let executor: Arc<dyn MessageHandler> = Arc::new(stores.steps_consumer(
            backend.steps.clone(),
            backend.triggers.clone(),
            http,
            DeliveryLimits::for_queue(config.visibility_timeout, config.max_receive_count),
        ));

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![];
        let settings = ConsumerSettings::default();
        let triggers = backend.triggers.clone();
        let step_workers = if config.consume { config.step_workers.max(1) } else { 0 };
        let trigger_letters = Arc::new(stores.dead_letters(QueueKind::Triggers, backend.steps.clone()));
        let step_letters = Arc::new(stores.dead_letters(QueueKind::Steps, backend.steps.clone()));
        if config.consume {
            tasks.push(tokio::spawn(consume(
                triggers,
                dispatcher.clone() as Arc<dyn MessageHandler>,
                trigger_letters.clone(),
                settings,
                shutdown_rx.clone(),
            )));
            // The dead-letter queues' consumers park what reaches them.
            for (dlq, letters) in [
                (backend.triggers_dlq.clone(), trigger_letters),
                (backend.steps_dlq.clone(), step_letters.clone()),
            ] {
                tasks.push(tokio::spawn(consume(
                    dlq,
                    letters.clone() as Arc<dyn MessageHandler>,
                    letters,
                    settings,
                    shutdown_rx.clone(),
                )));
            }
        }
        if config.consume {
            let reaper = stores.reaper(
                DeliveryLimits::for_queue(config.visibility_timeout, config.max_receive_count),
                backend.steps.clone(),
            );
            tasks.push(tokio::spawn(reap_every(REAP_EVERY, reaper, shutdown_rx.clone())));
        }
        for _ in 0..step_workers {
            let steps = backend.steps.clone();
            tasks.push(tokio::spawn(consume(
                steps,
                executor.clone(),
                step_letters.clone(),
                settings,
                shutdown_rx.clone(),
            )));
        }

        let access = Arc::new(stores.access());
        let bootstrap_key = bootstrap_key(&config, &access).await?;
        // Key-less requests are the local developer's only on loopback.
        let keyless = if config.addr.ip().is_loopback() && !config.require_keys {
            KeylessRequests::AllowedAsLocalDeveloper
        } else {
            KeylessRequests::Refused
        };
        let gate = Gate { access, keyless };
        let state = ApiState {
            gate: gate.clone(),
            ingest: Some(ingest),
            runs: Some(stores.runs.clone()),
            workflows: Some(lifecycle),
            live_tests: Some(dispatcher),
            hooks: Some(Arc::new(stores.hooks())),
            hook_receiver: Some(Arc::new(stores.hook_receiver(door.clone()))),
            recovery: Some(Arc::new(stores.recovery(backend.steps.clone()))),
            contacts: Some(Arc::new(stores.contacts())),
            connections: Some(Arc::new(stores.connections())),
            webhook_endpoints: Some(Arc::new(stores.webhook_endpoints(backend.steps.clone()))),
            sso_sites: Some(Arc::new(stores.sso_sites())),
            identify: Some(Arc::new(stores.identify(door))),
        };
        let mut app = router(state, config.max_body_bytes)
            .merge(sink::routes(dev_sink))
            .merge(guard(operator_routes(backend.clone()), gate));
        // Scrapers send no key: the counters are served on loopback only.
        if config.addr.ip().is_loopback() {
            app = app.merge(metrics_route(metrics));
        }
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let mut http_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let graceful = async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            };
            if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
                tracing::error!(error = %err, "HTTP server failed");
            }
        }));
        Ok(Self {
            addr,
            ports: backend,
            memory,
            bootstrap_key,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting requests and waits for in-flight messages to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "task ended abnormally during shutdown");
            }
        }
    }
}

/// With `require_keys`, the admin key of the bootstrap workspace: the one
/// given, or a new one.
async fn bootstrap_key(config: &DevConfig, access: &Access) -> anyhow::Result<Option<String>> {
    if !config.require_keys {
        return Ok(None);
    }
    let name = Some("bootstrap".to_owned());
    let workspace = &config.bootstrap_workspace;
    let minted = match &config.bootstrap_key {
        Some(key) => access
            .import_key(workspace, Role::Admin, name, key)
            .await
            .map_err(|e| anyhow::anyhow!("HOOKFLOW_BOOTSTRAP_KEY: {e}"))?,
        None => access.create_key(workspace, Role::Admin, name).await?,
    };
    Ok(Some(minted.secret))
}

/// `GET /metrics`: the engine's counters in Prometheus text format.
fn metrics_route(metrics: Arc<MemoryMetrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.prometheus(),
                )
            }
        }),
    )
}

/// How often `hookflow dev` looks for stuck runs.
const REAP_EVERY: Duration = Duration::from_secs(60);

/// Reaper passes until shutdown.
async fn reap_every(period: Duration, reaper: Reaper, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if let Err(err) = reaper.reap().await {
                    tracing::warn!(error = %err, "reaper pass failed; the next one tries again");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// The operator routes behind `hookflow dlq`.
/// Local only: the deployed API has none of them.
fn operator_routes(ports: Ports) -> Router {
    Router::new()
        .route("/dev/dlq/{queue}", get(list_dead_letters))
        .route("/dev/dlq/{queue}/redrive", post(redrive_dead_letters))
        .with_state(ports)
}

fn queue_kind(name: &str) -> Result<QueueKind, ApiError> {
    QueueKind::parse(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_queue",
            format!("unknown queue {name:?}; expected triggers or steps"),
        )
    })
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "operator request failed");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err.to_string())
}

/// `GET /dev/dlq/{queue}`: up to 100 parked and 100 waiting dead letters,
/// without taking them.
async fn list_dead_letters(State(ports): State<Ports>, Path(queue): Path<String>) -> Result<Json<Value>, ApiError> {
    let listing = ops::list_dead_letters(&ports, queue_kind(&queue)?)
        .await
        .map_err(internal)?;
    Ok(Json(json!(listing)))
}

/// `POST /dev/dlq/{queue}/redrive`: sends the dead letters on.
async fn redrive_dead_letters(State(ports): State<Ports>, Path(queue): Path<String>) -> Result<Json<Value>, ApiError> {
    let report = ops::redrive_dead_letters(&ports, queue_kind(&queue)?)
        .await
        .map_err(internal)?;
    tracing::info!(queue = %report.queue, moved = report.moved, redriven = report.redriven, left = report.left.len(),
        "dead letters redriven");
    Ok(Json(json!(report)))
}
