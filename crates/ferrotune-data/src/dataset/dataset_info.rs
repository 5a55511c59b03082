//! `dataset_info.json`: the catalogue that maps dataset names to files and column layouts.
//!
//! Follows LLaMA-Factory v0.9.5 `data/parser.py` (`DatasetAttr`, `get_dataset_list`):
//! - the source is chosen as `hf_hub_url`, else `ms_hub_url`, else `om_hub_url`, else
//!   `script_url`, else `cloud_file_name`, else `file_name`;
//! - without a `columns` object the alpaca columns `instruction`/`input`/`output` and the
//!   sharegpt column `conversations` apply; *with* one, every column it does not name is unset
//!   (so `{"columns": {"prompt": "text"}}` reads only `text`);
//! - without a `tags` object the sharegpt tags `from`/`value`/`human`/`gpt`/`observation`/
//!   `function_call`/`system` apply; with one, every tag it does not name is unset.
//!
//! One departure: for `"formatting": "openai"` without a `tags` object, ferrotune defaults the
//! role/content/user/assistant/system tags to OpenAI's names (`role`, `content`, `user`,
//! `assistant`, `system`); LLaMA-Factory applies the sharegpt names there too.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::DatasetError;

/// How the rows of a dataset are laid out (`formatting` in `dataset_info.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formatting {
    /// One example per row: `instruction`, `input`, `output`, optional `history` and `system`.
    Alpaca,
    /// A list of `{from, value}` messages per row.
    Sharegpt,
    /// A list of OpenAI-style `{role, content}` messages, with `tool_calls` and `tool` turns.
    Openai,
}

/// Where a dataset's rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetSource {
    /// A file or folder under `dataset_dir` (`file_name`).
    File(String),
    /// A Hugging Face hub dataset repository (`hf_hub_url`).
    HfHub(String),
    /// A ModelScope dataset (`ms_hub_url`).
    MsHub(String),
    /// A Modelers (openMind) dataset (`om_hub_url`).
    OmHub(String),
    /// A Python loading script under `dataset_dir` (`script_url`).
    Script(String),
    /// An S3 or GCS JSON file (`cloud_file_name`).
    CloudFile(String),
}

/// Column names of a dataset (`columns` in `dataset_info.json`); `None` means unused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// Alpaca instruction column (pt datasets map their `text` column here).
    pub prompt: Option<String>,
    /// Alpaca input column, appended to the instruction after a newline.
    pub query: Option<String>,
    /// Alpaca output column.
    pub response: Option<String>,
    /// Alpaca history column: a list of `[instruction, output]` pairs.
    pub history: Option<String>,
    /// Sharegpt/OpenAI message-list column.
    pub messages: Option<String>,
    /// System prompt column.
    pub system: Option<String>,
    /// Tool description column (a JSON string, or JSON that is serialized).
    pub tools: Option<String>,
    /// Image paths column.
    pub images: Option<String>,
    /// Video paths column.
    pub videos: Option<String>,
    /// Audio paths column.
    pub audios: Option<String>,
    /// Preferred response column of ranking datasets.
    pub chosen: Option<String>,
    /// Dispreferred response column of ranking datasets.
    pub rejected: Option<String>,
    /// KTO desirability column (boolean).
    pub kto_tag: Option<String>,
}

/// Message keys and role names of sharegpt/OpenAI rows (`tags` in `dataset_info.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    /// Key holding a message's role.
    pub role_tag: Option<String>,
    /// Key holding a message's text.
    pub content_tag: Option<String>,
    /// Role value of user turns.
    pub user_tag: Option<String>,
    /// Role value of assistant turns.
    pub assistant_tag: Option<String>,
    /// Role value of tool results.
    pub observation_tag: Option<String>,
    /// Role value of tool calls.
    pub function_tag: Option<String>,
    /// Role value of a leading system message.
    pub system_tag: Option<String>,
}

/// Everything `dataset_info.json` says about one dataset (LLaMA-Factory's `DatasetAttr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetAttr {
    /// The entry's key: the name used in `dataset`.
    pub name: String,
    /// Where the rows come from.
    pub source: DatasetSource,
    /// Row layout. Default: alpaca.
    pub formatting: Formatting,
    /// Pairwise (chosen/rejected) data, for the rm and dpo stages. Default: false.
    pub ranking: bool,
    /// Hub subset (configuration) name.
    pub subset: Option<String>,
    /// Split to read. Default: `train`.
    pub split: String,
    /// Hub sub-folder.
    pub folder: Option<String>,
    /// Number of examples to sample (with replacement past the dataset size).
    pub num_samples: Option<usize>,
    /// Column names.
    pub columns: Columns,
    /// Message keys and role names.
    pub tags: Tags,
}

/// A parsed `dataset_info.json`; entries are interpreted when asked for, as LLaMA-Factory does,
/// so that one odd entry does not stop the others from loading.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    path: PathBuf,
    entries: Map<String, Value>,
}

impl DatasetInfo {
    /// Reads `<dataset_dir>/dataset_info.json`.
    ///
    /// Errors: [`DatasetError::Io`] when it cannot be read, [`DatasetError::InfoSyntax`] (with
    /// line and column) when it is not a JSON object.
    pub fn from_dir(dataset_dir: &Path) -> Result<Self, DatasetError> {
        Self::from_file(&dataset_dir.join("dataset_info.json"))
    }

    /// Reads a `dataset_info.json` file at `path`; errors as [`DatasetInfo::from_dir`].
    pub fn from_file(path: &Path) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|e| DatasetError::Io {
            path: path.to_path_buf(),
            message: format!("{e}; hint: `dataset_dir` must hold dataset_info.json"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `dataset_info.json`; `path` is used in error messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Self, DatasetError> {
        let value: Value = serde_json::from_str(text).map_err(|e| DatasetError::InfoSyntax {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: super::files::json_message(&e),
        })?;
        match value {
            Value::Object(entries) => Ok(Self {
                path: path.to_path_buf(),
                entries,
            }),
            other => Err(DatasetError::InfoSyntax {
                path: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!(
                    "expected a JSON object of datasets, found {}",
                    type_name(&other)
                ),
            }),
        }
    }

    /// The path this catalogue was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every dataset name, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The attributes of dataset `name`.
    ///
    /// Errors: [`DatasetError::UnknownDataset`] (suggesting the closest name) when there is no
    /// such entry, [`DatasetError::InfoEntry`] when a key has the wrong type or value.
    pub fn get(&self, name: &str) -> Result<DatasetAttr, DatasetError> {
        let Some(entry) = self.entries.get(name) else {
            return Err(DatasetError::UnknownDataset {
                name: name.to_string(),
                path: self.path.clone(),
                suggestion: closest_name(name, self.names()),
            });
        };
        let entry_error = |message: String| DatasetError::InfoEntry {
            path: self.path.clone(),
            name: name.to_string(),
            message,
        };
        let Value::Object(entry) = entry else {
            return Err(entry_error(format!(
                "expected an object, found {}",
                type_name(entry)
            )));
        };
        parse_entry(name, entry).map_err(entry_error)
    }
}

/// The defined name closest to `name` (normalized Levenshtein similarity of at least 0.6, or a
/// case-insensitive match), if any.
fn closest_name<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Option<String> {
    let lower = name.to_lowercase();
    names
        .map(|candidate| {
            let score = if candidate.to_lowercase() == lower {
                1.0
            } else {
                strsim::normalized_levenshtein(&lower, &candidate.to_lowercase())
            };
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.to_string())
}

/// Interprets one entry; the error string names the key and value at fault.
fn parse_entry(name: &str, entry: &Map<String, Value>) -> Result<DatasetAttr, String> {
    let source = if let Some(url) = opt_str(entry, "hf_hub_url")? {
        DatasetSource::HfHub(url)
    } else if let Some(url) = opt_str(entry, "ms_hub_url")? {
        DatasetSource::MsHub(url)
    } else if let Some(url) = opt_str(entry, "om_hub_url")? {
        DatasetSource::OmHub(url)
    } else if let Some(url) = opt_str(entry, "script_url")? {
        DatasetSource::Script(url)
    } else if let Some(url) = opt_str(entry, "cloud_file_name")? {
        DatasetSource::CloudFile(url)
    } else if let Some(file) = opt_str(entry, "file_name")? {
        DatasetSource::File(file)
    } else {
        return Err(
            "no `file_name`, `hf_hub_url`, `ms_hub_url`, `om_hub_url`, `script_url` or \
                    `cloud_file_name`; hint: add `file_name` naming a file under `dataset_dir`"
                .into(),
        );
    };
    let formatting = match opt_str(entry, "formatting")?.as_deref() {
        None | Some("alpaca") => Formatting::Alpaca,
        Some("sharegpt") => Formatting::Sharegpt,
        Some("openai") => Formatting::Openai,
        Some(other) => {
            return Err(format!(
                "`formatting` is \"{other}\"; expected \"alpaca\", \"sharegpt\" or \"openai\""
            ))
        }
    };
    let ranking = match entry.get("ranking") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("`ranking` must be true or false, found {other}")),
    };
    let num_samples = match entry.get("num_samples") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().map(|n| n as usize),
        Some(other) => {
            return Err(format!(
                "`num_samples` must be a non-negative integer, found {other}"
            ))
        }
    };
    Ok(DatasetAttr {
        name: name.to_string(),
        source,
        formatting,
        ranking,
        subset: opt_str(entry, "subset")?,
        split: opt_str(entry, "split")?.unwrap_or_else(|| "train".into()),
        folder: opt_str(entry, "folder")?,
        num_samples,
        columns: parse_columns(entry.get("columns"))?,
        tags: parse_tags(entry.get("tags"), formatting)?,
    })
}

/// `columns`: LLaMA-Factory's defaults when absent, exactly the named columns when present.
fn parse_columns(columns: Option<&Value>) -> Result<Columns, String> {
    let Some(columns) = columns else {
        return Ok(Columns {
            prompt: Some("instruction".into()),
            query: Some("input".into()),
            response: Some("output".into()),
            messages: Some("conversations".into()),
            ..Columns::default()
        });
    };
    let Value::Object(map) = columns else {
        return Err(format!(
            "`columns` must be an object, found {}",
            type_name(columns)
        ));
    };
    let get = |key: &str| opt_str(map, key).map_err(|e| format!("in `columns`: {e}"));
    Ok(Columns {
        prompt: get("prompt")?,
        query: get("query")?,
        response: get("response")?,
        history: get("history")?,
        messages: get("messages")?,
        system: get("system")?,
        tools: get("tools")?,
        images: get("images")?,
        videos: get("videos")?,
        audios: get("audios")?,
        chosen: get("chosen")?,
        rejected: get("rejected")?,
        kto_tag: get("kto_tag")?,
    })
}

/// `tags`: defaults when absent (sharegpt names, or OpenAI names for `openai`), exactly the
/// named tags when present.
fn parse_tags(tags: Option<&Value>, formatting: Formatting) -> Result<Tags, String> {
    let Some(tags) = tags else {
        let (role, content, user, assistant) = match formatting {
            Formatting::Openai => ("role", "content", "user", "assistant"),
            _ => ("from", "value", "human", "gpt"),
        };
        return Ok(Tags {
            role_tag: Some(role.into()),
            content_tag: Some(content.into()),
            user_tag: Some(user.into()),
            assistant_tag: Some(assistant.into()),
            observation_tag: Some("observation".into()),
            function_tag: Some("function_call".into()),
            system_tag: Some("system".into()),
        });
    };
    let Value::Object(map) = tags else {
        return Err(format!(
            "`tags` must be an object, found {}",
            type_name(tags)
        ));
    };
    let get = |key: &str| opt_str(map, key).map_err(|e| format!("in `tags`: {e}"));
    Ok(Tags {
        role_tag: get("role_tag")?,
        content_tag: get("content_tag")?,
        user_tag: get("user_tag")?,
        assistant_tag: get("assistant_tag")?,
        observation_tag: get("observation_tag")?,
        function_tag: get("function_tag")?,
        system_tag: get("system_tag")?,
    })
}

/// `map[key]` as a string; absent or null is `None`, anything else an error naming the key.
fn opt_str(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{key}` must be a string, found {other}")),
    }
}

/// The JSON type of `value` in words, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
