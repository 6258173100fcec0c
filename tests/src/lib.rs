//! Test harness: a `hookflow dev` stack on a free loopback port, driven over
//! real HTTP, plus helpers to build events and wait for runs.

pub mod chaos;

use std::time::{Duration, Instant};

use hookflow_cli::dev::{DevConfig, DevServer, Ports};
use hookflow_core::validate::validate;
use hookflow_core::WorkflowDefinition;
use serde_json::{json, Value};

pub const WS: &str = "ws_test";

/// How long a test waits for the pipeline to finish before it fails. The
/// waits return as soon as the pipeline is done (a few seconds here, on
/// either backend), so the bound costs a passing test nothing; it is far over
/// 3× the longest wait measured with one core held busy, so that a machine at
/// half speed passes too.
pub const PIPELINE_WAIT: Duration = Duration::from_secs(120);

pub struct Stack {
    pub server: DevServer,
    pub base: String,
    pub client: reqwest::Client,
    /// The workspace whose runs the helpers read.
    pub workspace: String,
}

impl Stack {
    /// Starts the stack with these workflow documents (they must be valid).
    pub async fn start(workflows: Vec<Value>) -> Self {
        Self::start_with(workflows, false).await
    }

    /// The same stack on DynamoDB and SQS: the emulator that `make test`
    /// starts (`HOOKFLOW_TEST_AWS_ENDPOINT`), with fresh tables and queues.
    pub async fn start_aws(workflows: Vec<Value>) -> Self {
        Self::start_with(workflows, true).await
    }

    async fn start_with(workflows: Vec<Value>, aws: bool) -> Self {
        let workflows = workflows
            .into_iter()
            .map(|doc| {
                let wf = WorkflowDefinition::from_value(doc)
                    .unwrap_or_else(|e| panic!("test workflow does not decode: {e}"));
                let problems = validate(&wf);
                assert!(problems.is_empty(), "test workflow {} is invalid: {problems:?}", wf.id);
                wf
            })
            .collect();
        let config = DevConfig {
            addr: "127.0.0.1:0".parse().expect("loopback address"),
            ..DevConfig::default()
        };
        let server = if aws {
            let endpoint = std::env::var("HOOKFLOW_TEST_AWS_ENDPOINT")
                .expect("HOOKFLOW_TEST_AWS_ENDPOINT is not set: run the tests with `make test`, which starts moto");
            // Ports::aws reads process-wide variables: one stack at a time sets and reads them.
            static AWS_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
            let _env = AWS_ENV.lock().await;
            let prefix = format!(
                "e2e-{}-{}",
                std::process::id(),
                ulid::Ulid::new().to_string().to_lowercase()
            );
            for (name, value) in [
                ("AWS_ENDPOINT_URL", endpoint),
                ("AWS_REGION", "us-east-1".to_owned()),
                ("AWS_ACCESS_KEY_ID", "test".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
                ("HOOKFLOW_WORKFLOWS_TABLE", format!("{prefix}-workflows")),
                ("HOOKFLOW_RUNS_TABLE", format!("{prefix}-runs")),
                ("HOOKFLOW_TRIGGERS_QUEUE", format!("{prefix}-triggers")),
                ("HOOKFLOW_STEPS_QUEUE", format!("{prefix}-steps")),
                // Email and SMS steps on moto may reach anyone.
                ("HOOKFLOW_EMAIL_SENDERS", "*".to_owned()),
                ("HOOKFLOW_SMS_COUNTRIES", "*".to_owned()),
            ] {
                std::env::set_var(name, value);
            }
            let ports = Ports::aws(true, Duration::from_secs(30))
                .await
                .expect("AWS ports on the emulator");
            DevServer::start_on(config, workflows, ports, None)
                .await
                .expect("dev server starts")
        } else {
            DevServer::start(config, workflows).await.expect("dev server starts")
        };
        Self::on(server)
    }

    /// A stack around a server started elsewhere (on ports of its own).
    pub fn on(server: DevServer) -> Self {
        let base = format!("http://{}", server.addr);
        Stack {
            server,
            base,
            client: reqwest::Client::new(),
            workspace: WS.to_owned(),
        }
    }

    pub async fn post_event(&self, event: &Value) -> (u16, Value) {
        self.post_raw("application/cloudevents+json", event.to_string().into_bytes())
            .await
    }

    pub async fn post_raw(&self, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/events", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST /v1/events");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Any API request with an optional JSON body: the status and the JSON
    /// answer (`null` when there is none).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn runs(&self, query: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/v1/workspaces/{}/runs{query}", self.workspace))
            .await;
        assert_eq!(status, 200, "{body}");
        body["runs"].as_array().cloned().unwrap_or_default()
    }

    /// The run with its step timeline.
    pub async fn run(&self, run_id: &str) -> Value {
        let (status, body) = self
            .get(&format!("/v1/workspaces/{}/runs/{run_id}", self.workspace))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until `count` runs exist and all have ended; returns them with
    /// their timelines, oldest first.
    pub async fn wait_for_finished_runs(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + PIPELINE_WAIT;
        loop {
            let runs = self.runs("").await;
            if runs.len() >= count && runs.iter().all(|r| r["status"] != "running") {
                assert_eq!(runs.len(), count, "more runs than expected: {runs:#?}");
                let mut detailed = vec![];
                for run in runs.iter().rev() {
                    detailed.push(self.run(run["run_id"].as_str().unwrap_or_default()).await);
                }
                return detailed;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} finished runs; have {runs:#?}"
            );
            // Every poll is a query on the emulator when on AWS: not too often.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the pipeline is idle: nothing queued, no run running.
    pub async fn wait_until_idle(&self) {
        let deadline = Instant::now() + PIPELINE_WAIT;
        loop {
            let Some(backend) = &self.server.memory else { return };
            let runs = self.runs("?status=running").await;
            if backend.triggers.is_empty() && backend.steps.is_empty() && runs.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "pipeline did not go idle");
            // Every poll is a query on the emulator when on AWS: not too often.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Headers a hook sender would send, made by `tests/signers/sign.py`: the
/// official Standard Webhooks library, or Python's `hmac` in the GitHub,
/// Shopify and Stripe formats. `args` are the mode, the secret and the
/// mode's own arguments (see the script).
pub fn sign_hook(args: &[&str], body: &[u8]) -> Vec<(String, String)> {
    let python = std::env::var("HOOKFLOW_TEST_PYTHON")
        .expect("HOOKFLOW_TEST_PYTHON is not set: run the tests with `make test`, which installs the signers");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("body");
    std::fs::write(&file, body).expect("write body");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/signers/sign.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(args[0])
        .arg(args[1])
        .arg(&file)
        .args(&args[2..])
        .output()
        .expect("run the signer");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let headers: serde_json::Map<String, Value> = serde_json::from_slice(&output.stdout).expect("headers JSON");
    headers
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Keys and tokens made by PyJWT (`tests/signers/jwt_tokens.py`), so that
/// the verifier is checked against an independent signer: `{"keys": {…},
/// "tokens": {case: token}}` for this audience and issuer.
pub fn pyjwt_material(audience: &str, issuer: &str) -> Value {
    let python = std::env::var("HOOKFLOW_TEST_PYTHON")
        .expect("HOOKFLOW_TEST_PYTHON is not set: run the tests with `make test`, which installs PyJWT");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/signers/jwt_tokens.py");
    let output = std::process::Command::new(python)
        .args([script, audience, issuer])
        .output()
        .expect("run the token maker");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("tokens JSON")
}

/// A file of the repository (an example, a sample event), as text.
pub fn repository_file(path: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The shipped example workflows of these names, with `hookflow dev`'s
/// built-in sink swapped for `sink`.
pub fn example_workflows(names: &[&str], sink: &str) -> Vec<Value> {
    names
        .iter()
        .map(|name| {
            let text = repository_file(&format!("examples/workflows/{name}.json"))
                .replace("http://127.0.0.1:3000/dev/sink", sink);
            serde_json::from_str(&text).expect("example parses")
        })
        .collect()
}

/// A CloudEvent for the test workspace. `scope` sets siteid/cardid/contactid.
pub fn event(id: &str, event_type: &str, scope: &[(&str, &str)], data: Value) -> Value {
    let mut event = json!({"specversion": "1.0", "id": id, "source": "tests", "type": event_type,
                           "time": "2026-11-23T10:00:00Z", "workspaceid": WS, "data": data});
    for (key, value) in scope {
        event[*key] = json!(value);
    }
    event
}

/// The step records of a run as (step_id, status, attempt).
pub fn timeline(run: &Value) -> Vec<(String, String, u64)> {
    run["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    (
                        s["step_id"].as_str().unwrap_or_default().to_owned(),
                        s["status"].as_str().unwrap_or_default().to_owned(),
                        s["attempt"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn step(id: &str, status: &str, attempt: u64) -> (String, String, u64) {
    (id.to_owned(), status.to_owned(), attempt)
}

/// The emulator every test shares.
pub const SHARED_EMULATOR: &str = "HOOKFLOW_TEST_AWS_ENDPOINT";

/// A second emulator that only the chaos test uses: moto serves one request
/// at a time, so the chaos load would otherwise slow every other test on
/// the shared one, and theirs would slow it.
pub const CHAOS_EMULATOR: &str = "HOOKFLOW_TEST_CHAOS_AWS_ENDPOINT";

/// An SDK configuration for an emulator `make test` starts (`endpoint_var`
/// is [`SHARED_EMULATOR`] or [`CHAOS_EMULATOR`]); panics, saying how to
/// start it, if unset.
pub async fn emulator_config(endpoint_var: &str) -> aws_config::SdkConfig {
    let endpoint = std::env::var(endpoint_var).unwrap_or_else(|_| {
        panic!("{endpoint_var} is not set: run the tests with `make test` (scripts/test.sh starts moto on loopback)")
    });
    assert!(
        endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost"),
        "{endpoint_var} must be a loopback address, got {endpoint}"
    );
    hookflow_aws::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "hookflow-tests",
        ))
        .load()
        .await
}

/// A fresh deployment on the shared emulator: its own tables and queues,
/// named from `prefix` and a ULID.
pub struct EmulatorStack {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Secrets Manager (under this stack's own prefix), SES and SNS on the emulator.
    pub services: hookflow_aws::StackServices,
    pub names: hookflow_aws::ResourceNames,
    pub urls: hookflow_aws::QueueUrls,
}

/// Secrets Manager (under a prefix of the stack's own), SES and SNS on the emulator.
pub fn emulator_services(
    config: &aws_config::SdkConfig,
    names: &hookflow_aws::ResourceNames,
) -> hookflow_aws::StackServices {
    hookflow_aws::StackServices::from_config(
        config,
        &names.workflows_table,
        hookflow_core::messaging::MessagingPolicy::open(),
    )
}

pub async fn emulator_stack(prefix: &str) -> EmulatorStack {
    let config = emulator_config(SHARED_EMULATOR).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let names =
        hookflow_aws::ResourceNames::with_prefix(&format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase()));
    let urls = hookflow_aws::create_resources(&dynamo, &sqs, &names, Duration::from_secs(30))
        .await
        .expect("create resources on the emulator");
    EmulatorStack {
        services: emulator_services(&config, &names),
        dynamo,
        sqs,
        names,
        urls,
    }
}

/// What a router answered: the status and the JSON body (`null` when it is
/// not JSON).
pub async fn answer_of(response: axum::response::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
