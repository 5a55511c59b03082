//! `ferrotune export` end to end on the demo GGUF with the `lora_qv` adapter: an f32 HF
//! folder and a q8_0 GGUF written by the binary reload in ferrotune to the merged model's
//! logits (HF f32: ≤ 1e-5; GGUF q8_0: same greedy tokens, max ≤ 2.0), with an Ollama
//! `Modelfile` naming the file; a second export into the same folder is refused. The f32 HF
//! export also gives transformers' logits (`fixtures/export/transformers_hf_f32.json`, made by
//! `tools/check_export.py`) within 1e-4.
//!
//! With `FERROTUNE_EXPORT_CHECK_DIR=<dir>` the two exports are kept there with
//! `reference.safetensors` (`input_ids` U32 `[1, T]`, `logits` F32 `[1, T, V]` of the merged
//! model in memory) and `reference.json`, for `tools/check_export.py <dir>` (transformers and
//! gguf-py read the files).
//!
//! Needs the demo model (`scripts/fetch_model.sh`); fails, never skips, without it.

mod common;

use common::root;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::resolve::ModelSource;
use ferrotune_hub::tokenizer::TokenizerBundle;

const PROMPT: &str =
    "<|im_start|>user\nWhat is the capital of France? Réponds en français 🙂<|im_end|>\n<|im_start|>assistant\n";

fn ferrotune(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(args)
        .output()
        .expect("run ferrotune")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("difference")
}

#[test]
fn export_hf_and_gguf_through_the_cli() {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "{} is missing; run scripts/fetch_model.sh",
        gguf.display()
    );
    let adapter = root().join("fixtures/peft_interop/lora_qv");
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("FERROTUNE_EXPORT_CHECK_DIR").map(PathBuf::from);
    let base = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let (hf_dir, gguf_dir) = (base.join("hf_f32"), base.join("gguf_q8_0"));
    let common = |dir: &Path| {
        vec![
            "export".to_string(),
            format!("model_name_or_path={}", gguf.display()),
            format!("adapter_name_or_path={}", adapter.display()),
            "template=smollm2".into(),
            format!("export_dir={}", dir.display()),
            "overwrite_output_dir=true".into(),
        ]
    };

    let mut args = common(&hf_dir);
    args.push("infer_dtype=float32".into());
    let out = ferrotune(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("exported hf folder (float32) with 1 adapter(s) merged"),
        "{stdout}"
    );

    let mut args = common(&gguf_dir);
    args.extend([
        "export_format=gguf".into(),
        "export_quantization=q8_0".into(),
    ]);
    let out = ferrotune(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let modelfile = std::fs::read_to_string(gguf_dir.join("Modelfile")).unwrap();
    assert!(
        modelfile.contains("FROM ./model-q8_0.gguf\n"),
        "{modelfile}"
    );

    // The references: the merged model in memory.
    let tok = TokenizerBundle::from_gguf(&GgufFile::open(&gguf).unwrap()).unwrap();
    let ids = tok.encode(PROMPT, false).unwrap();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let merged = ferrotune_export::load_merged(
        &ModelSource::Gguf(gguf.clone()),
        std::slice::from_ref(&adapter),
        &Device::Cpu,
    )
    .unwrap();
    let expected = merged.forward(&input, None).unwrap();

    let hf = ferrotune_model::load_hf_dir(&hf_dir, &Device::Cpu).unwrap();
    let hf_logits = hf.forward(&input, None).unwrap();
    let d = max_diff(&hf_logits, &expected);
    assert!(d <= 1e-5, "hf f32 export differs by {d}");
    // transformers on the same export (fixture from tools/check_export.py): the first 64
    // vocabulary ids at every position within 1e-4, and the same argmax.
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/export/transformers_hf_f32.json")).unwrap(),
    )
    .unwrap();
    let want_ids: Vec<u32> = serde_json::from_value(fixture["input_ids"].clone()).unwrap();
    assert_eq!(want_ids, ids, "the fixture was made for the same prompt");
    let want: Vec<Vec<f32>> = serde_json::from_value(fixture["logits_first_ids"].clone()).unwrap();
    let got = hf_logits.squeeze(0).unwrap().narrow(1, 0, 64).unwrap();
    let got = got.to_vec2::<f32>().unwrap();
    let worst = got
        .iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("hf f32 export vs transformers: max |Δlogit| {worst:.3e}");
    assert!(worst <= 1e-4, "transformers' logits differ by {worst}");
    let argmax: Vec<u32> = serde_json::from_value(fixture["argmax"].clone()).unwrap();
    assert_eq!(
        hf_logits
            .argmax(2)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap(),
        argmax
    );
    let file = GgufFile::open(&gguf_dir.join("model-q8_0.gguf")).unwrap();
    let q8 = ferrotune_model::load_gguf(&file, &Device::Cpu).unwrap();
    let got = q8.forward(&input, None).unwrap();
    let d = max_diff(&got, &expected);
    assert!(d <= 2.0, "q8_0 export differs by {d}");
    assert_eq!(
        got.argmax(2).unwrap().to_vec2::<u32>().unwrap(),
        expected.argmax(2).unwrap().to_vec2::<u32>().unwrap()
    );

    // A second export into the now occupied folder is refused without overwrite_output_dir.
    let mut args = common(&hf_dir);
    args.pop();
    let out = ferrotune(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists and is not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    if let Some(dir) = keep {
        let reference = [("input_ids", input), ("logits", expected)];
        candle_core::safetensors::save(
            &reference
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            dir.join("reference.safetensors"),
        )
        .unwrap();
        let json = serde_json::json!({
            "prompt": PROMPT,
            "input_ids": ids,
            "hf_dir": "hf_f32",
            "gguf_file": "gguf_q8_0/model-q8_0.gguf",
            "source_gguf": gguf,
        });
        std::fs::write(dir.join("reference.json"), json.to_string()).unwrap();
    }
}

/// `export_format: peft` rewrites one adapter (checked against the base) in PEFT's format:
/// the same tensors bit for bit, `base_model_name_or_path` set to the base, tokenizer files
/// beside; two adapters, or an adapter for another base, are refused and leave no folder.
#[test]
fn export_one_adapter_in_peft_format() {
    let gguf = common::demo_gguf();
    let adapter = root().join("fixtures/peft_interop/lora_qv");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("adapter");
    let run = |adapters: &str, dir: &Path| {
        ferrotune(&[
            "export".to_string(),
            format!("model_name_or_path={}", gguf.display()),
            format!("adapter_name_or_path={adapters}"),
            "template=smollm2".into(),
            "export_format=peft".into(),
            format!("export_dir={}", dir.display()),
        ])
    };
    let done = run(&adapter.display().to_string(), &out);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let read = |dir: &Path| {
        candle_core::safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (got, want) = (read(&out), read(&adapter));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "tensors differ from the source adapter");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["base_model_name_or_path"],
        gguf.display().to_string()
    );
    assert_eq!(config["r"], 4);
    assert!(out.join("tokenizer.json").is_file());

    let two = format!("{0},{0}", adapter.display());
    let refused = run(&two, &tmp.path().join("two"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("exports one adapter"));
    assert!(!tmp.path().join("two").exists());

    let other = root().join("fixtures/lora/peft_made_llama");
    let wrong = run(&other.display().to_string(), &tmp.path().join("wrong"));
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("has shape"), "{stderr}");
    assert!(!tmp.path().join("wrong").exists());
}
