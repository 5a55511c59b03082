//! Request checks: the body (size, JSON, schema), the model name and the sampling fields,
//! turned into a [`Job`] for the engine or an OpenAI-shaped [`ApiError`] (400/404/413/422).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use ferrotune_infer::GenerationParams;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::chat::ToolParse;
use super::ApiState;
use crate::engine::Sampling;
use crate::error::ApiError;
use crate::openai::{CompletionRequest, SamplingFields};

/// Most choices (`n`) one request may ask for.
pub(super) const MAX_CHOICES: u64 = 8;

/// Parses a JSON body: 413 past the size limit, 400 for malformed JSON, 422 when it does not
/// fit the schema.
pub(super) fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rej| {
        let status = rej.status();
        let err = ApiError::invalid(
            None,
            format!("cannot read the request body: {}", rej.body_text()),
        );
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            err.with_status(status).with_code("request_too_large")
        } else {
            err
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                ApiError::unprocessable(format!("the body does not fit the request schema: {e}"))
            }
            _ => ApiError::invalid(None, format!("malformed JSON body: {e}"))
                .with_code("invalid_json"),
        }
    })
}

/// 404 `model_not_found` unless `model` is the served model's name.
pub(super) fn check_model(state: &ApiState, model: &str) -> Result<(), ApiError> {
    if model == state.settings.model_name {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "the model `{model}` does not exist; this server serves `{}` (see GET /v1/models)",
            state.settings.model_name
        ),
        kind: "invalid_request_error",
        param: Some("model".into()),
        code: Some("model_not_found"),
    })
}

/// Which endpoint's answer shapes to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Text,
}

/// A checked request, ready for the engine.
#[derive(Debug)]
pub(super) struct Job {
    /// The endpoint, for the answer's shape.
    pub(super) kind: Kind,
    /// The prompt, ready to prefill.
    pub(super) prompt_ids: Vec<u32>,
    /// Choices to generate (`n`).
    pub(super) n: usize,
    /// Token choice; choice i uses seed + i.
    pub(super) sampling: Sampling,
    /// New-token limit, within the context.
    pub(super) max_new_tokens: usize,
    /// Stop strings.
    pub(super) stop: Vec<String>,
    /// Answer with server-sent events.
    pub(super) stream: bool,
    /// Send a last chunk with the usage counts (streams only).
    pub(super) include_usage: bool,
    /// Tool calls are parsed from the answer (chat with tools); the text the model was forced
    /// to start with comes first.
    pub(super) tools: Option<ToolParse>,
}

/// Checks a `/v1/completions` body: one non-empty string prompt, no `echo`.
pub(super) fn text_job(
    state: &ApiState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Job, ApiError> {
    let req: CompletionRequest = parse_body(body)?;
    check_model(state, &req.model)?;
    if req.echo == Some(true) {
        return Err(ApiError::invalid(
            Some("echo".into()),
            "`echo` is not supported; hint: leave it out",
        ));
    }
    let prompt = match &req.prompt {
        Value::String(s) => s.clone(),
        Value::Array(items) => match items.as_slice() {
            [Value::String(s)] => s.clone(),
            _ => {
                return Err(ApiError::invalid(
                    Some("prompt".into()),
                    "`prompt` must be a string or a list of exactly one string",
                ))
            }
        },
        _ => {
            return Err(ApiError::invalid(
                Some("prompt".into()),
                "`prompt` must be a string",
            ))
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid(
            Some("prompt".into()),
            "`prompt` is empty",
        ));
    }
    let prompt_ids = state
        .chat
        .generator()
        .tokenizer()
        .encode(&prompt, true)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if prompt_ids.is_empty() {
        return Err(ApiError::invalid(
            Some("prompt".into()),
            "`prompt` encodes to no tokens",
        ));
    }
    job_from(state, Kind::Text, prompt_ids, &req.sampling, None)
}

/// Checks the sampling fields against the config's defaults and the model's context.
pub(super) fn job_from(
    state: &ApiState,
    kind: Kind,
    prompt_ids: Vec<u32>,
    f: &SamplingFields,
    tools: Option<ToolParse>,
) -> Result<Job, ApiError> {
    let bad = |param: &str, msg: String| Err(ApiError::invalid(Some(param.to_string()), msg));
    let defaults: &GenerationParams = state.chat.params();
    let mut params = defaults.clone();
    if let Some(t) = f.temperature {
        if !(0.0..=2.0).contains(&t) {
            return bad(
                "temperature",
                format!("`temperature` = {t} must lie in [0, 2]"),
            );
        }
        params.do_sample = t > 0.0;
        params.temperature = if t > 0.0 { t } else { 1.0 };
    }
    if let Some(p) = f.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return bad("top_p", format!("`top_p` = {p} must lie in (0, 1]"));
        }
        params.top_p = p;
    }
    params.seed = match f.seed {
        Some(s) => s as u64,
        None => rand::random(),
    };
    let penalty = |name: &str, v: Option<f64>| -> Result<f32, ApiError> {
        match v {
            None => Ok(0.0),
            Some(x) if (-2.0..=2.0).contains(&x) => Ok(x as f32),
            Some(x) => Err(ApiError::invalid(
                Some(name.into()),
                format!("`{name}` = {x} must lie in [-2, 2]"),
            )),
        }
    };
    let presence_penalty = penalty("presence_penalty", f.presence_penalty)?;
    let frequency_penalty = penalty("frequency_penalty", f.frequency_penalty)?;
    let n = f.n.unwrap_or(1);
    if !(1..=MAX_CHOICES).contains(&n) {
        return bad("n", format!("`n` = {n} must lie in [1, {MAX_CHOICES}]"));
    }
    if matches!(&f.logprobs, Some(v) if v != &Value::Bool(false) && !v.is_null()) {
        return bad(
            "logprobs",
            "`logprobs` is not supported; hint: leave it out".into(),
        );
    }
    let stop = match &f.stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= 4 => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::invalid(Some("stop".into()), "`stop` must hold strings"))?,
        Some(_) => {
            return bad(
                "stop",
                "`stop` must be a string or a list of up to 4 strings".into(),
            )
        }
    };
    let ctx = state
        .chat
        .generator()
        .model()
        .config
        .max_position_embeddings;
    let room = ctx.saturating_sub(prompt_ids.len());
    if room == 0 {
        return Err(ApiError::invalid(
            Some("messages".into()),
            format!("the prompt has {} tokens and fills the model's context of {ctx}; hint: shorten the conversation", prompt_ids.len()),
        )
        .with_code("context_length_exceeded"));
    }
    let max_new_tokens = match f.max_completion_tokens.or(f.max_tokens) {
        Some(0) => return bad("max_tokens", "`max_tokens` must be ≥ 1".into()),
        Some(m) if m as usize > room => {
            return Err(ApiError::invalid(
                Some("max_tokens".into()),
                format!(
                    "the prompt has {} tokens, so `max_tokens` = {m} goes past the model's context of {ctx}; hint: ask for at most {room}",
                    prompt_ids.len()
                ),
            )
            .with_code("context_length_exceeded"))
        }
        Some(m) => m as usize,
        None => params.new_token_budget(prompt_ids.len()).unwrap_or(room).min(room),
    };
    params
        .validate()
        .map_err(|e| ApiError::invalid(None, e.to_string()))?;
    Ok(Job {
        kind,
        prompt_ids,
        n: n as usize,
        sampling: Sampling {
            params,
            presence_penalty,
            frequency_penalty,
        },
        max_new_tokens,
        stop,
        stream: f.stream.unwrap_or(false),
        include_usage: f
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        tools,
    })
}
