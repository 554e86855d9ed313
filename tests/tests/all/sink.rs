//! The webhook sink posts to a real local HTTP server; hosts off the
//! allowlist are refused by the host.

use super::support::*;
use weir::engine::{HttpAllowlist, SinkResult};
use weir::operator::Operator;
use weir_tests::guests;
use weir_tests::http_server::{http_server, silent_http_server};

fn sink(url: &str, allow: &[&str]) -> Operator {
    let engine = engine();
    let config = serde_json::json!({ "url": url }).to_string();
    Operator::new(load(&engine, guests::WEBHOOK_ALERT), config, HttpAllowlist::new(allow.iter().copied())).unwrap()
}

#[test]
fn webhook_posts_rows_as_json_to_an_allowed_host() {
    let (addr, requests) = http_server(200);
    let mut op = sink(&format!("http://{addr}/alerts"), &[addr.as_str()]);
    let data = orders(3);
    assert_eq!(op.write(&order_batch(&data)).unwrap(), SinkResult::Written);
    let (request_line, body) = requests.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(request_line, "POST /alerts HTTP/1.1");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["order_id"], "o-1");
    assert_eq!(rows[1]["total_amount"], data[1].total_amount.unwrap());
    assert_eq!(rows[1]["timestamp"], data[1].timestamp_ms);
}

#[test]
fn server_errors_are_retryable_and_client_errors_permanent() {
    let (addr, _requests) = http_server(503);
    let mut op = sink(&format!("http://{addr}/"), &["127.0.0.1"]);
    assert!(matches!(op.write(&order_batch(&orders(2))).unwrap(), SinkResult::Retryable(_)));

    let (addr, _requests) = http_server(400);
    let mut op = sink(&format!("http://{addr}/"), &["127.0.0.1"]);
    assert!(matches!(op.write(&order_batch(&orders(2))).unwrap(), SinkResult::Permanent(_)));
}

#[test]
fn hosts_off_the_allowlist_are_refused_before_any_request() {
    let (addr, requests) = http_server(200);
    let mut op = sink(&format!("http://{addr}/alerts"), &["alerts.example.com"]);
    match op.write(&order_batch(&orders(2))).unwrap() {
        SinkResult::Permanent(reason) => assert!(reason.contains("denied"), "{reason}"),
        other => panic!("expected a permanent denial, got {other:?}"),
    }
    assert!(requests.recv_timeout(std::time::Duration::from_millis(300)).is_err(), "nothing reached the server");
}

#[test]
fn a_sink_never_reaches_the_admin_api_whatever_its_allowlist() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let deployer = weir::deploy::Deployer::new(engine(), weir::registry::Registry::in_memory(), Vec::new(), 1 << 20);
    let state = weir::admin::AdminState::new(deployer, None);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let addr = runtime.block_on(weir::admin::start("127.0.0.1:0".parse().unwrap(), state, false, stop_rx)).unwrap();
    let port = addr.port();
    for (url, allow) in [
        (format!("http://127.0.0.1:{port}/v1/plugins/x/rollback"), "*"),
        (format!("http://localhost:{port}/v1/plugins/x/rollback"), "localhost"),
        (format!("http://0.0.0.0:{port}/v1/plugins/x/rollback"), "0.0.0.0"),
    ] {
        let mut op = sink(&url, &[allow]);
        match op.write(&order_batch(&orders(2))).unwrap() {
            SinkResult::Permanent(reason) => assert!(reason.contains("denied"), "{url}: {reason}"),
            other => panic!("{url}: expected a permanent denial, got {other:?}"),
        }
    }
    // Another local server on an allowed address is still reachable.
    let (other, _requests) = http_server(200);
    assert_eq!(sink(&format!("http://{other}/"), &["*"]).write(&order_batch(&orders(1))).unwrap(), SinkResult::Written);
}

#[test]
fn a_sink_waiting_on_a_silent_server_is_stopped_at_the_call_deadline() {
    let engine = engine_with(weir::engine::SandboxLimits { call_deadline_ms: 300, ..Default::default() });
    let addr = silent_http_server();
    let config = serde_json::json!({ "url": format!("http://{addr}/alerts") }).to_string();
    let mut op = Operator::new(load(&engine, guests::WEBHOOK_ALERT), config, HttpAllowlist::new([addr.as_str()])).unwrap();
    let error = op.write(&order_batch(&orders(2))).unwrap_err();
    assert_eq!(error.trap_kind(), Some(weir::engine::TrapKind::Deadline), "{error}");
    assert_eq!(op.stats().traps, 1, "the instance was discarded");
}

#[test]
fn the_configured_response_timeout_bounds_a_sink_request() {
    let engine = engine_with(weir::engine::SandboxLimits { call_deadline_ms: 60_000, ..Default::default() });
    let addr = silent_http_server();
    let config = serde_json::json!({ "url": format!("http://{addr}/alerts") }).to_string();
    let allow = HttpAllowlist::new([addr.as_str()]).with_timeouts(std::time::Duration::from_secs(5), std::time::Duration::from_millis(200));
    let mut op = Operator::new(load(&engine, guests::WEBHOOK_ALERT), config, allow).unwrap();
    match op.write(&order_batch(&orders(2))).unwrap() {
        SinkResult::Retryable(reason) => assert!(reason.contains("timeout") || reason.contains("timed out"), "{reason}"),
        other => panic!("expected a retryable timeout, got {other:?}"),
    }
}
