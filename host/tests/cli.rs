//! The `weir` binary as a user runs it: `validate` and `exec` on the sample
//! data, with expectations computed from the input file itself.

use std::process::Command;
use weir_tests::{guests, repo_root};

fn weir() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.env("WEIR_CACHE_DIR", std::env::temp_dir().join("weir-cli-test-cache"));
    command
}

#[test]
fn validate_names_the_kind_or_the_reason() {
    let ok = weir().args(["validate", guests::HIGH_VALUE_ORDERS, guests::COUNT_BY_KEY]).output().unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(stdout.contains("filter operator (weir:operator/filter@0.1.2, takes packed batches)"), "{stdout}");
    assert!(stdout.contains("aggregate operator (weir:operator/aggregate@0.1.2)"), "{stdout}");

    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), b"PK\x03\x04 a zip file").unwrap();
    let bad = weir()
        .args(["validate", guests::NOT_AN_OPERATOR])
        .arg(garbage.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout.contains("wasi:cli/run"), "{stdout}");
    assert!(stdout.contains("not a WebAssembly binary"), "{stdout}");
}

#[test]
fn validate_with_config_reports_init_errors() {
    let out = weir()
        .args(["validate", guests::HIGH_VALUE_ORDERS, "--config", r#"{"threshold": "lots"}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("init failed") && stdout.contains("invalid config"), "{stdout}");
}

#[test]
fn exec_runs_the_sample_orders_through_filter_and_map() {
    let data = repo_root().join("examples/data");
    let out = weir()
        .args(["exec", "--plugin", guests::HIGH_VALUE_ORDERS, "--plugin", guests::ENRICH_ORDER])
        .args(["--config", r#"high_value_orders={"threshold": 1200}"#, "--batch-size", "7"])
        .arg("--schema")
        .arg(data.join("orders.schema.json"))
        .arg("--input")
        .arg(data.join("orders.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // Expected from the input alone: parseable lines with an amount > 1200.
    let input = std::fs::read_to_string(data.join("orders.jsonl")).unwrap();
    let mut expected = Vec::new();
    let mut undecodable = 0;
    for line in input.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v["total_amount"].is_f64() || v["total_amount"].is_null() => {
                if v["total_amount"].as_f64().is_some_and(|a| a > 1200.0) {
                    expected.push((v["order_id"].as_str().unwrap().to_owned(), v["total_amount"].as_f64().unwrap()));
                }
            }
            _ => undecodable += 1,
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r["order_id"].as_str().unwrap().to_owned(), r["total_amount"].as_f64().unwrap()))
        .collect();
    assert_eq!(got, expected);
    for row in &rows {
        let amount = row["total_amount"].as_f64().unwrap();
        assert_eq!(row["amount_bucket"].as_i64().unwrap(), (amount / 100.0).floor() as i64);
    }
    assert_eq!(undecodable, 2);
    assert_eq!(stderr.matches("\"stage\":\"decode\"").count(), undecodable, "{stderr}");
    assert!(stderr.contains(&format!("{} records in, {} out", input.lines().count(), expected.len())), "{stderr}");
}

#[test]
fn exec_reports_rejected_rows_with_their_line_numbers() {
    let data = repo_root().join("examples/data");
    let out = weir()
        .args(["exec", "--plugin", guests::ENRICH_ORDER])
        .arg("--schema")
        .arg(data.join("orders.schema.json"))
        .arg("--input")
        .arg(data.join("orders.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let input = std::fs::read_to_string(data.join("orders.jsonl")).unwrap();
    let negative_line = input
        .lines()
        .position(|l| l.contains("\"total_amount\":-"))
        .map(|i| i + 1)
        .unwrap();
    assert!(
        stderr.contains(&format!("{{\"line\":{negative_line},\"reason\":\"negative total_amount: -42.5\",\"stage\":\"enrich_order\"}}")),
        "{stderr}"
    );
}

#[test]
fn demo_balances_inputs_against_outputs_filtered_and_dead_letters() {
    let guests_dir = std::path::Path::new(guests::ENRICH_ORDER).parent().unwrap();
    let out = weir().args(["demo", "--records", "3000", "--plugins-dir"]).arg(guests_dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("input records           3000"), "{stdout}");
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(stdout.contains("\"decode\"") && stdout.contains("\"rejected\""), "poison records were dead-lettered: {stdout}");
}

#[test]
fn demo_accepts_a_relative_plugins_dir() {
    let guests_dir = std::path::Path::new(guests::ENRICH_ORDER).parent().unwrap();
    let out = weir()
        .current_dir(guests_dir.parent().unwrap())
        .args(["demo", "--records", "500", "--plugins-dir"])
        .arg(guests_dir.file_name().unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn demo_without_plugins_says_how_to_build_them() {
    let empty = tempfile::tempdir().unwrap();
    let out = weir().args(["demo", "--records", "10", "--plugins-dir"]).arg(empty.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("scripts/demo"), "{stderr}");
}

#[test]
fn run_refuses_a_public_admin_address_without_a_token() {
    let config = weir_tests::repo_root().join("examples/orders.toml");
    let output = weir().args(["run", "--config"]).arg(&config).args(["--admin-listen", "0.0.0.0:0"]).env_remove("WEIR_ADMIN_TOKEN").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not loopback") && stderr.contains("--insecure-admin"), "{stderr}");
}

/// `weir run` on the sample config (no broker needed to start) with `args`,
/// until a stderr line contains `until`; returns that line and the stderr so far.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let config = repo_root().join("examples/orders.toml");
        let mut child = weir()
            .args(["run", "--config"])
            .arg(&config)
            .args(args)
            .env_remove("WEIR_ADMIN_TOKEN")
            .env_remove("WEIR_ADMIN_TOKEN_FILE")
            .env("WEIR_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines, stderr: String::new() }
    }

    fn wait_for(&mut self, text: &str) -> String {
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(120)) {
            self.stderr.push_str(&line);
            self.stderr.push('\n');
            if line.contains(text) {
                return line;
            }
        }
        panic!("`weir run` never logged {text:?}:\n{}", self.stderr);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_warns_that_an_admin_api_without_a_token_is_unauthenticated() {
    let mut run = Running::start(&["--admin-listen", "127.0.0.1:0"]);
    run.wait_for("admin API listening");
    let warning = run.wait_for("unauthenticated");
    assert!(warning.contains("WARN") && warning.contains("--admin-token-file"), "{warning}");
}

#[test]
fn the_admin_token_can_come_from_a_file_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-from-a-secret\n").unwrap();
    let mut run = Running::start(&["--admin-listen", "127.0.0.1:0", "--admin-token-file", token_file.to_str().unwrap()]);
    let line = run.wait_for("admin API listening");
    let addr = line.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or_else(|| panic!("{line}"));
    assert!(line.contains("auth=true"), "{line}");
    let url = format!("http://{addr}");
    let with_file = weir().args(["plugin", "list", "--admin", &url]).env_remove("WEIR_ADMIN_TOKEN").env("WEIR_ADMIN_TOKEN_FILE", &token_file).output().unwrap();
    assert!(with_file.status.success(), "{}", String::from_utf8_lossy(&with_file.stderr));
    assert!(String::from_utf8_lossy(&with_file.stdout).contains("enrich-order"), "{}", String::from_utf8_lossy(&with_file.stdout));
    let without = weir().args(["plugin", "list", "--admin", &url]).env_remove("WEIR_ADMIN_TOKEN").env_remove("WEIR_ADMIN_TOKEN_FILE").output().unwrap();
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("401"), "{}", String::from_utf8_lossy(&without.stderr));
    assert!(!run.stderr.contains("unauthenticated"), "{}", run.stderr);
}
