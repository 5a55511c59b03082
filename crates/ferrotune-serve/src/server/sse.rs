//! The streamed answer: server-sent events with one chunk per piece of text (tool calls sent
//! whole once parsed), a finish chunk per choice, the usage chunk when asked, then
//! `data: [DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use super::admission::Permit;
use super::answer::{engine_failure, finish_name};
use super::chat::{parse_calls, tool_call_json};
use super::validate::{Job, Kind};
use super::{unix_now, ApiState};
use crate::engine::SeqEvent;

/// State of one SSE answer.
struct StreamState {
    state: Arc<ApiState>,
    job: Job,
    id: String,
    created: u64,
    rx: UnboundedReceiver<(usize, SeqEvent)>,
    _permit: Permit,
    /// Events ready to send.
    out: VecDeque<Event>,
    /// Per choice: the text so far, kept when tool calls are parsed at the end.
    buffered: Vec<String>,
    done: usize,
    prompt_tokens: usize,
    completion_tokens: usize,
    finished: bool,
}

impl StreamState {
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Event {
        let model = &self.state.settings.model_name;
        let object = match self.job.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Text => "text_completion",
        };
        let mut v = json!({"id": self.id, "object": object, "created": self.created, "model": model, "choices": choices});
        if self.job.include_usage {
            v["usage"] = usage.unwrap_or(Value::Null);
        }
        Event::default().data(v.to_string())
    }

    fn delta(&self, index: usize, delta: Value, finish: Option<&str>) -> Event {
        let choice = match self.job.kind {
            Kind::Chat => {
                json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            Kind::Text => json!({
                "index": index,
                "text": delta.get("content").and_then(Value::as_str).unwrap_or(""),
                "logprobs": null,
                "finish_reason": finish,
            }),
        };
        self.chunk(json!([choice]), None)
    }

    /// Turns one engine event into chunks.
    fn on_event(&mut self, index: usize, ev: SeqEvent) {
        match ev {
            SeqEvent::Text(t) => {
                if self.job.tools.is_some() {
                    if let Some(b) = self.buffered.get_mut(index) {
                        b.push_str(&t);
                    }
                } else {
                    let e = self.delta(index, json!({"content": t}), None);
                    self.out.push_back(e);
                }
            }
            SeqEvent::Finished {
                finish,
                prompt_tokens,
                completion_tokens,
            } => {
                self.prompt_tokens = prompt_tokens;
                self.completion_tokens += completion_tokens;
                self.done += 1;
                let text = self.buffered.get(index).cloned().unwrap_or_default();
                let mut reason = finish_name(Some(finish));
                if self.job.tools.is_some() {
                    match parse_calls(&self.job, &text) {
                        Some(calls) => {
                            let list: Vec<Value> = calls
                                .iter()
                                .enumerate()
                                .map(|(k, c)| tool_call_json(c, Some(k)))
                                .collect();
                            let e = self.delta(index, json!({"tool_calls": list}), None);
                            self.out.push_back(e);
                            reason = "tool_calls";
                        }
                        None if !text.is_empty() => {
                            let e = self.delta(index, json!({"content": text}), None);
                            self.out.push_back(e);
                        }
                        None => {}
                    }
                }
                let e = self.delta(index, json!({}), Some(reason));
                self.out.push_back(e);
                if self.done == self.job.n {
                    self.finish();
                }
            }
            SeqEvent::Failed(msg) => {
                let err = engine_failure(&msg);
                self.out
                    .push_back(Event::default().data(err.body().to_string()));
                self.finish_logged("failed");
                self.out.push_back(Event::default().data("[DONE]"));
                self.finished = true;
            }
        }
    }

    fn finish(&mut self) {
        if self.job.include_usage {
            let usage = json!({
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            });
            let e = self.chunk(json!([]), Some(usage));
            self.out.push_back(e);
        }
        self.finish_logged("done");
        self.out.push_back(Event::default().data("[DONE]"));
        self.finished = true;
    }

    fn finish_logged(&self, outcome: &str) {
        tracing::info!(id = %self.id, outcome, prompt_tokens = self.prompt_tokens, completion_tokens = self.completion_tokens, "stream finished");
    }
}

/// Answers with an SSE stream of `job`'s events; the `permit` is held until the stream ends or
/// its client goes away.
pub(super) fn stream_answer(
    state: Arc<ApiState>,
    job: Job,
    id: String,
    rx: UnboundedReceiver<(usize, SeqEvent)>,
    permit: Permit,
) -> Response {
    let n = job.n;
    let mut st = StreamState {
        state,
        id,
        created: unix_now(),
        rx,
        _permit: permit,
        out: VecDeque::new(),
        buffered: vec![String::new(); n],
        done: 0,
        prompt_tokens: job.prompt_ids.len(),
        completion_tokens: 0,
        finished: false,
        job,
    };
    if st.job.kind == Kind::Chat {
        for i in 0..n {
            let e = st.delta(i, json!({"role": "assistant", "content": ""}), None);
            st.out.push_back(e);
        }
    }
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.out.pop_front() {
                return Some((Ok::<Event, Infallible>(e), st));
            }
            if st.finished {
                return None;
            }
            match st.rx.recv().await {
                Some((i, ev)) => st.on_event(i, ev),
                None => {
                    st.on_event(
                        0,
                        SeqEvent::Failed("the generation engine stopped mid-request".into()),
                    );
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
