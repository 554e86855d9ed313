//! On-disk cache of compiled components, keyed by the component's SHA-256
//! and the engine's compatibility hash (Wasmtime version + compiler
//! settings), so a component is compiled once per machine and configuration.

use super::error::{Error, Result};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// A directory of serialized, ready-to-run components (`*.cwasm`).
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_tag: String,
}

impl ArtifactCache {
    /// A cache in `dir` (created when missing) for artifacts of `engine`.
    pub fn open(dir: impl Into<PathBuf>, engine: &wasmtime::Engine) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Cache { path: dir.clone(), source })?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache { dir, engine_tag: format!("{:016x}", hasher.finish()) })
    }

    /// Where the artifact of the component with this SHA-256 lives.
    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_tag))
    }

    /// Loads a cached artifact, or `None` when absent or unusable (a stale or
    /// corrupt file is removed and recompiled).
    pub fn load(&self, engine: &wasmtime::Engine, sha256: &str) -> Option<wasmtime::component::Component> {
        let path = self.path_for(sha256);
        // Read into memory rather than mmap: a file truncated underneath a
        // mapping would crash the process with SIGBUS.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the file was written by `store` below from a component this
        // engine configuration compiled; the name carries the engine's
        // compatibility hash and Wasmtime re-checks its own header on load.
        match unsafe { wasmtime::component::Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component atomically (write to a temp file, rename).
    pub fn store(&self, sha256: &str, component: &wasmtime::component::Component) -> Result<()> {
        let path = self.path_for(sha256);
        let bytes = component.serialize().map_err(|e| Error::Engine(e.to_string()))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_file(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::Cache { path, source })
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Cache { path: path.to_owned(), source })
}
