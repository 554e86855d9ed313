//! Guest stdout/stderr and host `log` calls: forwarded line by line to
//! `tracing`, tagged with the plugin's name, within a per-call budget of
//! lines and bytes (the rest is counted in `weir_guest_log_lines_dropped_total`),
//! cut to a maximum line length and with control characters escaped so a
//! guest cannot forge log lines. The tail of stderr is kept, whatever the
//! budget, to explain traps (a Rust panic message is printed to stderr just
//! before the `unreachable` trap).

use bytes::Bytes;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How many recent stderr lines are kept for error messages.
const KEPT_LINES: usize = 8;
/// Lines longer than this are cut (a guest cannot flood the log with one line).
pub const MAX_LINE_BYTES: usize = 4096;
/// Log lines a guest may write per call (stdout, stderr and `log` together).
pub const LOG_LINES_PER_CALL: u32 = 100;
/// Log bytes a guest may write per call.
pub const LOG_BYTES_PER_CALL: usize = 64 * 1024;

/// The log budget of one instance, shared by its stdout, stderr and host
/// `log` calls, refilled at the start of every call.
#[derive(Debug, Clone)]
pub struct LogBudget {
    plugin: Arc<str>,
    state: Arc<Mutex<BudgetState>>,
    /// Whether anything was emitted or dropped since the last refill (most
    /// calls log nothing: their refill is one atomic swap, no lock).
    used: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug, Default)]
struct BudgetState {
    lines: u32,
    bytes: usize,
    dropped: u64,
}

impl LogBudget {
    /// A full budget for `plugin`.
    pub fn new(plugin: Arc<str>) -> Self {
        LogBudget { plugin, state: Arc::default(), used: Arc::default() }
    }

    /// Ends a call: reports lines dropped during it, then refills the budget.
    pub fn refill(&self) {
        if !self.used.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let dropped = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = state.dropped;
            *state = BudgetState::default();
            dropped
        };
        if dropped > 0 {
            tracing::warn!(
                plugin = %self.plugin,
                dropped,
                "guest log output over the limit of {LOG_LINES_PER_CALL} lines or {LOG_BYTES_PER_CALL} bytes per call; lines dropped"
            );
        }
    }

    /// Emits `line` (escaped and cut) through `emit` if the budget allows,
    /// else counts it as dropped.
    pub fn emit(&self, line: &str, emit: impl FnOnce(&str)) {
        let line = escape_line(line);
        self.used.store(true, std::sync::atomic::Ordering::Relaxed);
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.lines >= LOG_LINES_PER_CALL || state.bytes + line.len() > LOG_BYTES_PER_CALL {
                state.dropped += 1;
                drop(state);
                let labels = crate::telemetry::PluginLabels { plugin: self.plugin.to_string() };
                crate::telemetry::guest_log_lines_dropped().get_or_create(&labels).inc();
                return;
            }
            state.lines += 1;
            state.bytes += line.len();
        }
        emit(&line);
    }
}

/// Cuts `line` to [`MAX_LINE_BYTES`] and escapes control characters
/// (newlines, escape sequences) so one guest line stays one log line.
pub fn escape_line(line: &str) -> Cow<'_, str> {
    let mut cut = line;
    if cut.len() > MAX_LINE_BYTES {
        let mut end = MAX_LINE_BYTES;
        while !cut.is_char_boundary(end) {
            end -= 1;
        }
        cut = &cut[..end];
    }
    if !cut.chars().any(char::is_control) {
        return Cow::Borrowed(cut);
    }
    let mut out = String::with_capacity(cut.len() + 16);
    for c in cut.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

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
    budget: LogBudget,
}

impl GuestOutput {
    /// A stream for `plugin`'s stdout or stderr, writing within `budget`.
    pub fn new(plugin: Arc<str>, stream: Stream, budget: LogBudget) -> Self {
        GuestOutput { plugin, stream, state: Arc::default(), budget }
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
        self.budget.emit(line, |line| match self.stream {
            Stream::Stdout => tracing::info!(plugin = %self.plugin, stream = "stdout", "{line}"),
            Stream::Stderr => tracing::warn!(plugin = %self.plugin, stream = "stderr", "{line}"),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_lines_cut() {
        assert_eq!(escape_line("plain"), "plain");
        assert_eq!(escape_line("a\nERROR weir: forged\x1b[2J"), "a\\nERROR weir: forged\\u{1b}[2J");
        let long = "é".repeat(MAX_LINE_BYTES);
        let cut = escape_line(&long);
        assert!(cut.len() <= MAX_LINE_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_call_writes_at_most_its_budget_and_counts_the_rest() {
        let plugin: Arc<str> = Arc::from("log-budget-test");
        let budget = LogBudget::new(plugin.clone());
        let out = GuestOutput::new(plugin.clone(), Stream::Stdout, budget.clone());
        let mut emitted = 0;
        for _ in 0..LOG_LINES_PER_CALL + 50 {
            budget.emit("line", |_| emitted += 1);
        }
        assert_eq!(emitted, LOG_LINES_PER_CALL);
        out.write_bytes(b"one more\n");
        let labels = crate::telemetry::PluginLabels { plugin: plugin.to_string() };
        assert_eq!(crate::telemetry::guest_log_lines_dropped().get_or_create(&labels).get(), 51);
        budget.refill();
        let mut after = 0;
        budget.emit("line", |_| after += 1);
        assert_eq!(after, 1, "the next call has a fresh budget");
    }
}
