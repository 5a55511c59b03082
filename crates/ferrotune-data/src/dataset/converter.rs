//! Rows of any layout → one [`ConversationRecord`], exactly as LLaMA-Factory v0.9.5
//! `data/converter.py` aligns them (`AlpacaDatasetConverter`, `SharegptDatasetConverter`,
//! `OpenAIDatasetConverter`); the sharegpt and OpenAI rules live in `dataset::sharegpt`.
//!
//! Where LLaMA-Factory would raise (a `KeyError` for a missing column, a `TypeError` for a value
//! of the wrong type) these functions return a [`DatasetError`] naming the dataset, the row and
//! the column. Where it keeps an empty example that its tokenizing processors later drop
//! (broken role alternation, a wrong message count, no messages), they return
//! [`Converted::Skipped`] with the reason.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use super::dataset_info::{type_name, DatasetAttr, Formatting};
use super::files::Row;
use super::{pyjson, sharegpt, DatasetError};
use crate::message::{Message, Role};

/// One example in LLaMA-Factory's aligned format (`_prompt`, `_response`, `_system`, `_tools`).
///
/// - `prompt`: the turns before the answer, user/observation and assistant/function
///   alternating, starting and ending with a user-side turn (pt data: one user turn of raw text);
/// - `response`: one assistant turn; two for ranking data (chosen, rejected) and for KTO data
///   (`[answer, ""]` when desirable, `["", answer]` when not); none for unsupervised data;
/// - `system` and `tools`: empty when absent; `tools` is the JSON text of the tool list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// Turns before the response.
    pub prompt: Vec<Message>,
    /// The response turn(s); see the type doc for their count.
    pub response: Vec<Message>,
    /// The system prompt, or empty.
    pub system: String,
    /// The tool list as JSON text, or empty.
    pub tools: String,
    /// The KTO desirability label, for rows whose `kto_tag` column holds a boolean.
    pub kto_tag: Option<bool>,
}

/// Why the converter left a row out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Turn `turn` (0-based, after a leading system turn) has role `role` where the alternation
    /// user/observation, assistant/function, ... expects the other side.
    InvalidRole {
        /// 0-based position of the turn.
        turn: usize,
        /// The role value found (the tag as written, or the aligned role for OpenAI data).
        role: String,
    },
    /// The number of turns is odd for ranking data or even for other data.
    InvalidCount {
        /// Number of turns after alignment.
        count: usize,
        /// Whether the dataset is a ranking dataset (which needs an odd count).
        ranking: bool,
    },
    /// The message list is empty.
    NoMessages,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::InvalidRole { turn, role } => {
                write!(
                    f,
                    "turn {turn} has role \"{role}\", which breaks the user/assistant alternation"
                )
            }
            SkipReason::InvalidCount {
                count,
                ranking: false,
            } => {
                write!(
                    f,
                    "{count} turns; a conversation needs an even number of turns"
                )
            }
            SkipReason::InvalidCount {
                count,
                ranking: true,
            } => {
                write!(f, "{count} turns; ranking data needs an odd number of turns before chosen/rejected")
            }
            SkipReason::NoMessages => f.write_str("no messages"),
        }
    }
}

/// The result of converting one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    /// A usable example.
    Record(ConversationRecord),
    /// A row left out, and why.
    Skipped(SkipReason),
}

/// Where a row comes from, for error messages and for telling a missing column from a null.
#[derive(Debug, Clone, Copy)]
pub struct RowSource<'a> {
    /// The dataset's attributes.
    pub attr: &'a DatasetAttr,
    /// The file or folder the rows were read from.
    pub path: &'a Path,
    /// Every column of the data.
    pub columns: &'a [String],
}

/// Converts one `row` (0-based `index` in the dataset's files) by the dataset's `formatting`.
///
/// Errors: [`DatasetError::MissingColumn`] for a configured column the data lacks,
/// [`DatasetError::Row`] for a value of the wrong type.
pub fn convert_row(
    src: &RowSource<'_>,
    row: &Row,
    index: usize,
) -> Result<Converted, DatasetError> {
    let ctx = RowCtx { src, row, index };
    match src.attr.formatting {
        Formatting::Alpaca => convert_alpaca(&ctx).map(Converted::Record),
        Formatting::Sharegpt => sharegpt::convert_sharegpt(&ctx),
        Formatting::Openai => sharegpt::convert_openai(&ctx),
    }
}

/// One row being converted, with accessors that produce precise errors.
pub(crate) struct RowCtx<'a> {
    pub(crate) src: &'a RowSource<'a>,
    pub(crate) row: &'a Row,
    pub(crate) index: usize,
}

impl<'a> RowCtx<'a> {
    /// The attributes of the dataset.
    pub(crate) fn attr(&self) -> &'a DatasetAttr {
        self.src.attr
    }

    /// The value of the column configured under `key` (e.g. `columns.prompt`); `None` when the
    /// column is unset, an error when the data has no such column.
    pub(crate) fn column(
        &self,
        key: &str,
        column: &Option<String>,
    ) -> Result<Option<&'a Value>, DatasetError> {
        let Some(column) = column else {
            return Ok(None);
        };
        match self.row.get(column) {
            Some(value) => Ok(Some(value)),
            None => Err(DatasetError::MissingColumn {
                name: self.attr().name.clone(),
                path: self.src.path.to_path_buf(),
                column: column.clone(),
                key: key.to_string(),
                available: self.src.columns.to_vec(),
            }),
        }
    }

    /// A [`DatasetError::Row`] for this row.
    pub(crate) fn error(&self, message: String) -> DatasetError {
        DatasetError::Row {
            name: self.attr().name.clone(),
            row: self.index,
            message,
        }
    }

    /// `value` as a string, or an error naming `what` (e.g. ``column `output` ``).
    pub(crate) fn string(&self, what: &str, value: &Value) -> Result<String, DatasetError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.error(format!(
                "{what} must be a string, found {}: {other}",
                type_name(other)
            ))),
        }
    }

    /// A `system` or `tools` value: null is empty, a string is kept, JSON objects and arrays
    /// are serialized as Python's `json.dumps` would (`allow_json`), anything else is an error.
    pub(crate) fn text_or_json(
        &self,
        what: &str,
        value: Option<&Value>,
        allow_json: bool,
    ) -> Result<String, DatasetError> {
        match value {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v @ (Value::Array(_) | Value::Object(_))) if allow_json => Ok(pyjson::dumps(v)),
            Some(other) => Err(self.error(format!(
                "{what} must be a string, found {}: {other}",
                type_name(other)
            ))),
        }
    }

    /// The row's KTO label when `columns.kto_tag` is set and holds a boolean.
    pub(crate) fn kto_tag(&self) -> Result<Option<bool>, DatasetError> {
        let attr = self.attr();
        Ok(
            match self.column("columns.kto_tag", &attr.columns.kto_tag)? {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            },
        )
    }
}

/// Python truthiness of a JSON value (`if value:`).
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The KTO response pair: `[answer, ""]` when desirable, `["", answer]` when not.
pub(crate) fn kto_response(answer: Vec<Message>, desirable: bool) -> Vec<Message> {
    let empty = Message::new(Role::Assistant, "");
    if desirable {
        answer.into_iter().chain([empty]).collect()
    } else {
        [empty].into_iter().chain(answer).collect()
    }
}

/// Alpaca: `history` pairs, then one user turn `instruction\ninput` (empty parts left out),
/// then the response by kind (KTO, pairwise, supervised, or none).
fn convert_alpaca(ctx: &RowCtx<'_>) -> Result<ConversationRecord, DatasetError> {
    let cols = &ctx.attr().columns;
    let mut prompt = Vec::new();
    if let Some(Value::Array(history)) = ctx.column("columns.history", &cols.history)? {
        for (turn, pair) in history.iter().enumerate() {
            let what = format!("history[{turn}]");
            let [old_prompt, old_response] = match pair {
                Value::Array(items) if items.len() == 2 => [&items[0], &items[1]],
                other => {
                    return Err(ctx.error(format!(
                        "{what} must be a pair [instruction, response], found {other}"
                    )))
                }
            };
            prompt.push(Message::new(Role::User, ctx.string(&what, old_prompt)?));
            prompt.push(Message::new(
                Role::Assistant,
                ctx.string(&what, old_response)?,
            ));
        }
    }
    let mut query = Vec::new();
    for (key, column) in [
        ("columns.prompt", &cols.prompt),
        ("columns.query", &cols.query),
    ] {
        if let Some(value) = ctx.column(key, column)?.filter(|v| truthy(v)) {
            let name = column.as_deref().unwrap_or_default();
            query.push(ctx.string(&format!("column `{name}`"), value)?);
        }
    }
    prompt.push(Message::new(Role::User, query.join("\n")));

    let response_col = cols.response.as_deref().unwrap_or_default();
    let response_value = ctx.column("columns.response", &cols.response)?;
    let kto_tag = ctx.kto_tag()?;
    let response = if let Some(desirable) = kto_tag {
        let value = response_value.unwrap_or(&Value::Null);
        let answer = ctx.string(&format!("column `{response_col}`"), value)?;
        kto_response(vec![Message::new(Role::Assistant, answer)], desirable)
    } else if let Some((chosen, rejected)) = alpaca_pair(ctx)? {
        vec![
            Message::new(Role::Assistant, chosen),
            Message::new(Role::Assistant, rejected),
        ]
    } else if let Some(Value::String(answer)) = response_value {
        vec![Message::new(Role::Assistant, answer.clone())]
    } else {
        Vec::new()
    };

    Ok(ConversationRecord {
        prompt,
        response,
        system: ctx.text_or_json(
            "column `system`",
            ctx.column("columns.system", &cols.system)?,
            false,
        )?,
        tools: ctx.text_or_json(
            "column `tools`",
            ctx.column("columns.tools", &cols.tools)?,
            true,
        )?,
        kto_tag,
    })
}

/// The chosen and rejected strings of a ranking alpaca row, when both are strings.
fn alpaca_pair(ctx: &RowCtx<'_>) -> Result<Option<(String, String)>, DatasetError> {
    let attr = ctx.attr();
    if !attr.ranking {
        return Ok(None);
    }
    let chosen = ctx.column("columns.chosen", &attr.columns.chosen)?;
    let rejected = ctx.column("columns.rejected", &attr.columns.rejected)?;
    Ok(match (chosen, rejected) {
        (Some(Value::String(c)), Some(Value::String(r))) => Some((c.clone(), r.clone())),
        _ => None,
    })
}
