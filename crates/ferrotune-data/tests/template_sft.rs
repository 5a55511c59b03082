//! Supervised examples encoded with the built-in templates, compared id for id and label for
//! label with LLaMA-Factory 0.9.5's output (`fixtures/data/sft_*.jsonl`, written by
//! `tools/make_data_fixtures.py` with the demo model's tokenizer).
//!
//! Each case runs from its fixture YAML (as a ferrotune config) through the `dataset` module's
//! loader, the template and [`encode_supervised`].

mod common;

use common::Case;
use ferrotune_data::processor::{encode_supervised, print_example, EncodeOptions};

/// Runs one fixture case: every example's ids and labels must equal LLaMA-Factory's.
fn check_case(name: &str) {
    let case = Case::load(name);
    let opts = EncodeOptions {
        cutoff_len: case.effective_cutoff_len(),
        train_on_prompt: case.cfg.data.train_on_prompt,
        mask_history: case.cfg.data.mask_history,
    };
    let mut encoded = Vec::new();
    for sample in case.samples() {
        if let Some(e) =
            encode_supervised(&case.template, &case.tok, &sample, &opts).expect("encode")
        {
            encoded.push(e);
        }
    }
    assert_eq!(encoded.len(), case.golden.len(), "{name}: example count");
    for (i, ours) in encoded.iter().enumerate() {
        let ids: Vec<u32> = case.column(i, "input_ids");
        let labels: Vec<i64> = case.column(i, "labels");
        if ours.input_ids != ids || ours.labels != labels {
            let show = |ids: &[u32], labels: &[i64]| {
                print_example(&case.tok, ids, labels).unwrap_or_default()
            };
            panic!(
                "{name} example {i} differs\n--- ours\n{}--- LLaMA-Factory\n{}",
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
