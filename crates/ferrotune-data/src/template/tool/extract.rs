//! Reading tool calls back from generated text (`tool_extractor` of each format in
//! LLaMA-Factory v0.9.5 `data/tool_utils.py`). The regular expressions there are matched by
//! hand here, with the same leftmost, lazy semantics; `None` means "no tool call" (the
//! Python returns the text unchanged).

use serde_json::Value as Json;

use super::{py_json, ToolCall};

/// Default (ReAct) format: every `Action: name` followed by `Action Input: json`, the input
/// running lazily up to the next `Action:` or the end (regex
/// `Action:\s*([a-zA-Z0-9_]+)\s*Action Input:\s*(.+?)(?=\s*Action:|\s*$)`, DOTALL).
pub(super) fn default_calls(text: &str) -> Option<Vec<ToolCall>> {
    let mut calls = Vec::new();
    let mut pos = 0;
    while let Some(found) = text[pos..].find("Action:") {
        let start = pos + found;
        match match_action(text, start + "Action:".len()) {
            Some((name, input, end)) => {
                let input = input.trim().trim_matches('"').trim_matches('`');
                let arguments: Json = serde_json::from_str(input).ok()?;
                calls.push(ToolCall {
                    name: name.trim().to_owned(),
                    arguments: py_json(&arguments).ok()?,
                });
                pos = end;
            }
            None => pos = start + 1,
        }
    }
    (!calls.is_empty()).then_some(calls)
}

/// Matches `\s*name\s*Action Input:\s*(.+?)` with its lookahead from byte `at`; returns the
/// name, the input and where the match ends.
fn match_action(text: &str, at: usize) -> Option<(&str, &str, usize)> {
    let rest = &text[at..];
    let name_start = at + (rest.len() - rest.trim_start().len());
    let name_run = text[name_start..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len() - name_start);
    // The name gives back characters only if that lets `Action Input:` match right after it.
    (1..=name_run).rev().find_map(|len| {
        let name = &text[name_start..name_start + len];
        let after = &text[name_start + len..];
        let label = after.trim_start().strip_prefix("Action Input:")?;
        let input_at = text.len() - label.len();
        lazy_input(text, input_at).map(|(input, end)| (name, input, end))
    })
}

/// The lazy `\s*(.+?)(?=\s*Action:|\s*$)` from byte `at`: the shortest non-empty input after
/// the whitespace that is followed by whitespace and then `Action:` or the end.
fn lazy_input(text: &str, at: usize) -> Option<(&str, usize)> {
    let trimmed = text[at..].trim_start();
    let mut input_at = text.len() - trimmed.len();
    if input_at == text.len() {
        // Only whitespace left: the greedy `\s*` gives its last character back to `.+?`.
        input_at = text[at..].char_indices().last().map(|(i, _)| at + i)?;
    }
    let mut ends = text[input_at..]
        .char_indices()
        .skip(1)
        .map(|(i, _)| input_at + i);
    let end = ends
        .find(|&end| {
            let tail = text[end..].trim_start();
            tail.is_empty() || tail.starts_with("Action:")
        })
        .unwrap_or(text.len());
    Some((&text[input_at..end], end))
}

/// GLM-4: the first line is the name, the rest the JSON arguments.
pub(super) fn glm4_calls(text: &str) -> Option<Vec<ToolCall>> {
    let (name, input) = text.split_once('\n')?;
    let arguments: Json = serde_json::from_str(input.trim()).ok()?;
    Some(vec![ToolCall {
        name: name.to_owned(),
        arguments: py_json(&arguments).ok()?,
    }])
}

/// Llama 3 / Mistral: the whole text is a JSON call or list of calls with `name` and
/// `args_key` (`parameters` or `arguments`).
pub(super) fn json_calls(text: &str, args_key: &str) -> Option<Vec<ToolCall>> {
    let parsed: Json = serde_json::from_str(text.trim()).ok()?;
    let items = match parsed {
        Json::Array(items) => items,
        other => vec![other],
    };
    items.iter().map(|item| call_of(item, args_key)).collect()
}

/// Qwen: each `<tool_call>json</tool_call>` followed only by whitespace and another
/// `<tool_call>` or the end (regex `<tool_call>(.+?)</tool_call>(?=\s*<tool_call>|\s*$)`).
pub(super) fn qwen_calls(text: &str) -> Option<Vec<ToolCall>> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut bodies = Vec::new();
    let mut pos = 0;
    while let Some(found) = text[pos..].find(OPEN) {
        let start = pos + found;
        let body_at = start + OPEN.len();
        let first_char = text[body_at..].chars().next().map_or(0, char::len_utf8);
        let mut search = body_at + first_char;
        let mut matched = None;
        while first_char > 0 && search <= text.len() {
            let Some(close) = text[search..].find(CLOSE) else {
                break;
            };
            let close_at = search + close;
            let end = close_at + CLOSE.len();
            let tail = text[end..].trim_start();
            if tail.is_empty() || tail.starts_with(OPEN) {
                matched = Some((&text[body_at..close_at], end));
                break;
            }
            search = close_at + 1;
        }
        match matched {
            Some((body, end)) => {
                bodies.push(body);
                pos = end;
            }
            None => pos = start + 1,
        }
    }
    if bodies.is_empty() {
        return None;
    }
    bodies
        .into_iter()
        .map(|body| call_of(&serde_json::from_str(body.trim()).ok()?, "arguments"))
        .collect()
}

/// A call from a JSON object with a string `name` and `args_key`.
fn call_of(item: &Json, args_key: &str) -> Option<ToolCall> {
    Some(ToolCall {
        name: item.get("name")?.as_str()?.to_owned(),
        arguments: py_json(item.get(args_key)?).ok()?,
    })
}
