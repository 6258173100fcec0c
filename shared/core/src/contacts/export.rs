//! The contacts export: RFC 4180 CSV, a page of contacts at a time, so a
//! tag of any size streams in bounded memory. Properties become columns
//! (nested objects by dotted path); the columns are found by a first pass
//! over the same contacts, which keeps only their names.
//!
//! A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or
//! a carriage return (or a NUL) as a formula; such cells get a leading `'` (OWASP's
//! advice for CSV injection), so a lead's "company" cannot run code on the
//! sponsor's machine.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Contact, ContactQuery, ContactStore, MAX_CONTACTS_PAGE};
use crate::ports::{PortError, PortResult};

/// The columns every export starts with; property columns follow.
pub const FIXED_COLUMNS: [&str; 8] = [
    "id",
    "email",
    "external_id",
    "tags",
    "lists",
    "loyalty",
    "created_at",
    "updated_at",
];

/// More distinct property paths than this refuse the export: a column per
/// value would be a sign of data in keys, not a sheet anyone can read.
pub const MAX_PROPERTY_COLUMNS: usize = 1_000;

/// Makes a cell safe to open in a spreadsheet.
pub fn neutralise(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\0') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// A property's cells by dotted path: nested objects are flattened,
/// arrays and scalars are cells (arrays as JSON).
fn flatten(prefix: &str, properties: &Map<String, Value>, visit: &mut dyn FnMut(String, &Value)) {
    for (name, value) in properties {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten(&path, inner, visit),
            other => visit(path, other),
        }
    }
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A property column's header: its path, or `properties.<path>` where the
/// path is one of [`FIXED_COLUMNS`].
fn property_header(path: &str) -> String {
    if FIXED_COLUMNS.contains(&path) {
        format!("properties.{path}")
    } else {
        path.to_owned()
    }
}

fn fixed_cells(contact: &Contact) -> Vec<String> {
    let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(";");
    let loyalty: Vec<String> = contact
        .loyalty
        .iter()
        .map(|(program, l)| {
            let tiers = l.tiers.iter().cloned().collect::<Vec<_>>().join("|");
            format!(
                "{program}:{}{}",
                l.points,
                if tiers.is_empty() {
                    String::new()
                } else {
                    format!(":{tiers}")
                }
            )
        })
        .collect();
    vec![
        contact.id.clone(),
        contact.email.clone().unwrap_or_default(),
        contact.external_id.clone().unwrap_or_default(),
        join(&contact.tags),
        join(&contact.lists),
        loyalty.join(";"),
        contact.created_at.to_rfc3339(),
        contact.updated_at.to_rfc3339(),
    ]
}

fn csv_line(cells: impl IntoIterator<Item = String>) -> PortResult<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(vec![]);
    writer
        .write_record(cells.into_iter().map(|cell| neutralise(&cell)))
        .map_err(|e| PortError::terminal("export_contacts", e.to_string()))?;
    writer
        .into_inner()
        .map_err(|e| PortError::terminal("export_contacts", e.to_string()))
}

/// One export in progress: [`CsvExport::next_chunk`] gives the header,
/// then one chunk per page of contacts, then `None`.
pub struct CsvExport {
    store: Arc<dyn ContactStore>,
    workspace_id: String,
    query: ContactQuery,
    columns: Vec<String>,
    header_sent: bool,
    done: bool,
    rows: usize,
}

impl CsvExport {
    /// Finds the property columns of the contacts `query` selects (its
    /// page size and start are the export's own).
    pub async fn start(store: Arc<dyn ContactStore>, workspace_id: &str, query: &ContactQuery) -> PortResult<Self> {
        let query = ContactQuery {
            limit: MAX_CONTACTS_PAGE,
            after: None,
            ..query.clone()
        };
        let mut columns = BTreeSet::new();
        let mut scan = query.clone();
        loop {
            let page = store.list_contacts(workspace_id, &scan).await?;
            for contact in &page.contacts {
                flatten("", &contact.properties, &mut |path, _| {
                    columns.insert(path);
                });
            }
            if columns.len() > MAX_PROPERTY_COLUMNS {
                return Err(PortError::terminal(
                    "export_contacts",
                    format!("the contacts have more than {MAX_PROPERTY_COLUMNS} distinct properties"),
                ));
            }
            match page.next {
                Some(next) => scan.after = Some(next),
                None => break,
            }
        }
        Ok(Self {
            store,
            workspace_id: workspace_id.to_owned(),
            query,
            columns: columns.into_iter().collect(),
            header_sent: false,
            done: false,
            rows: 0,
        })
    }

    /// Rows written so far (the header not counted).
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub async fn next_chunk(&mut self) -> PortResult<Option<Vec<u8>>> {
        if !self.header_sent {
            self.header_sent = true;
            let header = FIXED_COLUMNS
                .iter()
                .map(|c| (*c).to_owned())
                .chain(self.columns.iter().map(|c| property_header(c)));
            return csv_line(header).map(Some);
        }
        if self.done {
            return Ok(None);
        }
        let page = self.store.list_contacts(&self.workspace_id, &self.query).await?;
        let mut chunk = vec![];
        for contact in &page.contacts {
            chunk.extend(self.row(contact)?);
        }
        self.rows += page.contacts.len();
        match page.next {
            Some(next) => self.query.after = Some(next),
            None => self.done = true,
        }
        Ok(Some(chunk))
    }

    fn row(&self, contact: &Contact) -> PortResult<Vec<u8>> {
        let mut cells = std::collections::HashMap::new();
        flatten("", &contact.properties, &mut |path, value| {
            cells.insert(path, cell_text(value));
        });
        let properties = self.columns.iter().map(|c| cells.remove(c).unwrap_or_default());
        csv_line(fixed_cells(contact).into_iter().chain(properties))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_kept() {
        for (cell, shown) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("\0x", "'\0x"),
            ("ACME", "ACME"),
            ("", ""),
        ] {
            assert_eq!(neutralise(cell), shown);
        }
    }
}
