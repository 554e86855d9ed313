//! Fixtures shared by weir's integration tests and benchmarks: paths of the
//! guest components built from source by this crate's build script, real
//! Apache Kafka brokers ([`broker::Kafka`]) and child processes that die with
//! the test process ([`process`]).

pub mod broker;
pub mod http_server;
pub mod process;
pub mod seeds;

/// Paths of the example and deliberately bad guests (`wasm32-wasip2` components).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Repository root (for sample data such as `examples/data`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}
