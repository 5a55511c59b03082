//! Tool use in prompts: how the `tools` JSON is described to the model, how an assistant's
//! tool calls are written, and how they are read back from generated text.
//!
//! Follows LLaMA-Factory v0.9.5 `data/tool_utils.py` (`DefaultToolUtils`, `GLM4ToolUtils`,
//! `Llama3ToolUtils`, `MistralToolUtils`, `QwenToolUtils`) and `FunctionFormatter` in
//! `data/formatter.py`. JSON is written as Python's `json.dumps(..., ensure_ascii=False)`
//! writes it (`", "` and `": "` separators, key order kept).

mod extract;
mod prompts;

use minijinja::Value;
use serde_json::Value as Json;

use crate::chat_template::python::{json_dumps, DumpsOptions};
use crate::error::DataError;

/// An opening and a closing marker, e.g. `("<tool_call>", "</tool_call>")`.
pub type Markers = (String, String);

/// One tool call: the function's name and its arguments as a JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The function to call.
    pub name: String,
    /// Its arguments, a JSON object written as Python's `json.dumps(ensure_ascii=False)`.
    pub arguments: String,
}

/// A tool-use dialect (LLaMA-Factory's `tool_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// ReAct style: `Action: name` / `Action Input: {...}`.
    Default,
    /// GLM-4: `name\n{arguments}`, one call per message.
    Glm4,
    /// Llama 3.1 JSON tool calling: `{"name": ..., "parameters": {...}}`.
    Llama3,
    /// Mistral v0.3: `[AVAILABLE_TOOLS]` and a JSON list of calls.
    Mistral,
    /// Qwen 2.5: calls inside `<tool_call>` tags.
    Qwen,
}

impl ToolFormat {
    /// The format named `name` (`default`, `glm4`, `llama3`, `mistral`, `qwen`).
    ///
    /// # Errors
    /// [`DataError::PromptTemplate`] for another name, listing the supported ones.
    pub fn from_name(name: &str) -> Result<ToolFormat, DataError> {
        Ok(match name {
            "default" => ToolFormat::Default,
            "glm4" => ToolFormat::Glm4,
            "llama3" => ToolFormat::Llama3,
            "mistral" => ToolFormat::Mistral,
            "qwen" => ToolFormat::Qwen,
            other => {
                return Err(DataError::PromptTemplate {
                    template: String::new(),
                    message: format!(
                        "unknown tool_format `{other}`; supported: default, glm4, llama3, mistral, qwen (hint: fix `tool_format`)"
                    ),
                })
            }
        })
    }

    /// The system-message text describing `tools`, a JSON list of tool schemas (objects with
    /// `name`, `description`, `parameters`, optionally wrapped as `{"type": "function",
    /// "function": ...}`). An empty list gives no text.
    ///
    /// # Errors
    /// [`DataError::ToolJson`] when `tools` is not a JSON list of such objects.
    pub fn format_tools(self, tools: &str) -> Result<String, DataError> {
        let parsed: Json = serde_json::from_str(tools)
            .map_err(|e| tool_error(format!("tools {:?}", shorten(tools)), e.to_string()))?;
        let list = match &parsed {
            Json::Array(list) => list.as_slice(),
            Json::Object(map) if map.is_empty() => return Ok(String::new()),
            _ => {
                return Err(tool_error(
                    format!("tools {:?}", shorten(tools)),
                    "expected a JSON list".into(),
                ))
            }
        };
        if list.is_empty() {
            return Ok(String::new());
        }
        prompts::describe_tools(self, list)
    }

    /// Writes `calls` as the assistant's tool-call text.
    ///
    /// # Errors
    /// [`DataError::ToolJson`] when an argument text is not JSON, or for several calls in GLM-4.
    pub fn format_calls(self, calls: &[ToolCall]) -> Result<String, DataError> {
        prompts::write_calls(self, calls)
    }

    /// The tool calls in generated `text`, or `None` when it holds none in this format
    /// (LLaMA-Factory then treats the text as a plain answer).
    pub fn extract_tool_calls(self, text: &str) -> Option<Vec<ToolCall>> {
        match self {
            ToolFormat::Default => extract::default_calls(text),
            ToolFormat::Glm4 => extract::glm4_calls(text),
            ToolFormat::Llama3 => extract::json_calls(text, "parameters"),
            ToolFormat::Mistral => extract::json_calls(text, "arguments"),
            ToolFormat::Qwen => extract::qwen_calls(text),
        }
    }

    /// Rewrites the content of a `function` message (a JSON call or list of calls, possibly
    /// preceded by a thought or wrapped in tool-call words) into this format, as
    /// LLaMA-Factory's `FunctionFormatter.apply` does. `words` are the template's
    /// (thought words, tool-call words); `None` disables both (the Llama-2 family).
    ///
    /// # Errors
    /// [`DataError::ToolJson`] when the calls are not JSON objects with `name` and `arguments`.
    pub fn format_function_message(
        self,
        content: &str,
        words: Option<(&Markers, &Markers)>,
    ) -> Result<String, DataError> {
        let (thought_words, call_words) = match words {
            Some((t, c)) => (Some(t), Some(c)),
            None => (None, None),
        };
        if let Some((whole, inner)) = call_words.and_then(|(a, b)| find_between(content, a, b)) {
            let thought = content.replace(whole, "");
            return Ok(thought + &self.format_calls(&parse_calls(inner, content)?)?);
        }
        match thought_words.and_then(|(a, b)| find_between(content, a, b)) {
            Some((whole, _)) => {
                let json_part = content.replace(whole, "");
                Ok(whole.to_owned() + &self.format_calls(&parse_calls(&json_part, content)?)?)
            }
            None => self.format_calls(&parse_calls(content, content)?),
        }
    }
}

/// The first `open … close` span of `text` (shortest close after the first open) and its inside.
pub(crate) fn find_between<'t>(
    text: &'t str,
    open: &str,
    close: &str,
) -> Option<(&'t str, &'t str)> {
    let start = text.find(open)?;
    let inner_start = start + open.len();
    let inner_len = text[inner_start..].find(close)?;
    let end = inner_start + inner_len + close.len();
    Some((
        &text[start..end],
        &text[inner_start..inner_start + inner_len],
    ))
}

/// Parses a function message's JSON: one `{"name", "arguments"}` object or a list of them.
fn parse_calls(json: &str, content: &str) -> Result<Vec<ToolCall>, DataError> {
    let what = || format!("function message {:?}", shorten(content));
    let parsed: Json = serde_json::from_str(json).map_err(|e| tool_error(what(), e.to_string()))?;
    let items = match parsed {
        Json::Array(items) => items,
        other => vec![other],
    };
    items
        .iter()
        .map(|call| {
            let name = call.get("name").and_then(Json::as_str);
            match (name, call.get("arguments")) {
                (Some(name), Some(arguments)) => Ok(ToolCall {
                    name: name.to_owned(),
                    arguments: py_json(arguments)?,
                }),
                _ => Err(tool_error(
                    what(),
                    "each call needs a string `name` and `arguments`".into(),
                )),
            }
        })
        .collect()
}

/// `json.dumps(value, ensure_ascii=False)`, or with `indent` spaces per level.
pub(crate) fn py_json_with(value: &Json, indent: Option<usize>) -> Result<String, DataError> {
    let opts = DumpsOptions {
        indent: indent.map(|n| " ".repeat(n)),
        item_separator: if indent.is_some() { "," } else { ", " }.to_owned(),
        ..DumpsOptions::default()
    };
    json_dumps(&Value::from(minijinja::value::Serde(value)), &opts)
        .map_err(|e| tool_error("json".into(), e.to_string()))
}

/// `json.dumps(value, ensure_ascii=False)`.
pub(crate) fn py_json(value: &Json) -> Result<String, DataError> {
    py_json_with(value, None)
}

/// A [`DataError::ToolJson`].
pub(crate) fn tool_error(what: String, message: String) -> DataError {
    DataError::ToolJson { what, message }
}

/// `text` cut to 80 characters for error messages.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}
