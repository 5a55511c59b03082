//! A long prompt does not freeze the running streams: it is prefilled a chunk per step
//! (`engine::PREFILL_CHUNK`), so a stream that is decoding keeps getting tokens between the
//! chunks instead of waiting for the whole prefill; the chunked prompt's greedy answer is
//! the library's.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::Device;
use common::{agent, demo_config, post, start};
use ferrotune_data::message::{Message, Role};
use ferrotune_infer::chat::ChatModel;
use serde_json::json;

#[test]
fn a_running_stream_keeps_decoding_while_a_long_prompt_is_prefilled() {
    let server = start(|s| s.max_concurrent = 4);
    let base = server.base_url();
    // Stream A: counting, which runs long without an end-of-text token.
    let resp = agent()
        .post(format!("{base}/v1/completions"))
        .header("Content-Type", "application/json")
        .send(
            json!({"model": "gpt-3.5-turbo", "prompt": "1, 2, 3, 4, 5,", "max_tokens": 4000,
                   "temperature": 0, "stream": true})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let reader = {
        let times = Arc::clone(&times);
        std::thread::spawn(move || {
            for line in BufReader::new(resp.into_body().into_reader()).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("data: {") {
                    times.lock().unwrap().push(Instant::now());
                }
                if line == "data: [DONE]" || times.lock().unwrap().len() > 3000 {
                    break;
                }
            }
        })
    };
    while times.lock().unwrap().len() < 5 {
        std::thread::sleep(Duration::from_millis(20));
    }
    // B: a chat prompt of about 1600 tokens, four chunks.
    let long = format!(
        "{}\nHow many times did the fox jump?",
        "The quick brown fox jumps over the lazy dog. ".repeat(160)
    );
    let b_start = Instant::now();
    let (status, body) = post(
        &format!("{base}/v1/chat/completions"),
        &json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": long}],
                "max_tokens": 4, "temperature": 0}),
        None,
    );
    let b_end = Instant::now();
    assert_eq!(status, 200, "{body}");
    let prompt_tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_tokens > 1600, "{body}");
    // Wait for A's first token after B, which closes A's last pause.
    let waited = Instant::now();
    while times.lock().unwrap().last().is_none_or(|&t| t <= b_end)
        && waited.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stamps = times.lock().unwrap().clone();
    assert!(
        stamps.last().is_some_and(|&t| t > b_end),
        "stream A ended ({} chunks) {:?} before B finished ({:?}); make it longer",
        stamps.len(),
        stamps.last().map(|t| b_end - *t),
        b_end - b_start
    );
    // Longest pause of A while B ran (the gaps that overlap B's window).
    let max_gap = stamps
        .windows(2)
        .filter(|w| w[1] > b_start && w[0] < b_end)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap();
    let b_time = b_end - b_start;
    println!("B ({prompt_tokens} prompt tokens) took {b_time:?}; A's longest pause {max_gap:?}");
    assert!(
        max_gap.as_secs_f64() < 0.6 * b_time.as_secs_f64(),
        "stream A paused {max_gap:?} of B's {b_time:?}: the long prompt was prefilled in one step"
    );
    drop(reader); // detached; the server's shutdown ends the stream
    server.shutdown().unwrap();

    // The answer of the prompt prefilled in chunks begins the library's greedy answer.
    let chat = ChatModel::from_config(&demo_config(), &Device::Cpu).unwrap();
    let want = chat
        .chat(&[Message::new(Role::User, &long)], None, None, &mut |_| {})
        .unwrap()
        .text;
    let got = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        !got.is_empty() && want.starts_with(got),
        "{got:?} vs the library's {want:?}"
    );
}
