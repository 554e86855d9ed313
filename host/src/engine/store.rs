//! The store builder: the only place that creates a `wasmtime::Store`, so
//! every instance gets its memory limiter, deadline, fuel and a sandboxed WASI
//! context (no files, no environment, no arguments, no sockets).

use super::guest_output::{GuestOutput, Stream};
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
    let stderr = GuestOutput::new(plugin.clone(), Stream::Stderr);
    let wasi = WasiCtxBuilder::new()
        .stdout(GuestOutput::new(plugin.clone(), Stream::Stdout))
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
        http_hooks: AllowlistHooks { allowlist, plugin },
        limiter: MemoryLimiter::new(limits),
        stderr,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    if limits.deadline_enabled() {
        store.epoch_deadline_trap();
    }
    arm_call(&mut store, limits)?;
    Ok(store)
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
        match level {
            bindings::Level::Trace => tracing::trace!(plugin, "{message}"),
            bindings::Level::Debug => tracing::debug!(plugin, "{message}"),
            bindings::Level::Info => tracing::info!(plugin, "{message}"),
            bindings::Level::Warn => tracing::warn!(plugin, "{message}"),
            bindings::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}
