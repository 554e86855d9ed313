//! Who may drive the admin API and what one request may cost: without a
//! token, cross-site (CSRF) and DNS-rebound requests are refused; bad query
//! values are 400s; dead-letter peeks, concurrent uploads and the in-memory
//! history are bounded; uploads are spooled to disk; one version can be
//! removed from the data dir.

use super::admin::{Bench, TOKEN, order, status, wait_for_input};
use super::pipeline::engine;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use weir::client::AdminClient;
use weir::deploy::Deployer;
use weir::registry::Registry;
use weir_tests::guests;

/// Serves the API without pipelines; `token` as given.
async fn serve(registry: &Registry, token: Option<&str>) -> SocketAddr {
    super::support::logs();
    let deployer = Deployer::new(engine(), registry.clone(), Vec::new(), 1 << 20);
    let state = weir::admin::AdminState::new(deployer, token.map(str::to_owned)).with_allowed_hosts(&["weir.internal".to_owned()]);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    weir::admin::start("127.0.0.1:0".parse().unwrap(), state, false, stop_rx).await.unwrap()
}

/// One raw HTTP/1.1 request (`Connection: close`) with exactly the headers
/// given: the status and body.
fn raw(addr: SocketAddr, request_line: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{request_line} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let code = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (code, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_cross_site_posts_and_rebound_host_names_are_refused() {
    let addr = serve(&Registry::in_memory(), None).await;
    let host = format!("Host: {addr}");
    let call = move |line: &'static str, headers: Vec<String>, body: &'static [u8]| {
        tokio::task::spawn_blocking(move || raw(addr, line, &headers.iter().map(String::as_str).collect::<Vec<_>>(), body))
    };
    // What a page on another site can send without a preflight: refused.
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x")] {
        let mut headers = vec![host.clone()];
        headers.extend(content_type.map(|c| format!("Content-Type: {c}")));
        let (code, body) = call("POST /v1/plugins/x/rollback", headers, b"{}").await.unwrap();
        assert_eq!(code, 403, "{content_type:?}: {body}");
        assert!(body.contains("application/json"), "{body}");
    }
    // JSON, or the client header: past the guard (404: no such plugin).
    let (code, body) = call("POST /v1/plugins/x/rollback", vec![host.clone(), "Content-Type: application/json".into()], b"{}").await.unwrap();
    assert_eq!(code, 404, "{body}");
    let (code, body) = call("DELETE /v1/plugins/x", vec![host.clone(), "X-Weir-Request: test".into()], b"").await.unwrap();
    assert_eq!(code, 404, "{body}");
    assert_eq!(status(AdminClient::new(&format!("http://{addr}"), None).delete("/v1/plugins/x").await.unwrap_err()).0, 404, "the CLI client passes");

    // DNS rebinding: a name that is not this API's is refused, even for reads.
    let port = addr.port();
    for bad in [format!("Host: attacker.example:{port}"), format!("Host: localhost.attacker.example:{port}")] {
        let (code, body) = call("GET /v1/plugins", vec![bad.clone()], b"").await.unwrap();
        assert_eq!(code, 403, "{bad}: {body}");
        assert!(body.contains("allowed_hosts"), "{body}");
    }
    for good in [host.clone(), format!("Host: localhost:{port}"), format!("Host: weir.internal:{port}"), format!("Host: [::1]:{port}")] {
        assert_eq!(call("GET /v1/plugins", vec![good.clone()], b"").await.unwrap().0, 200, "{good}");
    }

    // With a token the bearer check is the guard: a text/plain POST with it passes.
    let addr = serve(&Registry::in_memory(), Some(TOKEN)).await;
    let headers = [format!("Host: evil.example:{}", addr.port()), format!("Authorization: Bearer {TOKEN}"), "Content-Type: text/plain".into()];
    let (code, body) = tokio::task::spawn_blocking(move || raw(addr, "POST /v1/plugins/x/rollback", &headers.iter().map(String::as_str).collect::<Vec<_>>(), b"")).await.unwrap();
    assert_eq!(code, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_beyond_the_bound_are_told_to_retry() {
    let addr = serve(&Registry::in_memory(), None).await;
    // Uploads whose bodies never finish hold the upload slots. A probe that
    // lands between two of them takes a slot for a moment and the later one is
    // refused (it drains, holding nothing), so hold one more at a time until
    // a probe finds both slots taken.
    let mut held = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).unwrap();
        let head = format!("PUT /v1/plugins/slow HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/wasm\r\nContent-Length: 100000\r\n\r\n\0asm");
        stream.write_all(head.as_bytes()).unwrap();
        held.push(stream);
        if held.len() < 2 {
            continue;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (code, body) = tokio::task::spawn_blocking(move || {
            raw(addr, "PUT /v1/plugins/third", &[&format!("Host: {addr}"), "Content-Type: application/wasm"], b"not wasm")
        })
        .await
        .unwrap();
        if code == 429 {
            assert!(body.contains("uploads are in progress"), "{body}");
            drop(held);
            // Slots free again once the held uploads end.
            let client = AdminClient::new(&format!("http://{addr}"), None);
            for _ in 0..100 {
                if let Err(error) = client.put_wasm("/v1/plugins/third", b"not wasm".to_vec()).await
                    && status(error).0 == 400
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the upload slots were not released");
        }
        assert_eq!(code, 400, "a probe with a free slot is read and refused as not wasm: {body}");
        answers.push(code);
    }
    panic!("no 429 while {} uploads were in progress: {answers:?}", held.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_values_are_400s() {
    let bench = Bench::new(guests::IDENTITY, "");
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = super::admin::serve(&registry, &[&handle], 64 << 20).await;
    bench.produce(0..5, order).await;
    wait_for_input(&handle, 5).await;
    let candidate = std::fs::read(guests::IDENTITY).unwrap();
    for query in [format!("seconds={}", u64::MAX), "seconds=0".into(), "seconds=-1".into(), "seconds=abc".into(), "batches=0".into()] {
        let path = format!("/v1/plugins/stage?mode=shadow&{query}");
        let (code, message) = status(client.put_wasm(&path, candidate.clone()).await.unwrap_err());
        assert_eq!(code, 400, "{query}: {message}");
    }
    for query in ["limit=100001", "limit=1001", "limit=x", "unknown=1"] {
        let (code, message) = status(client.get(&format!("/v1/pipelines/p/dlq?{query}")).await.unwrap_err());
        assert_eq!(code, 400, "{query}: {message}");
    }
    assert_eq!(status(client.delete("/v1/plugins/stage?version=x").await.unwrap_err()).0, 400);
    assert_eq!(handle.stats().snapshot().plugin_versions["stage"], "v1", "the pipeline runs on");
    assert!(client.get("/v1/pipelines/p/dlq?limit=1000").await.unwrap().is_array());
    handle.shutdown();
    handle.join().await.unwrap();
}

/// `component` with a custom section naming `tag`: a new version, same code.
fn tagged(component: &[u8], tag: &str) -> Vec<u8> {
    let mut payload = vec![tag.len() as u8];
    payload.extend_from_slice(tag.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_version_is_removed_from_the_data_dir_and_memory_keeps_a_bounded_history() {
    let data = tempfile::tempdir().unwrap();
    let addr = serve(&Registry::open(data.path()).unwrap(), Some(TOKEN)).await;
    let client = AdminClient::new(&format!("http://{addr}"), Some(TOKEN.into()));
    let identity = std::fs::read(guests::IDENTITY).unwrap();
    for tag in ["a", "b", "c"] {
        client.put_wasm("/v1/plugins/solo", tagged(&identity, tag)).await.unwrap();
    }
    let blobs = || std::fs::read_dir(data.path().join("blobs")).unwrap().count();
    assert_eq!(blobs(), 3);
    let spooled = std::fs::read_dir(data.path().join("uploads")).expect("uploads are spooled in the data dir").count();
    assert_eq!(spooled, 0, "spool files are removed after each upload");
    let record = client.delete("/v1/plugins/solo?version=1").await.unwrap();
    assert_eq!(record["versions"].as_array().unwrap().iter().map(|v| v["version"].clone()).collect::<Vec<_>>(), vec![json!(2), json!(3)]);
    assert_eq!(blobs(), 2, "the blob left the data dir");
    let (code, message) = status(client.delete("/v1/plugins/solo?version=3").await.unwrap_err());
    assert_eq!(code, 409, "the live version stays: {message}");
    let reopened = Registry::open(data.path()).unwrap();
    assert_eq!(reopened.get("solo").unwrap().versions.len(), 2, "the removal was persisted");

    // In memory: the newest versions are kept (the live one always).
    let memory = Registry::in_memory_with_history(3);
    for tag in ["1", "2", "3", "4", "5"] {
        memory.push("m", &tagged(&identity, tag), "map", "upload").unwrap();
    }
    memory.set_live("m", 3).unwrap();
    memory.add_version("m", &tagged(&identity, "6"), "map", "upload").unwrap();
    memory.add_version("m", &tagged(&identity, "7"), "map", "upload").unwrap();
    let versions: Vec<u32> = memory.get("m").unwrap().versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![3, 6, 7], "live v3 kept, oldest others pruned");
    assert!(memory.bytes("m", 1).is_err(), "pruned bytes are gone");
    let _: Value = client.get("/v1/plugins").await.unwrap();
}
