//! On-disk cache of compiled components, keyed by the component's SHA-256
//! and the engine's compatibility hash (Wasmtime version + compiler
//! settings), so a component is compiled once per machine and configuration.
//!
//! Loading an artifact runs its machine code, so the cache trusts nothing it
//! did not write: the directory is private (mode 0700, owned by this user,
//! in a parent others cannot rename it out of), and every artifact carries
//! an HMAC-SHA256 of its bytes under a random key kept beside them
//! (`artifact.key`, mode 0600). An artifact whose tag does not verify is
//! never deserialized: it is removed, logged and recompiled.

use super::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Length of the tag after each artifact.
const TAG_BYTES: usize = 32;
/// The key file in the cache directory.
const KEY_FILE: &str = "artifact.key";

/// A directory of serialized, ready-to-run components (`*.cwasm`).
#[derive(Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_tag: String,
    key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache").field("dir", &self.dir).field("engine_tag", &self.engine_tag).finish_non_exhaustive()
    }
}

impl ArtifactCache {
    /// A cache in `dir` (created 0700 when missing; an existing one must be
    /// this user's, and is made 0700) for artifacts of `engine`.
    pub fn open(dir: impl Into<PathBuf>, engine: &wasmtime::Engine) -> Result<Self> {
        let dir = dir.into();
        private_dir(&dir)?;
        let key = load_or_create_key(&dir.join(KEY_FILE))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache { dir, engine_tag: format!("{:016x}", hasher.finish()), key: Arc::new(key) })
    }

    /// Where the artifact of the component with this SHA-256 lives.
    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_tag))
    }

    /// Loads a cached artifact, or `None` when absent or unusable. A file
    /// whose tag does not verify (corrupt, or not written by this cache) or
    /// that Wasmtime refuses is removed, so it is recompiled.
    pub fn load(&self, engine: &wasmtime::Engine, sha256: &str) -> Option<wasmtime::component::Component> {
        let path = self.path_for(sha256);
        // Read into memory rather than mmap: a file truncated underneath a
        // mapping would crash the process with SIGBUS.
        let bytes = std::fs::read(&path).ok()?;
        let Some(artifact) = self.verified(&bytes) else {
            tracing::warn!(path = %path.display(), "compiled artifact failed verification (corrupt, or not written by this cache): recompiling");
            let _ = std::fs::remove_file(&path);
            return None;
        };
        // SAFETY: the bytes carry a valid HMAC under this cache's private key,
        // so `store` below wrote them from a component this engine
        // configuration compiled; the name carries the engine's compatibility
        // hash and Wasmtime re-checks its own header on load.
        match unsafe { wasmtime::component::Component::deserialize(engine, artifact) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component with its tag, atomically (private temp
    /// file, fsync, rename, fsync of the directory).
    pub fn store(&self, sha256: &str, component: &wasmtime::component::Component) -> Result<()> {
        let path = self.path_for(sha256);
        let mut bytes = component.serialize().map_err(|e| Error::Engine(e.to_string()))?;
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::Cache { path: path.clone(), source })?;
        sync_dir(&self.dir)
    }

    fn tag(&self, bytes: &[u8]) -> [u8; TAG_BYTES] {
        hmac_sha256(&self.key, bytes)
    }

    /// The artifact without its tag, when the tag verifies.
    fn verified<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let split = bytes.len().checked_sub(TAG_BYTES)?;
        let (artifact, tag) = bytes.split_at(split);
        let expected = self.tag(artifact);
        crate::engine::constant_time_eq(&expected, tag.try_into().ok()?).then_some(artifact)
    }
}

/// HMAC-SHA256 (RFC 2104) with a 32-byte key. Written out over `sha2`
/// rather than taken from the `hmac` crate: that crate turns on a `digest`
/// feature which rebuilds Wasmtime's whole dependency tree.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut inner_pad = [0x36u8; BLOCK];
    let mut outer_pad = [0x5cu8; BLOCK];
    for (i, byte) in key.iter().enumerate() {
        inner_pad[i] ^= byte;
        outer_pad[i] ^= byte;
    }
    let inner = Sha256::new().chain_update(inner_pad).chain_update(message).finalize();
    Sha256::new().chain_update(outer_pad).chain_update(inner).finalize().into()
}

fn cache_error(path: &Path, message: String) -> Error {
    Error::Cache { path: path.to_owned(), source: std::io::Error::other(message) }
}

/// Creates `dir` with mode 0700 (parents as usual), or checks an existing
/// one: a real directory owned by this user, in a parent that only its
/// owner (or root, with the sticky bit) can change; group and other
/// permissions are removed.
fn private_dir(dir: &Path) -> Result<()> {
    let io = |source| Error::Cache { path: dir.to_owned(), source };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
        let meta = std::fs::metadata(parent).map_err(io)?;
        let owner_ok = meta.uid() == euid() || meta.uid() == 0;
        let shared_writable = meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0;
        if !owner_ok || shared_writable {
            return Err(cache_error(parent, "parent of the artifact cache can be changed by other users; choose a private directory".into()));
        }
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(io(error)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    if !meta.is_dir() {
        return Err(cache_error(dir, "artifact cache is not a directory (a symlink?)".into()));
    }
    if meta.uid() != euid() {
        return Err(cache_error(dir, format!("artifact cache belongs to user {}, not to this user ({})", meta.uid(), euid())));
    }
    if meta.mode() & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", meta.mode() & 0o777), "artifact cache was readable or writable by others: made private (0700)");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// The cache's key: read (a 32-byte regular file of this user, mode 0600)
/// or created from the OS's random source. Creation is a hard link of a
/// complete temp file, so two processes agree on one key.
fn load_or_create_key(path: &Path) -> Result<[u8; 32]> {
    let io = |source| Error::Cache { path: path.to_owned(), source };
    if std::fs::symlink_metadata(path).is_err() {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| cache_error(path, format!("random key: {e}")))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, &key)?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(path.parent().unwrap_or(Path::new(".")))?;
                return Ok(key);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io(error)),
        }
    }
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if !meta.is_file() || meta.uid() != euid() || meta.mode() & 0o077 != 0 || meta.len() != 32 {
        return Err(cache_error(path, "artifact key must be a 32-byte file of this user with mode 0600; remove it to make a new one".into()));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    bytes.try_into().map_err(|_| cache_error(path, "artifact key changed while read".into()))
}

/// Writes a new file readable by this user only (fails if it exists), fsynced.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Cache { path: path.to_owned(), source };
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Makes a rename or link in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Cache { path: dir.to_owned(), source })
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The per-user cache directory: `$XDG_CACHE_HOME/weir/compiled`, else
/// `$HOME/.cache/weir/compiled`, else `weir-<uid>-compiled` in the temp
/// directory (a name of this user's, created 0700; one another user made
/// first is refused at open).
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match base {
        Some(base) => base.join("weir").join("compiled"),
        None => std::env::temp_dir().join(format!("weir-{}-compiled", euid())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 1: its 20-byte key of 0x0b, zero-padded to 32 bytes, is the same HMAC key.
        let mut key = [0u8; 32];
        key[..20].fill(0x0b);
        let tag = hmac_sha256(&key, b"Hi There");
        assert_eq!(hex::encode(tag), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    }
}
