//! A server on the demo model on a free loopback port, and a small HTTP client for the tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use ferrotune_config::Config;
use ferrotune_serve::{LoadedApi, RunningServer, ServeSettings};
use serde_json::Value;

/// The demo model (SmolLM2-135M-Instruct, Q4_1 GGUF); fails, never skips, when it is missing.
pub fn demo_gguf() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        path.display()
    );
    path
}

/// The config the tests serve: the demo model, the smollm2 template, greedy by default.
pub fn demo_config() -> Config {
    Config::from_overrides(&[
        format!("model_name_or_path={}", demo_gguf().display()),
        "template=smollm2".into(),
        "do_sample=false".into(),
        "max_new_tokens=16".into(),
    ])
    .unwrap()
}

/// Starts a server on 127.0.0.1 with a free port; `edit` adjusts the settings.
pub fn start(edit: impl FnOnce(&mut ServeSettings)) -> RunningServer {
    let mut settings = ServeSettings {
        port: 0,
        ..ServeSettings::default()
    };
    edit(&mut settings);
    let loaded = LoadedApi::from_config(&demo_config()).unwrap();
    ferrotune_serve::spawn(loaded, settings).unwrap()
}

/// An HTTP client that returns every status as a value.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into()
}

/// POSTs raw `body` to `url` (with `key` as bearer token); returns status and parsed JSON
/// (Null when the body is not JSON).
pub fn post_raw(url: &str, body: &[u8], key: Option<&str>) -> (u16, Value) {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    if let Some(k) = key {
        req = req.header("Authorization", &format!("Bearer {k}"));
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POSTs JSON.
pub fn post(url: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    post_raw(url, body.to_string().as_bytes(), key)
}

/// GETs `url`; status and JSON.
pub fn get(url: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = agent().get(url);
    if let Some(k) = key {
        req = req.header("Authorization", &format!("Bearer {k}"));
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POSTs a streaming request and returns the `data:` payloads up to and including `[DONE]`.
pub fn post_stream(url: &str, body: &Value) -> Vec<String> {
    let resp = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let reader = BufReader::new(resp.into_body().into_reader());
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            out.push(data.to_string());
            if data == "[DONE]" {
                break;
            }
        }
    }
    out
}

/// Reads the whole of a reader (for bodies read by hand).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}
