//! What the CLI tests share: running the `hookflow` binary.

use std::process::Output;

/// Runs the `hookflow` binary with `HOOKFLOW_API_KEY` set to `key` (or
/// unset), without blocking the runtime a dev server runs on.
pub async fn hookflow_with_key(args: Vec<String>, key: Option<&str>) -> Output {
    let key = key.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"));
        command.args(&args).env_remove("HOOKFLOW_API_KEY");
        if let Some(key) = key {
            command.env("HOOKFLOW_API_KEY", key);
        }
        command.output().expect("run hookflow")
    })
    .await
    .expect("hookflow did not panic")
}

/// Runs `hookflow <command> --api-url <base> --workspace <workspace> <args…>`
/// without a key (the local developer). Not every test file uses it.
#[allow(dead_code)]
pub async fn hookflow_in(command: &str, base: &str, workspace: &str, args: &[&str]) -> Output {
    let mut all: Vec<String> = vec![
        command.into(),
        "--api-url".into(),
        base.into(),
        "--workspace".into(),
        workspace.into(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    hookflow_with_key(all, None).await
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `hookflow dev` on a free loopback port running `workflows` (each
/// checked valid first), and its base URL. Not every test file uses it.
#[allow(dead_code)]
pub async fn dev_server(workflows: Vec<serde_json::Value>) -> (hookflow_cli::dev::DevServer, String) {
    let workflows = workflows
        .into_iter()
        .map(|doc| {
            let wf = hookflow_core::WorkflowDefinition::from_value(doc)
                .unwrap_or_else(|e| panic!("test workflow does not decode: {e}"));
            let problems = hookflow_core::validate::validate(&wf);
            assert!(problems.is_empty(), "test workflow {} is invalid: {problems:?}", wf.id);
            wf
        })
        .collect();
    let config = hookflow_cli::dev::DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback address"),
        ..hookflow_cli::dev::DevConfig::default()
    };
    let server = hookflow_cli::dev::DevServer::start(config, workflows)
        .await
        .expect("dev server starts");
    let base = format!("http://{}", server.addr);
    (server, base)
}
