//! The sharegpt and OpenAI converters of LLaMA-Factory v0.9.5 `data/converter.py`
//! (`SharegptDatasetConverter`, `OpenAIDatasetConverter`).
//!
//! Both take a message list, lift a leading system message out, check that turns alternate
//! user/observation then assistant/function, and split the last turn off as the response.
//! Differences kept from LLaMA-Factory:
//! - sharegpt checks alternation on the raw role tags and stops at the first bad turn; OpenAI
//!   first aligns roles (assistant turns with `tool_calls` become function turns holding the JSON
//!   list of the calls' `function` objects; consecutive observation turns are merged with
//!   `"\n</tool_response>\n<tool_response>\n"`, and trailing ones are dropped) and checks after;
//! - OpenAI reads `system` and `tools` only when the row has them, serializes JSON tools, and
//!   appends LLaMA-Factory 0.9.5's `"detailed thinking off"` system rule (see [`openai_system`]).

use serde_json::{Map, Value};
use tracing::warn;

use super::converter::{kto_response, truthy, ConversationRecord, Converted, RowCtx, SkipReason};
use super::dataset_info::{type_name, Tags};
use super::{pyjson, DatasetError};
use crate::message::{Message, Role};

/// One message object of a row.
type Msg = Map<String, Value>;

/// The role a tag maps to; when several tags are equal the later entry of LLaMA-Factory's
/// `tag_mapping` (user, assistant, observation, function, system) wins.
fn tag_role(tags: &Tags, role: Option<&str>) -> Option<Role> {
    [
        (&tags.user_tag, Role::User),
        (&tags.assistant_tag, Role::Assistant),
        (&tags.observation_tag, Role::Observation),
        (&tags.function_tag, Role::Function),
        (&tags.system_tag, Role::System),
    ]
    .into_iter()
    .rev()
    .find(|(tag, _)| tag.as_deref() == role)
    .map(|(_, r)| r)
}

/// The message list of the row, each message an object.
fn messages<'a>(ctx: &RowCtx<'a>) -> Result<Vec<&'a Msg>, DatasetError> {
    let column = &ctx.attr().columns.messages;
    let name = column.as_deref().unwrap_or_default();
    let Some(value) = ctx.column("columns.messages", column)? else {
        return Err(ctx.error(
            "`columns.messages` is unset; hint: name the message-list column in dataset_info.json"
                .into(),
        ));
    };
    let Value::Array(items) = value else {
        return Err(ctx.error(format!(
            "column `{name}` must be a list of messages, found {}",
            type_name(value)
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(m) => Ok(m),
            other => Err(ctx.error(format!(
                "{name}[{i}] must be an object, found {}",
                type_name(other)
            ))),
        })
        .collect()
}

/// A message's role value: a string, or `None` for null; an error when the key is absent.
fn role_of<'a>(
    ctx: &RowCtx<'_>,
    msg: &'a Msg,
    turn: usize,
) -> Result<Option<&'a str>, DatasetError> {
    let tag = ctx.attr().tags.role_tag.as_deref().unwrap_or_default();
    match msg.get(tag) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) => Ok(None),
        Some(other) => Err(ctx.error(format!(
            "message {turn}: `{tag}` must be a string, found {other}"
        ))),
        None => Err(ctx.error(format!(
            "message {turn} has no key `{tag}` (tags.role_tag); its keys are {:?}",
            msg.keys().collect::<Vec<_>>()
        ))),
    }
}

/// A message's content value; an error when the key is absent.
fn content_value<'a>(
    ctx: &RowCtx<'_>,
    msg: &'a Msg,
    turn: usize,
) -> Result<&'a Value, DatasetError> {
    let tag = ctx.attr().tags.content_tag.as_deref().unwrap_or_default();
    msg.get(tag).ok_or_else(|| {
        ctx.error(format!(
            "message {turn} has no key `{tag}` (tags.content_tag); its keys are {:?}",
            msg.keys().collect::<Vec<_>>()
        ))
    })
}

/// A message's content as a string.
fn content_of(ctx: &RowCtx<'_>, msg: &Msg, turn: usize) -> Result<String, DatasetError> {
    ctx.string(
        &format!("message {turn} content"),
        content_value(ctx, msg, turn)?,
    )
}

/// Splits a leading system message off (when `tags.system_tag` is set and matches).
fn split_system<'a>(
    ctx: &RowCtx<'_>,
    msgs: Vec<&'a Msg>,
) -> Result<(Option<String>, Vec<&'a Msg>), DatasetError> {
    let system_tag = ctx.attr().tags.system_tag.as_deref();
    if let (Some(tag), Some(first)) = (system_tag, msgs.first()) {
        if role_of(ctx, first, 0)? == Some(tag) {
            let system = content_of(ctx, first, 0)?;
            return Ok((Some(system), msgs[1..].to_vec()));
        }
    }
    Ok((None, msgs))
}

/// The odd-count/even-count rule: conversations need an even number of turns, ranking prompts
/// an odd one.
fn count_error(count: usize, ranking: bool) -> Option<SkipReason> {
    (count % 2 != usize::from(ranking)).then_some(SkipReason::InvalidCount { count, ranking })
}

/// Builds the record from aligned turns: KTO, pairwise (chosen/rejected objects) or normal.
/// `pair_ok` says whether a chosen/rejected role value is on the assistant side.
fn finish(
    ctx: &RowCtx<'_>,
    aligned: Vec<Message>,
    pair_ok: impl Fn(Option<&str>) -> bool,
    system: String,
    tools: String,
) -> Result<Converted, DatasetError> {
    let attr = ctx.attr();
    if aligned.is_empty() {
        return Ok(Converted::Skipped(SkipReason::NoMessages));
    }
    let kto_tag = ctx.kto_tag()?;
    let mut prompt = aligned;
    let response = if let Some(desirable) = kto_tag {
        let last = prompt.split_off(prompt.len() - 1);
        kto_response(last, desirable)
    } else if let Some((chosen, rejected)) = sharegpt_pair(ctx)? {
        let mut response = Vec::with_capacity(2);
        for (what, msg) in [("chosen", chosen), ("rejected", rejected)] {
            let role = role_of(ctx, msg, 0)?;
            if !pair_ok(role) {
                // LLaMA-Factory warns here but keeps the example.
                warn!(dataset = %attr.name, row = ctx.index, "{what} has role {role:?}, not an assistant role");
            }
            let role = tag_role(&attr.tags, role).ok_or_else(|| {
                ctx.error(format!(
                    "{what} has role {role:?}, which matches no tag in `tags`"
                ))
            })?;
            response.push(Message::new(role, content_of(ctx, msg, 0)?));
        }
        response
    } else {
        prompt.split_off(prompt.len() - 1)
    };
    Ok(Converted::Record(ConversationRecord {
        prompt,
        response,
        system,
        tools,
        kto_tag,
    }))
}

/// The chosen and rejected message objects of a ranking row, when both are objects.
fn sharegpt_pair<'a>(ctx: &RowCtx<'a>) -> Result<Option<(&'a Msg, &'a Msg)>, DatasetError> {
    let attr = ctx.attr();
    if !attr.ranking {
        return Ok(None);
    }
    let chosen = ctx.column("columns.chosen", &attr.columns.chosen)?;
    let rejected = ctx.column("columns.rejected", &attr.columns.rejected)?;
    Ok(match (chosen, rejected) {
        (Some(Value::Object(c)), Some(Value::Object(r))) => Some((c, r)),
        _ => None,
    })
}

/// Sharegpt: alternation checked on the raw tags, first bad turn ends the example.
pub(crate) fn convert_sharegpt(ctx: &RowCtx<'_>) -> Result<Converted, DatasetError> {
    let attr = ctx.attr();
    let tags = &attr.tags;
    let (system, msgs) = split_system(ctx, messages(ctx)?)?;
    let system = match system {
        Some(s) => s,
        None => ctx.text_or_json(
            "column `system`",
            ctx.column("columns.system", &attr.columns.system)?,
            false,
        )?,
    };
    let accept = [
        [tags.user_tag.as_deref(), tags.observation_tag.as_deref()],
        [tags.assistant_tag.as_deref(), tags.function_tag.as_deref()],
    ];
    let mut aligned = Vec::with_capacity(msgs.len());
    let mut skip = None;
    for (turn, msg) in msgs.iter().enumerate() {
        let role = role_of(ctx, msg, turn)?;
        if !accept[turn % 2].contains(&role) {
            skip = Some(SkipReason::InvalidRole {
                turn,
                role: role.unwrap_or("null").to_string(),
            });
            break;
        }
        let mapped = tag_role(tags, role).unwrap_or(Role::User);
        aligned.push(Message::new(mapped, content_of(ctx, msg, turn)?));
    }
    if let Some(reason) = skip.or_else(|| count_error(aligned.len(), attr.ranking)) {
        return Ok(Converted::Skipped(reason));
    }
    let tools = ctx.text_or_json(
        "column `tools`",
        ctx.column("columns.tools", &attr.columns.tools)?,
        true,
    )?;
    let even = accept[1];
    finish(ctx, aligned, |role| even.contains(&role), system, tools)
}

/// OpenAI: roles aligned first (tool calls, merged tool results), then checked.
pub(crate) fn convert_openai(ctx: &RowCtx<'_>) -> Result<Converted, DatasetError> {
    let attr = ctx.attr();
    let tags = &attr.tags;
    let (system, msgs) = split_system(ctx, messages(ctx)?)?;
    let optional = |column: &Option<String>| column.as_ref().and_then(|c| ctx.row.get(c));
    let system = match system {
        Some(s) => s,
        None => ctx.text_or_json("column `system`", optional(&attr.columns.system), false)?,
    };
    let assistant_side = [tags.assistant_tag.as_deref(), tags.function_tag.as_deref()];
    let mut aligned = Vec::with_capacity(msgs.len());
    let mut tool_responses: Vec<String> = Vec::new();
    for (turn, msg) in msgs.iter().enumerate() {
        let mut role = role_of(ctx, msg, turn)?;
        let raw_content = content_value(ctx, msg, turn)?;
        let mut content = None;
        if assistant_side.contains(&role) {
            if let Some(calls) = msg.get("tool_calls").filter(|v| truthy(v)) {
                content = Some(tool_calls_json(ctx, calls, turn)?);
                role = tags.function_tag.as_deref();
            }
        }
        let content = match content {
            Some(c) => c,
            None => ctx.string(&format!("message {turn} content"), raw_content)?,
        };
        if role == tags.observation_tag.as_deref() {
            tool_responses.push(content);
            continue;
        }
        if !tool_responses.is_empty() {
            let merged = tool_responses.join("\n</tool_response>\n<tool_response>\n");
            aligned.push(Message::new(Role::Observation, merged));
            tool_responses.clear();
        }
        let mapped = tag_role(tags, role).ok_or_else(|| {
            ctx.error(format!(
                "message {turn} has role {role:?}, which matches no tag in `tags`"
            ))
        })?;
        aligned.push(Message::new(mapped, content));
    }
    let bad_turn = aligned.iter().enumerate().find(|(turn, m)| {
        let odd = matches!(m.role, Role::User | Role::Observation);
        odd != (turn % 2 == 0)
    });
    let skip = bad_turn.map(|(turn, m)| SkipReason::InvalidRole {
        turn,
        role: m.role.to_string(),
    });
    if let Some(reason) = skip.or_else(|| count_error(aligned.len(), attr.ranking)) {
        return Ok(Converted::Skipped(reason));
    }
    let tools = ctx.text_or_json("column `tools`", optional(&attr.columns.tools), true)?;
    let system = openai_system(system, &tools);
    finish(
        ctx,
        aligned,
        |role| matches!(role, Some("assistant" | "function")),
        system,
        tools,
    )
}

/// The JSON list of the `function` objects of OpenAI `tool_calls`.
fn tool_calls_json(ctx: &RowCtx<'_>, calls: &Value, turn: usize) -> Result<String, DatasetError> {
    let Value::Array(calls) = calls else {
        return Err(ctx.error(format!(
            "message {turn}: `tool_calls` must be a list, found {}",
            type_name(calls)
        )));
    };
    let functions = calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            call.get("function").cloned().ok_or_else(|| {
                ctx.error(format!(
                    "message {turn}: tool_calls[{i}] has no key `function`"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pyjson::dumps(&Value::Array(functions)))
}

/// LLaMA-Factory 0.9.5's OpenAI system rule: with no tools, an empty system becomes
/// `"detailed thinking off"` and a system without `"detailed thinking on|off"` gets
/// `"\ndetailed thinking off"` appended; with tools, a non-empty system gets `"\n"` appended.
fn openai_system(system: String, tools: &str) -> String {
    const OFF: &str = "detailed thinking off";
    match (system.is_empty(), tools.is_empty()) {
        (true, true) => OFF.to_string(),
        (true, false) => system,
        (false, true) if system.contains("detailed thinking on") || system.contains(OFF) => system,
        (false, true) => format!("{system}\n{OFF}"),
        (false, false) => format!("{system}\n"),
    }
}
