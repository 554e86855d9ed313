//! The store builder: the only place that creates a `wasmtime::Store`, so
//! every instance gets its memory limiter, deadline, fuel and a sandboxed WASI
//! context (no files, no environment, no arguments, no sockets).

use super::guest_output::{GuestOutput, LogBudget, Stream};
use super::http::{AllowlistHooks, HttpAllowlist};
use super::limits::{MemoryLimiter, SandboxLimits};
use crate::bindings;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Per-instance host state (the `T` of `Store<T>`).
pub struct StoreState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    http_hooks: AllowlistHooks,
    /// Memory limiter, also read after a trap to detect out-of-memory.
    pub limiter: MemoryLimiter,
    /// Guest stderr, whose last lines explain panics.
    pub stderr: GuestOutput,
    /// Per-call log budget shared by stdout, stderr and `log`.
    pub log_budget: LogBudget,
}

impl StoreState {
    /// The plugin name this store runs.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
}

/// Creates a store for one instance of `plugin` with all limits installed.
pub fn build_store(
    engine: &wasmtime::Engine,
    plugin: Arc<str>,
    limits: &SandboxLimits,
    allowlist: HttpAllowlist,
) -> wasmtime::Result<Store<StoreState>> {
    let log_budget = LogBudget::new(plugin.clone());
    let stderr = GuestOutput::new(plugin.clone(), Stream::Stderr, log_budget.clone());
    let wasi = WasiCtxBuilder::new()
        .stdout(GuestOutput::new(plugin.clone(), Stream::Stdout, log_budget.clone()))
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = StoreState {
        plugin: plugin.clone(),
        wasi,
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        http_hooks: AllowlistHooks {
            allowlist,
            plugin,
            call_deadline: limits.deadline_enabled().then(|| std::time::Duration::from_millis(limits.call_deadline_ms)),
        },
        limiter: MemoryLimiter::new(limits),
        stderr,
        log_budget,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // Wasmtime charges each lift (a call's results, a host call's arguments)
    // against this before it copies: aliased lists cannot multiply the copy.
    store.set_hostcall_fuel(limits.max_copied_bytes_per_call());
    if limits.deadline_enabled() {
        store.epoch_deadline_trap();
    }
    arm_call(&mut store, limits)?;
    Ok(store)
}

/// A guest call that was still running (blocked in a host call such as a
/// WASI sleep or an HTTP request) when its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the call was still blocked in a host call (sleep, poll, HTTP) after its deadline of {deadline_ms} ms")]
pub struct DeadlineExceeded {
    /// The call deadline, in milliseconds.
    pub deadline_ms: u64,
}

/// Runs one guest call (a Wasmtime future) to completion, bounded by the
/// call deadline: epoch interruption stops Wasm code, a timer stops a call
/// waiting in the host. A timed-out call fails with [`DeadlineExceeded`] and
/// its instance must be discarded.
///
/// The call is first polled once in place, in the runtime's context: a call
/// that never waits in the host (nearly all of them) ends there, with no
/// timer, no executor and no thread hand-off. Only a call that is still
/// pending (a WASI sleep or poll, an HTTP request) gets the timer for the
/// rest of its deadline and is driven to the end: on a multi-threaded Tokio
/// runtime in `block_in_place` (the runtime's timers and I/O drive it),
/// elsewhere (no runtime, or a current-thread one, which cannot block in
/// place) on a small runtime of the engine's own.
pub fn run_bounded<R>(limits: &SandboxLimits, call: impl Future<Output = wasmtime::Result<R>>) -> wasmtime::Result<R> {
    // Only a deadline needs the start time (a clock read per call otherwise).
    let started = limits.deadline_enabled().then(std::time::Instant::now);
    let mut call = std::pin::pin!(call);
    let runtime = tokio::runtime::Handle::try_current().ok().filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    // Host calls (WASI clocks, HTTP) need a Tokio context even when polled once.
    let _entered = runtime.is_none().then(|| fallback_runtime().enter());
    let first = match &runtime {
        // Guest code may run for a while: give the worker thread's other tasks away first.
        Some(_) => tokio::task::block_in_place(|| call.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))),
        None => call.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())),
    };
    if let std::task::Poll::Ready(result) = first {
        return result;
    }
    // Pending: the guest waits in a host call. The next poll (at once, with
    // a real waker) re-registers every waker the first one left.
    let bounded = async {
        if !limits.deadline_enabled() {
            return call.await;
        }
        let elapsed = started.map_or(std::time::Duration::ZERO, |started| started.elapsed());
        let remaining = std::time::Duration::from_millis(limits.call_deadline_ms).saturating_sub(elapsed);
        match tokio::time::timeout(remaining, call).await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Error::new(DeadlineExceeded { deadline_ms: limits.call_deadline_ms })),
        }
    };
    match runtime {
        Some(handle) => tokio::task::block_in_place(|| handle.block_on(bounded)),
        None => futures::executor::block_on(bounded),
    }
}

/// The runtime that drives guest calls made outside a multi-threaded Tokio
/// runtime (tests, tools, current-thread runtimes).
fn fallback_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-guest-io")
            .enable_all()
            .build()
            .expect("building the guest I/O runtime")
    })
}

/// Resets the per-call budget (deadline and fuel) before a guest call.
pub fn arm_call(store: &mut Store<StoreState>, limits: &SandboxLimits) -> wasmtime::Result<()> {
    if limits.deadline_enabled() {
        store.set_epoch_deadline(limits.deadline_ticks());
    }
    if let Some(fuel) = limits.fuel_per_call {
        store.set_fuel(fuel)?;
    }
    store.data_mut().limiter.denied_growth = false;
    store.data().log_budget.refill();
    Ok(())
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_hooks }
    }
}

impl bindings::HostImports for StoreState {
    fn log(&mut self, level: bindings::Level, message: String) {
        let plugin = &*self.plugin;
        self.log_budget.emit(&message, |message| match level {
            bindings::Level::Trace => tracing::trace!(plugin, "{message}"),
            bindings::Level::Debug => tracing::debug!(plugin, "{message}"),
            bindings::Level::Info => tracing::info!(plugin, "{message}"),
            bindings::Level::Warn => tracing::warn!(plugin, "{message}"),
            bindings::Level::Error => tracing::error!(plugin, "{message}"),
        });
    }
}
