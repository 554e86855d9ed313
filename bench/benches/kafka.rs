//! `cargo bench -p weir-bench --bench kafka [-- --quick]`: weir, a raw
//! rdkafka passthrough and Kafka Streams on a real Apache Kafka broker, both
//! guarantees, in one run. Builds the Kafka Streams peer
//! (`bench/peers/kafka-streams/build`) on first use.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("WEIR_BENCH_QUICK").is_some();
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        eprintln!("note: RUST_BACKTRACE is set; unset it for published figures");
    }
    weir_bench::kafka::run(quick).expect("benchmark failed");
}
