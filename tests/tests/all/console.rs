//! The admin routes behind the web console: the rate history
//! (`/v1/pipelines/{name}/rates`), the console's static files (public, with
//! a content security policy), `/healthz` saying whether a token is needed,
//! and the OpenAPI document listing the new route. The page itself is
//! tested in headless Chromium by `host/tests/console.rs`.

use super::admin::{Bench, order, serve, status, wait_for_input};
use serde_json::json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use weir::client::AdminClient;
use weir::registry::Registry;
use weir_tests::guests;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_history_reports_per_second_rates_and_call_times_per_plugin_version() {
    let bench = Bench::new(guests::IDENTITY, "");
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    // The sampler takes its first sample when the server starts: before any input.
    let client = serve(&registry, &[&handle], 64 << 20).await;
    bench.produce(0..200, order).await;
    wait_for_input(&handle, 200).await;
    let consumed_at = Instant::now();

    // Every record was consumed before this sample: the rates integrate to 200.
    let deadline = consumed_at + weir::admin::history::SAMPLE_INTERVAL * 3;
    let history = loop {
        let history = client.get("/v1/pipelines/p/rates").await.unwrap();
        let newest = history["points"].as_array().unwrap().last().and_then(|p| p["at_ms"].as_i64()).unwrap_or(0);
        let consumed_ms = now_ms() - consumed_at.elapsed().as_millis() as i64;
        if newest > consumed_ms + 100 {
            break history;
        }
        assert!(Instant::now() < deadline, "no sample after the input was consumed: {history}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(history["pipeline"], json!("p"));
    assert_eq!(history["interval_seconds"], json!(5));
    let points = history["points"].as_array().unwrap();
    let total = |key: &str| points.iter().map(|p| p[key].as_f64().unwrap() * 5.0).sum::<f64>();
    // Sampling intervals are 5 s give or take scheduling: allow 2%.
    for key in ["records_in_per_s", "records_out_per_s"] {
        assert!((total(key) - 200.0).abs() < 4.0, "{key} integrates to {} over {history}", total(key));
    }
    assert_eq!(total("records_filtered_per_s"), 0.0);
    assert_eq!(total("records_dead_lettered_per_s"), 0.0);
    let busy = points.iter().find(|p| p["records_in_per_s"].as_f64() > Some(0.0)).unwrap();
    assert!(busy["call_ms"]["stage@v1"].as_f64().is_some_and(|ms| ms > 0.0), "call time of stage@v1 in {busy}");
    assert!(points.windows(2).all(|w| w[0]["at_ms"].as_i64() < w[1]["at_ms"].as_i64()), "oldest first");

    assert_eq!(status(client.get("/v1/pipelines/nope/rates").await.unwrap_err()).0, 404);
    let anonymous = AdminClient::new(client.base_url(), None);
    assert_eq!(status(anonymous.get("/v1/pipelines/p/rates").await.unwrap_err()).0, 401);
    assert_eq!(anonymous.get("/healthz").await.unwrap(), json!({"status": "ok", "auth": true}));
    let openapi = client.get("/v1/openapi.json").await.unwrap();
    assert!(openapi["paths"]["/v1/pipelines/{name}/rates"]["get"].is_object(), "openapi lacks the rates route");
    assert!(openapi["components"]["schemas"]["RateHistoryView"].is_object());
    handle.shutdown();
    handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_without_a_token_and_only_loads_its_own_files() {
    let bench = Bench::new(guests::IDENTITY, "");
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &[&handle], 64 << 20).await;
    let addr = client.base_url().trim_start_matches("http://").to_owned();
    let get = move |path: &'static str| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || raw_get(&addr, path))
    };
    let (head, page) = get("/").await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'self'"), "{head}");
    assert!(page.contains("<title>weir console</title>") && page.contains(r#"src="/console/app.js""#));
    for (path, kind) in [("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")] {
        let (head, body) = get(path).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200") && head.contains(kind), "{path}: {head}");
        assert!(!body.is_empty());
    }
    let (head, _) = get("/console/nothing.js").await.unwrap();
    assert!(head.starts_with("HTTP/1.1 401") || head.starts_with("HTTP/1.1 404"), "{head}");
    // The data behind the page still needs the token.
    let (head, body) = get("/v1/pipelines").await.unwrap();
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"], json!("missing or invalid bearer token"));
    handle.shutdown();
    handle.join().await.unwrap();
}

/// Head (lower-cased header names) and body of a GET without a token.
fn raw_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let head = head.lines().enumerate().map(|(i, l)| if i == 0 { l.to_owned() } else { l.to_ascii_lowercase() }).collect::<Vec<_>>().join("\n");
    (head, body.to_owned())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
