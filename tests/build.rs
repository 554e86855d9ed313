//! Builds every Rust guest in `guest-examples/rust` for `wasm32-wasip2` and
//! emits their paths as constants (`guests.rs`), so tests always run
//! components built from the current source.

use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: &[(&str, &str)] = &[
    ("HIGH_VALUE_ORDERS", "high_value_orders.wasm"),
    ("ENRICH_ORDER", "enrich_order.wasm"),
    ("COUNT_BY_KEY", "count_by_key.wasm"),
    ("WEBHOOK_ALERT", "webhook_alert.wasm"),
    ("IDENTITY", "identity.wasm"),
    ("TYPED_ECHO", "typed_echo.wasm"),
    ("MISBEHAVE", "misbehave.wasm"),
    ("NOT_AN_OPERATOR", "not-an-operator.wasm"),
    ("IPC_BENCH", "ipc_bench.wasm"),
    ("ORDER_REVENUE", "order_revenue.wasm"),
    ("FRAUD_DETECTOR", "fraud_detector.wasm"),
    ("MISBEHAVE_AGGREGATE", "misbehave_aggregate.wasm"),
    ("LEGACY_AGGREGATE", "legacy_aggregate.wasm"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let guests = root.join("guest-examples/rust");
    for dir in ["guest-examples/rust", "sdk/rust/src", "sdk/rust/Cargo.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = root.join("target/guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&guests)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    // The outer build's settings must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("running cargo for the guest examples");
    assert!(
        status.success(),
        "building guest-examples/rust for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    let out_dir = target_dir.join("wasm32-wasip2/release");
    let mut consts = String::new();
    for (name, file) in GUESTS {
        let path = out_dir.join(file);
        assert!(Path::new(&path).exists(), "guest {} was not built", path.display());
        consts.push_str(&format!(
            "/// Path of the `{file}` component built from `guest-examples/rust`.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(dest, consts).unwrap();
}
