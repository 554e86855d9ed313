//! The only `bindgen!` call: host-side bindings for the `weir:operator` WIT
//! package. Nothing outside `engine` and `batch` uses these generated types.

wasmtime::component::bindgen!({
    path: "../wit",
    // A host-only world that names every operator interface, so one set of
    // generated types serves all four kinds. Guests implement exactly one of
    // the package's own worlds; the engine loads only the exports it found.
    // 0.1.2 names also find a 0.1.0 or 0.1.1 component's exports and
    // satisfy its imports (Wasmtime's semver-compatible lookup), so older
    // components load unchanged. The `*-packed` interfaces are looked up
    // only in components that export them (0.1.2's packed worlds).
    inline: "
        package weir:host;
        world all-operators {
            import weir:operator/host@0.1.2;
            export weir:operator/filter@0.1.2;
            export weir:operator/%map@0.1.2;
            export weir:operator/aggregate@0.1.2;
            export weir:operator/keyed-state@0.1.2;
            export weir:operator/sink@0.1.2;
            export weir:operator/filter-packed@0.1.2;
            export weir:operator/map-packed@0.1.2;
        }
    ",
    world: "weir:host/all-operators",
    ownership: Borrowing { duplicate_if_necessary: true },
    // Exports are called as futures so a deadline timer can end a call that
    // is blocked in a host call (a WASI sleep, an HTTP response).
    exports: { default: async },
});

pub use self::weir::operator::host::{Host as HostImports, Level};
pub use self::weir::operator::types::{OperatorError, OperatorInfo, RowRejection, TimeUnit};
/// A keyed-state entry as a guest returns it (owned key and value).
pub use self::exports::weir::operator::keyed_state::StateEntryResult as StateEntry;
/// A keyed-state entry lent to a guest (`restore-entries`).
pub use self::exports::weir::operator::keyed_state::StateEntryParam;
