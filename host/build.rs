//! Embeds the example operators `weir demo` runs, built from
//! `guest-examples/rust` for `wasm32-wasip2`, so that an installed `weir`
//! (`cargo install --path host`) runs the demo from any directory, with no
//! source tree. Without the `wasm32-wasip2` target, or with
//! `WEIR_NO_EMBEDDED_GUESTS` set, nothing is embedded and `weir demo` looks
//! for the components on disk (`--plugins-dir`).

use std::path::PathBuf;
use std::process::Command;

/// The guest crates the demo scenarios run, one per line (`scripts/demo`
/// reads the same file to start their build early).
const DEMO_GUESTS_FILE: &str = "guest-examples/rust/demo-guests";

/// The demo's guest crates and their component file names.
fn demo_guests(root: &std::path::Path) -> Vec<(String, String)> {
    let list = std::fs::read_to_string(root.join(DEMO_GUESTS_FILE)).unwrap_or_default();
    list.split_whitespace().map(|krate| (krate.to_owned(), format!("{}.wasm", krate.replace('-', "_")))).collect()
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let guests = root.join("guest-examples/rust");
    let demo_guests = demo_guests(&root);
    println!("cargo:rerun-if-env-changed=WEIR_NO_EMBEDDED_GUESTS");
    for dir in ["sdk/rust/src", "sdk/rust/Cargo.toml", "wit", "guest-examples/rust/Cargo.toml", "guest-examples/rust/Cargo.lock", DEMO_GUESTS_FILE] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for (krate, _) in &demo_guests {
        println!("cargo:rerun-if-changed={}", guests.join(krate).display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded_guests.rs");
    let embedded = if std::env::var_os("WEIR_NO_EMBEDDED_GUESTS").is_some() || !guests.is_dir() { None } else { build(&root, &demo_guests) };
    let entries: String = match embedded {
        Some(dir) => demo_guests
            .iter()
            .map(|(_, file)| format!("    ({file:?}, include_bytes!({:?})),\n", dir.join(file).display().to_string()))
            .collect(),
        None => String::new(),
    };
    std::fs::write(out, format!("/// The demo's example components (file name, bytes); empty when not embedded.\npub const EMBEDDED: &[(&str, &[u8])] = &[\n{entries}];\n")).unwrap();
}

/// Builds the demo guests; their output directory, or None (with a warning).
fn build(root: &std::path::Path, demo_guests: &[(String, String)]) -> Option<PathBuf> {
    let target_dir = root.join("target/guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root.join("guest-examples/rust")).args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"]).arg(&target_dir);
    for (krate, _) in demo_guests {
        command.args(["-p", krate]);
    }
    // The outer build's settings must not leak into the guest build.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_PROFILE_RELEASE_DEBUG"] {
        command.env_remove(var);
    }
    match command.status() {
        Ok(status) if status.success() => Some(target_dir.join("wasm32-wasip2/release")),
        outcome => {
            println!("cargo:warning=the demo's example operators were not embedded (building guest-examples/rust for wasm32-wasip2: {outcome:?}); `rustup target add wasm32-wasip2` and rebuild, or pass `weir demo --plugins-dir`");
            None
        }
    }
}
