//! The repository's `examples/*.yaml` configs: every one loads, and the values the README's main
//! job relies on (`examples/smollm2_lora_sft.yaml`) arrive typed as written.
//!
//! Every example uses only supported keys today (freeze fine-tuning's keys included), so each
//! file must load without error. When an example is added for a feature that is not built yet,
//! list it in `UNBUILT` with the key at fault: the test then asserts that exact
//! [`ConfigError::NotSupported`] error instead, and fails once the feature lands so that the
//! entry is removed.

use std::path::{Path, PathBuf};

use ferrotune_config::args::{FinetuningType, SchedulerType, Stage};
use ferrotune_config::{Config, ConfigError};

/// Example files whose feature is not built yet, with the key reported as not supported.
const UNBUILT: &[(&str, &str)] = &[];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn example_files() -> Vec<PathBuf> {
    let entries = std::fs::read_dir(examples_dir()).expect("examples/ exists");
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(name: &str) -> Config {
    let path = examples_dir().join(name);
    Config::from_yaml_file(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_loads() {
    let files = example_files();
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        names,
        [
            "smollm2_freeze_sft.yaml",
            "smollm2_full_sft.yaml",
            "smollm2_lora_pretrain.yaml",
            "smollm2_lora_sft.yaml",
            "smollm2_lora_sft_alpaca.yaml",
            "smollm2_preprocess.yaml",
        ]
    );
    for (path, name) in files.iter().zip(&names) {
        let result = Config::from_yaml_file(path, &[]);
        match UNBUILT.iter().find(|(file, _)| file == name) {
            None => {
                if let Err(e) = result {
                    panic!("{name}: {e}");
                }
            }
            Some((_, key)) => match result {
                Err(ConfigError::NotSupported { key: got, .. }) => assert_eq!(got, *key, "{name}"),
                other => panic!("{name}: expected `{key}` not supported yet, got {other:?}"),
            },
        }
    }
}

#[test]
fn every_example_uses_the_demo_model_and_template() {
    for path in example_files() {
        let cfg = Config::from_yaml_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
        let name = path.display();
        assert_eq!(
            cfg.model.model_name_or_path.as_deref(),
            Some("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            "{name}"
        );
        assert_eq!(cfg.data.template.as_deref(), Some("smollm2"), "{name}");
        assert!(cfg.training.do_train, "{name}");
        assert_eq!(cfg.training.seed, 42, "{name}");
    }
}

#[test]
fn main_job_values_arrive_as_written() {
    let cfg = load("smollm2_lora_sft.yaml");
    let (f, d, t) = (&cfg.finetuning, &cfg.data, &cfg.training);
    assert_eq!(f.stage, Stage::Sft);
    assert_eq!(f.finetuning_type, FinetuningType::Lora);
    assert_eq!(f.lora_target, ["all"]);
    assert_eq!(f.lora_rank, 8);
    assert_eq!(f.lora_alpha, 16); // unset: 2 * lora_rank
    assert!(f.plot_loss);
    assert_eq!(d.dataset, ["ferrotune_demo", "ferrotune_identity"]);
    assert_eq!(d.dataset_dir, "data");
    assert_eq!(d.cutoff_len, 256);
    assert_eq!(cfg.effective_cutoff_len, 256);
    assert_eq!(t.per_device_train_batch_size, 2);
    assert_eq!(t.gradient_accumulation_steps, 2);
    assert_eq!(t.learning_rate, 1.0e-3);
    assert_eq!(t.num_train_epochs, 1.0);
    assert_eq!(t.max_steps, 20);
    assert_eq!(t.lr_scheduler_type, SchedulerType::Cosine);
    assert_eq!(t.warmup_ratio, 0.1);
    assert_eq!(t.logging_steps, 2.0);
    assert_eq!(t.save_steps, 10.0);
    assert_eq!(t.output_dir, "saves/smollm2-lora-sft");
    assert!(t.overwrite_output_dir);
}

#[test]
fn variant_examples_set_their_method() {
    let pt = load("smollm2_lora_pretrain.yaml");
    assert_eq!(pt.finetuning.stage, Stage::Pt);
    assert_eq!(pt.data.dataset, ["c4_demo"]);
    assert_eq!(pt.data.dataset_dir, "../shared/data/llamafactory");

    let alpaca = load("smollm2_lora_sft_alpaca.yaml");
    assert_eq!(alpaca.data.dataset, ["alpaca_en_demo"]);
    assert_eq!(alpaca.data.dataset_dir, "../shared/data/llamafactory");

    let full = load("smollm2_full_sft.yaml");
    assert_eq!(full.finetuning.finetuning_type, FinetuningType::Full);

    let freeze = load("smollm2_freeze_sft.yaml");
    assert_eq!(freeze.finetuning.finetuning_type, FinetuningType::Freeze);
    assert_eq!(freeze.finetuning.freeze_trainable_layers, 2);
    assert_eq!(freeze.finetuning.freeze_trainable_modules, ["all"]);

    let pre = load("smollm2_preprocess.yaml");
    assert_eq!(
        pre.data.tokenized_path.as_deref(),
        Some("saves/tokenized/smollm2-ferrotune-demo")
    );
    assert_eq!(pre.data.dataset, ["ferrotune_demo", "ferrotune_identity"]);
}
