//! The web console in headless Chromium against `weir demo --admin-listen`:
//! the page asks for the token, then shows the demo pipeline with non-zero
//! rates, its partitions and operator call times, dead letters with their
//! error kinds (and the kind filter works), pause/resume, and the API's 400
//! reason after uploading a file that is not a component — with no console
//! errors. Driven over the DevTools protocol (a small WebSocket client
//! below); screenshots go to `target/artifacts/console/`.
//!
//! Needs Chromium: `apt-get install -y chromium` (`scripts/test` installs it
//! when run as root) or `WEIR_CHROMIUM=/path/to/chrome`.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir_tests::guests;

const TOKEN: &str = "console-test-token";

#[test]
fn console_shows_the_demo_pipeline_dead_letters_and_upload_errors() {
    let chromium = chromium();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts/console");
    std::fs::create_dir_all(&artifacts).unwrap();
    let addr = free_address();
    let base = format!("http://{addr}");

    // The demo, generating at a steady rate until killed.
    let plugins_dir = Path::new(guests::ENRICH_ORDER).parent().unwrap();
    let log = std::fs::File::create(artifacts.join("demo.log")).unwrap();
    let demo = Killed(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["demo", "--rate", "2000", "--admin-listen", &addr, "--admin-token", TOKEN, "--plugins-dir"])
            .arg(plugins_dir)
            .env_remove("RUST_BACKTRACE")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting weir demo"),
    );

    // The API first (so the page has something to show): rates and dead letters.
    eventually(Duration::from_secs(60), "the admin API answers /healthz", || http(&addr, "GET", "/healthz", None, b"").0 == 200);
    eventually(Duration::from_secs(60), "the rate history has a point with records in > 0", || {
        let (status, body) = http(&addr, "GET", "/v1/pipelines/orders/rates", Some(TOKEN), b"");
        status == 200 && json(&body)["points"].as_array().is_some_and(|p| p.iter().any(|p| p["records_in_per_s"].as_f64() > Some(0.0)))
    });
    eventually(Duration::from_secs(30), "dead letters of kinds decode and rejected exist", || {
        let (_, body) = http(&addr, "GET", "/v1/pipelines/orders", Some(TOKEN), b"");
        let kinds = &json(&body)["status"]["dead_letters_by_kind"];
        kinds["decode"].as_u64() > Some(0) && kinds["rejected"].as_u64() > Some(0)
    });
    // What the page must show after the bad upload: the API's own answer.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-component.wasm");
    std::fs::write(&bad, b"this is not a WebAssembly component").unwrap();
    let (status, body) = http(&addr, "PUT", "/v1/plugins/high-value-orders", Some(TOKEN), &std::fs::read(&bad).unwrap());
    assert_eq!(status, 400, "{body}");
    let reason = json(&body)["error"].as_str().unwrap().to_owned();

    // `weir dlq list` shows the same view in a terminal.
    let list = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["dlq", "list", "orders", "--kind", "rejected", "--limit", "5", "--admin", &base, "--token", TOKEN])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let list = String::from_utf8(list.stdout).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 6, "a header and 5 dead letters:\n{list}");
    assert!(lines[0].split_whitespace().eq(["WHEN", "KIND", "OPERATOR", "SOURCE", "ATTEMPTS", "MESSAGE", "VALUE"]), "{list}");
    for line in &lines[1..] {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&fields[2..5], ["rejected", "enrich-order@v1", fields[4]], "{list}");
        assert!(fields[4].starts_with("orders/") && line.contains("{\"order_id\":"), "source and original value: {line}");
    }

    let browser = Browser::launch(&chromium, dir.path());
    let mut page = browser.page();
    page.call("Emulation.setDeviceMetricsOverride", json!({"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false}));
    page.call("Page.navigate", json!({"url": format!("{base}/")}));

    // Without a token: the probes and the token form only.
    page.wait_for("the token form", r##"!document.getElementById("auth").hidden && document.getElementById("health").textContent.includes("ok")"##);
    assert_eq!(page.eval(r##"document.getElementById("main").hidden"##), json!(true));
    page.screenshot(&artifacts.join("01-token.png"));

    page.eval(&format!(r##"document.getElementById("token-input").value = {}; document.getElementById("token-form").requestSubmit(); true"##, json!(TOKEN)));
    page.wait_for(
        "the orders pipeline with records in > 0 per second",
        r##"(() => { const r = document.querySelector('[data-pipeline="orders"] [data-counter="records_in"]'); return !!r && Number(r.dataset.value) > 0; })()"##,
    );
    assert_eq!(page.eval(r##"sessionStorage.getItem("weir.admin.token")"##), json!(TOKEN));
    assert_eq!(page.eval(r##"document.querySelector('[data-pipeline="orders"] [data-state]').dataset.state"##), json!("running"));
    let partitions = page.eval(r##"[...document.querySelectorAll('[data-pipeline="orders"] table.partitions tbody tr')].map(tr => tr.cells[0].textContent + "/" + tr.cells[1].textContent)"##);
    assert_eq!(partitions, json!(["orders/0", "orders/1", "orders/2"]));
    page.wait_for(
        "operator call times per plugin version",
        r##"["enrich-order@v1", "high-value-orders@v1"].every(k => { const row = document.querySelector(`tr[data-call="${k}"]`); return !!row && row.cells[1].textContent.endsWith(" ms"); })"##,
    );

    // Dead letters: error kinds, then the kind filter.
    page.wait_for("dead letters of kind decode", r##"[...document.querySelectorAll("#dlq-table tbody td.kind")].some(td => td.textContent === "decode")"##);
    let kinds = page.eval(r##"[...new Set([...document.querySelectorAll("#dlq-table tbody td.kind")].map(td => td.textContent))].sort()"##);
    assert!(kinds.as_array().unwrap().iter().all(|k| k == "decode" || k == "rejected"), "unexpected kinds {kinds}");
    let sources = page.eval(r##"[...document.querySelectorAll("#dlq-table tbody tr")].every(tr => /^orders\/\d+@\d+$/.test(tr.cells[3].textContent))"##);
    assert_eq!(sources, json!(true), "every dead letter names its source topic/partition@offset");
    page.wait_for("the kind filter offers rejected", r##"[...document.getElementById("dlq-kind").options].some(o => o.value === "rejected")"##);
    page.eval(r##"(() => { const k = document.getElementById("dlq-kind"); k.value = "rejected"; k.dispatchEvent(new Event("change")); return true; })()"##);
    page.wait_for(
        "only rejected dead letters after filtering",
        r##"(() => { const kinds = [...document.querySelectorAll("#dlq-table tbody td.kind")].map(td => td.textContent); return kinds.length > 0 && kinds.every(k => k === "rejected"); })()"##,
    );
    let plugins = page.eval(r##"[...document.querySelectorAll("#plugins-table tbody tr.live")].map(tr => tr.dataset.plugin + " " + tr.cells[7].textContent)"##);
    assert_eq!(plugins, json!(["enrich-order orders", "high-value-orders orders"]));
    page.screenshot(&artifacts.join("02-console.png"));
    let errors = page.console_errors();
    assert!(errors.is_empty(), "console errors while loading: {errors:#?}");

    // Pause and resume buttons, checked through the API.
    page.eval(r##"document.querySelector('[data-pipeline="orders"] button.pause').click(); true"##);
    page.wait_for("the paused state", r##"!!document.querySelector('[data-pipeline="orders"] [data-state="paused"]')"##);
    assert_eq!(json(&http(&addr, "GET", "/v1/pipelines/orders", Some(TOKEN), b"").1)["status"]["state"]["state"], "paused");
    page.eval(r##"document.querySelector('[data-pipeline="orders"] button.resume').click(); true"##);
    page.wait_for("the running state again", r##"!!document.querySelector('[data-pipeline="orders"] [data-state="running"]')"##);

    // Upload through the file picker: the API's 400 reason, as it is.
    let document = page.call("DOM.getDocument", json!({}));
    let input = page.call("DOM.querySelector", json!({"nodeId": document["root"]["nodeId"], "selector": "#upload-file"}));
    page.call("DOM.setFileInputFiles", json!({"nodeId": input["nodeId"], "files": [bad.to_str().unwrap()]}));
    page.eval(r##"document.getElementById("upload-name").value = "high-value-orders"; document.getElementById("upload-form").requestSubmit(); true"##);
    page.wait_for("the upload's answer", r##"document.getElementById("upload-result").className === "error""##);
    let shown = page.eval(r##"document.getElementById("upload-result").textContent"##);
    assert_eq!(shown, json!(format!("400 Bad Request: {reason}")));
    // The plugin list reports the deploy's outcome (kept after its request ended).
    page.wait_for(
        "the refused deploy in the plugin list",
        r##"!!document.querySelector('#plugins-table tr[data-plugin="high-value-orders"] [data-deploy="refused"]')"##,
    );
    page.screenshot(&artifacts.join("03-upload-400.png"));
    // The only console entry allowed now is the browser's note on the 400 itself.
    let errors: Vec<Value> = page
        .console_errors()
        .into_iter()
        .filter(|e| !(e["params"]["entry"]["source"] == "network" && e["params"]["entry"]["url"].as_str().is_some_and(|u| u.contains("/v1/plugins/high-value-orders"))))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    drop(demo);
}

/// Kills the child process when dropped (also on a failed assertion).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!("the console test needs headless Chromium: install it with `apt-get install -y chromium` (scripts/test does so when run as root) or set WEIR_CHROMIUM to a Chrome/Chromium binary");
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// A plain HTTP/1.1 request, `Connection: close`, bodies with a length (no
/// chunking); `(0, "")` when nothing listens.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else { return (0, String::new()) };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n", body.len());
    if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).is_err() {
        return (0, String::new());
    }
    // Read the head, then Content-Length bytes (DevTools keeps the connection open), else to the end.
    let mut response = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
            if length.is_some_and(|n| rest.len() >= n) {
                break;
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
            Err(_) => return (0, String::new()),
        }
    }
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Headless Chromium with the DevTools protocol on an ephemeral port.
struct Browser {
    _process: Killed,
    devtools: String,
}

impl Browser {
    fn launch(binary: &Path, dir: &Path) -> Browser {
        let mut child = Command::new(binary)
            .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--no-default-browser-check", "--disable-extensions"])
            .args(["--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1"])
            .arg(format!("--user-data-dir={}", dir.join("chromium").display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stderr = child.stderr.take().unwrap();
        let process = Killed(child);
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ws://") {
                    let _ = found.send(url.split('/').next().unwrap_or_default().to_owned());
                }
            }
        });
        let devtools = address.recv_timeout(Duration::from_secs(60)).expect("Chromium did not print its DevTools address");
        Browser { _process: process, devtools }
    }

    /// The first page target, connected.
    fn page(&self) -> Page {
        let mut url = None;
        eventually(Duration::from_secs(30), "a Chromium page target", || {
            let (_, body) = http(&self.devtools, "GET", "/json/list", None, b"");
            url = json(&body).as_array().into_iter().flatten().find(|t| t["type"] == "page").and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned));
            url.is_some()
        });
        let mut page = Page { socket: WebSocket::connect(&url.unwrap()), next_id: 0, events: Vec::new() };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(domain, json!({}));
        }
        page
    }
}

/// One page over the DevTools protocol; events are kept as they arrive.
struct Page {
    socket: WebSocket,
    next_id: u64,
    events: Vec<Value>,
}

impl Page {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.socket.send(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let message: Value = serde_json::from_str(&self.socket.receive()).expect("DevTools message is JSON");
            if message["id"] == id {
                assert!(message["error"].is_null(), "{method}: {}", message["error"]);
                return message["result"].clone();
            }
            if message.get("method").is_some() {
                self.events.push(message);
            }
        }
    }

    /// Evaluates `expression` in the page, after promises settle.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}));
        assert!(result["exceptionDetails"].is_null(), "{expression}: {}", result["exceptionDetails"]);
        result["result"]["value"].clone()
    }

    fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(45);
        // Errors count as "not yet" (the document may still be about:blank).
        let guarded = format!("(() => {{ try {{ return ({expression}) === true; }} catch (_) {{ return false; }} }})()");
        while self.eval(&guarded) != json!(true) {
            if Instant::now() > deadline {
                let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts/console");
                self.screenshot(&artifacts.join("failure.png"));
                let text = self.eval("document.body.innerText");
                panic!("the console did not show {what} (screenshot failure.png); console errors {:#?}; page text:\n{}", self.console_errors(), text.as_str().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Uncaught exceptions, `console.error` calls and browser log errors (failed loads, CSP).
    fn console_errors(&mut self) -> Vec<Value> {
        self.call("Runtime.evaluate", json!({"expression": "0"})); // drains pending events
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => true,
                Some("Runtime.consoleAPICalled") => matches!(e["params"]["type"].as_str(), Some("error" | "assert")),
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .cloned()
            .collect()
    }

    /// The whole page as a PNG.
    fn screenshot(&mut self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let clip = json!({"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1});
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true, "clip": clip}));
        std::fs::write(path, base64_decode(shot["data"].as_str().unwrap())).unwrap();
    }
}

/// Just enough of RFC 6455 for the DevTools protocol: text frames, masked
/// from the client, fragments joined, pings answered.
struct WebSocket {
    stream: TcpStream,
}

impl WebSocket {
    fn connect(url: &str) -> WebSocket {
        let rest = url.strip_prefix("ws://").expect("a ws:// URL");
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = TcpStream::connect(host).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "WebSocket handshake: {}", String::from_utf8_lossy(&head));
        WebSocket { stream }
    }

    fn send(&mut self, text: &str) {
        self.frame(0x1, text.as_bytes());
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = [0x5a, 0x17, 0xc3, 0x8e];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).unwrap();
    }

    fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).expect("reading from DevTools");
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).unwrap();
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).unwrap();
                len = u64::from_be_bytes(b);
            }
            let mask = if head[1] & 0x80 != 0 {
                let mut m = [0u8; 4];
                self.stream.read_exact(&mut m).unwrap();
                Some(m)
            } else {
                None
            };
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).unwrap();
            if let Some(m) = mask {
                payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= m[i % 4]);
            }
            match opcode {
                0x8 => panic!("DevTools closed the connection"),
                0x9 => self.frame(0xa, &payload),
                0xa => {}
                _ => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return String::from_utf8(message).expect("DevTools text frame");
                    }
                }
            }
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, c)| n | u32::from(value(*c)) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
