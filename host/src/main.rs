//! The `weir` binary: the allocator and the command line ([`weir::cli`]).

/// mimalloc: batches are allocated on decoder threads and freed on workers,
/// and small calls allocate a few dozen buffers each (BENCHMARKS.md, per call).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weir::cli::main()
}
