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

    /// `template` names no built-in prompt template.
    #[error(
        "unknown template `{name}`; known templates: {known} (hint: set `template` to one of them)"
    )]
    UnknownTemplate {
        /// The name asked for.
        name: String,
        /// Every registered name, comma-separated.
        known: String,
    },

    /// A prompt template cannot be used with this tokenizer or these data arguments, e.g. a slot
    /// token missing from the vocabulary or `train_on_prompt` with an `efficient_eos` template.
    #[error("template `{template}`: {message}")]
    PromptTemplate {
        /// The template's name (`parsed` for one parsed from a tokenizer's chat template).
        template: String,
        /// What is wrong and, where there is one, how to fix it.
        message: String,
    },

    /// A tool description or a function-call message is not the JSON LLaMA-Factory expects.
    #[error("{what}: {message}")]
    ToolJson {
        /// Which text is at fault: `tools` or `function message`, with the text quoted.
        what: String,
        /// What is wrong.
        message: String,
    },

    /// The tokenizer failed to encode or decode.
    #[error(transparent)]
    Tokenizer(#[from] ferrotune_hub::HubError),
}

/// Formats the `line 12 `code`` part of a template error, or nothing when the line is unknown.
fn fmt_location(line: Option<usize>, code: Option<&str>) -> String {
    match (line, code) {
        (Some(line), Some(code)) if !code.is_empty() => format!(" line {line} `{code}`"),
        (Some(line), _) => format!(" line {line}"),
        (None, _) => String::new(),
    }
}
