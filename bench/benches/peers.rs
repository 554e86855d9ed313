//! `cargo bench -p weir-bench --bench peers [-- --quick]`: weir vs Fluvio
//! SmartModules, arrow-udf-wasm and native Rust on the same JSON input, plus
//! per-call overhead, worker threads, record width and the end-to-end Kafka
//! comparison. Builds the peers (`bench/peers/*/build`) on first use.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("WEIR_BENCH_QUICK").is_some();
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        eprintln!("note: RUST_BACKTRACE is set; unset it for published figures");
    }
    weir_bench::peers::run(quick).expect("benchmark failed");
}
