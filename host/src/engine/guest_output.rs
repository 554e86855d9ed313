//! Guest stdout/stderr: forwarded line by line to `tracing`, tagged with the
//! plugin's name; the tail of stderr is kept to explain traps (a Rust panic
//! message is printed to stderr just before the `unreachable` trap).

use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How many recent stderr lines are kept for error messages.
const KEPT_LINES: usize = 8;
/// Lines longer than this are cut (a guest cannot flood the log with one line).
const MAX_LINE_BYTES: usize = 4096;

/// Which guest stream this is.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Guest stdout, logged at INFO.
    Stdout,
    /// Guest stderr, logged at WARN.
    Stderr,
}

#[derive(Debug, Default)]
struct LineBuffer {
    partial: Vec<u8>,
    recent: VecDeque<String>,
}

/// A WASI output stream that writes whole lines to `tracing`.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    plugin: Arc<str>,
    stream: Stream,
    state: Arc<Mutex<LineBuffer>>,
}

impl GuestOutput {
    /// A stream for `plugin`'s stdout or stderr.
    pub fn new(plugin: Arc<str>, stream: Stream) -> Self {
        GuestOutput { plugin, stream, state: Arc::default() }
    }

    /// Takes the most recent complete lines (and any partial line), oldest first.
    pub fn take_recent(&self) -> Vec<String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let partial = std::mem::take(&mut state.partial);
        if !partial.is_empty() {
            let line = String::from_utf8_lossy(&partial).into_owned();
            self.emit(&line);
            push_recent(&mut state.recent, line);
        }
        state.recent.drain(..).collect()
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for &byte in bytes {
            if byte == b'\n' {
                let line = String::from_utf8_lossy(&state.partial).into_owned();
                state.partial.clear();
                self.emit(&line);
                push_recent(&mut state.recent, line);
            } else if state.partial.len() < MAX_LINE_BYTES {
                state.partial.push(byte);
            }
        }
    }

    fn emit(&self, line: &str) {
        match self.stream {
            Stream::Stdout => tracing::info!(plugin = %self.plugin, stream = "stdout", "{line}"),
            Stream::Stderr => tracing::warn!(plugin = %self.plugin, stream = "stderr", "{line}"),
        }
    }
}

fn push_recent(recent: &mut VecDeque<String>, line: String) {
    if recent.len() == KEPT_LINES {
        recent.pop_front();
    }
    recent.push_back(line);
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
