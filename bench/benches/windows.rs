//! `cargo bench -p weir-bench --bench windows [-- --quick]`: the fraud seed
//! pipeline with checkpointed state: throughput, alert latency, checkpoint
//! time vs state size, recovery after a crash.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("WEIR_BENCH_QUICK").is_some();
    weir_bench::windows::run(quick).expect("benchmark failed");
}
