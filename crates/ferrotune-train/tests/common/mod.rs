//! Helpers shared by the trainer tests: the tiny llama fixture and a LoRA trainer on it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::Device;
use ferrotune_config::TrainingArguments;
use ferrotune_model::adapters::{apply_lora, LoraConfig, LoraInit};
use ferrotune_train::collate::Example;
use ferrotune_train::optim::TrainableParam;
use ferrotune_train::{LoopOptions, Trainer};

/// `fixtures/tiny/llama` (vocab 256, tied embeddings).
pub fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/llama")
}

/// A LoRA trainer on the tiny llama (rank 4, alpha 8, every projection, seed 7; B starts at
/// 0, so the first step's gradients are those of B), no shuffling, no saved weights.
pub fn lora_trainer(args: &TrainingArguments, output_dir: Option<PathBuf>) -> Trainer {
    let mut model = ferrotune_model::load_hf_dir(&tiny(), &Device::Cpu).unwrap();
    let cfg = LoraConfig {
        lora_rank: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        lora_target: vec!["all".into()],
        additional_target: vec![],
        use_rslora: false,
        use_dora: false,
        init: LoraInit::Default,
    };
    let set = apply_lora(&mut model, &cfg, 7).unwrap();
    let params = set
        .params
        .iter()
        .map(|(n, v)| TrainableParam::new(n, v.clone()))
        .collect();
    let options = LoopOptions {
        pad_token_id: 0,
        shuffle: false,
        output_dir,
        show_progress: false,
        weights: ferrotune_train::checkpoint::WeightsFormat::None,
        resume_from: None,
    };
    Trainer::new(model, params, args, options, &Device::Cpu).unwrap()
}

/// Two examples over the tiny vocabulary (256) of different lengths and label counts: ids
/// 10..22 with the first 3 labels masked, and ids `100..100 + second_len` all scored, so that
/// a per-micro-batch mean would weight them differently from the token mean.
pub fn two_examples(second_len: u32) -> Vec<Example> {
    let a: Vec<u32> = (10..22).collect();
    let b: Vec<u32> = (100..100 + second_len).collect();
    let a_labels = a
        .iter()
        .enumerate()
        .map(|(i, &t)| if i < 3 { -100 } else { i64::from(t) })
        .collect();
    let b_labels = b.iter().map(|&t| i64::from(t)).collect();
    vec![Example::new(a, a_labels), Example::new(b, b_labels)]
}
