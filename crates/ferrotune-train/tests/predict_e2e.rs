//! `ferrotune train` with `do_train: false`, `do_predict: true`, `predict_with_generate: true`
//! on the demo GGUF: the files LLaMA-Factory writes (`generated_predictions.jsonl`,
//! `predict_results.json`, `all_results.json`), predictions equal to greedy generation of
//! the same prompts through `ferrotune_infer` one prompt at a time, and metrics equal to the
//! scores of the written texts.

use std::path::PathBuf;

use candle_core::Device;
use ferrotune_config::Config;
use ferrotune_data::pipeline::{
    prepare_dataset, prepare_tokenizer_and_template, PrepareOptions, TokenizedDataset,
};
use ferrotune_infer::chat::{load_from_config, LoadFor};
use ferrotune_infer::{GenerationParams, Generator};
use ferrotune_train::metrics::{Similarity, SimilarityScorer};
use serde_json::{Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo_gguf() -> PathBuf {
    let p = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "demo model {} not found: run scripts/fetch_model.sh",
        p.display()
    );
    p
}

fn config(output_dir: &std::path::Path) -> Config {
    let yaml = format!(
        "model_name_or_path: {model}\n\
         template: smollm2\n\
         stage: sft\n\
         do_train: false\n\
         do_predict: true\n\
         predict_with_generate: true\n\
         eval_dataset: alpaca_en_demo\n\
         dataset_dir: {data}\n\
         max_samples: 4\n\
         cutoff_len: 512\n\
         per_device_eval_batch_size: 3\n\
         max_new_tokens: 8\n\
         do_sample: false\n\
         output_dir: {out}\n",
        model = demo_gguf().display(),
        data = root().join("../shared/data/llamafactory").display(),
        out = output_dir.display(),
    );
    Config::parse(&yaml, "predict.yaml".as_ref(), &[]).unwrap()
}

#[test]
fn predict_writes_llamafactory_files_with_greedy_answers() {
    let out = tempfile::tempdir().unwrap();
    let cfg = config(out.path());
    let summary = ferrotune_train::recipe::run(&cfg, &Device::Cpu).unwrap();
    assert!(summary.train.is_none() && summary.eval.is_none());
    let predict = summary
        .predict
        .expect("do_predict gives a prediction summary");
    assert_eq!(predict.rows.len(), 4);
    assert_eq!(predict.n_batches, 2);

    // The same prompts, answered one at a time through the generation engine.
    let loaded = load_from_config(&cfg, &Device::Cpu, LoadFor::Training).unwrap();
    let (tok, template) = prepare_tokenizer_and_template(&cfg, loaded.tokenizer).unwrap();
    let splits = prepare_dataset(
        &cfg,
        &tok,
        &template,
        std::path::Path::new(&cfg.data.dataset_dir),
        &PrepareOptions::default(),
    )
    .unwrap();
    let Some(TokenizedDataset::Unsupervised(examples)) = &splits.eval else {
        panic!("predict_with_generate encodes the evaluation set prompt-only");
    };
    let stop = tok.eos_token_id().into_iter().chain(
        tok.additional_special_tokens
            .iter()
            .filter_map(|t| tok.token_to_id(t)),
    );
    let generator = Generator::new(loaded.model, tok.clone()).with_stop_token_ids(stop);

    let text = std::fs::read_to_string(out.path().join("generated_predictions.jsonl")).unwrap();
    // Python's json.dumps layout: keys in LLaMA-Factory's order, ", " and ": " separators.
    for l in text.lines() {
        assert!(
            l.starts_with("{\"prompt\": \"") && l.contains("\", \"predict\": \""),
            "{l}"
        );
        assert!(l.contains("\", \"label\": \"") && l.ends_with("\"}"), "{l}");
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let records: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(root().join("../shared/data/llamafactory/alpaca_en_demo.json"))
            .unwrap(),
    )
    .unwrap();
    let scorer = SimilarityScorer::new();
    let mut scores = Vec::new();
    for (i, (line, example)) in lines.iter().zip(examples).enumerate() {
        let mut keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["label", "predict", "prompt"], "line {i}");
        let (prompt, predicted, label) = (
            line["prompt"].as_str().unwrap(),
            line["predict"].as_str().unwrap(),
            line["label"].as_str().unwrap(),
        );
        let (gens, _) = generator
            .generate(
                std::slice::from_ref(&example.input_ids),
                &GenerationParams::greedy(8),
            )
            .unwrap();
        let greedy = tok.decode(&gens[0].token_ids, true).unwrap();
        println!("{i}: predict {predicted:?} | greedy {greedy:?}");
        assert_eq!(
            predicted, greedy,
            "line {i}: prediction differs from greedy generation"
        );
        assert!(!predicted.is_empty(), "line {i}: empty prediction");

        // The prompt is the rendered template, special tokens kept; the label the answer.
        let instruction = records[i]["instruction"].as_str().unwrap();
        let answer = records[i]["output"].as_str().unwrap();
        assert_eq!(prompt, tok.decode(&example.input_ids, false).unwrap());
        assert!(prompt.contains(instruction), "line {i}: {prompt:?}");
        assert!(prompt.starts_with("<|im_start|>") && prompt.ends_with("<|im_start|>assistant\n"));
        assert_eq!(label.trim_end(), answer.trim_end(), "line {i}");
        scores.push(scorer.score(predicted, label));
    }
    assert_eq!(predict.scores, scores);

    // predict_results.json: the mean scores and HF's speed metrics; merged into all_results.
    let results: Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("predict_results.json")).unwrap(),
    )
    .unwrap();
    let mut keys: Vec<&str> = results.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "predict_bleu-4",
            "predict_rouge-1",
            "predict_rouge-2",
            "predict_rouge-l",
            "predict_runtime",
            "predict_samples_per_second",
            "predict_steps_per_second"
        ]
    );
    let mean = Similarity::mean(&scores);
    println!("predict_results.json: {results:?}");
    assert_eq!(results["predict_bleu-4"].as_f64(), Some(mean.bleu_4));
    assert_eq!(results["predict_rouge-1"].as_f64(), Some(mean.rouge_1));
    assert_eq!(results["predict_rouge-2"].as_f64(), Some(mean.rouge_2));
    assert_eq!(results["predict_rouge-l"].as_f64(), Some(mean.rouge_l));
    let runtime = results["predict_runtime"].as_f64().unwrap();
    assert!(runtime > 0.0);
    let sps = results["predict_samples_per_second"].as_f64().unwrap();
    assert!(
        (sps - 4.0 / runtime).abs() < 0.01 * sps + 1e-3,
        "{sps} vs 4/{runtime}"
    );
    let all: Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("all_results.json")).unwrap(),
    )
    .unwrap();
    for (k, v) in &results {
        assert_eq!(all.get(k), Some(v), "all_results.json: {k}");
    }
    // No training happened, so no adapter or model files.
    assert!(!out.path().join("adapter_model.safetensors").exists());
}

#[test]
fn evaluation_by_generation_is_refused_with_a_hint() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config(out.path());
    cfg.training.do_eval = true;
    let msg = ferrotune_train::recipe::run(&cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`do_eval` with `predict_with_generate`") && msg.contains("hint"),
        "{msg}"
    );
}
