//! `cargo bench -p weir-bench --bench deploy [-- --quick]`: hot-swap pause
//! under load and upload-to-live times through the admin API.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("WEIR_BENCH_QUICK").is_some();
    weir_bench::deploy::run(quick).expect("benchmark failed");
}
