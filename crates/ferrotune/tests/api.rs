//! `ferrotune api` as a user runs it: the binary started with `API_PORT` (a free loopback
//! port) and `API_KEY`, waited for on `/health`, one chat completion over plain HTTP (the
//! answer names Paris, usage adds up), 401 without the key, then SIGTERM: the process exits 0
//! and its log shows the requests but never the key. Needs the demo model
//! (`scripts/fetch_model.sh`).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::demo_gguf;
use serde_json::{json, Value};

const KEY: &str = "sk-binary-test-7f3a9c";

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`); returns the status and
/// the body (the server answers JSON with a `Content-Length`, never chunked).
fn http(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(k) = key {
        req.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Kills the server if the test fails before it is stopped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_serves_enforces_the_key_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args([
            "api".to_string(),
            format!("model_name_or_path={}", demo_gguf().display()),
            "template=smollm2".into(),
        ])
        .env("API_PORT", port.to_string())
        .env("API_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Up when /health answers (no key needed there).
    let start = Instant::now();
    loop {
        if let Ok((200, body)) = http(port, "GET", "/health", None, None) {
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap()["status"],
                "ok"
            );
            break;
        }
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("the server exited with {status}:\n{}", read_log());
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no /health after 180 s:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let request = json!({
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 16,
    });
    let (status, body) = http(
        port,
        "POST",
        "/v1/chat/completions",
        Some(KEY),
        Some(&request),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("Paris"), "{content}");
    let usage = &answer["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(prompt > 0 && (1..=16).contains(&completion), "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));

    let (status, body) = http(port, "POST", "/v1/chat/completions", None, Some(&request)).unwrap();
    assert_eq!(status, 401, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "invalid_api_key", "{body}");
    assert!(!body.contains(KEY), "{body}");

    // SIGTERM: graceful shutdown, exit status 0.
    let pid = server.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid} failed");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "still running 60 s after SIGTERM:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = read_log();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM:\n{log}"
    );
    // The log has the request lines (so it was written), and never the key.
    assert!(
        log.contains("/v1/chat/completions") && log.contains("status=401"),
        "{log}"
    );
    assert!(!log.contains(KEY), "the API key appears in the log:\n{log}");
}
