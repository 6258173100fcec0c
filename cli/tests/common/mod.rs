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

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
