//! Reads the resolved versions of arrow-udf-wasm, wasmtime and arrow from the
//! workspace's Cargo.lock so that the driver's report names what it ran.

fn locked_version(lock: &str, name: &str) -> String {
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|at| lock[at + needle.len()..].split('"').next())
        .unwrap_or("unknown")
        .to_owned()
}

fn main() {
    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    println!("cargo:rerun-if-changed={lock_path}");
    let lock = std::fs::read_to_string(lock_path).unwrap_or_default();
    println!("cargo:rustc-env=ARROW_UDF_WASM_VERSION={}", locked_version(&lock, "arrow-udf-wasm"));
    println!("cargo:rustc-env=WASMTIME_VERSION={}", locked_version(&lock, "wasmtime"));
    println!("cargo:rustc-env=ARROW_VERSION={}", locked_version(&lock, "arrow-array"));
}
