//! The plugin registry: named plugins with numbered, content-addressed
//! versions and one live version each. With a data dir, component bytes live
//! in `blobs/<sha256>.wasm` and each name's history in `plugins/<name>.json`
//! (written atomically, the directory fsynced after each rename), so versions
//! survive restarts and are pruned only on request ([`Registry::remove_version`]);
//! without one the registry is in memory and keeps the newest
//! [`DEFAULT_MEMORY_HISTORY`] versions of each plugin (configurable). The
//! registry only stores: validation and swapping are the deployer's job
//! ([`crate::deploy`]).

use serde::{Deserialize, Serialize};
use crate::engine::sha256_hex;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Reading or writing the data dir failed.
    #[error("plugin registry {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A metadata file is not what the registry wrote.
    #[error("plugin registry {path}: corrupt metadata: {reason}")]
    Corrupt {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A plugin name outside the allowed charset.
    #[error("invalid plugin name `{0}`: use 1-64 characters from a-z, 0-9, `-`, `_`, `.`, starting with a letter or digit")]
    InvalidName(String),
    /// No plugin of that name.
    #[error("no plugin named `{0}`")]
    UnknownPlugin(String),
    /// No such version of the plugin.
    #[error("plugin `{name}` has no version {version}")]
    UnknownVersion {
        /// Plugin name.
        name: String,
        /// Requested version.
        version: u32,
    },
    /// The live version cannot be removed (make another one live first).
    #[error("version {version} of plugin `{name}` is live; make another version live first")]
    LiveVersion {
        /// Plugin name.
        name: String,
        /// The live version.
        version: u32,
    },
}

/// Result alias.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Versions per plugin an in-memory registry keeps by default.
pub const DEFAULT_MEMORY_HISTORY: usize = 10;

/// One stored version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginVersion {
    /// Version number (1, 2, ...), in upload order.
    pub version: u32,
    /// Hex SHA-256 of the component bytes (the content address).
    pub sha256: String,
    /// Operator kind (`filter`, `map`, `aggregate`, `sink`).
    pub kind: String,
    /// Component size in bytes.
    pub size_bytes: u64,
    /// When the version was added (RFC 3339, UTC).
    pub uploaded_at: String,
    /// Where it came from: `config` (seeded from a pipeline file) or `upload`.
    pub origin: String,
}

impl PluginVersion {
    /// The short label used in headers and logs: `v3`.
    pub fn label(&self) -> String {
        format!("v{}", self.version)
    }
}

/// A plugin's history and live version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginRecord {
    /// Plugin name.
    pub name: String,
    /// The version running in pipelines.
    pub live: u32,
    /// Every stored version, oldest first.
    pub versions: Vec<PluginVersion>,
}

impl PluginRecord {
    /// The live version's entry.
    pub fn live_version(&self) -> &PluginVersion {
        self.version(self.live).expect("the live version is always stored")
    }

    /// The entry of `version`.
    pub fn version(&self, version: u32) -> Option<&PluginVersion> {
        self.versions.iter().find(|v| v.version == version)
    }
}

/// Checks a plugin name: it becomes a file name, so no separators or dots
/// at the start (no path traversal).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(RegistryError::InvalidName(name.to_owned())) }
}

/// The registry (cheap to clone; internally synchronised).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    dir: Option<PathBuf>,
    /// In memory: versions kept per plugin (the oldest non-live go first).
    history: usize,
    records: Mutex<BTreeMap<String, PluginRecord>>,
    /// Component bytes by sha256 (in-memory registries, and a read cache).
    blobs: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl Registry {
    /// A registry that forgets everything at exit, keeping the newest
    /// [`DEFAULT_MEMORY_HISTORY`] versions of each plugin.
    pub fn in_memory() -> Registry {
        Registry::in_memory_with_history(DEFAULT_MEMORY_HISTORY)
    }

    /// An in-memory registry keeping `versions` versions per plugin (at least 2:
    /// the live one and the one a deploy adds).
    pub fn in_memory_with_history(versions: usize) -> Registry {
        Registry { inner: Arc::new(Inner { dir: None, history: versions.max(2), records: Mutex::default(), blobs: Mutex::default() }) }
    }

    /// Opens (creating when missing) the registry under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Registry> {
        let plugins = data_dir.join("plugins");
        for dir in [&plugins, &data_dir.join("blobs")] {
            std::fs::create_dir_all(dir).map_err(|source| RegistryError::Io { path: dir.clone(), source })?;
        }
        let mut records = BTreeMap::new();
        let entries = std::fs::read_dir(&plugins).map_err(|source| RegistryError::Io { path: plugins.clone(), source })?;
        for entry in entries {
            let path = entry.map_err(|source| RegistryError::Io { path: plugins.clone(), source })?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| RegistryError::Io { path: path.clone(), source })?;
            let record: PluginRecord = serde_json::from_str(&text)
                .map_err(|e| RegistryError::Corrupt { path: path.clone(), reason: e.to_string() })?;
            if record.version(record.live).is_none() {
                return Err(RegistryError::Corrupt { path, reason: format!("live version {} is not stored", record.live) });
            }
            records.insert(record.name.clone(), record);
        }
        tracing::info!(dir = %data_dir.display(), plugins = records.len(), "plugin registry opened");
        Ok(Registry {
            inner: Arc::new(Inner { dir: Some(data_dir.to_owned()), history: usize::MAX, records: Mutex::new(records), blobs: Mutex::default() }),
        })
    }

    /// The data dir, when persistent.
    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    /// Every plugin, by name.
    pub fn list(&self) -> Vec<PluginRecord> {
        self.records().values().cloned().collect()
    }

    /// One plugin.
    pub fn get(&self, name: &str) -> Option<PluginRecord> {
        self.records().get(name).cloned()
    }

    /// The bytes of `name`'s `version`.
    pub fn bytes(&self, name: &str, version: u32) -> Result<Arc<Vec<u8>>> {
        let record = self.get(name).ok_or_else(|| RegistryError::UnknownPlugin(name.to_owned()))?;
        let entry = record.version(version).ok_or(RegistryError::UnknownVersion { name: name.to_owned(), version })?;
        self.blob(&entry.sha256)
    }

    /// Adds `bytes` as the next version of `name` and makes it live. Pushing
    /// the live version's exact bytes again changes nothing and returns it
    /// with `false`.
    pub fn push(&self, name: &str, bytes: &[u8], kind: &str, origin: &str) -> Result<(PluginVersion, bool)> {
        self.add(name, bytes, kind, origin, true)
    }

    /// Adds `bytes` as the next version of `name` without making it live
    /// (a new name's first version is live: nothing runs it yet). Adding
    /// the live version's exact bytes again changes nothing and returns it
    /// with `false`. The deployer makes the version live with
    /// [`Registry::set_live`] once every pipeline runs it.
    pub fn add_version(&self, name: &str, bytes: &[u8], kind: &str, origin: &str) -> Result<(PluginVersion, bool)> {
        self.add(name, bytes, kind, origin, false)
    }

    fn add(&self, name: &str, bytes: &[u8], kind: &str, origin: &str, make_live: bool) -> Result<(PluginVersion, bool)> {
        validate_name(name)?;
        let sha256 = sha256_hex(bytes);
        let mut records = self.records();
        if let Some(record) = records.get(name)
            && record.live_version().sha256 == sha256
        {
            return Ok((record.live_version().clone(), false));
        }
        self.store_blob(&sha256, bytes)?;
        let mut record = records.get(name).cloned().unwrap_or_else(|| PluginRecord { name: name.to_owned(), live: 0, versions: Vec::new() });
        let version = PluginVersion {
            version: record.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1,
            sha256,
            kind: kind.to_owned(),
            size_bytes: bytes.len() as u64,
            uploaded_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            origin: origin.to_owned(),
        };
        if make_live || record.versions.is_empty() {
            record.live = version.version;
        }
        record.versions.push(version.clone());
        let pruned = self.prune(&mut record);
        self.persist(&record)?;
        records.insert(name.to_owned(), record);
        self.forget_unused_blobs(&records, &pruned);
        Ok((version, true))
    }

    /// In memory: drops the oldest versions that are not live beyond the
    /// history bound; returns them.
    fn prune(&self, record: &mut PluginRecord) -> Vec<PluginVersion> {
        let mut pruned = Vec::new();
        while record.versions.len() > self.inner.history {
            let Some(oldest) = record.versions.iter().position(|v| v.version != record.live) else { break };
            pruned.push(record.versions.remove(oldest));
        }
        pruned
    }

    /// Removes one version that is not live (its blob too, unless another
    /// version uses the same bytes).
    pub fn remove_version(&self, name: &str, version: u32) -> Result<PluginVersion> {
        let mut records = self.records();
        let record = records.get_mut(name).ok_or_else(|| RegistryError::UnknownPlugin(name.to_owned()))?;
        if record.live == version {
            return Err(RegistryError::LiveVersion { name: name.to_owned(), version });
        }
        let index = record.versions.iter().position(|v| v.version == version).ok_or(RegistryError::UnknownVersion { name: name.to_owned(), version })?;
        let removed = record.versions.remove(index);
        if let Err(error) = self.persist(record) {
            record.versions.insert(index, removed);
            return Err(error);
        }
        self.forget_unused_blobs(&records, std::slice::from_ref(&removed));
        Ok(removed)
    }

    /// Deletes the blobs of `versions` that no stored version still uses.
    fn forget_unused_blobs(&self, records: &BTreeMap<String, PluginRecord>, versions: &[PluginVersion]) {
        let mut removed_file = false;
        for version in versions {
            if records.values().any(|r| r.versions.iter().any(|v| v.sha256 == version.sha256)) {
                continue;
            }
            self.inner.blobs.lock().unwrap_or_else(|e| e.into_inner()).remove(&version.sha256);
            if let Some(dir) = &self.inner.dir {
                removed_file |= std::fs::remove_file(dir.join("blobs").join(format!("{}.wasm", version.sha256))).is_ok();
            }
        }
        if removed_file
            && let Some(dir) = &self.inner.dir
            && let Err(error) = sync_dir(&dir.join("blobs"))
        {
            tracing::warn!(%error, "plugin registry: could not sync the blob directory");
        }
    }

    /// Makes a stored version live again.
    pub fn set_live(&self, name: &str, version: u32) -> Result<PluginVersion> {
        let mut records = self.records();
        let record = records.get_mut(name).ok_or_else(|| RegistryError::UnknownPlugin(name.to_owned()))?;
        let entry = record.version(version).cloned().ok_or(RegistryError::UnknownVersion { name: name.to_owned(), version })?;
        let previous = record.live;
        record.live = version;
        if let Err(error) = self.persist(record) {
            record.live = previous;
            return Err(error);
        }
        Ok(entry)
    }

    /// Removes a plugin and every version; blobs no other plugin uses go too.
    pub fn remove(&self, name: &str) -> Result<PluginRecord> {
        let mut records = self.records();
        let record = records.remove(name).ok_or_else(|| RegistryError::UnknownPlugin(name.to_owned()))?;
        if let Some(dir) = &self.inner.dir {
            let plugins = dir.join("plugins");
            let path = plugins.join(format!("{name}.json"));
            if let Err(source) = std::fs::remove_file(&path).and_then(|()| sync_dir(&plugins)) {
                records.insert(name.to_owned(), record);
                return Err(RegistryError::Io { path, source });
            }
        }
        self.forget_unused_blobs(&records, &record.versions);
        Ok(record)
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PluginRecord>> {
        self.inner.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn blob(&self, sha256: &str) -> Result<Arc<Vec<u8>>> {
        if let Some(bytes) = self.inner.blobs.lock().unwrap_or_else(|e| e.into_inner()).get(sha256) {
            return Ok(bytes.clone());
        }
        let dir = self.inner.dir.as_ref().ok_or_else(|| RegistryError::Corrupt {
            path: PathBuf::from("<memory>"),
            reason: format!("blob {sha256} missing"),
        })?;
        let path = dir.join("blobs").join(format!("{sha256}.wasm"));
        let bytes = std::fs::read(&path).map_err(|source| RegistryError::Io { path: path.clone(), source })?;
        if sha256_hex(&bytes) != sha256 {
            return Err(RegistryError::Corrupt { path, reason: "content does not match its sha256".into() });
        }
        Ok(Arc::new(bytes))
    }

    fn store_blob(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        match &self.inner.dir {
            Some(dir) => {
                let path = dir.join("blobs").join(format!("{sha256}.wasm"));
                if !path.exists() {
                    write_atomically(&path, bytes)?;
                }
            }
            None => {
                self.inner.blobs.lock().unwrap_or_else(|e| e.into_inner()).insert(sha256.to_owned(), Arc::new(bytes.to_vec()));
            }
        }
        Ok(())
    }

    fn persist(&self, record: &PluginRecord) -> Result<()> {
        let Some(dir) = &self.inner.dir else { return Ok(()) };
        let path = dir.join("plugins").join(format!("{}.json", record.name));
        let text = serde_json::to_vec_pretty(record).expect("plugin records serialise");
        write_atomically(&path, &text)
    }
}

/// Writes via a temporary file, fsync, rename and fsync of the directory,
/// so a crash leaves the old or the new content, never a torn file, and a
/// completed write survives it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| RegistryError::Io { path: path.to_owned(), source };
    let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)?;
    sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(io)
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_data_dir_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "UPPER", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in ["high-value-orders", "enrich_order.v2", "a", "0x"] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn versions_persist_and_identical_pushes_are_no_ops() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let (v1, created) = registry.push("f", b"one", "filter", "upload").unwrap();
        assert!(created);
        let (again, created) = registry.push("f", b"one", "filter", "upload").unwrap();
        assert!(!created);
        assert_eq!(again, v1);
        let (v2, _) = registry.push("f", b"two", "filter", "upload").unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        registry.set_live("f", 1).unwrap();

        let reopened = Registry::open(dir.path()).unwrap();
        let record = reopened.get("f").unwrap();
        assert_eq!(record.live, 1);
        assert_eq!(record.versions.len(), 2);
        assert_eq!(reopened.bytes("f", 2).unwrap().as_slice(), b"two");
        assert!(matches!(reopened.set_live("f", 9), Err(RegistryError::UnknownVersion { .. })));
        reopened.remove("f").unwrap();
        assert!(Registry::open(dir.path()).unwrap().get("f").is_none());
        assert_eq!(std::fs::read_dir(dir.path().join("blobs")).unwrap().count(), 0);
    }
}
