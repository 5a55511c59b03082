//! Template registry, parsed templates and tool formats, against values printed by
//! LLaMA-Factory 0.9.5 (`parse_template`, `DefaultToolUtils`, `QwenToolUtils`).

mod common;

use common::demo_tokenizer;
use ferrotune_data::message::{Message, Role};
use ferrotune_data::processor::{print_example, IGNORE_INDEX};
use ferrotune_data::template::{
    Element, Template, TemplateKind, ToolCall, ToolFormat, TEMPLATE_NAMES,
};
use ferrotune_data::DataError;

/// A one-element text slot.
fn text(s: &str) -> Vec<Element> {
    vec![Element::Text(s.to_owned())]
}

#[test]
fn every_listed_template_exists_and_unknown_names_list_them() {
    for name in TEMPLATE_NAMES {
        assert_eq!(Template::get(name).expect(name).name, name);
    }
    let err = Template::get("smollm3").unwrap_err();
    assert!(matches!(err, DataError::UnknownTemplate { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with("unknown template `smollm3`; known templates: alpaca, chatml,"),
        "{msg}"
    );
    assert!(
        msg.contains("smollm2") && msg.contains("hint: set `template`"),
        "{msg}"
    );
}

#[test]
fn parsed_smollm2_chat_template_equals_llamafactory_parse_template() {
    let tok = demo_tokenizer();
    let parsed = Template::from_chat_template(&tok).expect("parse");
    // LLaMA-Factory 0.9.5 parse_template on the same tokenizer printed these slots.
    assert_eq!(parsed.format_prefix, Vec::new());
    assert_eq!(
        parsed.format_system,
        text("<|im_start|>system\n{{content}}<|im_end|>\n")
    );
    assert_eq!(
        parsed.format_user,
        text("<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n")
    );
    assert_eq!(parsed.format_assistant, text("{{content}}<|im_end|>\n"));
    assert_eq!(
        parsed.default_system,
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    );
    assert_eq!(parsed.kind, TemplateKind::Plain);
}

#[test]
fn parsed_and_builtin_templates_encode_the_same_turns() {
    let tok = demo_tokenizer();
    let parsed = Template::from_chat_template(&tok).expect("parse");
    let builtin = Template::get("smollm2").expect("smollm2");
    let messages = [
        Message::new(Role::User, "Hi there"),
        Message::new(Role::Assistant, "Hello!"),
        Message::new(Role::User, "2+2?"),
        Message::new(Role::Assistant, "4"),
    ];
    let system = Some("Be brief.");
    let a = parsed
        .encode_multiturn(&tok, &messages, system, None, false)
        .expect("parsed");
    let b = builtin
        .encode_multiturn(&tok, &messages, system, None, false)
        .expect("builtin");
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
    // The second turn's prompt is the user slot only: no system part again.
    let prompt = tok.decode(&a[1].0, false).expect("decode");
    assert_eq!(
        prompt,
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    let (one_prompt, one_response) = builtin
        .encode_oneturn(&tok, &messages, system, None)
        .expect("oneturn");
    assert_eq!(
        one_prompt,
        [b[0].0.clone(), b[0].1.clone(), b[1].0.clone()].concat()
    );
    assert_eq!(one_response, b[1].1);
}

#[test]
fn default_tool_description_matches_llamafactory() {
    let tools = r#"[{"name": "f", "description": "does f", "parameters": {"type": "object",
        "properties": {"a": {"type": "string", "description": "A", "enum": ["x", "y"]},
        "b": {"type": "array", "items": {"type": "integer"}}}, "required": ["a"]}}]"#;
    let want = "You have access to the following tools:\n> Tool Name: f\nTool Description: does f\n\
Tool Args:\n  - a (string, required): A, should be one of [x, y]\n  - b (array): , where each item should be integer\n\n\
Use the following format if using a tool:\n```\nAction: tool name (one of [f])\nAction Input: the input to the tool, \
in a JSON format representing the kwargs (e.g. ```{\"input\": \"hello world\", \"num_beams\": 5}```)\n```\n";
    assert_eq!(
        ToolFormat::Default.format_tools(tools).expect("tools"),
        want
    );
    assert_eq!(ToolFormat::Default.format_tools("[]").expect("empty"), "");
    assert!(matches!(
        ToolFormat::Qwen.format_tools("{not json"),
        Err(DataError::ToolJson { .. })
    ));
}

#[test]
fn tool_calls_are_extracted_as_llamafactory_extracts_them() {
    let call = |name: &str, arguments: &str| ToolCall {
        name: name.to_owned(),
        arguments: arguments.to_owned(),
    };
    let react =
        "Action: get_x\nAction Input: {\"a\": 1.0, \"b\": \"é\"}\nAction: y\nAction Input: {}";
    assert_eq!(
        ToolFormat::Default.extract_tool_calls(react),
        Some(vec![
            call("get_x", r#"{"a": 1.0, "b": "é"}"#),
            call("y", "{}")
        ])
    );
    let qwen = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>\n\
<tool_call>{\"name\": \"g\", \"arguments\": {}}</tool_call>";
    assert_eq!(
        ToolFormat::Qwen.extract_tool_calls(qwen),
        Some(vec![call("f", r#"{"x": [1, 2]}"#), call("g", "{}")])
    );
    assert_eq!(
        ToolFormat::Default.extract_tool_calls("The answer is 4."),
        None
    );
    assert_eq!(
        ToolFormat::Qwen.extract_tool_calls("<tool_call>not json</tool_call>"),
        None
    );
    let calls = [call("f", r#"{"x": 1}"#)];
    for format in [
        ToolFormat::Default,
        ToolFormat::Qwen,
        ToolFormat::Llama3,
        ToolFormat::Mistral,
        ToolFormat::Glm4,
    ] {
        let written = format.format_calls(&calls).expect("write");
        assert_eq!(
            format.extract_tool_calls(&written).as_deref(),
            Some(&calls[..]),
            "{format:?}: {written}"
        );
    }
}

#[test]
fn print_example_renders_llamafactory_block() {
    let tok = demo_tokenizer();
    let ids = tok.encode("Hi<|im_end|>", false).expect("encode");
    let labels: Vec<i64> = vec![IGNORE_INDEX, i64::from(ids[1])];
    let block = print_example(&tok, &ids, &labels).expect("print");
    let want = format!(
        "input_ids:\n{ids:?}\ninputs:\nHi<|im_end|>\nlabel_ids:\n[-100, {}]\nlabels:\n<|im_end|>\n",
        ids[1]
    );
    assert_eq!(block, want);
}
