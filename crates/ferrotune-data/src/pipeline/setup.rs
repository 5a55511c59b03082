//! The prompt template of a run and the tokenizer fixed for it, as LLaMA-Factory v0.9.5's
//! `get_template_and_fix_tokenizer` (`data/template.py`) makes them.

use ferrotune_config::Config;
use ferrotune_hub::tokenizer::TokenizerBundle;
use tracing::{info, warn};

use super::PipelineError;
use crate::error::DataError;
use crate::template::{Element, Template, TemplateKind, ToolFormat};

/// Picks the prompt template and fixes `tok` for it:
///
/// 1. `template` names a built-in template; unset, the tokenizer's own chat template is parsed
///    ([`Template::from_chat_template`]), or the `empty` template is used when it has none;
/// 2. `train_on_prompt` is refused with an `efficient_eos` template;
/// 3. `tool_format` replaces the function-call and tool-description formats (the function slot
///    becomes `{{content}}` followed by EOS, or `{{content}}` alone for `efficient_eos`);
/// 4. `default_system` replaces the template's default system message;
/// 5. reasoning templates take `enable_thinking` and `preserve_thinking`;
/// 6. [`Template::fix_special_tokens`]: `replace_eos`, a missing EOS or pad token, stop words.
///
/// LLaMA-Factory's `fix_jinja_template` (writing the template into the saved tokenizer) only
/// matters when a tokenizer is exported and is not done here.
///
/// # Errors
/// [`DataError::UnknownTemplate`] listing the known names; [`DataError::PromptTemplate`] for
/// `train_on_prompt` with `efficient_eos`, an unknown `tool_format` or `replace_eos` without
/// stop words; chat-template errors when parsing the tokenizer's template.
pub fn prepare_tokenizer_and_template(
    cfg: &Config,
    mut tok: TokenizerBundle,
) -> Result<(TokenizerBundle, Template), PipelineError> {
    let data = &cfg.data;
    let mut template = match data.template.as_deref() {
        Some(name) => Template::get(name)?,
        None if tok.chat_template.is_some() => {
            warn!("`template` was not specified, parsing the tokenizer's chat template");
            Template::from_chat_template(&tok)?
        }
        None => {
            warn!("`template` was not specified and the tokenizer has no chat template, using the `empty` template");
            Template::get("empty")?
        }
    };
    if data.train_on_prompt && template.efficient_eos {
        return Err(DataError::PromptTemplate {
            template: template.name.clone(),
            message: "does not support `train_on_prompt` (its assistant turns have no EOS); \
                      hint: remove `train_on_prompt` or pick another `template`"
                .to_owned(),
        }
        .into());
    }
    if let Some(name) = data.tool_format.as_deref() {
        info!("using tool format: {name}");
        let format = ToolFormat::from_name(name)?;
        template.function_format = format;
        template.tool_format = format;
        template.format_function = vec![Element::Text("{{content}}".to_owned())];
        if !template.efficient_eos {
            template.format_function.push(Element::Eos);
        }
    }
    if let Some(system) = &data.default_system {
        info!("using default system message: {system}");
        template.default_system = system.clone();
    }
    if template.kind == TemplateKind::Reasoning {
        warn!(
            "`{}` is a reasoning template; use its `_nothink` variant if the model does not reason",
            template.name
        );
        template.enable_thinking = data.enable_thinking;
        template.preserve_thinking = data.preserve_thinking;
    }
    let added = template.fix_special_tokens(&mut tok)?;
    if added > 0 {
        info!("added {added} special token(s) to the tokenizer; the model needs `resize_vocab`");
    }
    Ok((tok, template))
}
