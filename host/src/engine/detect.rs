//! Recognises what a blob is before compiling it (not Wasm, core module,
//! component), and which operator world a component implements.

use super::error::{Error, OperatorKind, Result};

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Binary-format version word of core modules (version 1, layer 0).
const CORE_MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// Checks the 8-byte preamble: Wasm magic and the component layer.
pub fn check_preamble(plugin: &str, bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(Error::NotWasm { plugin: plugin.to_owned() });
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(Error::CoreModule { plugin: plugin.to_owned() });
    }
    Ok(())
}

/// Finds the single weir operator interface a component exports.
pub fn detect_kind(
    plugin: &str,
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Result<OperatorKind> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_owned()).collect();
    let found: Vec<OperatorKind> = OperatorKind::ALL
        .into_iter()
        .filter(|kind| exports.iter().any(|name| compatible(name, kind.export_name())))
        .collect();
    match found.as_slice() {
        [kind] => Ok(*kind),
        [] => {
            let other_version = exports.iter().find(|name| name.starts_with("weir:operator/"));
            let reason = match other_version {
                Some(name) => format!("it exports `{name}`, but this host speaks weir:operator@0.1.x"),
                None if exports.is_empty() => "it exports nothing".to_owned(),
                None => format!(
                    "it exports {} but none of weir:operator/{{filter,map,aggregate,sink}}@0.1.x",
                    exports.join(", ")
                ),
            };
            Err(Error::UnknownWorld { plugin: plugin.to_owned(), reason })
        }
        many => Err(Error::UnknownWorld {
            plugin: plugin.to_owned(),
            reason: format!(
                "it exports several operator interfaces ({}); a plugin implements exactly one",
                many.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// The keyed-state interface an incremental aggregate exports besides `aggregate`.
pub const KEYED_STATE_EXPORT: &str = "weir:operator/keyed-state@0.1.1";

/// Whether a filter or map also takes packed batches (0.1.2's
/// `packed-filter-operator` / `packed-map-operator` worlds): it exports the
/// kind's `*-packed` interface.
pub fn exports_packed(engine: &wasmtime::Engine, component: &wasmtime::component::Component, kind: OperatorKind) -> bool {
    let packed = match kind {
        OperatorKind::Filter => "weir:operator/filter-packed@0.1.2",
        OperatorKind::Map => "weir:operator/map-packed@0.1.2",
        OperatorKind::Aggregate | OperatorKind::Sink => return false,
    };
    component.component_type().exports(engine).any(|(name, _)| compatible(name, packed))
}

/// Whether an aggregate also exports `keyed-state` (0.1.1's
/// `keyed-aggregate-operator` world): its state is checkpointed key by key.
pub fn exports_keyed_state(engine: &wasmtime::Engine, component: &wasmtime::component::Component) -> bool {
    component.component_type().exports(engine).any(|(name, _)| compatible(name, KEYED_STATE_EXPORT))
}

/// Whether export `name` matches `wanted` under the component model's
/// semver rules, the ones Wasmtime applies to export lookups and linking:
/// same interface, and for 0.x versions the same minor version (so
/// `@0.1.0` and `@0.1.1` match, `@0.2.0` does not).
fn compatible(name: &str, wanted: &str) -> bool {
    let (Some((base, version)), Some((wanted_base, wanted_version))) = (name.split_once('@'), wanted.split_once('@')) else {
        return name == wanted;
    };
    let track = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next()?;
        // Pre-releases match nothing but themselves.
        // 0.0.x matches only itself, like a pre-release.
        (patch.parse::<u64>().is_ok() && (major, minor) != (0, 0)).then_some((major, if major == 0 { minor } else { 0 }))
    };
    base == wanted_base && (version == wanted_version || (track(version).is_some() && track(version) == track(wanted_version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_names_match_within_a_semver_compatible_track() {
        let wanted = "weir:operator/aggregate@0.1.1";
        assert!(compatible("weir:operator/aggregate@0.1.0", wanted));
        assert!(compatible("weir:operator/aggregate@0.1.1", wanted));
        assert!(compatible("weir:operator/aggregate@0.1.7", wanted));
        assert!(!compatible("weir:operator/aggregate@0.2.0", wanted));
        assert!(!compatible("weir:operator/aggregate@0.1.0-rc.1", wanted));
        assert!(!compatible("weir:operator/filter@0.1.1", wanted));
        assert!(!compatible("weir:operator/aggregate", wanted));
    }

    #[test]
    fn preamble_rejects_garbage_and_core_modules() {
        assert!(matches!(check_preamble("p", b"hello world"), Err(Error::NotWasm { .. })));
        assert!(matches!(check_preamble("p", b"\0as"), Err(Error::NotWasm { .. })));
        assert!(matches!(
            check_preamble("p", b"\0asm\x01\0\0\0"),
            Err(Error::CoreModule { .. })
        ));
        assert!(check_preamble("p", b"\0asm\x0d\0\x01\0").is_ok());
    }
}
