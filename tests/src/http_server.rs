//! A tiny HTTP/1.1 server for sink tests: one request per connection,
//! answers every request with a fixed status, reports what it received.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// Starts a server answering with `status`; returns its `host:port` and a
/// channel of received (request line, body).
pub fn http_server(status: u16) -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the test HTTP server");
    let addr = listener.local_addr().expect("local address").to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let Ok(clone) = stream.try_clone() else { return };
            let mut reader = BufReader::new(clone);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut content_length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length") {
                        content_length = value.trim().parse().unwrap_or(0);
                    }
            }
            let mut body = vec![0; content_length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = tx.send((request_line.trim().to_owned(), body));
            let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (addr, rx)
}

/// Starts a server that accepts connections and reads requests but never
/// answers; returns its `host:port`.
pub fn silent_http_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the silent HTTP server");
    let addr = listener.local_addr().expect("local address").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            held.push(stream); // kept open, never answered
        }
    });
    addr
}
