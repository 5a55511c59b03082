//! Errors of config loading and validation, and where a key came from.

use std::fmt;
use std::path::PathBuf;

/// Where a key's value was written: a line of the config file or a command-line override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A key of the config file; `line` is 1-based, `None` when the key's line could not be found.
    File {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the key in the file.
        line: Option<usize>,
    },
    /// A `key=value` argument given after the config file on the command line.
    Override {
        /// The argument as typed, e.g. `lora_rank=16`.
        arg: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{} line {line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Override { arg } => write!(f, "command line override `{arg}`"),
        }
    }
}

/// Everything that can go wrong while loading or validating a [`crate::Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The config file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML (or JSON for a `.json` file).
    #[error("{format} syntax error in {}{}: {message}", path.display(), fmt_position(*line, *column))]
    Syntax {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error, when the parser reports one.
        line: Option<usize>,
        /// 1-based column of the error, when the parser reports one.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// The document's top level is not a mapping of key names to values.
    #[error("config {} must be a mapping of `key: value` pairs at the top level, found {found}", path.display())]
    NotAMapping {
        /// The config file.
        path: PathBuf,
        /// What was found instead (e.g. `a list`).
        found: String,
    },
    /// A command-line override is not of the form `key=value`, or its value is not a YAML scalar.
    #[error("command line override `{arg}` is invalid: {reason}")]
    BadOverride {
        /// The argument as typed.
        arg: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A key that no argument group knows.
    #[error("unknown key `{key}` in {origin}{}", fmt_suggestion(suggestion.as_deref()))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// Where it was written.
        origin: Origin,
        /// The closest known key, when one is close enough to be a likely typo.
        suggestion: Option<&'static str>,
    },
    /// A key whose value has the wrong type or is not one of the allowed values.
    #[error("key `{key}` in {origin} expects {expected}, got {got}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// Where it was written.
        origin: Origin,
        /// The expected type or the allowed values.
        expected: String,
        /// The value found, rendered with its YAML type, e.g. `"abc" (string)`.
        got: String,
    },
    /// A known key set to a value whose feature ferrotune has not built yet.
    #[error(
        "key `{key}` ({group}) is known but not supported by ferrotune yet: set to {value} in {origin}; remove it to use the default"
    )]
    NotSupported {
        /// The key.
        key: &'static str,
        /// The argument group, e.g. `model arguments`.
        group: &'static str,
        /// The value set, rendered as in [`ConfigError::WrongType`].
        value: String,
        /// Where it was written, when known.
        origin: Origin,
    },
    /// Keys whose values contradict each other, or a value out of its range.
    #[error("invalid config{}: {message}", fmt_source(source_path.as_ref()))]
    Invalid {
        /// The config file, when the config was loaded from one.
        source_path: Option<PathBuf>,
        /// The keys in conflict.
        keys: Vec<&'static str>,
        /// What is wrong, naming the keys and the fix.
        message: String,
    },
}

fn fmt_position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" line {line} column {column}"),
        (Some(line), None) => format!(" line {line}"),
        _ => String::new(),
    }
}

fn fmt_suggestion(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(": did you mean `{s}`?"))
}

fn fmt_source(path: Option<&PathBuf>) -> String {
    path.map_or_else(String::new, |p| format!(" {}", p.display()))
}
