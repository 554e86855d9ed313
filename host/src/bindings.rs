//! The only `bindgen!` call: host-side bindings for the `weir:operator` WIT
//! package. Nothing outside `engine` and `batch` uses these generated types.

wasmtime::component::bindgen!({
    path: "../wit",
    // A host-only world that names every operator interface, so one set of
    // generated types serves all four kinds. Guests implement exactly one of
    // the package's own worlds; the engine loads only the export it found.
    inline: "
        package weir:host;
        world all-operators {
            import weir:operator/host@0.1.0;
            export weir:operator/filter@0.1.0;
            export weir:operator/%map@0.1.0;
            export weir:operator/aggregate@0.1.0;
            export weir:operator/sink@0.1.0;
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
