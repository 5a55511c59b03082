//! The request bodies of OpenAI's chat and text completion endpoints (the fields this server
//! reads; others are ignored), as the OpenAI API reference describes them.

use serde::Deserialize;
use serde_json::Value;

/// `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    /// Must equal the served model's name (`API_MODEL_NAME`).
    pub model: String,
    /// The conversation: an optional system message, then user/tool and assistant turns
    /// alternating, ending with a user or tool message.
    pub messages: Vec<ChatMessage>,
    /// The sampling knobs shared with text completions.
    #[serde(flatten)]
    pub sampling: SamplingFields,
    /// Tool schemas `[{"type": "function", "function": {"name", "description", "parameters"}}]`.
    pub tools: Option<Value>,
    /// `"none"`, `"auto"`, `"required"` or `{"type": "function", "function": {"name": ...}}`.
    pub tool_choice: Option<Value>,
}

/// One message of a conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer` (as system), `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or a list of content parts of which only `{"type": "text", "text": ...}` is read;
    /// may be null for an assistant message that carries tool calls.
    pub content: Option<Value>,
    /// The calls an assistant made: `[{"id", "type": "function", "function": {"name", "arguments"}}]`.
    pub tool_calls: Option<Vec<Value>>,
}

/// `POST /v1/completions` body.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// Must equal the served model's name.
    pub model: String,
    /// The prompt: a string, or a list holding one string.
    pub prompt: Value,
    /// The sampling knobs shared with chat completions.
    #[serde(flatten)]
    pub sampling: SamplingFields,
    /// Echo the prompt back: only `false` is served.
    pub echo: Option<bool>,
}

/// The generation fields of both endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SamplingFields {
    /// 0 means greedy decoding; otherwise in `(0, 2]`. Default: the config's.
    pub temperature: Option<f64>,
    /// Nucleus sampling, `(0, 1]`. Default: the config's.
    pub top_p: Option<f64>,
    /// New-token limit (legacy name).
    pub max_tokens: Option<u64>,
    /// New-token limit; wins over `max_tokens`.
    pub max_completion_tokens: Option<u64>,
    /// Up to 4 stop strings, or one.
    pub stop: Option<Value>,
    /// Choices to generate, 1 to 8. Default: 1.
    pub n: Option<u64>,
    /// Seed of the sampler; the same seed and request give the same answer.
    pub seed: Option<i64>,
    /// In `[-2, 2]`. Default: 0.
    pub presence_penalty: Option<f64>,
    /// In `[-2, 2]`. Default: 0.
    pub frequency_penalty: Option<f64>,
    /// Stream server-sent events. Default: false.
    pub stream: Option<bool>,
    /// `{"include_usage": true}` adds a last chunk with the usage counts.
    pub stream_options: Option<StreamOptions>,
    /// Token log-probabilities: only false/null is served.
    pub logprobs: Option<Value>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with `usage` (and empty `choices`).
    pub include_usage: Option<bool>,
}
