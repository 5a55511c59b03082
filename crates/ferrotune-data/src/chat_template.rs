//! A model's own Hugging Face chat template, rendered as transformers renders it.
//!
//! Chat templates are Jinja2 programs shipped with a tokenizer (`tokenizer_config.json`'s
//! `chat_template`, `chat_template.jinja`, or GGUF's `tokenizer.chat_template`). Python
//! transformers renders them in `apply_chat_template(conversation, tokenize=False)`; this module
//! reproduces that byte for byte with minijinja. The facts it follows come from transformers
//! v5 (`src/transformers/utils/chat_template_utils.py`, `_cached_compile_jinja_template` and
//! `render_jinja_template`; `tokenization_utils_base.py`, `apply_chat_template`):
//!
//! - the environment is jinja2's `ImmutableSandboxedEnvironment` with `trim_blocks=True`,
//!   `lstrip_blocks=True` and the `loopcontrols` extension, jinja2's default lenient `Undefined`
//!   (missing keys print as nothing and are falsy) and no trailing-newline keeping;
//! - `tojson` is `json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
//!   sort_keys=sort_keys)` (Python's separators `", "`/`": "`, key order kept, see
//!   `chat_template/python.rs`); globals `raise_exception(message)` and `strftime_now(format)`;
//! - template text is read as jinja2's lexer reads it: newlines normalized, string literals
//!   decoded with Python's escapes, and the `{% generation %}` block of transformers'
//!   assistant-mask extension rendering its body (see `chat_template/source.rs`);
//! - messages lose their keys whose value is `null`, and a message that carries reasoning under
//!   `reasoning_content`, `thinking` or `reasoning` gets it under `thinking` (first) and
//!   `reasoning_content` (last) too;
//! - the template sees `messages`, `tools` (none when absent), `documents` (none),
//!   `add_generation_prompt`, the special tokens that are set (`bos_token`, `eos_token`) and every
//!   extra keyword argument, which overrides a special token of the same name.
//!
//! Printing follows Python's `str()`: `{{ true }}` is `True`, `{{ none }}` is `None`, floats use
//! Python's repr (`1e+20`) and lists/dicts print as Python literals; `|string` and `|join` do the
//! same. Python string, dict and list methods (`.strip()`, `.split()`, `.items()`, `.get()`, ...)
//! come from minijinja-contrib's `pycompat`, plus `rsplit`, `removeprefix` and `removesuffix`.
//!
//! Known differences from jinja2 that no shipped template we know of depends on: the `~`
//! operator prints booleans and none in minijinja's form (`true`, `none`); integers beyond 128
//! bits and Python-only features (`%` string formatting, arbitrary method calls) are not
//! supported; `str.isprintable` in `repr` uses a fixed table (see `chat_template/python.rs`).

mod filters;
pub(crate) mod python;
mod source;
mod strftime;

use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value as Json};

use crate::error::DataError;
use python::py_str;

/// The name the template is registered under in its private environment.
const TEMPLATE_NAME: &str = "chat_template";

/// The names transformers passes itself; an `extra` variable may not reuse them (Python would
/// fail with "got multiple values for keyword argument").
const RESERVED_VARIABLES: [&str; 4] = ["messages", "tools", "documents", "add_generation_prompt"];

/// The keys a message's reasoning may arrive under, in the order transformers looks for them.
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];

/// A compiled chat template.
///
/// ```
/// use ferrotune_data::chat_template::{ChatTemplate, RenderContext};
///
/// let template = ChatTemplate::new(
///     "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}\
///      {% if add_generation_prompt %}<|assistant|>{% endif %}",
/// )?;
/// let messages = serde_json::json!([{"role": "user", "content": "Hi"}]);
/// let mut ctx = RenderContext::new(&messages);
/// ctx.add_generation_prompt = true;
/// assert_eq!(template.render(&ctx)?, "<|user|>Hi\n<|assistant|>");
/// # Ok::<(), ferrotune_data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    /// The private environment holding the compiled template under [`TEMPLATE_NAME`].
    env: Environment<'static>,
    /// The template text as given to [`ChatTemplate::new`].
    source: String,
}

/// What a chat template is rendered with: the variables transformers' `apply_chat_template`
/// passes to the template.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// The conversation: a JSON array of message objects (`{"role", "content", ...}`), in order.
    pub messages: &'a Json,
    /// Tool schemas (a JSON array of objects), or `None`, which the template sees as `none`.
    pub tools: Option<&'a Json>,
    /// Whether to end with the header that starts an assistant turn.
    pub add_generation_prompt: bool,
    /// The tokenizer's BOS token text; `None` leaves `bos_token` undefined, as transformers does
    /// for a tokenizer without one.
    pub bos_token: Option<&'a str>,
    /// The tokenizer's EOS token text; `None` leaves `eos_token` undefined.
    pub eos_token: Option<&'a str>,
    /// Further template variables (transformers' `**kwargs`), e.g. `enable_thinking`; they
    /// override `bos_token`/`eos_token` of the same name.
    pub extra: Map<String, Json>,
}

impl<'a> RenderContext<'a> {
    /// A context with `messages` only: no tools, no generation prompt, no special tokens, no extra
    /// variables.
    pub fn new(messages: &'a Json) -> Self {
        RenderContext {
            messages,
            tools: None,
            add_generation_prompt: false,
            bos_token: None,
            eos_token: None,
            extra: Map::new(),
        }
    }
}

impl ChatTemplate {
    /// Compiles a template.
    ///
    /// # Errors
    /// [`DataError::Template`] with the line and its text for a syntax error, e.g. an unclosed
    /// `{% if %}` or an unknown tag.
    pub fn new(source: &str) -> Result<Self, DataError> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .keep_trailing_newline(false)
                .build()
                .map_err(|err| template_error(&err, source))?,
        );
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_debug(false);
        env.set_formatter(|out, _state, value| {
            let text = match value.as_str() {
                Some(s) => std::borrow::Cow::Borrowed(s),
                None => std::borrow::Cow::Owned(py_str(value)),
            };
            out.write_str(&text)
                .map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write template output"))
        });
        filters::register(&mut env);
        // jinja2 globals that minijinja keeps in contrib.
        env.add_function("cycler", minijinja_contrib::globals::cycler);
        env.add_function("joiner", minijinja_contrib::globals::joiner);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source::to_minijinja_source(source))
            .map_err(|err| template_error(&err, source))?;
        Ok(ChatTemplate {
            env,
            source: source.to_owned(),
        })
    }

    /// Renders the template with `ctx`, as `apply_chat_template(..., tokenize=False)` does.
    ///
    /// # Errors
    /// - [`DataError::ChatInput`] when `messages` is not a non-empty array of objects, `tools` is
    ///   not an array of objects, or `extra` redefines `messages`, `tools`, `documents` or
    ///   `add_generation_prompt`;
    /// - [`DataError::Template`] with the line when rendering fails: the template called
    ///   `raise_exception(message)` (the message is kept verbatim), used an unknown filter, applied
    ///   an operation to the wrong type, and so on.
    pub fn render(&self, ctx: &RenderContext) -> Result<String, DataError> {
        let variables = template_variables(ctx)?;
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|err| template_error(&err, &self.source))?;
        template
            .render(Value::from(Serde(&variables)))
            .map_err(|err| template_error(&err, &self.source))
    }

    /// The template text as given to [`ChatTemplate::new`].
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Builds the template's variables from `ctx`, normalizing messages as transformers does.
fn template_variables(ctx: &RenderContext) -> Result<Map<String, Json>, DataError> {
    let messages = ctx
        .messages
        .as_array()
        .ok_or_else(|| DataError::ChatInput {
            key: "messages".to_owned(),
            message: format!(
                "expected a JSON array of message objects, found {}",
                json_kind(ctx.messages)
            ),
        })?;
    if messages.is_empty() {
        return Err(DataError::ChatInput {
            key: "messages".to_owned(),
            message: "cannot apply a chat template to an empty conversation; provide at least one message"
                .to_owned(),
        });
    }
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, message)| normalize_message(i, message))
        .collect::<Result<Vec<Json>, DataError>>()?;

    let tools = match ctx.tools {
        None | Some(Json::Null) => Json::Null,
        Some(Json::Array(tools)) => {
            if let Some(i) = tools.iter().position(|tool| !tool.is_object()) {
                return Err(DataError::ChatInput {
                    key: format!("tools[{i}]"),
                    message: format!(
                        "expected a JSON schema object, found {}",
                        json_kind(&tools[i])
                    ),
                });
            }
            Json::Array(tools.clone())
        }
        Some(other) => {
            return Err(DataError::ChatInput {
                key: "tools".to_owned(),
                message: format!(
                    "expected a JSON array of tool schemas, found {}",
                    json_kind(other)
                ),
            })
        }
    };

    let mut variables = Map::new();
    variables.insert("messages".to_owned(), Json::Array(messages));
    variables.insert("tools".to_owned(), tools);
    variables.insert("documents".to_owned(), Json::Null);
    variables.insert(
        "add_generation_prompt".to_owned(),
        Json::Bool(ctx.add_generation_prompt),
    );
    for (name, token) in [("bos_token", ctx.bos_token), ("eos_token", ctx.eos_token)] {
        if let Some(token) = token {
            variables.insert(name.to_owned(), Json::String(token.to_owned()));
        }
    }
    for (key, value) in &ctx.extra {
        if RESERVED_VARIABLES.contains(&key.as_str()) {
            return Err(DataError::ChatInput {
                key: key.clone(),
                message: format!(
                    "extra variable `{key}` collides with a variable the renderer sets; pass it through \
                     the RenderContext field instead"
                ),
            });
        }
        variables.insert(key.clone(), value.clone());
    }
    Ok(variables)
}

/// Drops a message's `null` values and aliases its reasoning, as transformers'
/// `_normalize_chat_messages` and `_alias_reasoning_fields` do.
fn normalize_message(index: usize, message: &Json) -> Result<Json, DataError> {
    let fields = message.as_object().ok_or_else(|| DataError::ChatInput {
        key: format!("messages[{index}]"),
        message: format!(
            "expected a message object like {{\"role\": ..., \"content\": ...}}, found {}",
            json_kind(message)
        ),
    })?;
    let fields: Map<String, Json> = fields
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let Some(reasoning) = REASONING_FIELDS
        .iter()
        .find_map(|key| fields.get(*key))
        .cloned()
    else {
        return Ok(Json::Object(fields));
    };
    // Python: {"thinking": reasoning, **message, "reasoning_content": reasoning}. Inserting an
    // existing key keeps its position, as a Python dict does.
    let mut aliased = Map::new();
    aliased.insert("thinking".to_owned(), reasoning.clone());
    aliased.extend(fields);
    aliased.insert("reasoning_content".to_owned(), reasoning);
    Ok(Json::Object(aliased))
}

/// A short description of a JSON value's type for error messages.
fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// The error `raise_exception(message)` attaches, so that [`template_error`] can tell a
/// template's own error from an engine error.
#[derive(Debug)]
struct RaisedByTemplate(String);

impl std::fmt::Display for RaisedByTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedByTemplate {}

/// The `raise_exception(message)` global: fails the render with `message` (jinja2's
/// `TemplateError(message)` in transformers).
fn raise_exception(message: &Value) -> Result<Value, Error> {
    let message = py_str(message);
    Err(Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(RaisedByTemplate(message)))
}

/// The `strftime_now(format)` global: the local time formatted like Python's
/// `datetime.now().strftime(format)`.
fn strftime_now(format: &str) -> String {
    strftime::strftime_now(format)
}

/// Converts a minijinja error into [`DataError::Template`] with the template line and its text.
fn template_error(err: &Error, source: &str) -> DataError {
    let line = err.line();
    let code = line
        .and_then(|line| source.lines().nth(line.checked_sub(1)?))
        .map(|text| {
            let text = text.trim();
            match text.char_indices().nth(80) {
                Some((cut, _)) => format!("{}...", &text[..cut]),
                None => text.to_owned(),
            }
        });
    let mut raised = None;
    let mut cause = std::error::Error::source(err);
    let mut causes = Vec::new();
    while let Some(next) = cause {
        if let Some(by_template) = next.downcast_ref::<RaisedByTemplate>() {
            raised = Some(by_template.0.clone());
            break;
        }
        causes.push(next.to_string());
        cause = next.source();
    }
    let message = match raised {
        Some(message) => format!("the template raised an error: {message}"),
        None => {
            let mut message = err.kind().to_string();
            if let Some(detail) = err.detail() {
                message = format!("{message}: {detail}");
            }
            for cause in causes {
                message = format!("{message}: {cause}");
            }
            message
        }
    };
    DataError::Template {
        line,
        code,
        message,
    }
}
