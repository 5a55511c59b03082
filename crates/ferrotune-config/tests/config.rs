//! Loading tests: defaults, overrides, lists, the error messages, the key status registry,
//! every validation rule, and realistic LLaMA-Factory-style configs in `tests/data/`.

use std::path::{Path, PathBuf};

use ferrotune_config::args::{
    FinetuningType, InferDtype, IntervalStrategy, PrefLoss, SchedulerType, Stage,
};
use ferrotune_config::{Config, ConfigError, Origin};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn parse(yaml: &str, overrides: &[&str]) -> Result<Config, ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::parse(yaml, Path::new("x.yaml"), &overrides)
}

const BASE: &str = "model_name_or_path: m\n";

#[test]
fn defaults_match_llamafactory() {
    let cfg = parse(BASE, &[]).unwrap();
    let (f, d, t, g, m) = (
        &cfg.finetuning,
        &cfg.data,
        &cfg.training,
        &cfg.generating,
        &cfg.model,
    );
    assert_eq!(f.stage, Stage::Sft);
    assert_eq!(f.finetuning_type, FinetuningType::Lora);
    assert_eq!(f.lora_rank, 8);
    assert_eq!(f.lora_alpha, 16);
    assert_eq!(f.lora_dropout, 0.0);
    assert_eq!(f.lora_target, ["all"]);
    assert_eq!(f.freeze_trainable_layers, 2);
    assert_eq!(f.freeze_trainable_modules, ["all"]);
    assert_eq!(f.pref_beta, 0.1);
    assert_eq!(f.pref_loss, PrefLoss::Sigmoid);
    assert_eq!(d.template, None);
    assert_eq!(d.cutoff_len, 2048);
    assert_eq!(d.dataset_dir, "data");
    assert!(d.dataset.is_empty());
    assert!(!d.packing);
    assert_eq!(d.enable_thinking, Some(true));
    assert_eq!(t.learning_rate, 5e-5);
    assert_eq!(t.num_train_epochs, 3.0);
    assert_eq!(t.max_steps, -1);
    assert_eq!(t.lr_scheduler_type, SchedulerType::Linear);
    assert_eq!(t.per_device_train_batch_size, 8);
    assert_eq!(t.gradient_accumulation_steps, 1);
    assert_eq!(t.logging_steps, 500.0);
    assert_eq!(t.save_steps, 500.0);
    assert_eq!(t.seed, 42);
    assert_eq!(t.adam_beta2, 0.999);
    assert_eq!(t.adam_epsilon, 1e-8);
    assert_eq!(t.output_dir, "trainer_output");
    assert_eq!(t.optim, "adamw_torch");
    assert!(t.report_to.is_empty());
    assert_eq!(t.eval_steps, None);
    assert!(g.do_sample);
    assert_eq!(g.temperature, 0.95);
    assert_eq!(g.top_p, 0.7);
    assert_eq!(g.top_k, 50);
    assert_eq!(g.max_new_tokens, 1024);
    assert_eq!(m.infer_dtype, InferDtype::Auto);
    assert_eq!(m.export_size, 5);
    assert_eq!(m.model_revision, "main");
    assert_eq!(cfg.source.as_deref(), Some(Path::new("x.yaml")));
    assert!(cfg.non_default_keys() == ["model_name_or_path"]);
}

#[test]
fn resolution_of_dependent_defaults() {
    let cfg = parse(BASE, &["lora_rank=32"]).unwrap();
    assert_eq!(
        cfg.finetuning.lora_alpha, 64,
        "unset lora_alpha is 2 * lora_rank"
    );
    let cfg = parse(BASE, &["lora_rank=32", "lora_alpha=8"]).unwrap();
    assert_eq!(cfg.finetuning.lora_alpha, 8);
    let cfg = parse(BASE, &["lora_rank=4", "lora_alpha=null"]).unwrap();
    assert_eq!(cfg.finetuning.lora_alpha, 8);
    let cfg = parse(BASE, &["stage=pt"]).unwrap();
    assert!(cfg.data.packing, "packing defaults on for stage pt");
    let cfg = parse(BASE, &["stage=pt", "packing=false"]).unwrap();
    assert!(!cfg.data.packing);
    let cfg = parse(BASE, &["neat_packing=true", "packing=false"]).unwrap();
    assert!(cfg.data.packing, "neat_packing forces packing");
    let cfg = parse(
        BASE,
        &[
            "eval_strategy=steps",
            "logging_steps=10",
            "val_size=0.1",
            "dataset=a",
        ],
    )
    .unwrap();
    assert_eq!(cfg.training.eval_strategy, IntervalStrategy::Steps);
    assert_eq!(cfg.training.eval_steps, Some(10.0));
}

#[test]
fn overrides_use_yaml_scalar_semantics_and_replace_file_values() {
    let cfg = parse(
        "model_name_or_path: m\nlearning_rate: 5.0e-5\nlora_target: all\n",
        &[
            "learning_rate=1e-4",
            "lora_target=q_proj,v_proj",
            "bf16=true",
            "template=llama3",
        ],
    )
    .unwrap();
    assert_eq!(cfg.training.learning_rate, 1e-4);
    assert_eq!(cfg.finetuning.lora_target, ["q_proj", "v_proj"]);
    assert!(cfg.training.bf16);
    assert_eq!(cfg.data.template.as_deref(), Some("llama3"));

    let cfg = Config::from_overrides(&["model_name_or_path=m".into(), "num_train_epochs=1".into()])
        .unwrap();
    assert_eq!(
        cfg.training.num_train_epochs, 1.0,
        "integers are accepted for floats"
    );
    assert_eq!(cfg.source, None);

    let err = parse(BASE, &["lora_rank"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "command line override `lora_rank` is invalid: expected `key=value`, e.g. `learning_rate=1e-4`"
    );
}

#[test]
fn comma_lists_accept_strings_and_yaml_lists() {
    let cfg = parse(
        "model_name_or_path: m\ndataset: identity, alpaca_en_demo\neval_dataset: [a, b]\n\
         adapter_name_or_path: x,y\nadditional_target:\n  - embed_tokens\n  - lm_head\n\
         mix_strategy: interleave_under\ninterleave_probs: 0.3,0.7\n",
        &[],
    )
    .unwrap();
    assert_eq!(cfg.data.dataset, ["identity", "alpaca_en_demo"]);
    assert_eq!(cfg.data.eval_dataset, ["a", "b"]);
    assert_eq!(cfg.model.adapter_name_or_path, ["x", "y"]);
    assert_eq!(
        cfg.finetuning.additional_target,
        ["embed_tokens", "lm_head"]
    );
    assert_eq!(cfg.data.interleave_probs, [0.3, 0.7]);
    let cfg = parse(BASE, &["report_to=none"]).unwrap();
    assert!(cfg.training.report_to.is_empty());
}

#[test]
fn unknown_key_names_file_line_and_suggestion() {
    let yaml =
        "### model\nmodel_name_or_path: m\n\n### method\nstage: sft\nlora_rank: 8\nlora_rnak: 16\n";
    let err = parse(yaml, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key `lora_rnak` in x.yaml line 7: did you mean `lora_rank`?"
    );
    match err {
        ConfigError::UnknownKey {
            key,
            origin,
            suggestion,
        } => {
            assert_eq!(key, "lora_rnak");
            assert_eq!(
                origin,
                Origin::File {
                    path: "x.yaml".into(),
                    line: Some(7)
                }
            );
            assert_eq!(suggestion, Some("lora_rank"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    let err = parse(BASE, &["learning_rat=1e-4"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key `learning_rat` in command line override `learning_rat=1e-4`: did you mean `learning_rate`?"
    );
    let err = parse("model_name_or_path: m\nfoo_bar_baz: 1\n", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key `foo_bar_baz` in x.yaml line 2"
    );
}

#[test]
fn unknown_key_line_in_json() {
    let json = "{\n  \"model_name_or_path\": \"m\",\n  \"cutof_len\": 1024\n}\n";
    let err = Config::parse(json, Path::new("c.json"), &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key `cutof_len` in c.json line 3: did you mean `cutoff_len`?"
    );
}

#[test]
fn wrong_type_names_key_expectation_and_value() {
    let err = parse("model_name_or_path: m\nlora_rank: eight\n", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "key `lora_rank` in x.yaml line 2 expects an integer >= 0, got `\"eight\"` (string)"
    );
    let err = parse(BASE, &["stage=sfft"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "key `stage` in command line override `stage=sfft` expects one of `pt`, `sft`, `rm`, `ppo`, \
         `dpo`, `kto`, got `\"sfft\"` (string)"
    );
    let err = parse(BASE, &["bf16=1"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::WrongType { key: "bf16", .. }),
        "{err}"
    );
    let err = parse(BASE, &["lora_rank=-1"]).unwrap_err();
    assert!(err.to_string().contains("got `-1` (integer)"), "{err}");
    let err = parse(BASE, &["dataset={a: 1}"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("expects a comma-separated string or a list of strings"),
        "{err}"
    );
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let yaml = "model_name_or_path: m\nstage: sft\nlora_target: [q_proj, v_proj\nlora_rank: 8\n";
    let err = parse(yaml, &[]).unwrap_err();
    match &err {
        ConfigError::Syntax { format, line, .. } => {
            assert_eq!(*format, "YAML");
            assert_eq!(*line, Some(4), "{err}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("YAML syntax error in x.yaml line 4 column"),
        "{err}"
    );

    let err = parse("model_name_or_path: m\n  bad: indent\n", &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("YAML syntax error in x.yaml line 2"),
        "{err}"
    );

    let err = Config::parse("{\"a\": 1,,}", Path::new("c.json"), &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("JSON syntax error in c.json line 1 column 9"),
        "{err}"
    );

    let err = parse("- a\n- b\n", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::NotAMapping { .. }), "{err}");
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = Config::from_yaml_file("/nonexistent/cfg.yaml", &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read config file /nonexistent/cfg.yaml: "),
        "{err}"
    );
}

#[test]
fn unbuilt_keys_error_only_when_not_default() {
    let err = parse("model_name_or_path: m\nquantization_bit: 4\n", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "key `quantization_bit` (model arguments) is known but not supported by ferrotune yet: \
         set to `4` (integer) in x.yaml line 2; remove it to use the default"
    );
    // Set to its default value: accepted.
    parse(
        "model_name_or_path: m\nquantization_bit: null\nflash_attn: auto\nuse_galore: false\n",
        &[],
    )
    .unwrap();
    for (over, key) in [
        ("flash_attn=fa2", "flash_attn"),
        ("use_galore=true", "use_galore"),
        ("deepspeed=ds_z3_config.json", "deepspeed"),
        ("report_to=wandb", "report_to"),
        ("infer_backend=vllm", "infer_backend"),
        ("finetuning_type=oft", "finetuning_type"),
        ("image_max_pixels=1000000", "image_max_pixels"),
    ] {
        match parse(BASE, &[over]) {
            Err(ConfigError::NotSupported { key: k, .. }) => assert_eq!(k, key, "{over}"),
            other => panic!("{over}: expected NotSupported, got {other:?}"),
        }
    }
}

#[test]
fn no_effect_keys_are_accepted() {
    let cfg = parse(
        "model_name_or_path: m\npreprocessing_num_workers: 16\ndataloader_num_workers: 4\n\
         ddp_timeout: 180000000\noverwrite_cache: true\ntrust_remote_code: true\n\
         dataloader_pin_memory: false\n",
        &[],
    )
    .unwrap();
    assert_eq!(cfg.data.preprocessing_num_workers, Some(16));
    assert_eq!(cfg.training.ddp_timeout, 180_000_000);
    assert!(cfg.model.trust_remote_code);
}

/// Every cross-key rule: the overrides on top of a valid training config, and the keys the
/// error must name.
#[test]
fn each_validation_rule_names_its_keys() {
    let base = "model_name_or_path: m\nstage: sft\ndo_train: true\ndataset: alpaca\n";
    let cases: &[(&[&str], &[&str])] = &[
        (&["model_name_or_path=null"], &["model_name_or_path"]),
        (
            &["val_size=0.1", "dataset=null", "do_train=false"],
            &["val_size", "dataset"],
        ),
        (
            &["val_size=0.1", "eval_dataset=b"],
            &["val_size", "eval_dataset"],
        ),
        (&["val_size=1.5"], &["val_size"]),
        (
            &["interleave_probs=0.5,0.5", "dataset=a,b"],
            &["interleave_probs", "mix_strategy"],
        ),
        (
            &["interleave_probs=0.5,0.5", "mix_strategy=interleave_over"],
            &["interleave_probs", "dataset"],
        ),
        (
            &["streaming=true", "max_steps=10", "val_size=0.1"],
            &["streaming", "val_size"],
        ),
        (
            &["streaming=true", "max_steps=10", "max_samples=5"],
            &["streaming", "max_samples"],
        ),
        (
            &["mask_history=true", "train_on_prompt=true"],
            &["mask_history", "train_on_prompt"],
        ),
        (&["stage=ppo"], &["stage", "reward_model"]),
        (
            &["stage=ppo", "reward_model=r", "finetuning_type=full"],
            &["reward_model_type", "finetuning_type"],
        ),
        (
            &["stage=ppo", "reward_model=r", "do_train=false"],
            &["stage", "do_train"],
        ),
        (
            &["stage=dpo", "pref_loss=ipo", "dpo_label_smoothing=0.1"],
            &["dpo_label_smoothing", "pref_loss"],
        ),
        (&["stage=dpo", "pissa_init=true"], &["pissa_init", "stage"]),
        (&["stage=kto", "pissa_init=true"], &["pissa_init", "stage"]),
        (
            &["finetuning_type=full", "use_rslora=true"],
            &["use_rslora", "finetuning_type"],
        ),
        (
            &["finetuning_type=freeze", "use_dora=true"],
            &["use_dora", "finetuning_type"],
        ),
        (
            &["finetuning_type=full", "loraplus_lr_ratio=16"],
            &["loraplus_lr_ratio", "finetuning_type"],
        ),
        (
            &["finetuning_type=full", "pissa_init=true"],
            &["pissa_init", "finetuning_type"],
        ),
        (&["lora_rank=0"], &["lora_rank"]),
        (&["lora_dropout=1.0"], &["lora_dropout"]),
        (
            &["stage=pt", "train_on_prompt=true"],
            &["train_on_prompt", "stage"],
        ),
        (
            &["stage=rm", "neat_packing=true"],
            &["neat_packing", "stage"],
        ),
        (
            &["stage=dpo", "predict_with_generate=true", "val_size=0.1"],
            &["predict_with_generate", "stage"],
        ),
        (
            &["do_predict=true", "eval_dataset=b"],
            &["do_predict", "predict_with_generate"],
        ),
        (&["streaming=true"], &["max_steps", "streaming"]),
        (&["dataset=null"], &["do_train", "dataset"]),
        (
            &["do_eval=true"],
            &["do_eval", "do_predict", "eval_dataset", "val_size"],
        ),
        (
            &[
                "predict_with_generate=true",
                "compute_accuracy=true",
                "val_size=0.1",
            ],
            &["predict_with_generate", "compute_accuracy"],
        ),
        (
            &["finetuning_type=freeze", "adapter_name_or_path=a"],
            &["adapter_name_or_path", "finetuning_type"],
        ),
        (&["fp16=true", "bf16=true"], &["fp16", "bf16"]),
        (&["pure_bf16=true", "fp16=true"], &["pure_bf16", "fp16"]),
        (&["logging_steps=0"], &["logging_steps", "logging_strategy"]),
        (&["logging_steps=2.5"], &["logging_steps"]),
        (&["save_steps=-3"], &["save_steps"]),
        (&["warmup_ratio=1.5"], &["warmup_ratio"]),
        (
            &["lr_scheduler_type=reduce_lr_on_plateau"],
            &["lr_scheduler_type", "eval_strategy"],
        ),
        (
            &["dataloader_prefetch_factor=2"],
            &["dataloader_prefetch_factor", "dataloader_num_workers"],
        ),
        (
            &["per_device_train_batch_size=0"],
            &["per_device_train_batch_size"],
        ),
        (
            &["gradient_accumulation_steps=0"],
            &["gradient_accumulation_steps"],
        ),
        (&["cutoff_len=0"], &["cutoff_len"]),
    ];
    parse(base, &[]).expect("the base config is valid");
    for (overrides, keys) in cases {
        match parse(base, overrides) {
            Err(ConfigError::Invalid {
                keys: got,
                message,
                source_path,
            }) => {
                assert_eq!(&got, keys, "{overrides:?}: {message}");
                assert_eq!(source_path.as_deref(), Some(Path::new("x.yaml")));
                for key in *keys {
                    assert!(message.contains(key), "{overrides:?}: {message}");
                }
            }
            other => panic!("{overrides:?}: expected Invalid naming {keys:?}, got {other:?}"),
        }
    }
    // Valid neighbours of the rules above.
    for overrides in [
        &["stage=dpo", "pref_loss=simpo", "pissa_init=true"][..],
        &["streaming=true", "max_steps=10", "val_size=100"],
        &["fp16=true"],
        &["pure_bf16=true", "bf16=true"],
        &["logging_steps=0.05"],
    ] {
        parse(base, overrides).unwrap_or_else(|e| panic!("{overrides:?}: {e}"));
    }
    let err = parse(base, &["fp16=true", "bf16=true"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config x.yaml: `fp16` and `bf16` cannot both be true: set one of them to false"
    );
}

#[test]
fn realistic_lora_sft_yaml() {
    let cfg = Config::from_yaml_file(data("llama3_lora_sft.yaml"), &[]).unwrap();
    assert_eq!(
        cfg.model.model_name_or_path.as_deref(),
        Some("meta-llama/Meta-Llama-3-8B-Instruct")
    );
    assert_eq!(cfg.finetuning.stage, Stage::Sft);
    assert_eq!(cfg.finetuning.lora_target, ["all"]);
    assert_eq!(cfg.finetuning.lora_alpha, 16);
    assert_eq!(cfg.data.dataset, ["identity", "alpaca_en_demo"]);
    assert_eq!(cfg.data.template.as_deref(), Some("llama3"));
    assert_eq!(cfg.data.max_samples, Some(1000));
    assert_eq!(cfg.training.learning_rate, 1e-4);
    assert_eq!(cfg.training.lr_scheduler_type, SchedulerType::Cosine);
    assert_eq!(cfg.training.warmup_ratio, 0.1);
    assert_eq!(cfg.training.gradient_accumulation_steps, 8);
    assert_eq!(cfg.training.eval_steps, Some(500.0));
    assert!(cfg.training.bf16 && cfg.finetuning.plot_loss && cfg.training.overwrite_output_dir);
    assert_eq!(cfg.training.resume_from_checkpoint, None);
    assert!(cfg.training.report_to.is_empty());
    assert_eq!(cfg.source, Some(data("llama3_lora_sft.yaml")));

    let cfg = Config::from_yaml_file(
        data("llama3_lora_sft.yaml"),
        &[
            "learning_rate=2e-4".into(),
            "lora_target=q_proj,v_proj".into(),
        ],
    )
    .unwrap();
    assert_eq!(cfg.training.learning_rate, 2e-4);
    assert_eq!(cfg.finetuning.lora_target, ["q_proj", "v_proj"]);
}

#[test]
fn realistic_full_sft_yaml_fails_only_on_deepspeed() {
    let path = data("llama3_full_sft.yaml");
    let err = Config::from_yaml_file(&path, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "key `deepspeed` (training arguments) is known but not supported by ferrotune yet: \
             set to `\"examples/deepspeed/ds_z3_config.json\"` (string) in {} line 11; remove it \
             to use the default",
            path.display()
        )
    );
    let cfg = Config::from_yaml_file(&path, &["deepspeed=null".into()]).unwrap();
    assert_eq!(cfg.finetuning.finetuning_type, FinetuningType::Full);
    assert_eq!(cfg.data.dataset, ["identity", "alpaca_en_demo"]);
    assert_eq!(cfg.training.learning_rate, 1e-5);
}

#[test]
fn realistic_lora_dpo_yaml() {
    let cfg = Config::from_yaml_file(data("qwen2_5_lora_dpo.yaml"), &[]).unwrap();
    let f = &cfg.finetuning;
    assert_eq!(f.stage, Stage::Dpo);
    assert_eq!((f.lora_rank, f.lora_alpha, f.lora_dropout), (16, 32, 0.05));
    assert_eq!(f.lora_target, ["q_proj", "k_proj", "v_proj", "o_proj"]);
    assert_eq!(f.pref_loss, PrefLoss::Sigmoid);
    assert_eq!(cfg.data.cutoff_len, 4096);
    assert_eq!(cfg.training.num_train_epochs, 2.0);
    assert_eq!(cfg.training.save_total_limit, Some(3));
    assert!(cfg.training.gradient_checkpointing);
}

#[test]
fn realistic_predict_yaml() {
    let cfg = Config::from_yaml_file(data("llama3_lora_predict.yaml"), &[]).unwrap();
    assert!(cfg.training.do_predict && cfg.training.predict_with_generate);
    assert!(!cfg.training.do_train);
    assert_eq!(cfg.model.adapter_name_or_path, ["saves/llama3-8b/lora/sft"]);
    assert_eq!(cfg.data.eval_dataset, ["identity", "alpaca_en_demo"]);
    assert_eq!(
        (cfg.generating.temperature, cfg.generating.top_p),
        (0.6, 0.9)
    );
    assert_eq!(cfg.generating.max_new_tokens, 512);
}

#[test]
fn realistic_merge_lora_yaml() {
    let cfg = Config::from_yaml_file(data("llama3_merge_lora.yaml"), &[]).unwrap();
    assert_eq!(
        cfg.model.export_dir.as_deref(),
        Some("output/llama3_lora_sft")
    );
    assert_eq!(cfg.model.export_size, 2);
    assert!(!cfg.model.export_legacy_format);
    assert_eq!(cfg.model.infer_dtype, InferDtype::Bfloat16);
}

#[test]
fn realistic_json_config() {
    let cfg = Config::from_yaml_file(data("qwen2_5_lora_sft.json"), &[]).unwrap();
    assert_eq!(cfg.finetuning.lora_target, ["q_proj", "v_proj"]);
    assert!(cfg.finetuning.use_rslora);
    assert_eq!(cfg.training.max_steps, 100);
    assert_eq!(cfg.training.learning_rate, 2e-4);
    assert_eq!(cfg.data.cutoff_len, 1024);
}

/// Parses every YAML of a LLaMA-Factory checkout's `examples/` folder (not committed here):
/// `FERROTUNE_LF_EXAMPLES=/path/to/LLaMA-Factory/examples cargo test -p ferrotune-config -- --ignored`.
/// Each must load, or fail only with a known-but-not-supported key. At v0.9.5: 19 load, 37
/// name an unbuilt key.
#[test]
#[ignore = "needs FERROTUNE_LF_EXAMPLES pointing at LLaMA-Factory's examples/ folder"]
fn llamafactory_examples_parse_or_name_an_unbuilt_key() {
    let root = std::env::var("FERROTUNE_LF_EXAMPLES").expect("set FERROTUNE_LF_EXAMPLES");
    let mut stack = vec![PathBuf::from(root)];
    let (mut loaded, mut unbuilt, mut failures) = (0, 0, Vec::new());
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Launcher configs, token lists and v1 configs have no `model_name_or_path` key;
            // megatron configs hold mcore-adapter keys that LLaMA-Factory reads only with
            // USE_MCA=1.
            let megatron = path.components().any(|c| c.as_os_str() == "megatron");
            if !text.contains("model_name_or_path") || megatron {
                continue;
            }
            match Config::from_yaml_file(&path, &[]) {
                Ok(_) => loaded += 1,
                Err(ConfigError::NotSupported { key, .. }) => {
                    unbuilt += 1;
                    eprintln!("{}: not supported yet: {key}", path.display());
                }
                Err(e) => failures.push(format!("{}: {e}", path.display())),
            }
        }
    }
    eprintln!("{loaded} loaded, {unbuilt} with unbuilt keys");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rules whose keys are not built yet (so loading stops earlier with `NotSupported`): checked
/// on configs built in code, as later issues will reach them once the keys are supported.
#[test]
fn validation_rules_behind_unbuilt_keys() {
    let base = || {
        let mut cfg = Config::default();
        cfg.model.model_name_or_path = Some("m".into());
        cfg.training.do_train = true;
        cfg.data.dataset = vec!["alpaca".into()];
        cfg
    };
    base().validate().expect("the base config is valid");
    type Edit = fn(&mut Config);
    let cases: &[(Edit, &[&str])] = &[
        (
            |c| c.model.export_quantization_bit = Some(4),
            &["export_quantization_bit", "export_quantization_dataset"],
        ),
        (
            |c| c.model.image_min_pixels = c.model.image_max_pixels + 1,
            &["image_max_pixels", "image_min_pixels"],
        ),
        (
            |c| c.model.video_max_pixels = 16,
            &["video_max_pixels", "video_min_pixels"],
        ),
        (
            |c| c.finetuning.ref_model_quantization_bit = Some(3),
            &["ref_model_quantization_bit"],
        ),
        (
            |c| c.finetuning.reward_model_quantization_bit = Some(2),
            &["reward_model_quantization_bit"],
        ),
        (
            |c| {
                c.finetuning.use_llama_pro = true;
                c.finetuning.finetuning_type = FinetuningType::Full
            },
            &["use_llama_pro", "finetuning_type"],
        ),
        (
            |c| c.finetuning.use_galore = true,
            &["finetuning_type", "use_galore", "use_apollo", "use_badam"],
        ),
        (
            |c| {
                c.finetuning.finetuning_type = FinetuningType::Full;
                c.finetuning.use_apollo = true;
                c.finetuning.use_badam = true
            },
            &["use_galore", "use_apollo", "use_badam"],
        ),
        (
            |c| {
                c.finetuning.stage = Stage::Rm;
                c.training.load_best_model_at_end = true
            },
            &["load_best_model_at_end", "stage"],
        ),
        (
            |c| {
                c.finetuning.stage = Stage::Ppo;
                c.finetuning.reward_model = Some("r".into());
                c.model.shift_attn = true
            },
            &["stage", "shift_attn"],
        ),
        (
            |c| c.model.quantization_device_map = Some("auto".into()),
            &["quantization_device_map", "do_train"],
        ),
        (
            |c| {
                c.training.fp8 = true;
                c.model.quantization_bit = Some(4)
            },
            &["fp8", "quantization_bit"],
        ),
        (
            |c| {
                c.model.quantization_bit = Some(4);
                c.finetuning.finetuning_type = FinetuningType::Full
            },
            &["quantization_bit", "finetuning_type"],
        ),
        (
            |c| {
                c.model.quantization_bit = Some(4);
                c.finetuning.pissa_init = true
            },
            &["quantization_bit", "pissa_init"],
        ),
        (
            |c| {
                c.model.quantization_bit = Some(4);
                c.model.resize_vocab = true
            },
            &["quantization_bit", "resize_vocab"],
        ),
        (
            |c| {
                c.model.quantization_bit = Some(4);
                c.model.adapter_name_or_path = vec!["a".into()];
                c.finetuning.create_new_adapter = true
            },
            &["quantization_bit", "create_new_adapter"],
        ),
        (
            |c| {
                c.model.quantization_bit = Some(8);
                c.model.adapter_name_or_path = vec!["a".into(), "b".into()]
            },
            &["quantization_bit", "adapter_name_or_path"],
        ),
        (
            |c| {
                c.training.fp16_full_eval = true;
                c.training.bf16_full_eval = true
            },
            &["fp16_full_eval", "bf16_full_eval"],
        ),
        (
            |c| {
                c.training.load_best_model_at_end = true;
                c.training.eval_strategy = IntervalStrategy::Epoch;
                c.data.val_size = 0.1
            },
            &["load_best_model_at_end", "eval_strategy", "save_strategy"],
        ),
        (
            |c| {
                c.training.load_best_model_at_end = true;
                c.training.eval_strategy = IntervalStrategy::Steps;
                c.training.eval_steps = Some(300.0);
                c.data.val_size = 0.1
            },
            &["load_best_model_at_end", "save_steps", "eval_steps"],
        ),
    ];
    for (index, (edit, keys)) in cases.iter().enumerate() {
        let mut cfg = base();
        edit(&mut cfg);
        match cfg.validate() {
            Err(ConfigError::Invalid {
                keys: got,
                message,
                source_path,
            }) => {
                assert_eq!(&got, keys, "case {index}: {message}");
                assert_eq!(source_path, None);
            }
            other => panic!("case {index}: expected Invalid naming {keys:?}, got {other:?}"),
        }
    }
    let mut cfg = base();
    cfg.training.load_best_model_at_end = true;
    cfg.training.eval_strategy = IntervalStrategy::Steps;
    cfg.training.eval_steps = Some(250.0);
    cfg.data.val_size = 0.1;
    cfg.validate()
        .expect("save_steps 500 is a multiple of eval_steps 250");
}

#[test]
fn effective_cutoff_len_follows_llamafactory_packing_rule() {
    let base = "model_name_or_path: m\ncutoff_len: 128\n";
    // Written packing (or neat_packing) takes one token off, as DataArguments.__post_init__ does.
    let cfg = parse(&format!("{base}stage: pt\npacking: true\n"), &[]).unwrap();
    assert_eq!((cfg.data.packing, cfg.effective_cutoff_len), (true, 127));
    let cfg = parse(&format!("{base}stage: sft\nneat_packing: true\n"), &[]).unwrap();
    assert_eq!((cfg.data.packing, cfg.effective_cutoff_len), (true, 127));
    // pt turns packing on by default afterwards, without the reduction.
    let cfg = parse(&format!("{base}stage: pt\n"), &[]).unwrap();
    assert_eq!((cfg.data.packing, cfg.effective_cutoff_len), (true, 128));
    let cfg = parse(&format!("{base}stage: sft\n"), &[]).unwrap();
    assert_eq!((cfg.data.packing, cfg.effective_cutoff_len), (false, 128));
}

#[test]
fn written_yaml_reproduces_the_config() {
    let cfg = parse(
        "model_name_or_path: m\nstage: sft\ndo_train: true\ndataset: a,b\nlearning_rate: 1.0e-4\n",
        &["lora_rank=16", "learning_rate=2e-4"],
    )
    .unwrap();
    let yaml = cfg.written_yaml();
    assert!(yaml.contains("lora_rank: 16"), "{yaml}");
    assert!(
        !yaml.contains("0.0001"),
        "the override replaced the file value: {yaml}"
    );
    let again = parse(&yaml, &[]).unwrap();
    assert_eq!(again.finetuning.lora_rank, 16);
    assert_eq!(again.training.learning_rate, 2e-4);
    assert_eq!(again.data.dataset, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(again.written, cfg.written);
}
