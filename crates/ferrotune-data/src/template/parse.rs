//! A template read off a tokenizer's own chat template, for when no `template` is given
//! (LLaMA-Factory v0.9.5 `parse_template`): the Jinja template is rendered on probe
//! conversations whose contents are the literal text `{{content}}`, and the slots are cut out
//! of the results. Lengths are counted in characters, as Python slices strings.

use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::{json, Value as Json};

use super::{Element, Template, TemplateKind, ToolFormat};
use crate::chat_template::{ChatTemplate, RenderContext};
use crate::error::DataError;

/// The name given to parsed templates in errors.
const PARSED: &str = "parsed";

impl Template {
    /// The template LLaMA-Factory derives from `tok`'s chat template: prefix (what encoding an
    /// empty text adds), system, user and assistant slots, and the default system message the
    /// chat template inserts when a conversation has none. A `<think>` in the assistant slot
    /// makes it a reasoning template.
    ///
    /// # Errors
    /// [`DataError::PromptTemplate`] when the tokenizer has no chat template;
    /// [`DataError::Template`] when it fails to compile or render.
    pub fn from_chat_template(tok: &TokenizerBundle) -> Result<Template, DataError> {
        let source = tok
            .chat_template
            .as_deref()
            .ok_or_else(|| DataError::PromptTemplate {
                template: PARSED.to_owned(),
                message: "the tokenizer has no chat template (hint: set `template`)".to_owned(),
            })?;
        let chat = ChatTemplate::new(source)?;
        let render =
            |messages: Json, add_generation_prompt: bool| -> Result<Vec<char>, DataError> {
                let ctx = RenderContext {
                    add_generation_prompt,
                    bos_token: tok.bos_token.as_deref(),
                    eos_token: tok.eos_token.as_deref(),
                    ..RenderContext::new(&messages)
                };
                Ok(chat.render(&ctx)?.chars().collect())
            };
        let prefix: Vec<char> = tok.decode(&tok.encode("", true)?, false)?.chars().collect();
        let p = prefix.len();
        let c = "{{content}}";

        let system_slot = tail(
            &render(json!([{"role": "system", "content": c}]), false)?,
            p,
        );
        let empty_system =
            json!([{"role": "system", "content": ""}, {"role": "user", "content": c}]);
        let user_slot_empty_system = tail(&render(empty_system, true)?, p);
        let mut user_slot = tail(&render(json!([{"role": "user", "content": c}]), true)?, p);
        let pair = json!([{"role": "user", "content": c}, {"role": "assistant", "content": c}]);
        let assistant_full = tail(&render(pair, false)?, p + user_slot.chars().count());
        let kind = if assistant_full.contains("<think>") {
            TemplateKind::Reasoning
        } else {
            TemplateKind::Plain
        };
        let assistant_slot = assistant_full
            .replace("<think>", "")
            .replace("</think>", "")
            .trim_start_matches('\n')
            .to_owned();

        let mut default_system = String::new();
        if user_slot.chars().count() > user_slot_empty_system.chars().count() {
            default_system = find_diff(&user_slot_empty_system, &user_slot);
            let sole_system = system_slot.replacen(c, &default_system, 1);
            let cut: Vec<char> = user_slot.chars().collect();
            user_slot = tail(&cut, sole_system.chars().count());
        }

        let text = |s: &str| vec![Element::Text(s.to_owned())];
        let prefix: String = prefix.into_iter().collect();
        Ok(Template {
            name: PARSED.to_owned(),
            kind,
            format_prefix: if prefix.is_empty() {
                Vec::new()
            } else {
                text(&prefix)
            },
            format_system: text(&system_slot),
            format_user: text(&user_slot),
            format_assistant: text(&assistant_slot),
            format_observation: text(&user_slot),
            format_function: text(&assistant_slot),
            function_format: ToolFormat::Default,
            tool_format: ToolFormat::Default,
            default_system,
            stop_words: Vec::new(),
            thought_words: ("<think>\n".to_owned(), "\n</think>\n\n".to_owned()),
            tool_call_words: ("<tool_call>".to_owned(), "</tool_call>".to_owned()),
            efficient_eos: false,
            replace_eos: false,
            replace_jinja_template: false,
            enable_thinking: Some(true),
            preserve_thinking: false,
        })
    }
}

/// `chars[from:]` as a string (empty when `from` is past the end, as Python slicing is).
fn tail(chars: &[char], from: usize) -> String {
    chars.get(from..).unwrap_or_default().iter().collect()
}

/// The characters of `long` skipped while walking it in step with `short` (LLaMA-Factory's
/// `find_diff`): what the longer rendering has that the shorter one lacks.
fn find_diff(short: &str, long: &str) -> String {
    let short: Vec<char> = short.chars().collect();
    let mut diff = String::new();
    let mut i = 0;
    for ch in long.chars() {
        if i >= short.len() {
            break;
        }
        if short[i] == ch {
            i += 1;
        } else {
            diff.push(ch);
        }
    }
    diff
}
