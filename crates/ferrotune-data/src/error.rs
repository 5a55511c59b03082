//! The error type of every fallible function in this crate.
//!
//! A chat template is user-supplied code (it ships in `tokenizer_config.json`, `chat_template.jinja`
//! or GGUF metadata), so its errors name the template line and quote it, the way a compiler would.

/// Everything that can go wrong while compiling or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The template does not parse, fails while rendering, or called `raise_exception(message)`.
    ///
    /// Displayed as ``chat template line 12 `{% if x %`: <message>``; the line part is left out when
    /// the engine cannot attribute the error to a line.
    #[error("chat template{}: {message}", fmt_location(*.line, .code.as_deref()))]
    Template {
        /// 1-based line of the template source the error was raised on, if known.
        line: Option<usize>,
        /// The source text of that line, trimmed and shortened to at most 80 characters.
        code: Option<String>,
        /// What went wrong; for `raise_exception(message)` this contains the template's own message.
        message: String,
    },

    /// The messages, tools or extra variables handed to the renderer have the wrong shape, e.g.
    /// `messages` is not a JSON array of objects (transformers raises the same cases as `TypeError`
    /// or `ValueError` before rendering).
    #[error("chat template input `{key}`: {message}")]
    ChatInput {
        /// The input at fault: `messages`, `messages[3]`, `tools`, or an `extra` key.
        key: String,
        /// What is wrong and, where there is one, how to fix it.
        message: String,
    },
}

/// Formats the `line 12 `code`` part of a template error, or nothing when the line is unknown.
fn fmt_location(line: Option<usize>, code: Option<&str>) -> String {
    match (line, code) {
        (Some(line), Some(code)) if !code.is_empty() => format!(" line {line} `{code}`"),
        (Some(line), _) => format!(" line {line}"),
        (None, _) => String::new(),
    }
}
