//! Supervised examples encoded with the built-in templates, compared id for id and label for
//! label with LLaMA-Factory 0.9.5's output (`fixtures/data/sft_*.jsonl`, written by
//! `tools/make_data_fixtures.py` with the demo model's tokenizer).
//!
//! The datasets are read by a minimal reader here (alpaca: instruction and input joined by a
//! newline as the user turn, output as the answer; sharegpt: `from`/`value` turns with the
//! `human`/`gpt`/`function_call`/`observation`/`system` tags), following LLaMA-Factory's
//! `converter.py`; the `dataset` module's loader is tested on its own.

use std::path::{Path, PathBuf};

use ferrotune_data::message::{Message, Role};
use ferrotune_data::processor::{encode_supervised, print_example, EncodeOptions, Sample};
use ferrotune_data::template::Template;
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::Value as Json;

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo model's tokenizer; fails (never skips) when the GGUF has not been fetched.
fn demo_tokenizer() -> TokenizerBundle {
    let path = std::env::var_os("FERROTUNE_DEMO_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let gguf = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e} (run scripts/fetch_model.sh)"));
    TokenizerBundle::from_gguf(&gguf).expect("demo tokenizer")
}

/// One example in LLaMA-Factory's converted form.
struct Converted {
    prompt: Vec<Message>,
    response: Vec<Message>,
    system: String,
    tools: String,
}

/// Reads the first `max_samples` rows of a demo dataset and converts them.
fn read_dataset(name: &str, max_samples: usize) -> Vec<Converted> {
    let dir = root().join("../shared/data/llamafactory");
    let (file, sharegpt) = match name {
        "alpaca_en_demo" => ("alpaca_en_demo.json", false),
        "identity" => ("identity.json", false),
        "glaive_toolcall_en_demo" => ("glaive_toolcall_en_demo.json", true),
        other => panic!("the test reader does not know dataset {other}"),
    };
    let text = std::fs::read_to_string(dir.join(file)).expect("demo dataset");
    let rows: Vec<Json> = serde_json::from_str(&text).expect("dataset json");
    let s = |v: Option<&Json>| v.and_then(Json::as_str).unwrap_or_default().to_owned();
    rows.iter()
        .take(max_samples)
        .map(|row| {
            if !sharegpt {
                let query: Vec<String> = [s(row.get("instruction")), s(row.get("input"))]
                    .into_iter()
                    .filter(|q| !q.is_empty())
                    .collect();
                return Converted {
                    prompt: vec![Message::new(Role::User, query.join("\n"))],
                    response: vec![Message::new(Role::Assistant, s(row.get("output")))],
                    system: String::new(),
                    tools: String::new(),
                };
            }
            let mut turns: Vec<Message> = row["conversations"]
                .as_array()
                .expect("conversations")
                .iter()
                .map(|m| {
                    let role = match m["from"].as_str() {
                        Some("human") => Role::User,
                        Some("gpt") => Role::Assistant,
                        Some("function_call") => Role::Function,
                        Some("observation") => Role::Observation,
                        Some("system") => Role::System,
                        other => panic!("unknown tag {other:?}"),
                    };
                    Message::new(role, s(m.get("value")))
                })
                .collect();
            let mut system = String::new();
            if turns.first().is_some_and(|m| m.role == Role::System) {
                system = turns.remove(0).content;
            }
            let response = turns.split_off(turns.len() - 1);
            Converted {
                prompt: turns,
                response,
                system,
                tools: s(row.get("tools")),
            }
        })
        .collect()
}

/// Runs one fixture case: every example's ids and labels must equal LLaMA-Factory's.
fn check_case(case: &str) {
    let dir = root().join("fixtures/data");
    let yaml = std::fs::read_to_string(dir.join(format!("{case}.yaml"))).expect("case yaml");
    let cfg: serde_norway::Value = serde_norway::from_str(&yaml).expect("yaml");
    let get_bool = |k: &str| {
        cfg.get(k)
            .and_then(serde_norway::Value::as_bool)
            .unwrap_or(false)
    };
    let template_name = cfg["template"].as_str().expect("template");
    let opts = EncodeOptions {
        cutoff_len: cfg["cutoff_len"].as_u64().expect("cutoff_len") as usize,
        train_on_prompt: get_bool("train_on_prompt"),
        mask_history: get_bool("mask_history"),
    };
    let max_samples = cfg["max_samples"].as_u64().expect("max_samples") as usize;
    let data = read_dataset(cfg["dataset"].as_str().expect("dataset"), max_samples);

    let mut tok = demo_tokenizer();
    let template = Template::get(template_name).expect("template");
    template.fix_special_tokens(&mut tok).expect("fix tokens");

    let golden = std::fs::read_to_string(dir.join(format!("{case}.jsonl"))).expect("case jsonl");
    let golden: Vec<Json> = golden
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    let mut encoded = Vec::new();
    for ex in &data {
        let sample = Sample {
            prompt: &ex.prompt,
            response: &ex.response,
            system: Some(&ex.system),
            tools: Some(&ex.tools),
        };
        if let Some(e) = encode_supervised(&template, &tok, &sample, &opts).expect("encode") {
            encoded.push(e);
        }
    }
    assert_eq!(encoded.len(), golden.len(), "{case}: example count");
    for (i, (ours, want)) in encoded.iter().zip(&golden).enumerate() {
        let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).expect("input_ids");
        let labels: Vec<i64> = serde_json::from_value(want["labels"].clone()).expect("labels");
        if ours.input_ids != ids || ours.labels != labels {
            let show =
                |ids: &[u32], labels: &[i64]| print_example(&tok, ids, labels).unwrap_or_default();
            panic!(
                "{case} example {i} differs\n--- ours\n{}--- LLaMA-Factory\n{}",
                show(&ours.input_ids, &ours.labels),
                show(&ids, &labels)
            );
        }
    }
}

#[test]
fn alpaca_through_every_template_matches_llamafactory() {
    for template in [
        "smollm2", "chatml", "qwen", "default", "alpaca", "vicuna", "empty",
    ] {
        check_case(&format!("sft_alpaca_{template}"));
    }
}

#[test]
fn truncation_and_train_on_prompt_match_llamafactory() {
    check_case("sft_alpaca_smollm2_cutoff64");
    check_case("sft_alpaca_smollm2_train_on_prompt");
}

#[test]
fn identity_matches_llamafactory() {
    check_case("sft_identity_smollm2");
}

#[test]
fn tool_calls_match_llamafactory() {
    check_case("sft_glaive_toolcall_smollm2");
    check_case("sft_glaive_toolcall_qwen");
}

#[test]
fn mask_history_and_efficient_eos_match_llamafactory() {
    check_case("sft_glaive_smollm2_mask_history");
    check_case("sft_glaive_solar");
}
