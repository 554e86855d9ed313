//! A loaded plugin: compiled component (fresh or from the cache), its
//! operator kind, and a pre-instantiated, linked form that makes new
//! instances cheap.

use super::detect::{check_preamble, detect_kind, exports_keyed_state, exports_packed};
use super::error::{Error, OperatorKind, Result};
use super::http::HttpAllowlist;
use super::instance::{Guest, Instance};
use super::store::{StoreState, build_store, run_bounded};
use super::Engine;
use crate::bindings::exports::weir::operator as exports;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, InstancePre};

/// Where a plugin's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled by Cranelift during this load.
    Compiled,
    /// Deserialized from the compiled-artifact cache.
    Cache,
}

pub(super) enum Indices {
    /// With the `filter-packed` indices when the component exports them.
    Filter(exports::filter::GuestIndices, Option<exports::filter_packed::GuestIndices>),
    /// With the `map-packed` indices when the component exports them.
    Map(exports::map::GuestIndices, Option<exports::map_packed::GuestIndices>),
    /// With the `keyed-state` indices when the component exports it.
    Aggregate(exports::aggregate::GuestIndices, Option<exports::keyed_state::GuestIndices>),
    Sink(exports::sink::GuestIndices),
}

/// A loaded, linked plugin; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    name: Arc<str>,
    kind: OperatorKind,
    sha256: String,
    size_bytes: usize,
    source: LoadSource,
    load_time: Duration,
    engine: Engine,
    pre: InstancePre<StoreState>,
    indices: Indices,
}

impl Plugin {
    pub(super) fn load(engine: &Engine, name: &str, bytes: &[u8]) -> Result<Plugin> {
        let started = Instant::now();
        check_preamble(name, bytes)?;
        let sha256 = sha256_hex(bytes);
        let wasmtime = engine.wasmtime();
        let cached = engine.cache().and_then(|cache| cache.load(wasmtime, &sha256));
        let (component, source) = match cached {
            Some(component) => (component, LoadSource::Cache),
            None => {
                let component = Component::new(wasmtime, bytes)
                    .map_err(|e| Error::Compile { plugin: name.to_owned(), reason: format!("{e:#}") })?;
                (component, LoadSource::Compiled)
            }
        };
        let kind = detect_kind(name, wasmtime, &component)?;
        let pre = engine.linker_for(kind).instantiate_pre(&component).map_err(|e| link_error(name, kind, e))?;
        let packed = exports_packed(wasmtime, &component, kind);
        let indices = match kind {
            OperatorKind::Filter => exports::filter::GuestIndices::new(&pre).and_then(|filter| {
                let packed = packed.then(|| exports::filter_packed::GuestIndices::new(&pre)).transpose()?;
                Ok(Indices::Filter(filter, packed))
            }),
            OperatorKind::Map => exports::map::GuestIndices::new(&pre).and_then(|map| {
                let packed = packed.then(|| exports::map_packed::GuestIndices::new(&pre)).transpose()?;
                Ok(Indices::Map(map, packed))
            }),
            OperatorKind::Aggregate => exports::aggregate::GuestIndices::new(&pre).and_then(|aggregate| {
                let keyed = exports_keyed_state(wasmtime, &component).then(|| exports::keyed_state::GuestIndices::new(&pre)).transpose()?;
                Ok(Indices::Aggregate(aggregate, keyed))
            }),
            OperatorKind::Sink => exports::sink::GuestIndices::new(&pre).map(Indices::Sink),
        }
        .map_err(|e| Error::UnknownWorld {
            plugin: name.to_owned(),
            reason: format!("its `{}` export does not match the contract: {e:#}", kind.export_name()),
        })?;
        // Only cache components that proved to be valid operators.
        if source == LoadSource::Compiled
            && let Some(cache) = engine.cache()
                && let Err(error) = cache.store(&sha256, &component) {
                    tracing::warn!(plugin = name, %error, "could not cache compiled artifact");
                }
        let load_time = started.elapsed();
        tracing::debug!(plugin = name, %kind, ?source, ?load_time, "plugin loaded");
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                name: Arc::from(name),
                kind,
                sha256,
                size_bytes: bytes.len(),
                source,
                load_time,
                engine: engine.clone(),
                pre,
                indices,
            }),
        })
    }

    /// Plugin name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The operator kind (WIT world) the component implements.
    pub fn kind(&self) -> OperatorKind {
        self.inner.kind
    }

    /// Hex SHA-256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Size of the component binary in bytes.
    pub fn size_bytes(&self) -> usize {
        self.inner.size_bytes
    }

    /// Whether the machine code was compiled now or loaded from the cache.
    pub fn source(&self) -> LoadSource {
        self.inner.source
    }

    /// How long loading took (compile or cache load, detection, linking).
    pub fn load_time(&self) -> Duration {
        self.inner.load_time
    }

    /// Whether the plugin is an aggregate whose state is checkpointed key by
    /// key (it exports `weir:operator/keyed-state`, contract 0.1.1).
    pub fn keyed_state(&self) -> bool {
        matches!(self.inner.indices, Indices::Aggregate(_, Some(_)))
    }

    /// Whether the plugin takes packed batches (contract 0.1.2): the host
    /// then declares each schema once and sends small batches in one list.
    pub fn packed(&self) -> bool {
        matches!(self.inner.indices, Indices::Filter(_, Some(_)) | Indices::Map(_, Some(_)))
    }

    /// Fails with [`Error::WrongKind`] unless the plugin is of `kind`.
    pub fn expect_kind(&self, kind: OperatorKind) -> Result<()> {
        if self.inner.kind == kind {
            Ok(())
        } else {
            Err(Error::WrongKind { plugin: self.name().to_owned(), expected: kind, found: self.inner.kind })
        }
    }

    /// Creates a fresh instance and calls its `init` with `config_json`.
    /// `allowlist` restricts outbound HTTP (sinks only).
    pub fn instantiate(&self, config_json: &str, allowlist: &HttpAllowlist) -> Result<Instance> {
        let inner = &self.inner;
        let limits = inner.engine.limits();
        let mut store = build_store(inner.engine.wasmtime(), inner.name.clone(), limits, allowlist.clone())
            .map_err(|e| Error::Instantiate { plugin: self.name().to_owned(), reason: format!("{e:#}") })?;
        let instance = run_bounded(limits, inner.pre.instantiate_async(&mut store)).map_err(|e| {
            Instance::classify_failure(self.name(), "instantiate", &mut store, e)
        })?;
        let load_error = |e: wasmtime::Error| Error::Instantiate { plugin: self.name().to_owned(), reason: format!("{e:#}") };
        let guest = match &inner.indices {
            Indices::Filter(i, packed) => Guest::Filter(
                i.load(&mut store, &instance).map_err(load_error)?,
                packed.as_ref().map(|p| p.load(&mut store, &instance)).transpose().map_err(load_error)?,
            ),
            Indices::Map(i, packed) => Guest::Map(
                i.load(&mut store, &instance).map_err(load_error)?,
                packed.as_ref().map(|p| p.load(&mut store, &instance)).transpose().map_err(load_error)?,
            ),
            Indices::Aggregate(i, keyed) => Guest::Aggregate(
                i.load(&mut store, &instance).map_err(load_error)?,
                keyed.as_ref().map(|k| k.load(&mut store, &instance)).transpose().map_err(load_error)?,
            ),
            Indices::Sink(i) => Guest::Sink(i.load(&mut store, &instance).map_err(load_error)?),
        };
        Instance::init(self.clone(), store, guest, config_json)
    }

    pub(super) fn limits(&self) -> &super::SandboxLimits {
        self.inner.engine.limits()
    }
}

/// Hex SHA-256 of component bytes: a plugin's content address.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn link_error(plugin: &str, kind: OperatorKind, error: wasmtime::Error) -> Error {
    let mut reason = format!("{error:#}");
    if kind != OperatorKind::Sink && reason.contains("wasi:http") {
        reason.push_str(" (outbound HTTP is available to sink operators only)");
    }
    Error::Link { plugin: plugin.to_owned(), reason }
}
