//! `cargo bench -p weir-bench --bench polyglot [-- --quick]`: Rust, C, Python
//! and JavaScript operators side by side (components from
//! `scripts/build-polyglot-guests`).

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("WEIR_BENCH_QUICK").is_some();
    weir_bench::polyglot::run(quick).expect("benchmark failed");
}
