//! Stage one of loading: the raw key map of a config file plus `key=value` overrides, each
//! value kept with the place it was written.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{ConfigError, Origin};
use crate::value::{describe, ArgValue};

/// One key's raw value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    /// The value as parsed (YAML and JSON values alike).
    pub value: Value,
    /// The file line or command-line override that set it.
    pub origin: Origin,
}

impl RawEntry {
    /// Converts the value to a field type, or errs with the key, origin, expectation and value.
    pub(crate) fn convert<T: ArgValue>(&self, key: &'static str) -> Result<T, ConfigError> {
        T::from_value(&self.value).ok_or_else(|| ConfigError::WrongType {
            key,
            origin: self.origin.clone(),
            expected: T::expected(),
            got: describe(&self.value),
        })
    }
}

/// The raw key map: keys in the order they were first written, overrides replacing file values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawArgs {
    /// The config file, when there is one.
    pub source: Option<PathBuf>,
    entries: Vec<(String, RawEntry)>,
}

impl RawArgs {
    /// Parses a config document. The format follows the extension as in LLaMA-Factory:
    /// `.json` is JSON, anything else YAML. `path` is used for messages and line look-up only.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] with line and column, or [`ConfigError::NotAMapping`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        let document: Value = if is_json {
            serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
                format: "JSON",
                path: path.to_path_buf(),
                line: Some(e.line()),
                column: Some(e.column()),
                message: e.to_string(),
            })?
        } else {
            parse_yaml(text).map_err(|e| {
                let location = e.location();
                let mut line = location.as_ref().map(|l| l.line());
                let mut column = location.as_ref().map(|l| l.column());
                let mut message = strip_location(&e.to_string());
                // The parser points duplicates at the mapping's start; point at the repeat.
                if let Some(key) = duplicate_key(&message) {
                    if let [first, second, ..] = find_key_lines(text, &key, false)[..] {
                        (line, column) = (Some(second), Some(1));
                        message = format!("duplicate key `{key}` (first set on line {first})");
                    }
                }
                ConfigError::Syntax {
                    format: "YAML",
                    path: path.to_path_buf(),
                    line,
                    column,
                    message,
                }
            })?
        };
        let map = match document {
            Value::Object(map) => map,
            // An empty file is an empty config.
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(ConfigError::NotAMapping {
                    path: path.to_path_buf(),
                    found: describe(&other),
                })
            }
        };
        let entries = map
            .into_iter()
            .map(|(key, value)| {
                let line = find_key_line(text, &key, is_json);
                let origin = Origin::File {
                    path: path.to_path_buf(),
                    line,
                };
                (key, RawEntry { value, origin })
            })
            .collect::<Vec<_>>();
        let mut raw = RawArgs {
            source: Some(path.to_path_buf()),
            entries,
        };
        raw.sort_by_line();
        Ok(raw)
    }

    /// Applies LLaMA-Factory-style overrides `key=value`; each value is read as a YAML scalar
    /// (or flow list), so `learning_rate=1e-4` is a float and `lora_target=q_proj,v_proj` a string.
    ///
    /// # Errors
    /// [`ConfigError::BadOverride`] when an argument has no `=`, an empty key, or bad YAML.
    pub fn apply_overrides(&mut self, overrides: &[String]) -> Result<(), ConfigError> {
        for arg in overrides {
            let bad = |reason: String| ConfigError::BadOverride {
                arg: arg.clone(),
                reason,
            };
            let (key, text) = arg
                .split_once('=')
                .ok_or_else(|| bad("expected `key=value`, e.g. `learning_rate=1e-4`".into()))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(bad("the key before `=` is empty".into()));
            }
            let value = parse_yaml(text).map_err(|e| bad(strip_location(&e.to_string())))?;
            self.set(
                key,
                RawEntry {
                    value,
                    origin: Origin::Override { arg: arg.clone() },
                },
            );
        }
        Ok(())
    }

    /// Sets `key`, replacing an earlier value in place.
    pub fn set(&mut self, key: &str, entry: RawEntry) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = entry,
            None => self.entries.push((key.to_string(), entry)),
        }
    }

    /// The entry of `key`, if it was given.
    pub fn get(&self, key: &str) -> Option<&RawEntry> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, e)| e)
    }

    /// Removes and returns the entry of `key`, if it was given.
    pub fn take(&mut self, key: &str) -> Option<RawEntry> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// All entries in order: file keys by line, then overrides in the order given.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &RawEntry)> {
        self.entries.iter().map(|(k, e)| (k.as_str(), e))
    }

    fn sort_by_line(&mut self) {
        self.entries.sort_by_key(|(_, e)| match e.origin {
            Origin::File { line, .. } => line.unwrap_or(usize::MAX),
            Origin::Override { .. } => usize::MAX,
        });
    }
}

/// Parses YAML into a JSON value. Going through `serde_norway::Value` rejects duplicate keys
/// (as LLaMA-Factory's OmegaConf loader does); mappings with non-string keys are rejected too.
fn parse_yaml(text: &str) -> Result<Value, serde_norway::Error> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let yaml: serde_norway::Value = serde_norway::from_str(text)?;
    serde_norway::from_value(yaml)
}

/// serde_norway appends " at line L column C" to its messages; the error carries them apart.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

/// The key of serde_norway's `duplicate entry with key "..."` message.
fn duplicate_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("duplicate entry with key ")?;
    Some(rest.trim_matches('"').to_string())
}

/// 1-based line of a top-level key: the first line that starts (YAML: at column 0; JSON:
/// anywhere) with the key, bare or quoted, followed by `:`.
fn find_key_line(text: &str, key: &str, is_json: bool) -> Option<usize> {
    find_key_lines(text, key, is_json).first().copied()
}

/// Every 1-based line on which `key` is written as a top-level key (see [`find_key_line`]).
fn find_key_lines(text: &str, key: &str, is_json: bool) -> Vec<usize> {
    let forms = [key.to_string(), format!("\"{key}\""), format!("'{key}'")];
    let is_key_line = |line: &str| {
        let body = if is_json { line.trim_start() } else { line };
        let body = body.trim_start_matches(['{', ',']).trim_start();
        forms.iter().any(|form| {
            body.strip_prefix(form.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| is_key_line(line))
        .map(|(index, _)| index + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_follow_yaml_rules() {
        let raw = RawArgs::parse(
            "learning_rate: 1e-4\nlora_target: q_proj,v_proj\nbf16: true\nx: ~\nname: yes\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(
            raw.get("learning_rate").unwrap().value,
            serde_json::json!(1e-4)
        );
        assert_eq!(
            raw.get("lora_target").unwrap().value,
            serde_json::json!("q_proj,v_proj")
        );
        assert_eq!(raw.get("bf16").unwrap().value, serde_json::json!(true));
        assert_eq!(raw.get("x").unwrap().value, Value::Null);
        assert_eq!(raw.get("name").unwrap().value, serde_json::json!("yes"));
    }

    #[test]
    fn key_lines_are_found_in_yaml_and_json() {
        let yaml = "### model\nmodel_name_or_path: a\n\n# c\nlora_rank: 8\n";
        assert_eq!(find_key_line(yaml, "lora_rank", false), Some(5));
        assert_eq!(find_key_line(yaml, "lora", false), None);
        let json = "{\n  \"stage\": \"sft\",\n  \"lora_rank\" : 8\n}";
        assert_eq!(find_key_line(json, "lora_rank", true), Some(3));
        assert_eq!(find_key_line("{\"a\": 1}", "a", true), Some(1));
    }

    #[test]
    fn overrides_replace_and_append() {
        let mut raw = RawArgs::parse("lora_rank: 8\n", Path::new("c.yaml")).unwrap();
        raw.apply_overrides(&["lora_rank=16".into(), "lora_target=[q_proj, v_proj]".into()])
            .unwrap();
        assert_eq!(raw.get("lora_rank").unwrap().value, serde_json::json!(16));
        assert_eq!(
            raw.get("lora_target").unwrap().value,
            serde_json::json!(["q_proj", "v_proj"])
        );
        let err = raw.apply_overrides(&["lora_rank".into()]).unwrap_err();
        assert!(err.to_string().contains("expected `key=value`"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_a_syntax_error_with_line() {
        let err = RawArgs::parse(
            "lora_rank: 8\nstage: sft\nlora_rank: 16\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "YAML syntax error in c.yaml line 3 column 1: duplicate key `lora_rank` (first set on line 1)"
        );
    }
}
