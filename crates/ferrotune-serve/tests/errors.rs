//! Bad requests get OpenAI-shaped 4xx answers and never hurt the server: the API key, each
//! validation case of the issue, a few hundred generated malformed bodies, the 429 of a full
//! queue, and a client that disconnects mid-stream freeing its slot at once.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::{agent, get, post, post_raw, start};
use serde_json::{json, Value};

const KEY: &str = "sk-test-123";

fn valid() -> Value {
    json!({
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "temperature": 0,
    })
}

/// Asserts an OpenAI error body with `status`.
fn assert_error(got: &(u16, Value), status: u16, what: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    let err = &got.1["error"];
    assert!(err["message"].is_string(), "{what}: {}", got.1);
    assert!(err["type"].is_string(), "{what}: {}", got.1);
    assert!(
        err.get("param").is_some() && err.get("code").is_some(),
        "{what}: {}",
        got.1
    );
}

#[test]
fn validation_errors_key_and_fuzzing() {
    let server = start(|s| {
        s.api_key = Some(KEY.into());
        s.max_body_bytes = 8 * 1024;
    });
    let base = server.base_url();
    let url = format!("{base}/v1/chat/completions");
    let k = Some(KEY);

    assert_error(&post(&url, &valid(), None), 401, "no key");
    assert_error(&post(&url, &valid(), Some("sk-test-124")), 401, "wrong key");
    assert_error(
        &get(&format!("{base}/v1/models"), Some("x")),
        401,
        "models, wrong key",
    );
    assert_eq!(get(&format!("{base}/health"), None).0, 200);
    let ok = post(&url, &valid(), k);
    assert_eq!(ok.0, 200, "{}", ok.1);

    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = valid();
        f(&mut v);
        post(&url, &v, k)
    };
    assert_error(&post_raw(&url, b"{\"model\": ", k), 400, "malformed JSON");
    assert_error(
        &with(&|v| v["model"] = json!("gpt-9")),
        404,
        "unknown model",
    );
    assert_error(&with(&|v| v["messages"] = json!([])), 400, "empty messages");
    assert_error(
        &with(&|v| {
            v["messages"] =
                json!([{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}])
        }),
        400,
        "roles out of order",
    );
    let err = with(&|v| v["max_tokens"] = json!(100_000));
    assert_error(&err, 400, "max_tokens beyond the context");
    assert_eq!(err.1["error"]["code"], "context_length_exceeded");
    let big = "x".repeat(20 * 1024);
    assert_error(
        &with(&|v| v["messages"][0]["content"] = json!(big)),
        413,
        "body over the limit",
    );
    assert_error(
        &with(&|v| v["tools"] = json!([{"type": "function", "function": {"name": "bad name!"}}])),
        400,
        "invalid tool schema",
    );
    assert_error(
        &with(&|v| v["messages"] = json!("hi")),
        422,
        "messages of the wrong type",
    );
    assert_error(&with(&|v| v["temperature"] = json!(3)), 400, "temperature");
    assert_error(&with(&|v| v["n"] = json!(99)), 400, "n");
    assert_error(
        &post(&format!("{base}/v1/nothing"), &valid(), k),
        404,
        "unknown route",
    );

    // A few hundred generated bad bodies: truncations, byte flips, and type swaps of each field.
    let source = valid().to_string().into_bytes();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut seed = 0x9e37_79b9u32;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as usize
    };
    for cut in 0..source.len() {
        bodies.push(source[..cut].to_vec());
    }
    for _ in 0..150 {
        let mut b = source.clone();
        for _ in 0..1 + rnd() % 3 {
            let at = rnd() % b.len();
            b[at] = (rnd() % 256) as u8;
        }
        bodies.push(b);
    }
    let odd = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!("x"),
        json!([]),
        json!({}),
        json!([{"role": 5}]),
        json!(true),
    ];
    for field in [
        "model",
        "messages",
        "max_tokens",
        "temperature",
        "top_p",
        "n",
        "stop",
        "seed",
        "stream",
        "tools",
        "tool_choice",
        "presence_penalty",
    ] {
        for o in &odd {
            let mut v = valid();
            v[field] = o.clone();
            bodies.push(v.to_string().into_bytes());
        }
    }
    let mut statuses = std::collections::BTreeMap::new();
    let mut ok_answers = 0;
    for b in &bodies {
        let (status, body) = post_raw(&url, b, k);
        if status == 200 {
            // A mutation may leave a valid request (a changed letter in the content, or
            // `"stream": true`, answered with events rather than JSON).
            assert!(body["choices"].is_array() || body.is_null(), "{body}");
            ok_answers += 1;
        } else {
            assert!(
                (400..500).contains(&status),
                "status {status} for {:?}: {body}",
                String::from_utf8_lossy(b)
            );
            assert!(body["error"]["message"].is_string(), "{body}");
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    println!(
        "{} fuzzed bodies: statuses {statuses:?} ({ok_answers} still valid)",
        bodies.len()
    );
    assert!(bodies.len() >= 300);
    let after = post(&url, &valid(), k);
    assert_eq!(after.0, 200, "the server keeps serving: {}", after.1);
    server.shutdown().unwrap();
}

#[test]
fn full_queue_answers_429_and_a_disconnect_frees_the_slot() {
    let server = start(|s| {
        s.max_concurrent = 1;
        s.max_queue = 0;
    });
    let url = format!("{}/v1/chat/completions", server.base_url());
    let mut long = valid();
    long["max_tokens"] = json!(400);
    long["stream"] = json!(true);
    long["messages"][0]["content"] = json!("Write a long story about a dragon.");
    let resp = agent()
        .post(&url)
        .header("Content-Type", "application/json")
        .send(long.to_string().as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
    // Wait for the first content so the stream surely holds the only slot.
    for line in lines.by_ref() {
        if line.unwrap().contains("\"content\":\"") {
            break;
        }
    }
    assert_error(&post(&url, &valid(), None), 429, "full");
    drop(lines); // the client goes away mid-stream
    let start = Instant::now();
    loop {
        let (status, body) = post(&url, &valid(), None);
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the slot was not freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("slot freed {:?} after the disconnect", start.elapsed());
    server.shutdown().unwrap();
}
