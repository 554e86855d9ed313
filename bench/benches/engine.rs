//! `cargo bench -p weir-bench [-- --quick]`: the engine benchmark suite.
//! Prints markdown tables and writes `target/bench-results/engine.json`.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("WEIR_BENCH_QUICK").is_some();
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        eprintln!("note: RUST_BACKTRACE is set; trap-heavy paths run slower (unset it for published figures)");
    }
    weir_bench::engine::run(quick).expect("benchmark failed");
}
