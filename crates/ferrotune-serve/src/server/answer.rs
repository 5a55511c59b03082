//! The whole answer of a request that does not stream: every choice collected, then one
//! `chat.completion` or `text_completion` object with usage counts.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use super::admission::Permit;
use super::chat::{parse_calls, tool_call_json};
use super::request_log::LoggedTokens;
use super::validate::{Job, Kind};
use super::{unix_now, ApiState};
use crate::engine::{Finish, SeqEvent};
use crate::error::ApiError;

/// One finished choice.
#[derive(Debug, Clone, Default)]
struct ChoiceOut {
    text: String,
    finish: Option<Finish>,
    completion_tokens: usize,
}

/// OpenAI's `finish_reason` of a finished choice without tool calls.
pub(super) fn finish_name(finish: Option<Finish>) -> &'static str {
    match finish {
        Some(Finish::Length) => "length",
        _ => "stop",
    }
}

/// Waits for every choice of `job`, then answers with one JSON object.
pub(super) async fn whole_answer(
    state: Arc<ApiState>,
    job: Job,
    id: String,
    mut rx: UnboundedReceiver<(usize, SeqEvent)>,
    permit: Permit,
) -> Response {
    let mut choices = vec![ChoiceOut::default(); job.n];
    let mut done = 0;
    let mut prompt_tokens = job.prompt_ids.len();
    while done < job.n {
        let Some((i, ev)) = rx.recv().await else {
            return ApiError::internal("the generation engine stopped mid-request").into_response();
        };
        let Some(c) = choices.get_mut(i) else {
            continue;
        };
        match ev {
            SeqEvent::Text(t) => c.text.push_str(&t),
            SeqEvent::Finished {
                finish,
                prompt_tokens: p,
                completion_tokens,
            } => {
                c.finish = Some(finish);
                c.completion_tokens = completion_tokens;
                prompt_tokens = p;
                done += 1;
            }
            SeqEvent::Failed(msg) => return engine_failure(&msg).into_response(),
        }
    }
    drop(permit);
    let completion: usize = choices.iter().map(|c| c.completion_tokens).sum();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    });
    let model = &state.settings.model_name;
    let body = match job.kind {
        Kind::Chat => {
            let choices: Vec<Value> = choices
                .iter()
                .enumerate()
                .map(|(i, c)| match parse_calls(&job, &c.text) {
                    Some(calls) => json!({
                        "index": i,
                        "message": {
                            "role": "assistant",
                            "content": null,
                            "tool_calls": calls.iter().map(|call| tool_call_json(call, None)).collect::<Vec<_>>(),
                        },
                        "logprobs": null,
                        "finish_reason": "tool_calls",
                    }),
                    None => json!({
                        "index": i,
                        "message": {"role": "assistant", "content": c.text},
                        "logprobs": null,
                        "finish_reason": finish_name(c.finish),
                    }),
                })
                .collect();
            json!({"id": id, "object": "chat.completion", "created": unix_now(), "model": model, "choices": choices, "usage": usage})
        }
        Kind::Text => {
            let choices: Vec<Value> = choices
                .iter()
                .enumerate()
                .map(|(i, c)| json!({"index": i, "text": c.text, "logprobs": null, "finish_reason": finish_name(c.finish)}))
                .collect();
            json!({"id": id, "object": "text_completion", "created": unix_now(), "model": model, "choices": choices, "usage": usage})
        }
    };
    let mut resp = Json(body).into_response();
    resp.extensions_mut().insert(LoggedTokens {
        prompt: prompt_tokens,
        completion,
    });
    resp
}

/// A failed sequence as an error: 503 while shutting down, else 500.
pub(super) fn engine_failure(msg: &str) -> ApiError {
    let err = ApiError::internal(format!("generation failed: {msg}"));
    if msg.contains("shutting down") {
        err.with_status(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        err
    }
}
