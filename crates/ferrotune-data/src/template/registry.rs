//! The built-in templates, with the slots of LLaMA-Factory v0.9.5's `register_template` calls
//! in `data/template.py` and its defaults for slots left out.

use super::{Element, Template, TemplateKind, ToolFormat};

/// Every built-in template name, in alphabetical order.
pub const TEMPLATE_NAMES: [&str; 26] = [
    "alpaca",
    "chatml",
    "cohere",
    "deepseek",
    "deepseek3",
    "default",
    "empty",
    "falcon",
    "gemma",
    "gemma2",
    "glm4",
    "llama2",
    "llama3",
    "mistral",
    "olmo",
    "phi",
    "phi4",
    "qwen",
    "qwen3",
    "qwen3_nothink",
    "smollm",
    "smollm2",
    "solar",
    "vicuna",
    "yi",
    "zephyr",
];

/// A text element.
fn t(text: &str) -> Element {
    Element::Text(text.to_owned())
}

/// The arguments of one `register_template` call; `None` slots take LLaMA-Factory's defaults.
#[derive(Default)]
struct Spec {
    user: Option<Vec<Element>>,
    assistant: Option<Vec<Element>>,
    system: Option<Vec<Element>>,
    function: Option<(Vec<Element>, ToolFormat)>,
    observation: Option<Vec<Element>>,
    tools: Option<ToolFormat>,
    prefix: Option<Vec<Element>>,
    default_system: &'static str,
    stop_words: &'static [&'static str],
    efficient_eos: bool,
    replace_eos: bool,
    replace_jinja_template: bool,
    kind: Option<TemplateKind>,
}

impl Spec {
    /// The template with `register_template`'s defaults: user and system `{{content}}`, the
    /// assistant `{{content}}` plus EOS (without EOS when `efficient_eos`), function calls in
    /// the assistant slot with the default tool format, observations in the user slot.
    fn build(self, name: &str) -> Template {
        let content = vec![t("{{content}}")];
        let default_slots = if self.efficient_eos {
            content.clone()
        } else {
            vec![t("{{content}}"), Element::Eos]
        };
        let (format_function, function_format) = self.function.unwrap_or_else(|| {
            (
                self.assistant
                    .clone()
                    .unwrap_or_else(|| default_slots.clone()),
                ToolFormat::Default,
            )
        });
        Template {
            name: name.to_owned(),
            kind: self.kind.unwrap_or(TemplateKind::Plain),
            format_prefix: self.prefix.unwrap_or_default(),
            format_system: self.system.unwrap_or_else(|| content.clone()),
            format_observation: self
                .observation
                .or_else(|| self.user.clone())
                .unwrap_or_else(|| content.clone()),
            format_user: self.user.unwrap_or(content),
            format_assistant: self.assistant.unwrap_or(default_slots),
            format_function,
            function_format,
            tool_format: self.tools.unwrap_or(ToolFormat::Default),
            default_system: self.default_system.to_owned(),
            stop_words: self.stop_words.iter().map(|w| (*w).to_owned()).collect(),
            thought_words: ("<think>\n".to_owned(), "\n</think>\n\n".to_owned()),
            tool_call_words: ("<tool_call>".to_owned(), "</tool_call>".to_owned()),
            efficient_eos: self.efficient_eos,
            replace_eos: self.replace_eos,
            replace_jinja_template: self.replace_jinja_template,
            enable_thinking: Some(true),
            preserve_thinking: false,
        }
    }
}

/// The ChatML user slot shared by chatml, qwen, smollm and yi.
const CHATML_USER: &str = "<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n";
/// The ChatML assistant slot.
const CHATML_ASSISTANT: &str = "{{content}}<|im_end|>\n";
/// The ChatML system slot.
const CHATML_SYSTEM: &str = "<|im_start|>system\n{{content}}<|im_end|>\n";
/// Qwen's tool-result slot.
const QWEN_OBSERVATION: &str =
    "<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n<|im_start|>assistant\n";
/// Gemma's user slot.
const GEMMA_USER: &str = "<start_of_turn>user\n{{content}}<end_of_turn>\n<start_of_turn>model\n";
/// Gemma's tool-result slot.
const GEMMA_OBSERVATION: &str =
    "<start_of_turn>tool\n{{content}}<end_of_turn>\n<start_of_turn>model\n";
/// Llama 3's user slot.
const LLAMA3_USER: &str = "<|start_header_id|>user<|end_header_id|>\n\n{{content}}<|eot_id|>\
<|start_header_id|>assistant<|end_header_id|>\n\n";
/// Llama 3's tool-result slot.
const LLAMA3_OBSERVATION: &str =
    "<|start_header_id|>ipython<|end_header_id|>\n\n{{content}}<|eot_id|>\
<|start_header_id|>assistant<|end_header_id|>\n\n";

/// The Qwen 2.5 / Qwen 3 slots, differing only in `kind` and default system.
fn qwen(default_system: &'static str, kind: TemplateKind) -> Spec {
    Spec {
        user: Some(vec![t(CHATML_USER)]),
        assistant: Some(vec![t(CHATML_ASSISTANT)]),
        system: Some(vec![t(CHATML_SYSTEM)]),
        function: Some((vec![t(CHATML_ASSISTANT)], ToolFormat::Qwen)),
        observation: Some(vec![t(QWEN_OBSERVATION)]),
        tools: Some(ToolFormat::Qwen),
        default_system,
        stop_words: &["<|im_end|>"],
        replace_eos: true,
        kind: Some(kind),
        ..Spec::default()
    }
}

/// ChatML slots with `<|im_end|>` as stop word (smollm, smollm2, yi).
fn chatml_plain(default_system: &'static str) -> Spec {
    Spec {
        user: Some(vec![t(CHATML_USER)]),
        assistant: Some(vec![t(CHATML_ASSISTANT)]),
        system: Some(vec![t(CHATML_SYSTEM)]),
        default_system,
        stop_words: &["<|im_end|>"],
        ..Spec::default()
    }
}

/// The built-in template `name`, or `None`.
pub(super) fn builtin(name: &str) -> Option<Template> {
    let spec = match name {
        "alpaca" => Spec {
            user: Some(vec![t("### Instruction:\n{{content}}\n\n### Response:\n")]),
            assistant: Some(vec![t("{{content}}"), Element::Eos, t("\n\n")]),
            default_system: "Below is an instruction that describes a task. \
Write a response that appropriately completes the request.\n\n",
            replace_jinja_template: true,
            ..Spec::default()
        },
        "chatml" => Spec {
            user: Some(vec![t(CHATML_USER)]),
            assistant: Some(vec![t(CHATML_ASSISTANT)]),
            system: Some(vec![t(CHATML_SYSTEM)]),
            observation: Some(vec![t(
                "<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n",
            )]),
            stop_words: &["<|im_end|>", "<|im_start|>"],
            replace_eos: true,
            replace_jinja_template: true,
            ..Spec::default()
        },
        "cohere" => Spec {
            user: Some(vec![t(
                "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{{content}}<|END_OF_TURN_TOKEN|>\
<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
            )]),
            system: Some(vec![t(
                "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{{content}}<|END_OF_TURN_TOKEN|>",
            )]),
            prefix: Some(vec![Element::Bos]),
            ..Spec::default()
        },
        "deepseek" => Spec {
            user: Some(vec![t("User: {{content}}\n\nAssistant:")]),
            system: Some(vec![t("{{content}}\n\n")]),
            prefix: Some(vec![Element::Bos]),
            ..Spec::default()
        },
        "deepseek3" => Spec {
            user: Some(vec![t("<｜User｜>{{content}}<｜Assistant｜>")]),
            prefix: Some(vec![Element::Bos]),
            ..Spec::default()
        },
        "default" => Spec {
            user: Some(vec![
                t("Human: {{content}}"),
                Element::Eos,
                t("\nAssistant:"),
            ]),
            assistant: Some(vec![t("{{content}}"), Element::Eos, t("\n")]),
            system: Some(vec![t("System: {{content}}"), Element::Eos, t("\n")]),
            replace_jinja_template: true,
            ..Spec::default()
        },
        "empty" => Spec {
            assistant: Some(vec![t("{{content}}")]),
            ..Spec::default()
        },
        "falcon" => Spec {
            user: Some(vec![t("User: {{content}}\nFalcon:")]),
            assistant: Some(vec![t("{{content}}\n")]),
            efficient_eos: true,
            ..Spec::default()
        },
        "gemma" | "gemma2" => Spec {
            user: Some(vec![t(GEMMA_USER)]),
            assistant: Some(vec![t("{{content}}<end_of_turn>\n")]),
            system: Some(vec![t("{{content}}\n\n")]),
            observation: Some(vec![t(GEMMA_OBSERVATION)]),
            prefix: Some(vec![Element::Bos]),
            stop_words: if name == "gemma" {
                &["<end_of_turn>"]
            } else {
                &["<eos>", "<end_of_turn>"]
            },
            replace_eos: name == "gemma",
            efficient_eos: name == "gemma2",
            kind: Some(TemplateKind::Llama2),
            ..Spec::default()
        },
        "glm4" => Spec {
            user: Some(vec![t("<|user|>\n{{content}}<|assistant|>")]),
            assistant: Some(vec![t("\n{{content}}")]),
            system: Some(vec![t("<|system|>\n{{content}}")]),
            function: Some((vec![t("{{content}}")], ToolFormat::Glm4)),
            observation: Some(vec![t("<|observation|>\n{{content}}<|assistant|>")]),
            tools: Some(ToolFormat::Glm4),
            prefix: Some(vec![t("[gMASK]<sop>")]),
            stop_words: &["<|user|>", "<|observation|>"],
            efficient_eos: true,
            ..Spec::default()
        },
        "llama2" => Spec {
            user: Some(vec![Element::Bos, t("[INST] {{content}} [/INST]")]),
            system: Some(vec![t("<<SYS>>\n{{content}}\n<</SYS>>\n\n")]),
            kind: Some(TemplateKind::Llama2),
            ..Spec::default()
        },
        "llama3" => Spec {
            user: Some(vec![t(LLAMA3_USER)]),
            assistant: Some(vec![t("{{content}}<|eot_id|>")]),
            system: Some(vec![t(
                "<|start_header_id|>system<|end_header_id|>\n\n{{content}}<|eot_id|>",
            )]),
            function: Some((vec![t("{{content}}<|eot_id|>")], ToolFormat::Llama3)),
            observation: Some(vec![t(LLAMA3_OBSERVATION)]),
            tools: Some(ToolFormat::Llama3),
            prefix: Some(vec![Element::Bos]),
            stop_words: &["<|eot_id|>", "<|eom_id|>"],
            replace_eos: true,
            ..Spec::default()
        },
        "mistral" => Spec {
            user: Some(vec![t("[INST] {{content}}[/INST]")]),
            assistant: Some(vec![t(" {{content}}"), Element::Eos]),
            system: Some(vec![t("{{content}}\n\n")]),
            function: Some((
                vec![t("[TOOL_CALLS] {{content}}"), Element::Eos],
                ToolFormat::Mistral,
            )),
            observation: Some(vec![t(
                "[TOOL_RESULTS] {\"content\": {{content}}}[/TOOL_RESULTS]",
            )]),
            tools: Some(ToolFormat::Mistral),
            prefix: Some(vec![Element::Bos]),
            kind: Some(TemplateKind::Llama2),
            ..Spec::default()
        },
        "olmo" => Spec {
            user: Some(vec![t("<|user|>\n{{content}}<|assistant|>\n")]),
            prefix: Some(vec![Element::Eos]),
            ..Spec::default()
        },
        "phi" => Spec {
            user: Some(vec![t("<|user|>\n{{content}}<|end|>\n<|assistant|>\n")]),
            assistant: Some(vec![t("{{content}}<|end|>\n")]),
            system: Some(vec![t("<|system|>\n{{content}}<|end|>\n")]),
            stop_words: &["<|end|>"],
            replace_eos: true,
            ..Spec::default()
        },
        "phi4" => Spec {
            user: Some(vec![t(
                "<|im_start|>user<|im_sep|>{{content}}<|im_end|><|im_start|>assistant<|im_sep|>",
            )]),
            assistant: Some(vec![t("{{content}}<|im_end|>")]),
            system: Some(vec![t("<|im_start|>system<|im_sep|>{{content}}<|im_end|>")]),
            stop_words: &["<|im_end|>"],
            replace_eos: true,
            ..Spec::default()
        },
        "qwen" => qwen(
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
            TemplateKind::Plain,
        ),
        "qwen3" => qwen("", TemplateKind::Reasoning),
        "qwen3_nothink" => qwen("", TemplateKind::Plain),
        "smollm" | "yi" => chatml_plain(""),
        "smollm2" => {
            chatml_plain("You are a helpful AI assistant named SmolLM, trained by Hugging Face.")
        }
        "solar" => Spec {
            user: Some(vec![t("### User:\n{{content}}\n\n### Assistant:\n")]),
            system: Some(vec![t("### System:\n{{content}}\n\n")]),
            efficient_eos: true,
            ..Spec::default()
        },
        "vicuna" => Spec {
            user: Some(vec![t("USER: {{content}} ASSISTANT:")]),
            default_system:
                "A chat between a curious user and an artificial intelligence assistant. \
The assistant gives helpful, detailed, and polite answers to the user's questions.",
            replace_jinja_template: true,
            ..Spec::default()
        },
        "zephyr" => Spec {
            user: Some(vec![
                t("<|user|>\n{{content}}"),
                Element::Eos,
                t("<|assistant|>\n"),
            ]),
            system: Some(vec![t("<|system|>\n{{content}}"), Element::Eos]),
            default_system: "You are Zephyr, a helpful assistant.",
            ..Spec::default()
        },
        _ => return None,
    };
    Some(spec.build(name))
}
