//! Chat requests: OpenAI messages → the template's conversation and prompt ids, tool schemas
//! and `tool_choice` (a forced call starts the answer with the call's opening text), and the
//! tool calls read back from an answer.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use ferrotune_data::message::{Message, Role};
use ferrotune_data::template::{ToolCall, ToolFormat};
use serde_json::{json, Value};

use super::validate::{check_model, job_from, parse_body, Job, Kind};
use super::ApiState;
use crate::error::ApiError;
use crate::openai::{ChatCompletionRequest, ChatMessage};

/// How a chat answer with tools is read back.
#[derive(Debug, Clone)]
pub(super) struct ToolParse {
    /// The template's tool-call format.
    pub(super) format: ToolFormat,
    /// What the model was made to start with (`tool_choice` required or named).
    pub(super) forced_prefix: String,
    /// What closes a forced call after its arguments (e.g. `}\n</tool_call>`).
    pub(super) forced_suffix: String,
    /// The open arguments object at the end of `forced_prefix` (a named call): generation
    /// stops when it closes.
    pub(super) open_json: Option<String>,
}

/// Checks a `/v1/chat/completions` body and builds its prompt: the template's rendering of the
/// conversation (with the tools unless `tool_choice` is none), plus the opening of a forced call.
pub(super) fn chat_job(
    state: &ApiState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Job, ApiError> {
    let req: ChatCompletionRequest = parse_body(body)?;
    check_model(state, &req.model)?;
    let (system, messages) = convert_messages(&req.messages)?;
    let tools = check_tools(req.tools.as_ref())?;
    let choice = ToolChoice::parse(req.tool_choice.as_ref(), tools.as_deref())?;
    let tools_json = match (&tools, &choice) {
        (Some(list), c) if *c != ToolChoice::None => Some(Value::Array(list.clone()).to_string()),
        _ => None,
    };
    let mut prompt_ids = state
        .chat
        .prompt_ids(&messages, system.as_deref(), tools_json.as_deref())
        .map_err(|e| ApiError::invalid(Some("messages".into()), e.to_string()))?;
    let format = state.template.tool_format;
    let tool_parse = if tools_json.is_some() {
        let named = match (&choice, tools.as_deref()) {
            (ToolChoice::Named(name), Some(list)) => {
                list.iter().find(|t| tool_name(t) == Some(name))
            }
            (ToolChoice::Required, Some([only])) => Some(only),
            _ => None,
        };
        let (mut forced_prefix, forced_suffix) = match (&choice, named) {
            (_, Some(tool)) => forced_call(format, tool_name(tool)),
            (ToolChoice::Required, None) => forced_call(format, None),
            _ => (String::new(), String::new()),
        };
        // Arguments of a function with parameters start with a key: open its string.
        let has_properties = named
            .and_then(|t| t.pointer("/parameters/properties"))
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_properties && forced_prefix.ends_with('{') {
            forced_prefix.push('"');
        }
        let open_json = named
            .and_then(|_| forced_prefix.rfind('{'))
            .map(|at| forced_prefix[at..].to_string());
        if !forced_prefix.is_empty() {
            let ids = state
                .chat
                .generator()
                .tokenizer()
                .encode(&forced_prefix, false)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            prompt_ids.extend(ids);
        }
        Some(ToolParse {
            format,
            forced_prefix,
            forced_suffix,
            open_json,
        })
    } else {
        None
    };
    job_from(state, Kind::Chat, prompt_ids, &req.sampling, tool_parse)
}

/// OpenAI messages → (system, turns) as LLaMA-Factory's API (`api/chat.py`,
/// `_process_request`): an optional leading system message, then user/tool at even and
/// assistant at odd positions, ending on a user or tool turn; an assistant's `tool_calls`
/// become a function turn, a tool message an observation.
fn convert_messages(msgs: &[ChatMessage]) -> Result<(Option<String>, Vec<Message>), ApiError> {
    let bad = |i: usize, msg: String| ApiError::invalid(Some(format!("messages[{i}]")), msg);
    let mut rest = msgs;
    let mut system = None;
    if let Some(first) = msgs.first() {
        if first.role == "system" || first.role == "developer" {
            system = Some(text_content(first, 0)?);
            rest = &msgs[1..];
        }
    }
    if rest.is_empty() {
        return Err(ApiError::invalid(
            Some("messages".into()),
            "`messages` holds no user message",
        ));
    }
    let offset = msgs.len() - rest.len();
    let mut out = Vec::with_capacity(rest.len());
    for (j, m) in rest.iter().enumerate() {
        let i = j + offset;
        let expect_prompt_side = j % 2 == 0;
        let role = match (m.role.as_str(), expect_prompt_side) {
            ("user", true) => Role::User,
            ("tool", true) => Role::Observation,
            ("assistant", false) if m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) => Role::Function,
            ("assistant", false) => Role::Assistant,
            ("user" | "tool" | "assistant" | "system" | "developer", _) => {
                return Err(bad(
                    i,
                    format!(
                        "role `{}` is out of order: after the optional system message, user/tool and assistant turns must alternate, starting and ending with user or tool",
                        m.role
                    ),
                ))
            }
            (other, _) => return Err(bad(i, format!("unknown role `{other}`; expected system, user, assistant or tool"))),
        };
        let content = if role == Role::Function {
            function_content(m, i)?
        } else {
            text_content(m, i)?
        };
        out.push(Message::new(role, content));
    }
    if rest.len().is_multiple_of(2) {
        return Err(ApiError::invalid(
            Some("messages".into()),
            "the conversation must end with a user or tool message",
        ));
    }
    Ok((system, out))
}

/// The text of a message: a string, or the `text` parts of a list joined.
fn text_content(m: &ChatMessage, i: usize) -> Result<String, ApiError> {
    let bad =
        |msg: &str| ApiError::invalid(Some(format!("messages[{i}].content")), msg.to_string());
    match &m.content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => return Err(bad("only text content parts ({\"type\": \"text\", \"text\": ...}) are supported")),
                }
            }
            Ok(text)
        }
        None | Some(Value::Null) if m.role == "assistant" => Ok(String::new()),
        _ => Err(bad("`content` must be a string or a list of text parts")),
    }
}

/// An assistant's tool calls as a function turn: `[{"name", "arguments"}]` JSON, arguments
/// parsed from their JSON text.
fn function_content(m: &ChatMessage, i: usize) -> Result<String, ApiError> {
    let bad = |msg: String| ApiError::invalid(Some(format!("messages[{i}].tool_calls")), msg);
    let mut calls = Vec::new();
    for call in m.tool_calls.iter().flatten() {
        let f = call
            .get("function")
            .ok_or_else(|| bad("each tool call needs `function`".into()))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`function.name` must be a string".into()))?;
        let args = match f.get("arguments") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .map_err(|e| bad(format!("`function.arguments` of `{name}` is not JSON: {e}")))?,
            Some(v @ Value::Object(_)) => v.clone(),
            _ => {
                return Err(bad(format!(
                    "`function.arguments` of `{name}` must be a JSON string"
                )))
            }
        };
        calls.push(json!({"name": name, "arguments": args}));
    }
    Ok(Value::Array(calls).to_string())
}

/// Checks `tools` and returns the function objects (`[{"name", "description", "parameters"}]`)
/// that the template describes.
fn check_tools(tools: Option<&Value>) -> Result<Option<Vec<Value>>, ApiError> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) if list.is_empty() => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ApiError::invalid(
                Some("tools".into()),
                "`tools` must be a list",
            ))
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let bad = |msg: &str| {
            ApiError::invalid(
                Some(format!("tools[{i}]")),
                format!("invalid tool schema: {msg}"),
            )
        };
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(bad("`type` must be \"function\""));
        }
        let Some(f @ Value::Object(map)) = tool.get("function") else {
            return Err(bad("`function` must be an object"));
        };
        let name = map.get("name").and_then(Value::as_str).unwrap_or("");
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(bad(
                "`function.name` must be 1-64 characters of a-z, A-Z, 0-9, _ or -",
            ));
        }
        if !matches!(map.get("description"), None | Some(Value::String(_))) {
            return Err(bad("`function.description` must be a string"));
        }
        if !matches!(map.get("parameters"), None | Some(Value::Object(_))) {
            return Err(bad("`function.parameters` must be a JSON Schema object"));
        }
        out.push(f.clone());
    }
    Ok(Some(out))
}

fn tool_name(f: &Value) -> Option<&str> {
    f.get("name").and_then(Value::as_str)
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

impl ToolChoice {
    fn parse(v: Option<&Value>, tools: Option<&[Value]>) -> Result<Self, ApiError> {
        let bad = |msg: String| ApiError::invalid(Some("tool_choice".into()), msg);
        let choice = match v {
            None | Some(Value::Null) => return Ok(ToolChoice::Auto),
            Some(Value::String(s)) => match s.as_str() {
                "none" => ToolChoice::None,
                "auto" => ToolChoice::Auto,
                "required" => ToolChoice::Required,
                other => return Err(bad(format!("unknown `tool_choice` \"{other}\"; expected none, auto, required or a function"))),
            },
            Some(obj) => match obj.get("function").and_then(tool_name) {
                Some(name) => ToolChoice::Named(name.to_string()),
                None => return Err(bad("`tool_choice` object needs `function.name`".into())),
            },
        };
        match (&choice, tools) {
            (ToolChoice::Required | ToolChoice::Named(_), None) => Err(bad(
                "`tool_choice` asks for a tool call but `tools` is empty".into(),
            )),
            (ToolChoice::Named(name), Some(list))
                if !list.iter().any(|t| tool_name(t) == Some(name)) =>
            {
                Err(bad(format!(
                    "`tool_choice` names `{name}`, which is not in `tools`"
                )))
            }
            _ => Ok(choice),
        }
    }
}

/// A tool call in `format` split around its arguments' body: with `name`, the text up to and
/// including the arguments' `{`, and the text after their `}`; without, the text up to the name
/// and nothing. Generation continues from the first part when `tool_choice` forces a call.
fn forced_call(format: ToolFormat, name: Option<&str>) -> (String, String) {
    const MARK: &str = "ferrotunetoolname";
    let call = ToolCall {
        name: name.unwrap_or(MARK).to_string(),
        arguments: "{}".into(),
    };
    let Ok(text) = format.format_calls(&[call]) else {
        return (String::new(), String::new());
    };
    match name {
        Some(_) => text.rfind("{}").map_or_else(Default::default, |i| {
            (text[..=i].to_string(), text[i + 2..].to_string())
        }),
        None => text
            .find(MARK)
            .map_or_else(Default::default, |i| (text[..i].to_string(), String::new())),
    }
}

/// A tool call as OpenAI writes it in a message.
pub(super) fn tool_call_json(call: &ToolCall, index: Option<usize>) -> Value {
    let mut v = json!({
        "id": format!("call_{:016x}", rand::random::<u64>()),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    });
    if let Some(i) = index {
        v["index"] = json!(i);
    }
    v
}

/// The tool calls of a finished chat answer, when tools were given and the text holds some.
pub(super) fn parse_calls(job: &Job, text: &str) -> Option<Vec<ToolCall>> {
    let tools = job.tools.as_ref()?;
    let full = format!("{}{}{}", tools.forced_prefix, text, tools.forced_suffix);
    tools.format.extract_tool_calls(&full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_prefixes_stop_where_the_model_continues() {
        let (pre, post) = forced_call(ToolFormat::Default, Some("get_weather"));
        assert_eq!(
            (pre.as_str(), post.as_str()),
            ("Action: get_weather\nAction Input: {", "")
        );
        assert_eq!(forced_call(ToolFormat::Default, None).0, "Action: ");
        let (pre, post) = forced_call(ToolFormat::Qwen, Some("f"));
        assert!(
            pre.starts_with("<tool_call>") && pre.ends_with("\"arguments\": {"),
            "{pre}"
        );
        assert!(
            post.starts_with('}') && post.ends_with("</tool_call>"),
            "{post}"
        );
        let text = format!("{pre}\"city\": \"Paris\"}}{post}");
        let calls = ToolFormat::Qwen.extract_tool_calls(&text).unwrap();
        assert_eq!(calls[0].arguments, r#"{"city": "Paris"}"#);
    }

    #[test]
    fn roles_must_alternate() {
        let msg = |role: &str, content: &str| ChatMessage {
            role: role.into(),
            content: Some(Value::String(content.into())),
            tool_calls: None,
        };
        let (sys, turns) = convert_messages(&[msg("system", "s"), msg("user", "u")]).unwrap();
        assert_eq!(sys.as_deref(), Some("s"));
        assert_eq!(turns, vec![Message::new(Role::User, "u")]);
        let err = convert_messages(&[msg("user", "a"), msg("user", "b")]).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1]"));
        let err = convert_messages(&[msg("user", "a"), msg("assistant", "b")]).unwrap_err();
        assert!(err.message.contains("end with a user"), "{}", err.message);
        assert!(convert_messages(&[]).is_err());
        assert!(convert_messages(&[msg("wizard", "a")])
            .unwrap_err()
            .message
            .contains("unknown role"));
    }

    #[test]
    fn tool_schemas_are_checked() {
        let good = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
        assert_eq!(check_tools(Some(&good)).unwrap().unwrap().len(), 1);
        for bad in [
            json!({"type": "function"}),
            json!([{"type": "retrieval"}]),
            json!([{"type": "function", "function": {"name": "has space"}}]),
            json!([{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        ] {
            assert!(check_tools(Some(&bad)).is_err(), "{bad}");
        }
    }
}
