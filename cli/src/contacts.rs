//! `hookflow contacts …`: list a workspace's contacts, and export a tag or
//! a list to a CSV file (streamed to disk as the API sends it).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::runs::query_string;
use crate::workflows::{table, Api, CliError};

#[derive(Subcommand, Debug)]
pub enum ContactsCommand {
    /// One page of contacts, in id order.
    List {
        /// Only contacts with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only contacts in this list.
        #[arg(long)]
        list: Option<String>,
        /// Contacts per page (1 to 100).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Export contacts to an RFC 4180 CSV file: every contact with the tag or in the list (or all).
    Export {
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        list: Option<String>,
        /// The file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

pub async fn run(api: &Api, command: ContactsCommand) -> Result<(Value, String), CliError> {
    match command {
        ContactsCommand::List {
            tag,
            list,
            limit,
            cursor,
        } => {
            let path = format!(
                "/contacts{}",
                query_string(&[
                    ("tag", tag),
                    ("list", list),
                    ("limit", Some(limit.to_string())),
                    ("cursor", cursor)
                ])
            );
            let (page, _) = api.request(Method::GET, &path, None, None).await?;
            let human = render_list(&page);
            Ok((page, human))
        }
        ContactsCommand::Export { tag, list, output } => {
            let path = format!(
                "/contacts{}",
                query_string(&[("format", Some("csv".into())), ("tag", tag), ("list", list)])
            );
            let rows = export(api, &path, &output).await?;
            let summary = json!({"file": output.display().to_string(), "contacts": rows});
            let human = format!("exported {rows} contact(s) to {}", output.display());
            Ok((summary, human))
        }
    }
}

/// Streams the export to `output` and answers how many contacts it held.
/// The file is written beside its final name and renamed when whole, so an
/// export cut short never leaves a file that looks complete.
async fn export(api: &Api, path: &str, output: &std::path::Path) -> Result<usize, CliError> {
    let partial = output.with_extension("csv.partial");
    let failed = |what: &str, e: std::io::Error| CliError::Failed(format!("cannot {what} {}: {e}", partial.display()));
    let mut file = std::fs::File::create(&partial).map_err(|e| failed("create", e))?;
    let progress = std::io::stderr().is_terminal();
    let mut lines = 0usize;
    let mut bytes = 0usize;
    let mut response = api.stream(Method::GET, path).await?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CliError::Failed(format!("the export was cut short after {bytes} bytes: {e}")))?
    {
        file.write_all(&chunk).map_err(|e| failed("write", e))?;
        lines += chunk.windows(2).filter(|w| w == b"\r\n").count();
        bytes += chunk.len();
        if progress {
            let filled = (lines / 100) % 21;
            eprint!(
                "\r[{}{}] {} contacts, {} KiB",
                "#".repeat(filled),
                " ".repeat(20 - filled),
                lines.saturating_sub(1),
                bytes / 1024
            );
        }
    }
    if progress {
        eprintln!();
    }
    file.sync_all().map_err(|e| failed("write", e))?;
    std::fs::rename(&partial, output)
        .map_err(|e| CliError::Failed(format!("cannot move the export to {}: {e}", output.display())))?;
    // The header is a line; a quoted cell may hold a line break, so the
    // count is of records only when no cell does (true of what we write).
    Ok(lines.saturating_sub(1))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub fn render_list(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["contacts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            vec![
                text(&c["id"]),
                text(&c["email"]),
                text(&c["tags"]),
                text(&c["lists"]),
                text(&c["updated_at"]),
            ]
        })
        .collect();
    let mut out = table(&["ID", "EMAIL", "TAGS", "LISTS", "UPDATED"], &rows);
    if let Some(next) = page["next_cursor"].as_str() {
        out.push_str(&format!("\nmore: --cursor {next}"));
    }
    out
}
