//! The texts a model sees for tools: each format's tool description and tool-call writing
//! (LLaMA-Factory v0.9.5 `data/tool_utils.py`: `*_TOOL_PROMPT`, `tool_formatter`,
//! `function_formatter`). The prompt wording is the models' training data and must match
//! byte for byte.

use serde_json::{json, Map, Value as Json};

use super::{py_json, py_json_with, tool_error, ToolCall, ToolFormat};
use crate::chat_template::python::py_str;
use crate::error::DataError;

/// `DEFAULT_TOOL_PROMPT`'s text before the tool list.
const DEFAULT_HEAD: &str = "You have access to the following tools:\n";
/// `DEFAULT_TOOL_PROMPT`'s text between the tool list and the tool names.
const DEFAULT_MIDDLE: &str =
    "Use the following format if using a tool:\n```\nAction: tool name (one of [";
/// `DEFAULT_TOOL_PROMPT`'s text after the tool names.
const DEFAULT_TAIL: &str =
    "])\nAction Input: the input to the tool, in a JSON format representing the kwargs \
(e.g. ```{\"input\": \"hello world\", \"num_beams\": 5}```)\n```\n";
/// `GLM4_TOOL_PROMPT` before the tool list.
const GLM4_HEAD: &str =
    "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，\
你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具";
/// Ends each GLM-4 tool entry.
const GLM4_TOOL_TAIL: &str = "\n在调用上述函数时，请使用 Json 格式表示调用的参数。";
/// `LLAMA3_TOOL_PROMPT` before the date.
const LLAMA3_HEAD: &str = "Cutting Knowledge Date: December 2023\nToday Date: ";
/// `LLAMA3_TOOL_PROMPT` between the date and the tool list.
const LLAMA3_MIDDLE: &str = "\n\nYou have access to the following functions. To call a function, please respond with \
JSON for a function call. Respond in the format {\"name\": function name, \"parameters\": dictionary of argument \
name and its value}. Do not use variables.\n\n";
/// `QWEN_TOOL_PROMPT` before the tool list.
const QWEN_HEAD: &str =
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
/// `QWEN_TOOL_PROMPT` after the tool list.
const QWEN_TAIL: &str =
    "\n</tools>\n\nFor each function call, return a json object with function name and \
arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \
\"arguments\": <args-json-object>}\n</tool_call>";

/// The tool description of `format` for a non-empty list of tool schemas.
pub(super) fn describe_tools(format: ToolFormat, tools: &[Json]) -> Result<String, DataError> {
    match format {
        ToolFormat::Default => describe_default(tools),
        ToolFormat::Glm4 => {
            let mut text = GLM4_HEAD.to_owned();
            for tool in tools {
                let tool = unwrap_function(tool);
                let name = tool.get("name").map(py_text).unwrap_or_default();
                text += &format!(
                    "\n\n## {name}\n\n{}{GLM4_TOOL_TAIL}",
                    py_json_with(tool, Some(4))?
                );
            }
            Ok(text)
        }
        ToolFormat::Llama3 => {
            let date = jiff::Zoned::now().strftime("%d %b %Y").to_string();
            let mut text = format!("{LLAMA3_HEAD}{date}{LLAMA3_MIDDLE}");
            for tool in tools {
                text += &py_json_with(&wrap_function(tool), Some(4))?;
                text += "\n\n";
            }
            Ok(text)
        }
        ToolFormat::Mistral => {
            let wrapped: Vec<Json> = tools.iter().map(wrap_function).collect();
            Ok(format!(
                "[AVAILABLE_TOOLS] {}[/AVAILABLE_TOOLS]",
                py_json(&Json::Array(wrapped))?
            ))
        }
        ToolFormat::Qwen => {
            let mut text = QWEN_HEAD.to_owned();
            for tool in tools {
                text += "\n";
                text += &py_json(&wrap_function(tool))?;
            }
            Ok(text + QWEN_TAIL)
        }
    }
}

/// `DefaultToolUtils.tool_formatter`: a bulleted list of each tool's arguments.
fn describe_default(tools: &[Json]) -> Result<String, DataError> {
    let mut tool_text = String::new();
    let mut names = Vec::new();
    for tool in tools {
        let tool = unwrap_function(tool);
        let name = tool
            .get("name")
            .map(py_text)
            .ok_or_else(|| missing("name"))?;
        let parameters = tool
            .get("parameters")
            .ok_or_else(|| missing("parameters"))?;
        let properties = parameters
            .get("properties")
            .and_then(Json::as_object)
            .ok_or_else(|| missing("parameters.properties"))?;
        let required = parameters.get("required").and_then(Json::as_array);
        let mut args = String::new();
        for (arg, param) in properties {
            let is_required = required.is_some_and(|r| r.iter().any(|x| x.as_str() == Some(arg)));
            let mut line = format!(
                "  - {arg} ({}{}): {}",
                param.get("type").map(py_text).unwrap_or_default(),
                if is_required { ", required" } else { "" },
                param.get("description").map(py_text).unwrap_or_default(),
            );
            if let Some(values) = param
                .get("enum")
                .filter(|v| truthy(v))
                .and_then(Json::as_array)
            {
                let values: Vec<String> = values.iter().map(py_text).collect();
                line += &format!(", should be one of [{}]", values.join(", "));
            }
            if let Some(items) = param.get("items").filter(|v| truthy(v)) {
                line += &format!(
                    ", where each item should be {}",
                    items.get("type").map(py_text).unwrap_or_default()
                );
            }
            args += &line;
            args += "\n";
        }
        let desc = tool.get("description").map(py_text).unwrap_or_default();
        tool_text +=
            &format!("> Tool Name: {name}\nTool Description: {desc}\nTool Args:\n{args}\n");
        names.push(name);
    }
    Ok(format!(
        "{DEFAULT_HEAD}{tool_text}{DEFAULT_MIDDLE}{}{DEFAULT_TAIL}",
        names.join(", ")
    ))
}

/// The tool-call text of `format` (`function_formatter`).
pub(super) fn write_calls(format: ToolFormat, calls: &[ToolCall]) -> Result<String, DataError> {
    let parse = |call: &ToolCall| -> Result<Json, DataError> {
        serde_json::from_str(&call.arguments)
            .map_err(|e| tool_error(format!("arguments of `{}`", call.name), e.to_string()))
    };
    let object = |call: &ToolCall, key: &str| -> Result<Json, DataError> {
        let mut map = Map::new();
        map.insert("name".into(), Json::String(call.name.clone()));
        map.insert(key.into(), parse(call)?);
        Ok(Json::Object(map))
    };
    match format {
        ToolFormat::Default => Ok(calls
            .iter()
            .map(|c| format!("Action: {}\nAction Input: {}", c.name, c.arguments))
            .collect::<Vec<_>>()
            .join("\n")),
        ToolFormat::Glm4 => match calls {
            [call] => Ok(format!("{}\n{}", call.name, call.arguments)),
            _ => Err(tool_error(
                "function message".into(),
                format!(
                    "GLM-4 writes exactly one call per message, got {}",
                    calls.len()
                ),
            )),
        },
        ToolFormat::Llama3 => {
            let objects = calls
                .iter()
                .map(|c| object(c, "parameters"))
                .collect::<Result<Vec<_>, _>>()?;
            match <[Json; 1]>::try_from(objects) {
                Ok([one]) => py_json(&one),
                Err(many) => py_json(&Json::Array(many)),
            }
        }
        ToolFormat::Mistral => {
            let objects = calls
                .iter()
                .map(|c| object(c, "arguments"))
                .collect::<Result<Vec<_>, _>>()?;
            py_json(&Json::Array(objects))
        }
        ToolFormat::Qwen => {
            let texts = calls
                .iter()
                .map(|c| {
                    Ok(format!(
                        "<tool_call>\n{}\n</tool_call>",
                        py_json(&object(c, "arguments")?)?
                    ))
                })
                .collect::<Result<Vec<_>, DataError>>()?;
            Ok(texts.join("\n"))
        }
    }
}

/// The schema inside `{"type": "function", "function": {...}}`, else the tool itself.
fn unwrap_function(tool: &Json) -> &Json {
    if tool.get("type").and_then(Json::as_str) == Some("function") {
        tool.get("function").unwrap_or(&Json::Null)
    } else {
        tool
    }
}

/// `{"type": "function", "function": tool}` unless the tool is already wrapped so.
fn wrap_function(tool: &Json) -> Json {
    if tool.get("type").and_then(Json::as_str) == Some("function") {
        tool.clone()
    } else {
        json!({"type": "function", "function": tool})
    }
}

/// Python's `str(value)` of a JSON value (strings as they are, others as Python literals).
fn py_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => py_str(&minijinja::Value::from(minijinja::value::Serde(other))),
    }
}

/// Python truthiness of a JSON value.
fn truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// The error for a tool schema lacking `key`.
fn missing(key: &str) -> DataError {
    tool_error("tools".into(), format!("a tool has no `{key}`"))
}
