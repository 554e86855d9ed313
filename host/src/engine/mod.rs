//! The sandboxed engine: one Wasmtime engine with component model, epoch
//! interruption and optional fuel; an epoch ticker thread; the
//! compiled-artifact cache; linkers; plugin loading and instances.

mod cache;
mod detect;
mod error;
mod guest_output;
mod http;
mod instance;
mod limits;
mod plugin;
mod store;

pub use cache::{ArtifactCache, default_cache_dir};
pub use detect::check_preamble;
pub use error::{Error, GuestError, OperatorKind, Result, TrapKind};
pub use http::{DEFAULT_HTTP_CONNECT_TIMEOUT, DEFAULT_HTTP_RESPONSE_TIMEOUT, HttpAllowlist, protect_admin_listener, release_admin_listener};
pub use instance::{Instance, MapResult, RowRejection, SinkResult, StateChange};
pub use limits::{SandboxLimits, DEFAULT_CALL_DEADLINE_MS, DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_PACKED_BATCH_MAX_BYTES, EPOCH_TICK, MAX_PACKED_BATCH_MAX_BYTES};
pub use plugin::{LoadSource, Plugin, sha256_hex};
pub use store::StoreState;

use crate::bindings;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// How to build an [`Engine`].
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Limits applied to every instance.
    pub limits: SandboxLimits,
    /// Directory for compiled artifacts; none disables the cache.
    pub cache_dir: Option<PathBuf>,
}

/// Shared engine state (cheap to clone).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    limits: SandboxLimits,
    cache: Option<ArtifactCache>,
    /// Linker for filter, map and aggregate: WASI (sandboxed) + weir host.
    linker: Linker<StoreState>,
    /// Linker for sinks: the above plus `wasi:http` (allowlisted).
    sink_linker: Linker<StoreState>,
}

impl Engine {
    /// Configures Wasmtime, starts the epoch ticker and builds the linkers.
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let mut wasm_config = wasmtime::Config::new();
        wasm_config
            .wasm_component_model(true)
            .epoch_interruption(config.limits.deadline_enabled())
            .consume_fuel(config.limits.fuel_per_call.is_some())
            .parallel_compilation(true);
        // `WEIR_WASM_PROFILE=perfmap`: guest functions get names in `perf`
        // profiles (wasmtime writes /tmp/perf-<pid>.map).
        if std::env::var_os("WEIR_WASM_PROFILE").is_some_and(|v| v == "perfmap") {
            wasm_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let wasmtime = wasmtime::Engine::new(&wasm_config).map_err(engine_error)?;
        if config.limits.deadline_enabled() {
            start_epoch_ticker(&wasmtime);
        }

        let mut linker = Linker::new(&wasmtime);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        bindings::weir::operator::host::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)
            .map_err(engine_error)?;
        let mut sink_linker = linker.clone();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut sink_linker).map_err(engine_error)?;

        let cache = match &config.cache_dir {
            Some(dir) => Some(ArtifactCache::open(dir, &wasmtime)?),
            None => None,
        };
        Ok(Engine {
            inner: Arc::new(EngineInner { wasmtime, limits: config.limits, cache, linker, sink_linker }),
        })
    }

    /// The underlying Wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// Limits applied to instances.
    pub fn limits(&self) -> &SandboxLimits {
        &self.inner.limits
    }

    /// The compiled-artifact cache, when enabled.
    pub fn cache(&self) -> Option<&ArtifactCache> {
        self.inner.cache.as_ref()
    }

    pub(crate) fn linker_for(&self, kind: OperatorKind) -> &Linker<StoreState> {
        match kind {
            OperatorKind::Sink => &self.inner.sink_linker,
            _ => &self.inner.linker,
        }
    }

    /// Loads a plugin from bytes: checks the preamble, compiles (or loads the
    /// cached artifact), detects the operator kind and links it.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin> {
        Plugin::load(self, name, bytes)
    }

    /// Loads a plugin from a file; the plugin is named after the file stem.
    pub fn load_file(&self, path: &std::path::Path) -> Result<Plugin> {
        let bytes = std::fs::read(path).map_err(|source| Error::Cache { path: path.to_owned(), source })?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
        self.load(name, &bytes)
    }
}

fn engine_error(error: wasmtime::Error) -> Error {
    Error::Engine(format!("{error:#}"))
}

/// Advances the epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("weir-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Whether two 32-byte values (digests, tags) are equal, in a time that does
/// not depend on where they differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}
