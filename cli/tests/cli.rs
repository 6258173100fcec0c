//! The `hookflow` binary itself: exit codes and what it prints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn hookflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hookflow"))
}

#[test]
fn dev_refuses_to_start_with_an_invalid_workflow_and_lists_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("broken.json"),
        r#"{"id": "wf", "workspace_id": "ws", "name": "n", "status": "active", "scope": {"card": "c"},
            "trigger": {"type": "Gameplay.Endd", "filter": {"path": "x", "op": "like", "value": 1}},
            "start": "a",
            "steps": {"a": {"action": {"type": "HttpRequest", "url": "https://x/{{ oops"}, "next": "b"},
                      "b": {"action": {"type": "Delay", "seconds": 1}, "next": "a"}}}"#,
    )
    .expect("write");
    std::fs::write(dir.path().join("garbage.json"), "[").expect("write");
    let output = hookflow()
        .args(["dev", "--addr", "127.0.0.1:0", "--workflows"])
        .arg(dir.path())
        .output()
        .expect("run hookflow");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "refusing to start",
        "broken.json: $.trigger.type: unknown trigger type \"Gameplay.Endd\"; did you mean Gameplay.Ended",
        "broken.json: $.trigger.filter.op: unknown operator \"like\"",
        "broken.json: $.steps.a.action.url: template does not parse",
        "cycle: a -> b -> a",
        "garbage.json: $: EOF while parsing",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}

#[test]
fn dev_prints_a_ready_line_with_a_curl_and_serves() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/workflows");
    let mut child = hookflow()
        .args(["dev", "--addr", "127.0.0.1:0", "--workflows", examples])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hookflow");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    let curl = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(ready.starts_with("hookflow dev ready on http://127.0.0.1:"), "{ready}");
    assert!(ready.contains("7 workflows"), "{ready}");
    assert!(curl.contains("curl") && curl.contains("/v1/events"), "{curl}");
    let base = ready
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_default()
        .to_owned();
    // The API answers: a refused request proves the router is up.
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /v1/workspaces/ws_demo/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#"{"runs":[]}"#), "{response}");
    child.kill().expect("kill");
    let _ = child.wait();
}
