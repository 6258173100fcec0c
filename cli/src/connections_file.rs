//! `hookflow dev`'s connections: the in-memory twins, written to a file
//! after every change so that connections outlive a restart. The file
//! holds credentials, so it is created with mode 0600 and refused if
//! anyone but its owner may read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hookflow_core::connections::{Connection, ConnectionStore, Credentials, SecretVault};
use hookflow_core::memory::{MemoryConnections, MemoryVault};
use hookflow_core::ports::{PortError, PortResult};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Contents {
    connections: Vec<Connection>,
    secrets: BTreeMap<String, Credentials>,
}

/// The connection store and the vault of one file.
pub struct ConnectionsFile {
    path: PathBuf,
    connections: MemoryConnections,
    vault: MemoryVault,
    /// One write of the file at a time.
    writing: Mutex<()>,
}

impl ConnectionsFile {
    /// Opens `path`, or starts empty when it does not exist.
    pub fn open(path: &Path) -> anyhow::Result<Arc<Self>> {
        let contents = match std::fs::File::open(path) {
            Ok(file) => {
                // Checked on the handle read, not the path: no swap in between.
                check_private(path, &file)?;
                // serde's message would quote what it could not read.
                serde_json::from_reader(std::io::BufReader::new(file))
                    .map_err(|e| anyhow::anyhow!("{} is not a connections file (line {})", path.display(), e.line()))?
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Contents::default(),
            Err(err) => return Err(anyhow::anyhow!("cannot read {}: {err}", path.display())),
        };
        Ok(Arc::new(Self {
            path: path.to_owned(),
            connections: MemoryConnections::restore(contents.connections),
            vault: MemoryVault::restore(contents.secrets),
            writing: Mutex::new(()),
        }))
    }

    fn save(&self, operation: &'static str) -> PortResult<()> {
        let _one_writer = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let contents = Contents {
            connections: self.connections.snapshot(),
            secrets: self.vault.snapshot(),
        };
        let failed = |e: std::io::Error| PortError::terminal(operation, format!("{}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let bytes = serde_json::to_vec_pretty(&contents).map_err(|e| PortError::terminal(operation, e.to_string()))?;
        let partial = self.path.with_extension("partial");
        write_private(&partial, &bytes).map_err(failed)?;
        std::fs::rename(&partial, &self.path).map_err(failed)
    }
}

#[cfg(unix)]
fn check_private(path: &Path, file: &std::fs::File) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} holds credentials and may be read by others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _file: &std::fs::File) -> anyhow::Result<()> {
    Ok(())
}

/// Writes a new file only its owner may read: whatever was at `path` (a
/// leftover, a planted symlink) is removed first, and the file is created
/// exclusively, so the bytes never go anywhere else.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[async_trait]
impl ConnectionStore for ConnectionsFile {
    async fn create(&self, connection: &Connection) -> PortResult<bool> {
        let created = self.connections.create(connection).await?;
        if created {
            self.save("create_connection")?;
        }
        Ok(created)
    }

    async fn get(&self, workspace_id: &str, name: &str) -> PortResult<Option<Connection>> {
        self.connections.get(workspace_id, name).await
    }

    async fn list(&self, workspace_id: &str) -> PortResult<Vec<Connection>> {
        self.connections.list(workspace_id).await
    }

    async fn replace(&self, connection: &Connection, previous_ref: &str) -> PortResult<bool> {
        let replaced = self.connections.replace(connection, previous_ref).await?;
        if replaced {
            self.save("rotate_connection")?;
        }
        Ok(replaced)
    }

    async fn delete(&self, workspace_id: &str, name: &str) -> PortResult<Option<Connection>> {
        let deleted = self.connections.delete(workspace_id, name).await?;
        if deleted.is_some() {
            self.save("delete_connection")?;
        }
        Ok(deleted)
    }
}

#[async_trait]
impl SecretVault for ConnectionsFile {
    async fn put(&self, secret_ref: &str, credentials: &Credentials) -> PortResult<()> {
        self.vault.put(secret_ref, credentials).await?;
        self.save("put_secret")
    }

    async fn get(&self, secret_ref: &str) -> PortResult<Option<Credentials>> {
        self.vault.get(secret_ref).await
    }

    async fn replace(&self, secret_ref: &str, credentials: &Credentials) -> PortResult<bool> {
        let replaced = self.vault.replace(secret_ref, credentials).await?;
        if replaced {
            self.save("replace_secret")?;
        }
        Ok(replaced)
    }

    async fn delete(&self, secret_ref: &str) -> PortResult<()> {
        self.vault.delete(secret_ref).await?;
        self.save("delete_secret")
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use hookflow_core::connections::{ConnectionRequest, Connections};
    use hookflow_core::ports::SystemClock;

    use super::*;

    fn use_case(file: &Arc<ConnectionsFile>) -> Connections {
        Connections::new(file.clone(), file.clone(), Arc::new(SystemClock))
    }

    fn request() -> ConnectionRequest {
        serde_json::from_value(serde_json::json!({"name": "mc", "app": "mailchimp",
            "credentials": {"api_key": "k-us21"}}))
        .unwrap()
    }

    #[tokio::test]
    async fn connections_outlive_a_restart_in_a_file_only_its_owner_may_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/connections.json");
        let file = ConnectionsFile::open(&path).unwrap();
        let created = use_case(&file).create("ws", request()).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let reopened = ConnectionsFile::open(&path).unwrap();
        assert_eq!(use_case(&reopened).get("ws", "mc").await.unwrap(), created);
        let credentials = SecretVault::get(reopened.as_ref(), &created.secret_ref).await.unwrap();
        assert_eq!(credentials.unwrap().get("api_key"), Some("k-us21"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = ConnectionsFile::open(&path).err().unwrap().to_string();
        assert!(refused.contains("chmod 600"), "{refused}");
    }

    #[tokio::test]
    async fn a_deleted_connection_leaves_nothing_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connections.json");
        let file = ConnectionsFile::open(&path).unwrap();
        use_case(&file).create("ws", request()).await.unwrap();
        use_case(&file).delete("ws", "mc").await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("k-us21"), "{text}");
    }
}
