//! The prompt template of a run in the forms other tools read: a Jinja chat template for
//! `tokenizer_config.json` / GGUF `tokenizer.chat_template`, and a Go template for an Ollama
//! `Modelfile`. Follows LLaMA-Factory v0.9.5 `data/template.py` (`_convert_slots_to_jinja`,
//! `_get_jinja_template` of `Template` and `Llama2Template`, `fix_jinja_template`,
//! `_convert_slots_to_ollama`, `_get_ollama_template`, `get_ollama_modelfile`).

use ferrotune_data::template::{Element, Template, TemplateKind};
use ferrotune_hub::tokenizer::TokenizerBundle;

/// Where the chat template of an export comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplateSource {
    /// The run's prompt template converted to Jinja (the tokenizer had none, or the template
    /// replaces it, LLaMA-Factory's `replace_jinja_template`).
    FromTemplate,
    /// The tokenizer's own chat template, kept.
    Tokenizer,
    /// The tokenizer's own chat template, kept because the prompt template names a token by
    /// id, which the Jinja form cannot express (LLaMA-Factory logs and keeps it too).
    TokenizerTemplateNotConvertible,
    /// Neither exists.
    None,
}

/// Quotes text for a Jinja string literal as LLaMA-Factory does (single quotes escaped).
fn jinja_escape(text: &str) -> String {
    text.replace('\'', "\\'")
}

/// One slot as a Jinja expression: literal pieces quoted, `{{content}}` as `placeholder`, BOS/EOS
/// as the tokenizer's token text, joined with ` + `. `None` when the slot names a token.
fn slots_to_jinja(slots: &[Element], tok: &TokenizerBundle, placeholder: &str) -> Option<String> {
    let mut items = Vec::new();
    for slot in slots {
        match slot {
            Element::Text(text) => {
                let mut pieces = text.split("{{content}}");
                let first = pieces.next().unwrap_or_default();
                if !first.is_empty() {
                    items.push(format!("'{}'", jinja_escape(first)));
                }
                if let Some(second) = pieces.next() {
                    items.push(placeholder.to_string());
                    if !second.is_empty() {
                        items.push(format!("'{}'", jinja_escape(second)));
                    }
                }
            }
            Element::Bos => {
                if let (Some(_), Some(t)) = (tok.bos_token_id(), &tok.bos_token) {
                    items.push(format!("'{t}'"));
                }
            }
            Element::Eos => {
                if let (Some(_), Some(t)) = (tok.eos_token_id(), &tok.eos_token) {
                    items.push(format!("'{t}'"));
                }
            }
            Element::Token(_) => return None,
        }
    }
    Some(items.join(" + "))
}

/// The Jinja chat template equivalent to `template` (system message, user and assistant turns;
/// tools and observations are not part of it, as in LLaMA-Factory), or `None` when a slot names
/// a token by id.
pub fn jinja_template(template: &Template, tok: &TokenizerBundle) -> Option<String> {
    let prefix = slots_to_jinja(&template.format_prefix, tok, "content")?;
    let system = slots_to_jinja(&template.format_system, tok, "system_message")?;
    let user = slots_to_jinja(&template.format_user, tok, "content")?;
    let assistant = slots_to_jinja(&template.format_assistant, tok, "content")?;
    let mut out = String::new();
    if !prefix.is_empty() {
        out.push_str(&format!("{{{{ {prefix} }}}}"));
    }
    if !template.default_system.is_empty() {
        out.push_str(&format!(
            "{{% set system_message = '{}' %}}",
            jinja_escape(&template.default_system)
        ));
    }
    out.push_str(
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}\
         {% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% endif %}",
    );
    match template.kind {
        TemplateKind::Llama2 => {
            // The system text is fused into the first user message.
            out.push_str(&format!(
                "{{% for message in loop_messages %}}\
                 {{% if loop.index0 == 0 and system_message is defined %}}\
                 {{% set content = {system} + message['content'] %}}\
                 {{% else %}}{{% set content = message['content'] %}}{{% endif %}}"
            ));
        }
        TemplateKind::Plain | TemplateKind::Reasoning => {
            out.push_str(&format!(
                "{{% if system_message is defined %}}{{{{ {system} }}}}{{% endif %}}\
                 {{% for message in loop_messages %}}{{% set content = message['content'] %}}"
            ));
        }
    }
    out.push_str(&format!(
        "{{% if message['role'] == 'user' %}}{{{{ {user} }}}}\
         {{% elif message['role'] == 'assistant' %}}{{{{ {assistant} }}}}{{% endif %}}{{% endfor %}}"
    ));
    Some(out)
}

/// The chat template an export carries, as LLaMA-Factory's `fix_jinja_template` decides: the
/// template's Jinja form when the tokenizer has no chat template or the template replaces it,
/// else the tokenizer's own.
pub fn export_chat_template(
    template: &Template,
    tok: &TokenizerBundle,
) -> (Option<String>, ChatTemplateSource) {
    if tok.chat_template.is_none() || template.replace_jinja_template {
        if let Some(jinja) = jinja_template(template, tok) {
            return (Some(jinja), ChatTemplateSource::FromTemplate);
        }
        if tok.chat_template.is_some() {
            return (
                tok.chat_template.clone(),
                ChatTemplateSource::TokenizerTemplateNotConvertible,
            );
        }
        return (None, ChatTemplateSource::None);
    }
    (tok.chat_template.clone(), ChatTemplateSource::Tokenizer)
}

/// One slot as Ollama Go-template text: literal pieces as they are, `{{content}}` as
/// `{{ placeholder }}`, BOS/EOS as token text; a slot token by its text (LLaMA-Factory raises
/// here; the text is what the token id stands for).
fn slots_to_ollama(slots: &[Element], tok: &TokenizerBundle, placeholder: &str) -> String {
    let mut out = String::new();
    for slot in slots {
        match slot {
            Element::Text(text) => {
                let mut pieces = text.split("{{content}}");
                out.push_str(pieces.next().unwrap_or_default());
                if let Some(second) = pieces.next() {
                    out.push_str(&format!("{{{{ {placeholder} }}}}"));
                    out.push_str(second);
                }
            }
            Element::Bos => {
                if let (Some(_), Some(t)) = (tok.bos_token_id(), &tok.bos_token) {
                    out.push_str(t);
                }
            }
            Element::Eos => {
                if let (Some(_), Some(t)) = (tok.eos_token_id(), &tok.eos_token) {
                    out.push_str(t);
                }
            }
            Element::Token(t) => out.push_str(t),
        }
    }
    out
}

/// The Ollama `TEMPLATE` of `template`: prefix, `{{ if .System }}system{{ end }}`, then the user
/// and assistant turns of `.Messages`.
pub fn ollama_template(template: &Template, tok: &TokenizerBundle) -> String {
    let prefix = slots_to_ollama(&template.format_prefix, tok, ".Content");
    let system = slots_to_ollama(&template.format_system, tok, ".System");
    let user = slots_to_ollama(&template.format_user, tok, ".Content");
    let assistant = slots_to_ollama(&template.format_assistant, tok, ".Content");
    format!(
        "{prefix}{{{{ if .System }}}}{system}{{{{ end }}}}{{{{ range .Messages }}}}\
         {{{{ if eq .Role \"user\" }}}}{user}{{{{ else if eq .Role \"assistant\" }}}}{assistant}\
         {{{{ end }}}}{{{{ end }}}}"
    )
}

/// An Ollama `Modelfile`: `FROM <from>` (`.` for an HF folder, `./<file>.gguf` for a GGUF
/// export), `TEMPLATE`, `SYSTEM` when the template has a default system message, one
/// `PARAMETER stop` per stop token (EOS, then the template's stop words) and `num_ctx 4096`,
/// as LLaMA-Factory's `get_ollama_modelfile` writes it.
pub fn modelfile(template: &Template, tok: &TokenizerBundle, from: &str) -> String {
    let mut out = String::from("# ollama modelfile written by ferrotune\n\n");
    out.push_str(&format!(
        "FROM {from}\n\nTEMPLATE \"\"\"{}\"\"\"\n\n",
        ollama_template(template, tok)
    ));
    if !template.default_system.is_empty() {
        out.push_str(&format!(
            "SYSTEM \"\"\"{}\"\"\"\n\n",
            template.default_system
        ));
    }
    for id in template.stop_token_ids(tok) {
        if let Some(text) = tok.tokenizer.id_to_token(id) {
            out.push_str(&format!("PARAMETER stop \"{text}\"\n"));
        }
    }
    out.push_str("PARAMETER num_ctx 4096\n");
    out
}
