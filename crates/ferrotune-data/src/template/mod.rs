//! LLaMA-Factory's prompt templates: how a conversation becomes token ids, turn by turn.
//!
//! A [`Template`] is a set of *slots*, one per kind of text (prefix, system, user, assistant,
//! observation, function call). A slot is a list of [`Element`]s: literal text with
//! `{{content}}`/`{{idx}}` placeholders, a named token, or the tokenizer's BOS/EOS. Each element
//! is encoded on its own (text with `add_special_tokens=false`, tokens to their single id), so the
//! ids never depend on how BPE would merge across slot boundaries. This follows LLaMA-Factory
//! v0.9.5 `src/llamafactory/data/template.py` (`Template._encode`, `Llama2Template`,
//! `ReasoningTemplate`, `parse_template`) and `formatter.py`.
//!
//! ```no_run
//! use ferrotune_data::message::{Message, Role};
//! use ferrotune_data::template::Template;
//! # fn run(tok: &mut ferrotune_hub::tokenizer::TokenizerBundle) -> Result<(), ferrotune_data::DataError> {
//! let template = Template::get("smollm2")?;
//! template.fix_special_tokens(tok)?;
//! let messages = [Message::new(Role::User, "Hi"), Message::new(Role::Assistant, "Hello!")];
//! let turns = template.encode_multiturn(tok, &messages, None, None, false)?;
//! assert_eq!(turns.len(), 1); // one (prompt ids, response ids) pair per turn
//! # Ok(()) }
//! ```

mod parse;
mod registry;
mod tokens;
pub mod tool;

use ferrotune_hub::tokenizer::TokenizerBundle;

use crate::error::DataError;
use crate::message::{Message, Role};
pub use registry::TEMPLATE_NAMES;
pub use tool::{ToolCall, ToolFormat};

/// One piece of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// Literal text; `{{content}}` and (in the user slot) `{{idx}}` are filled in, the first
    /// occurrence of each, then the text is encoded without special tokens.
    Text(String),
    /// A token by its text, e.g. `<|im_start|>`, encoded as its single id
    /// (LLaMA-Factory's `{"token": ...}`).
    Token(String),
    /// The tokenizer's BOS id, or nothing when it has none (`{"bos_token"}`).
    Bos,
    /// The tokenizer's EOS id, or nothing when it has none (`{"eos_token"}`).
    Eos,
}

/// How a template treats the system message and reasoning (LLaMA-Factory's template classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// `Template`: system text goes through `format_system` before the first user turn.
    Plain,
    /// `Llama2Template`: the formatted system text is prepended to the first user message.
    Llama2,
    /// `ReasoningTemplate`: assistant turns without a thought get an empty `<think>` block.
    Reasoning,
}

/// A prompt template: slots plus the flags that change encoding and the tokenizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Registered name, or `parsed` for one built by [`Template::from_chat_template`].
    pub name: String,
    /// How the system message and thoughts are handled.
    pub kind: TemplateKind,
    /// Put before the first message only (e.g. BOS).
    pub format_prefix: Vec<Element>,
    /// Wraps the system message (plus the tool description) in the first turn.
    pub format_system: Vec<Element>,
    /// Wraps a user message; `{{idx}}` is the turn number.
    pub format_user: Vec<Element>,
    /// Wraps an assistant message.
    pub format_assistant: Vec<Element>,
    /// Wraps a tool result.
    pub format_observation: Vec<Element>,
    /// Wraps an assistant tool call after [`Template::function_format`] rendered it.
    pub format_function: Vec<Element>,
    /// How tool calls in `function` messages are written.
    pub function_format: ToolFormat,
    /// How the `tools` JSON is described in the system message.
    pub tool_format: ToolFormat,
    /// System message used when an example has none.
    pub default_system: String,
    /// Tokens that end generation; with `replace_eos` the first becomes the EOS token.
    pub stop_words: Vec<String>,
    /// Opening and closing thought markers, e.g. `("<think>\n", "\n</think>\n\n")`.
    pub thought_words: (String, String),
    /// Opening and closing tool-call markers, e.g. `("<tool_call>", "</tool_call>")`.
    pub tool_call_words: (String, String),
    /// The assistant slot carries no EOS; one EOS ends the whole sequence instead and
    /// prompts after the first start with it in the labels.
    pub efficient_eos: bool,
    /// Replace the tokenizer's EOS token with the first stop word.
    pub replace_eos: bool,
    /// LLaMA-Factory writes its own Jinja template into the saved tokenizer (kept for export).
    pub replace_jinja_template: bool,
    /// Reasoning templates: `Some(false)` strips thoughts, `Some(true)` trains on the empty
    /// thought it adds, `None` adds it to the prompt (LLaMA-Factory's `enable_thinking`).
    pub enable_thinking: Option<bool>,
    /// Reasoning templates: keep the thoughts of earlier turns in one-turn encoding.
    pub preserve_thinking: bool,
}

/// Pairs of (prompt ids, response ids), one per turn.
pub type EncodedTurns = Vec<(Vec<u32>, Vec<u32>)>;

impl Template {
    /// The built-in template registered as `name` (see [`TEMPLATE_NAMES`]).
    ///
    /// # Errors
    /// [`DataError::UnknownTemplate`] listing the known names.
    pub fn get(name: &str) -> Result<Template, DataError> {
        registry::builtin(name).ok_or_else(|| DataError::UnknownTemplate {
            name: name.to_owned(),
            known: TEMPLATE_NAMES.join(", "),
        })
    }

    /// Pairs of (prompt ids, response ids), one per user/assistant turn, as LLaMA-Factory's
    /// `Template.encode_multiturn` returns them. `messages` alternate prompt-side and
    /// response-side roles and have even length. `system: None` (or empty) uses
    /// [`Template::default_system`]; `tools` is the JSON tool list of the example.
    /// `discard_history_cot` (reasoning templates, set by `mask_history`) strips thoughts from
    /// all but the last assistant turn.
    ///
    /// # Errors
    /// [`DataError::PromptTemplate`] for an odd number of messages, a system message inside
    /// `messages` or a slot token the tokenizer lacks; [`DataError::ToolJson`] for malformed
    /// tools or function calls; [`DataError::Tokenizer`] if encoding fails.
    pub fn encode_multiturn(
        &self,
        tok: &TokenizerBundle,
        messages: &[Message],
        system: Option<&str>,
        tools: Option<&str>,
        discard_history_cot: bool,
    ) -> Result<EncodedTurns, DataError> {
        if !messages.len().is_multiple_of(2) {
            return Err(self.error(format!(
                "a conversation to encode turn by turn needs an even number of messages, got {}",
                messages.len()
            )));
        }
        let mut messages = messages.to_vec();
        let reasoning = self.kind == TemplateKind::Reasoning;
        if reasoning && self.enable_thinking == Some(false) {
            for m in messages.iter_mut().skip(1).step_by(2) {
                m.content = self.remove_thought(&m.content);
            }
        }
        let last = messages.len().saturating_sub(2);
        if reasoning && discard_history_cot {
            for m in messages.iter_mut().take(last).skip(1).step_by(2) {
                m.content = self.remove_thought(&m.content);
            }
        }
        let mut encoded = self.encode_messages(tok, &messages, system, tools)?;
        if reasoning {
            let turns: Vec<usize> = if discard_history_cot {
                vec![last]
            } else {
                (0..messages.len()).step_by(2).collect()
            };
            for i in turns {
                let Some(response) = messages.get(i + 1) else {
                    continue;
                };
                if self.lacks_thought(&response.content) {
                    self.add_empty_thought(tok, &mut encoded, i)?;
                }
            }
        }
        let mut pairs = Vec::with_capacity(encoded.len() / 2);
        let mut iter = encoded.into_iter();
        while let (Some(prompt), Some(response)) = (iter.next(), iter.next()) {
            pairs.push((prompt, response));
        }
        Ok(pairs)
    }

    /// One (prompt ids, response ids) pair: everything before the last message is the prompt
    /// (LLaMA-Factory's `Template.encode_oneturn`, used for unsupervised and preference data).
    ///
    /// # Errors
    /// As [`Template::encode_multiturn`]; also [`DataError::PromptTemplate`] for no messages.
    pub fn encode_oneturn(
        &self,
        tok: &TokenizerBundle,
        messages: &[Message],
        system: Option<&str>,
        tools: Option<&str>,
    ) -> Result<(Vec<u32>, Vec<u32>), DataError> {
        if messages.is_empty() {
            return Err(self.error("cannot encode an empty conversation".to_owned()));
        }
        let mut messages = messages.to_vec();
        let reasoning = self.kind == TemplateKind::Reasoning;
        let n = messages.len();
        if reasoning && !self.preserve_thinking {
            for m in messages
                .iter_mut()
                .take(n.saturating_sub(2))
                .skip(1)
                .step_by(2)
            {
                m.content = self.remove_thought(&m.content);
            }
        }
        if reasoning && self.enable_thinking == Some(false) {
            messages[n - 1].content = self.remove_thought(&messages[n - 1].content);
        }
        let mut encoded = self.encode_messages(tok, &messages, system, tools)?;
        let mut response = encoded.pop().unwrap_or_default();
        let mut prompt: Vec<u32> = encoded.into_iter().flatten().collect();
        if reasoning && self.lacks_thought(&messages[n - 1].content) {
            let thought = self.thought_ids(tok)?;
            if self.enable_thinking == Some(true) {
                response.splice(0..0, thought);
            } else {
                prompt.extend(thought);
            }
        }
        Ok((prompt, response))
    }

    /// Removes every `thought_words.0 … thought_words.1` block and the newlines left at the
    /// start (LLaMA-Factory's `remove_thought`).
    pub fn remove_thought(&self, content: &str) -> String {
        let (open, close) = (&self.thought_words.0, &self.thought_words.1);
        let mut out = String::with_capacity(content.len());
        let mut rest = content;
        while let Some(start) = rest.find(open.as_str()) {
            let after = &rest[start + open.len()..];
            let Some(end) = after.find(close.as_str()) else {
                break;
            };
            out.push_str(&rest[..start]);
            rest = &after[end + close.len()..];
        }
        out.push_str(rest);
        out.trim_start_matches('\n').to_owned()
    }

    /// Whether `content` has neither thought marker (each compared without surrounding
    /// whitespace), so an empty thought is to be added.
    fn lacks_thought(&self, content: &str) -> bool {
        !content.contains(self.thought_words.0.trim())
            && !content.contains(self.thought_words.1.trim())
    }

    /// Ids of an empty thought block, `thought_words.0 + thought_words.1`.
    fn thought_ids(&self, tok: &TokenizerBundle) -> Result<Vec<u32>, DataError> {
        let text = format!("{}{}", self.thought_words.0, self.thought_words.1);
        Ok(tok.encode(&text, false)?)
    }

    /// Adds the empty thought of turn `i` (message `i` is its prompt): to the prompt unless
    /// `enable_thinking` is `Some(true)`, else in front of the response.
    fn add_empty_thought(
        &self,
        tok: &TokenizerBundle,
        encoded: &mut [Vec<u32>],
        i: usize,
    ) -> Result<(), DataError> {
        let thought = self.thought_ids(tok)?;
        if self.enable_thinking == Some(true) {
            if let Some(response) = encoded.get_mut(i + 1) {
                response.splice(0..0, thought);
            }
        } else if let Some(prompt) = encoded.get_mut(i) {
            prompt.extend(thought);
        }
        Ok(())
    }

    /// Ids of each message with its slot: the prefix and system part go before message 0.
    fn encode_messages(
        &self,
        tok: &TokenizerBundle,
        messages: &[Message],
        system: Option<&str>,
        tools: Option<&str>,
    ) -> Result<Vec<Vec<u32>>, DataError> {
        let system = system
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.default_system);
        let tools = tools.filter(|t| !t.is_empty());
        let mut encoded = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let mut elements = Vec::new();
            let mut system_text = String::new();
            if i == 0 {
                elements.extend(self.format_prefix.iter().cloned());
                if !system.is_empty() || tools.is_some() {
                    let tool_text = match tools {
                        Some(tools) => self.tool_format.format_tools(tools)?,
                        None => String::new(),
                    };
                    let system_elements =
                        fill(&self.format_system, &(system.to_owned() + &tool_text), None);
                    if self.kind == TemplateKind::Llama2 {
                        system_text = match system_elements.first() {
                            Some(Element::Text(text)) => text.clone(),
                            _ => {
                                return Err(
                                    self.error("the system slot must start with text".to_owned())
                                )
                            }
                        };
                    } else {
                        elements.extend(system_elements);
                    }
                }
            }
            let llama2 = self.kind == TemplateKind::Llama2;
            let content = &message.content;
            let slot = match message.role {
                Role::User if llama2 => fill(&self.format_user, &(system_text + content), None),
                Role::User => fill(&self.format_user, content, Some(&(i / 2).to_string())),
                Role::Assistant => fill(&self.format_assistant, content, None),
                Role::Observation => fill(&self.format_observation, content, None),
                Role::Function => {
                    let words = (!llama2).then_some((&self.thought_words, &self.tool_call_words));
                    let text = self
                        .function_format
                        .format_function_message(content, words)?;
                    fill(&self.format_function, &text, None)
                }
                Role::System => {
                    return Err(self.error(format!(
                        "message {i} has role `system`; pass the system prompt separately"
                    )))
                }
            };
            elements.extend(slot);
            encoded.push(tokens::elements_to_ids(self, tok, &elements)?);
        }
        Ok(encoded)
    }

    /// A [`DataError::PromptTemplate`] naming this template.
    fn error(&self, message: String) -> DataError {
        DataError::PromptTemplate {
            template: self.name.clone(),
            message,
        }
    }
}

/// Fills a slot: in each text element the first `{{content}}` becomes `content`, then the first
/// `{{idx}}` becomes `idx` when given (LLaMA-Factory's `StringFormatter.apply`).
fn fill(slots: &[Element], content: &str, idx: Option<&str>) -> Vec<Element> {
    slots
        .iter()
        .map(|element| match element {
            Element::Text(text) => {
                // `replacen` copies even without a match: only call it where there is one.
                let mut text = match text.contains("{{content}}") {
                    true => text.replacen("{{content}}", content, 1),
                    false => text.clone(),
                };
                if let Some(idx) = idx.filter(|_| text.contains("{{idx}}")) {
                    text = text.replacen("{{idx}}", idx, 1);
                }
                Element::Text(text)
            }
            other => other.clone(),
        })
        .collect()
}
