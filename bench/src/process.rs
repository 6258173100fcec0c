//! The processes under measurement: started, watched through /proc, stopped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context};

/// A child process, killed when dropped.
pub struct Measured {
    pub name: &'static str,
    pub base: String,
    child: Child,
}

impl Measured {
    /// Starts `command` and waits until `base` + `ready_path` answers.
    pub async fn start(
        name: &'static str,
        mut command: Command,
        base: String,
        ready_path: &str,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(std::env::temp_dir().join(format!("hookflow-bench-{name}.log")))?;
        let child = command
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut measured = Self { name, base, child };
        let client = reqwest::Client::builder().no_proxy().build()?;
        let url = format!("{}{ready_path}", measured.base);
        for _ in 0..200 {
            if let Some(status) = measured.child.try_wait()? {
                bail!("{name} exited with {status} before it was ready; see its log in the temp folder");
            }
            if client.get(&url).send().await.is_ok() {
                return Ok(measured);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{name} did not answer on {url} within 10 s")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User and system CPU time used so far.
    pub fn cpu_ms(&self) -> anyhow::Result<f64> {
        cpu_ms(self.pid())
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmRSS:")
    }
}

impl Drop for Measured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_s() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unreadable /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?) };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    Ok((ticks(11)? + ticks(12)?) * 1000.0 / clock_ticks_per_s())
}

pub fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc status"))?;
    Ok(line.split_whitespace().nth(1).context("empty status line")?.parse()?)
}

/// The highest RSS seen since the last [`PeakRss::reset`], sampled every 20 ms.
#[derive(Clone)]
pub struct PeakRss(Arc<AtomicU64>);

impl PeakRss {
    pub fn watch(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let watched = peak.clone();
        tokio::spawn(async move {
            while let Ok(rss) = status_kib(pid, "VmRSS:") {
                watched.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self(peak)
    }

    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    pub fn mib(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A binary of this build's target folder, next to the bench itself
/// (`hookflow` and the relay, built by the same profile).
pub fn sibling_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("the bench binary has no folder")?;
    binary_in(dir, name)
}

/// The binary `name` in `dir`, which must have been built.
pub fn binary_in(dir: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it into {} first (`make bench` builds everything it measures)",
            path.display(),
            dir.display()
        );
    }
    Ok(path)
}

/// The Cargo profile the bench, and so `hookflow` and the relay beside it,
/// was built with: the name of the target folder it runs from (`debug` is
/// the `dev` profile's).
pub fn build_profile() -> anyhow::Result<String> {
    let me = std::env::current_exe()?;
    let folder = me
        .parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .context("the bench binary's folder has no name")?;
    Ok(match folder {
        "debug" => "dev".to_owned(),
        profile => profile.to_owned(),
    })
}
