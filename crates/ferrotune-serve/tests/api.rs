//! The server over HTTP on a free loopback port, with the demo model: greedy answers (whole,
//! streamed, and several at once through continuous batching) equal the library's
//! `ChatModel::chat`, usage counts equal the tokenizer's, and tool calls come back as
//! OpenAI `tool_calls`. Needs the demo model (`scripts/fetch_model.sh`).

mod common;

use std::thread;

use candle_core::Device;
use common::{demo_config, get, post, post_stream, start};
use ferrotune_data::message::{Message, Role};
use ferrotune_infer::chat::ChatModel;
use serde_json::{json, Value};

fn chat_body(question: &str, max_tokens: u64) -> Value {
    json!({
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": max_tokens,
    })
}

#[test]
fn greedy_answers_equal_the_library_whole_streamed_and_batched() {
    let server = start(|_| {});
    let url = format!("{}/v1/chat/completions", server.base_url());
    let chat = ChatModel::from_config(&demo_config(), &Device::Cpu).unwrap();
    let library = |q: &str| {
        let messages = [Message::new(Role::User, q)];
        let out = chat.chat(&messages, None, None, &mut |_| {}).unwrap();
        let prompt = chat.prompt_ids(&messages, None, None).unwrap();
        (out.text, prompt.len(), out.generation.token_ids.len())
    };

    let (status, models) = get(&format!("{}/v1/models", server.base_url()), None);
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "gpt-3.5-turbo");

    // Whole answer.
    let q = "What is the capital of France?";
    let (want, prompt_len, gen_len) = library(q);
    assert!(want.contains("Paris"), "{want}");
    let (status, body) = post(&url, &chat_body(q, 16), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], want.as_str());
    assert_eq!(body["usage"]["prompt_tokens"], prompt_len);
    assert_eq!(body["usage"]["completion_tokens"], gen_len);
    assert_eq!(body["usage"]["total_tokens"], prompt_len + gen_len);
    let finish = if gen_len < 16 { "stop" } else { "length" };
    assert_eq!(body["choices"][0]["finish_reason"], finish);

    // Streamed: the deltas concatenate to the same text; usage in the last chunk.
    let mut stream_body = chat_body(q, 16);
    stream_body["stream"] = json!(true);
    stream_body["stream_options"] = json!({"include_usage": true});
    let events = post_stream(&url, &stream_body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, want);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], gen_len);
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == finish));

    // Four different questions at once share decode steps; each answer is the library's.
    let questions = [
        "What is the capital of France?",
        "Name a color.",
        "What is 2 + 2?",
        "Say hello in Spanish.",
    ];
    let answers: Vec<(u16, Value)> = thread::scope(|s| {
        let handles: Vec<_> = questions
            .iter()
            .map(|q| {
                let url = url.clone();
                s.spawn(move || post(&url, &chat_body(q, 12), None))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (q, (status, body)) in questions.iter().zip(&answers) {
        assert_eq!(*status, 200, "{body}");
        let messages = [Message::new(Role::User, *q)];
        let mut params = chat.params().clone();
        params.max_new_tokens = 12;
        let prompt = chat.prompt_ids(&messages, None, None).unwrap();
        let want = chat
            .generator()
            .generate_text(&prompt, &params, &mut |_| {})
            .unwrap()
            .text;
        assert_eq!(
            body["choices"][0]["message"]["content"],
            want.as_str(),
            "{q}"
        );
    }

    // Plain completion: prompt tokens are the tokenizer's.
    let prompt = "The capital of France is";
    let (status, body) = post(
        &format!("{}/v1/completions", server.base_url()),
        &json!({"model": "gpt-3.5-turbo", "prompt": prompt, "max_tokens": 3, "temperature": 0}),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let ids = chat.generator().tokenizer().encode(prompt, true).unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], ids.len());
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["object"], "text_completion");
    server.shutdown().unwrap();
}

#[test]
fn forced_tool_choice_returns_a_tool_call_with_json_arguments() {
    let server = start(|_| {});
    let url = format!("{}/v1/chat/completions", server.base_url());
    let mut body = chat_body("What is the weather like in Paris today?", 48);
    body["tools"] = json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }}]);
    body["tool_choice"] = json!("required");
    let (status, out) = post(&url, &body, None);
    assert_eq!(status, 200, "{out}");
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{out}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object(), "{args}");
    assert!(choice["message"]["content"].is_null());
    // "none" leaves the tools out: a plain answer.
    body["tool_choice"] = json!("none");
    let (status, out) = post(&url, &body, None);
    assert_eq!(status, 200);
    assert!(out["choices"][0]["message"]["content"].is_string(), "{out}");
    server.shutdown().unwrap();
}
