//! `cargo bench -p weir-bench --bench pipeline [-- --quick]`: end-to-end
//! pipeline benchmarks on librdkafka's in-process mock cluster.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("WEIR_BENCH_QUICK").is_some();
    weir_bench::pipeline::run(quick).expect("benchmark failed");
}
