//! A CPU profile of the measured process while the pipeline runs: `perf
//! record` on its pid, then the 20 functions it spent most samples in, as
//! text (`make profile` writes `bench/profile.txt`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

pub struct Recording {
    perf: Child,
    data: PathBuf,
}

impl Recording {
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        let data = std::env::temp_dir().join(format!("hookflow-bench-{}.perf", std::process::id()));
        let perf = Command::new("perf")
            .args(["record", "-F", "999", "-g", "-o"])
            .arg(&data)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf (Debian's linux-perf)")?;
        Ok(Self { perf, data })
    }

    /// Stops recording and writes the top functions, self time first, to `out`.
    pub fn finish(mut self, out: &Path, title: &str) -> anyhow::Result<()> {
        // SIGINT makes perf write its data and exit.
        Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status()?;
        self.perf.wait()?;
        let report = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
                "-g",
                "none",
                "--percent-limit",
                "0.3",
                "-i",
            ])
            .arg(&self.data)
            .output()
            .context("running perf report")?;
        if !report.status.success() {
            bail!("perf report failed: {}", String::from_utf8_lossy(&report.stderr));
        }
        let text = String::from_utf8_lossy(&report.stdout);
        let top: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(without_empty_columns)
            .take(20)
            .collect();
        let body = format!(
            "# {title}\n\n`perf record -F 999 -g` on `hookflow dev` (profiling build: the speed profile's opt-level, with symbols, without LTO) during \
             the bench's first repetition; self time, top 20 symbols.\n\n```\n{}\n```\n",
            top.join("\n")
        );
        std::fs::write(out, body)?;
        let _ = std::fs::remove_file(&self.data);
        Ok(())
    }
}

/// A report line without the columns perf pads it with when it has nothing
/// for them (the IPC ones, printed `-` after a symbol padded to the widest).
fn without_empty_columns(line: &str) -> &str {
    let mut line = line.trim_end();
    while let Some(rest) = line
        .strip_suffix('-')
        .filter(|rest| rest.ends_with(char::is_whitespace))
    {
        line = rest.trim_end();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::without_empty_columns;

    #[test]
    fn the_padding_and_empty_ipc_columns_go_and_the_symbol_stays() {
        let line = "     6.72%  [.] _mi_page_malloc_zero                                   -      -   ";
        assert_eq!(without_empty_columns(line), "     6.72%  [.] _mi_page_malloc_zero");
        let symbol = "     0.85%  [.] <impl Sub for a-b>::sub";
        assert_eq!(without_empty_columns(symbol), symbol);
        assert_eq!(without_empty_columns("     1.00%  [.] x - y"), "     1.00%  [.] x - y");
    }
}
