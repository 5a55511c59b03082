//! HF export of the demo GGUF with a LoRA adapter merged (`fixtures/peft_interop/lora_qv`):
//! reloaded by ferrotune from the written folder, the model gives the in-memory merged model's
//! logits (f32 export: ≤ 1e-5; bf16 export: ≤ 1e-4 against the merged model with every weight
//! rounded to bf16, which is exactly what the file holds). The tokenizer files give the same
//! ids; the chat template is the tokenizer's own (smollm2) or the template's Jinja form (alpaca,
//! which replaces it), and the Jinja form renders the text of the ids the template encodes.
//!
//! Needs the demo model (`scripts/fetch_model.sh`); fails, never skips, without it.

mod common;

use std::collections::BTreeMap;

use candle_core::DType;
use common::*;
use ferrotune_data::message::{Message, Role};
use ferrotune_data::template::Template;
use ferrotune_data::{ChatTemplate, RenderContext};
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_model::{load_hf_dir, CausalLM, WeightStore};

/// Largest accepted logit difference between the written f32 folder and the in-memory model.
const F32_TOLERANCE: f32 = 1e-5;
/// Same for bf16, against the in-memory model rounded to bf16 (summation order only).
const BF16_TOLERANCE: f32 = 1e-4;

fn export(dir: &std::path::Path, extra: &[&str]) -> ferrotune_export::ExportSummary {
    let mut overrides = vec![
        format!("model_name_or_path={}", demo_gguf().display()),
        format!("adapter_name_or_path={}", lora_qv().display()),
        format!("export_dir={}", dir.display()),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    ferrotune_export::export_model(&config(&overrides)).expect("export")
}

/// The model with every weight rounded to bf16 and back to f32.
fn rounded_to_bf16(model: &CausalLM) -> CausalLM {
    let tensors: BTreeMap<String, candle_core::Tensor> = model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            let t = t.to_dtype(DType::BF16)?.to_dtype(DType::F32)?;
            Ok((n, t))
        })
        .collect::<candle_core::Result<_>>()
        .expect("rounding");
    CausalLM::from_weights(
        model.config.clone(),
        WeightStore::new("bf16".as_ref(), tensors),
    )
    .expect("rounded model")
}

#[test]
fn f32_and_bf16_exports_reload_to_the_merged_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let source_tok = TokenizerBundle::from_gguf(&GgufFile::open(&demo_gguf()).unwrap()).unwrap();
    let ids = source_tok.encode(PROMPT, false).unwrap();
    let merged = merged_demo();
    let expected = logits(&merged, &ids);

    let out = tmp.path().join("f32");
    let summary = export(&out, &["template=smollm2", "infer_dtype=float32"]);
    assert_eq!(summary.dtype, Some(ferrotune_export::WeightDtype::F32));
    assert_eq!(summary.adapters_merged, 1);
    assert_eq!(
        summary.chat_template,
        ferrotune_export::ChatTemplateSource::Tokenizer
    );
    for f in [
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "Modelfile",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let reloaded = load_hf_dir(&out, &candle_core::Device::Cpu).unwrap();
    let d = max_diff(&logits(&reloaded, &ids), &expected);
    println!("f32 export: max |logit diff| = {d:e}");
    assert!(d <= F32_TOLERANCE, "f32 export differs by {d}");
    let tok = TokenizerBundle::from_hf_dir(&out).unwrap();
    assert_eq!(tok.encode(PROMPT, false).unwrap(), ids);
    assert_eq!(tok.chat_template, source_tok.chat_template);
    assert_eq!(tok.eos_token.as_deref(), Some("<|im_end|>"));
    let modelfile = std::fs::read_to_string(out.join("Modelfile")).unwrap();
    assert!(modelfile.contains("FROM .\n"), "{modelfile}");
    assert!(
        modelfile.contains("PARAMETER stop \"<|im_end|>\""),
        "{modelfile}"
    );
    assert!(
        modelfile.contains("{{ range .Messages }}{{ if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n<|im_start|>assistant\n"),
        "{modelfile}"
    );

    // infer_dtype auto on a quantized GGUF source: bf16, as LLaMA-Factory saves in compute dtype.
    let out = tmp.path().join("bf16");
    let summary = export(&out, &["template=alpaca"]);
    assert_eq!(summary.dtype, Some(ferrotune_export::WeightDtype::BF16));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    assert_eq!(config["tie_word_embeddings"], true);
    let reloaded = load_hf_dir(&out, &candle_core::Device::Cpu).unwrap();
    let want = logits(&rounded_to_bf16(&merged), &ids);
    let d = max_diff(&logits(&reloaded, &ids), &want);
    let vs_f32 = max_diff(&logits(&reloaded, &ids), &expected);
    println!("bf16 export: max |diff| vs bf16-rounded {d:e}, vs f32 merged {vs_f32:e}");
    assert!(d <= BF16_TOLERANCE, "bf16 export differs by {d}");

    // alpaca replaces the tokenizer's chat template with its Jinja form, which renders
    // exactly the text of the ids the template encodes.
    assert_eq!(
        summary.chat_template,
        ferrotune_export::ChatTemplateSource::FromTemplate
    );
    let tok = TokenizerBundle::from_hf_dir(&out).unwrap();
    let jinja = tok.chat_template.clone().expect("chat template");
    let messages = serde_json::json!([
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue, as in 'sky'."},
    ]);
    let ctx = RenderContext {
        bos_token: tok.bos_token.as_deref(),
        eos_token: tok.eos_token.as_deref(),
        ..RenderContext::new(&messages)
    };
    let text = ChatTemplate::new(&jinja).unwrap().render(&ctx).unwrap();
    let template = Template::get("alpaca").unwrap();
    let turns = template
        .encode_multiturn(
            &tok,
            &[
                Message::new(Role::User, "Name a colour."),
                Message::new(Role::Assistant, "Blue, as in 'sky'."),
            ],
            None,
            None,
            false,
        )
        .unwrap();
    let want: Vec<u32> = turns
        .into_iter()
        .flat_map(|(p, r)| p.into_iter().chain(r))
        .collect();
    // Byte-level BPE decodes losslessly: the template's ids spell exactly the rendered text.
    assert_eq!(tok.decode(&want, false).unwrap(), text);
    let modelfile = std::fs::read_to_string(out.join("Modelfile")).unwrap();
    assert!(
        modelfile.contains("SYSTEM \"\"\"Below is an instruction"),
        "{modelfile}"
    );
}
