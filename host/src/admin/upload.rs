//! Plugin uploads: the body is written to a private spool file as it
//! arrives (memory holds one network chunk, however slow the client), then
//! read back once for validation, and the file removed. The spool is
//! `<data dir>/uploads/` or, without a data dir, the temp directory.

use super::ApiError;
use crate::deploy::DeployError;
use axum::http::StatusCode;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A spool file, removed when dropped.
struct Spool {
    path: PathBuf,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io_error(what: &str, error: std::io::Error) -> ApiError {
    tracing::error!(%error, "plugin upload: {what}");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("could not spool the upload ({what})"))
}

/// Reads an upload of at most `limit` bytes through a spool file in `dir`
/// (created 0700 when missing) into one buffer. A larger one is drained (up
/// to 4x the limit) before the 413, so the client reads the answer instead
/// of a connection reset.
pub(super) async fn read_upload(body: axum::body::Body, limit: usize, dir: &Path) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(error) => return Err(io_error("spool directory", error)),
    }
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| io_error("random name", std::io::Error::other(e.to_string())))?;
    let spool = Spool { path: dir.join(format!("weir-upload-{}-{}", std::process::id(), hex::encode(suffix))) };
    // create_new: never follows or reuses a file someone else put there.
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&spool.path).map_err(|e| io_error("spool file", e))?;
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("reading the upload: {e}")))?;
        total += chunk.len();
        if total <= limit {
            // File writes block: off the reactor, one chunk at a time.
            file = blocking(move || {
                use std::io::Write;
                file.write_all(&chunk).map(|()| file)
            })
            .await
            .map_err(|e| io_error("spool write", e))?;
        } else if total > limit.saturating_mul(4) {
            break;
        }
    }
    if total > limit {
        return Err(DeployError::TooLarge { size: total, limit }.into());
    }
    drop(file);
    let path = spool.path.clone();
    blocking(move || std::fs::read(path)).await.map_err(|e| io_error("spool read", e))
}

/// Runs blocking file I/O on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Reads and discards up to 4x `limit` bytes of a refused upload.
pub(super) async fn drain(body: axum::body::Body, limit: usize) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        total += chunk.len();
        if total > limit.saturating_mul(4) {
            break;
        }
    }
}
