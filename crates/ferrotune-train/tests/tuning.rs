//! Which tensors train, on the tiny llama (tied head) and qwen2 (untied head, q/k/v biases)
//! fixtures: freeze tuning's trainable set against LLaMA-Factory 0.9.5, frozen weights
//! untouched by training, and stacked adapters (`adapter_name_or_path` lists,
//! `create_new_adapter`) merged and resumed as LLaMA-Factory's `_setup_lora_tuning` does.
//!
//! The expected freeze sets were printed by LLaMA-Factory 0.9.5 itself: each fixture loaded
//! with `AutoModelForCausalLM.from_pretrained`, `_setup_freeze_tuning(model,
//! FinetuningArguments(finetuning_type="freeze", ...), True, True)`, then the names of the
//! parameters with `requires_grad`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use ferrotune_config::{Config, TrainingArguments};
use ferrotune_hub::resolve::ModelSource;
use ferrotune_model::adapters::{apply_lora, load_peft, LoraConfig, LoraInit, PEFT_PREFIX};
use ferrotune_model::CausalLM;
use ferrotune_train::checkpoint::WeightsFormat;
use ferrotune_train::collate::{collate, Example};
use ferrotune_train::tuning::{freeze_trainable_names, load_adapters, setup_trainable, Trainable};
use ferrotune_train::{LoopOptions, Trainer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn fixture(variant: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../fixtures/tiny/{variant}"))
}

fn load(variant: &str) -> CausalLM {
    ferrotune_model::load_hf_dir(&fixture(variant), &Device::Cpu).unwrap()
}

/// A validated config from `key=value` overrides (the model path is only named, never read).
fn config(overrides: &[&str]) -> Config {
    let mut o = vec![format!("model_name_or_path={}", fixture("llama").display())];
    o.extend(overrides.iter().map(|s| s.to_string()));
    Config::from_overrides(&o).unwrap()
}

/// [`setup_trainable`] on a fixture; errors as their message.
fn setup(variant: &str, overrides: &[&str]) -> Result<Trainable, String> {
    let dir = fixture(variant);
    let name = dir.display().to_string();
    setup_trainable(
        &config(overrides),
        load(variant),
        &ModelSource::HfDir(dir),
        &name,
    )
    .map_err(|e| e.to_string())
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// [`freeze_trainable_names`] on a fixture, sorted; errors as their message.
fn freeze_names(variant: &str, overrides: &[&str]) -> Result<Vec<String>, String> {
    let cfg = config(overrides);
    let mut names =
        freeze_trainable_names(&cfg.finetuning, &load(variant)).map_err(|e| e.to_string())?;
    names.sort();
    Ok(names)
}

const LAYER0_ALL: [&str; 9] = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.post_attention_layernorm.weight",
];

const LAYER1_ALL: [&str; 9] = [
    "model.layers.1.self_attn.q_proj.weight",
    "model.layers.1.self_attn.k_proj.weight",
    "model.layers.1.self_attn.v_proj.weight",
    "model.layers.1.self_attn.o_proj.weight",
    "model.layers.1.mlp.gate_proj.weight",
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.layers.1.input_layernorm.weight",
    "model.layers.1.post_attention_layernorm.weight",
];

#[test]
fn freeze_layer_counts_pick_the_last_or_first_layers() {
    let ft = "finetuning_type=freeze";
    // Positive: the last n layers; negative: the first |n|; beyond the depth: all of them.
    let last = freeze_names("llama", &[ft, "freeze_trainable_layers=1"]).unwrap();
    assert_eq!(last, sorted(&LAYER1_ALL));
    let first = freeze_names("llama", &[ft, "freeze_trainable_layers=-1"]).unwrap();
    assert_eq!(first, sorted(&LAYER0_ALL));
    let every = freeze_names("llama", &[ft, "freeze_trainable_layers=5"]).unwrap();
    let both: Vec<&str> = LAYER0_ALL.iter().chain(&LAYER1_ALL).copied().collect();
    assert_eq!(every, sorted(&both));
}

#[test]
fn freeze_modules_and_extra_modules_match_llamafactory() {
    let ft = "finetuning_type=freeze";
    let got = freeze_names(
        "llama",
        &[
            ft,
            "freeze_trainable_layers=-1",
            "freeze_trainable_modules=mlp,input_layernorm",
        ],
    )
    .unwrap();
    assert_eq!(
        got,
        sorted(&[
            "model.layers.0.mlp.gate_proj.weight",
            "model.layers.0.mlp.up_proj.weight",
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.0.input_layernorm.weight",
        ])
    );
    // `norm` matches by substring, as in LLaMA-Factory: every layer norm trains too.
    let got = freeze_names(
        "llama",
        &[
            ft,
            "freeze_trainable_layers=1",
            "freeze_trainable_modules=self_attn",
            "freeze_extra_modules=embed_tokens,norm",
        ],
    )
    .unwrap();
    assert_eq!(
        got,
        sorted(&[
            "model.embed_tokens.weight",
            "model.layers.0.input_layernorm.weight",
            "model.layers.0.post_attention_layernorm.weight",
            "model.layers.1.self_attn.q_proj.weight",
            "model.layers.1.self_attn.k_proj.weight",
            "model.layers.1.self_attn.v_proj.weight",
            "model.layers.1.self_attn.o_proj.weight",
            "model.layers.1.input_layernorm.weight",
            "model.layers.1.post_attention_layernorm.weight",
            "model.norm.weight",
        ])
    );
    // qwen2: the attention biases belong to self_attn; the untied head is an extra module.
    let got = freeze_names(
        "qwen2",
        &[
            ft,
            "freeze_trainable_layers=1",
            "freeze_trainable_modules=self_attn",
            "freeze_extra_modules=lm_head",
        ],
    )
    .unwrap();
    assert_eq!(
        got,
        sorted(&[
            "model.layers.1.self_attn.q_proj.weight",
            "model.layers.1.self_attn.q_proj.bias",
            "model.layers.1.self_attn.k_proj.weight",
            "model.layers.1.self_attn.k_proj.bias",
            "model.layers.1.self_attn.v_proj.weight",
            "model.layers.1.self_attn.v_proj.bias",
            "model.layers.1.self_attn.o_proj.weight",
            "lm_head.weight",
        ])
    );
}

#[test]
fn freeze_unknown_modules_list_the_valid_ones() {
    let ft = "finetuning_type=freeze";
    let err = freeze_names("llama", &[ft, "freeze_trainable_modules=attn"]).unwrap_err();
    println!("{err}");
    assert!(err.contains("`freeze_trainable_modules`: module `attn` is not found"));
    assert!(err.contains("input_layernorm, mlp, post_attention_layernorm, self_attn"));
    // The tied llama has no lm_head parameter (LLaMA-Factory: "choose from embed_tokens, norm").
    let err = freeze_names("llama", &[ft, "freeze_extra_modules=lm_head"]).unwrap_err();
    println!("{err}");
    assert!(err.contains("`freeze_extra_modules`: module `lm_head` is not found"));
    assert!(err.contains("choose from embed_tokens, norm "));
    let err = freeze_names("llama", &[ft, "freeze_trainable_layers=0"]).unwrap_err();
    assert!(err.contains("trains no weight"), "{err}");
}

fn examples() -> Vec<Example> {
    common::two_examples(7)
}

fn snapshot(model: &CausalLM) -> BTreeMap<String, Vec<f32>> {
    model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

#[test]
fn freeze_training_changes_only_the_trainable_weights() {
    let trainable = setup(
        "qwen2",
        &[
            "finetuning_type=freeze",
            "freeze_trainable_layers=-1",
            "freeze_trainable_modules=self_attn",
            "freeze_extra_modules=lm_head",
        ],
    )
    .unwrap();
    assert!(matches!(trainable.weights, WeightsFormat::Full { .. }));
    let mut names: Vec<String> = trainable.params.iter().map(|p| p.name.clone()).collect();
    names.sort();
    let expected = sorted(&[
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.k_proj.bias",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.0.self_attn.v_proj.bias",
        "model.layers.0.self_attn.o_proj.weight",
        "lm_head.weight",
    ]);
    assert_eq!(names, expected);
    let before = snapshot(&trainable.model);
    let args = TrainingArguments {
        learning_rate: 1e-2,
        ..Default::default()
    };
    let options = LoopOptions {
        pad_token_id: 0,
        shuffle: false,
        output_dir: None,
        show_progress: false,
        weights: WeightsFormat::None,
        resume_from: None,
    };
    let mut trainer = Trainer::new(
        trainable.model,
        trainable.params,
        &args,
        options,
        &Device::Cpu,
    )
    .unwrap();
    let ex = examples();
    let batch = collate(&[&ex[0], &ex[1]], 0, &Device::Cpu).unwrap();
    let l1 = trainer
        .step(std::slice::from_ref(&batch), 1e-2, 1)
        .unwrap()
        .loss;
    let l2 = trainer
        .step(std::slice::from_ref(&batch), 1e-2, 2)
        .unwrap()
        .loss;
    println!("loss step 1 {l1:.6}, step 2 {l2:.6}");
    assert!(l2 < l1, "the loss should fall: {l1} then {l2}");
    let after = snapshot(&trainer.model);
    assert_eq!(before.len(), after.len());
    for (name, b) in &before {
        let a = &after[name];
        let max = b
            .iter()
            .zip(a)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        if expected.contains(name) {
            println!("{name}: max change {max:.3e}");
            assert!(max > 1e-4, "{name} should have trained, max change {max}");
        } else {
            assert!(
                b.iter().zip(a).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{name} is frozen but changed by {max}"
            );
        }
    }
}

/// A PEFT adapter on `variant`: A as PEFT initializes it (seeded), B drawn from U(−0.05, 0.05)
/// (PEFT's zero B would not change the output), saved into `dir`.
fn make_adapter(variant: &str, cfg: &LoraConfig, seed: u64, dir: &Path) {
    let mut model = load(variant);
    let set = apply_lora(&mut model, cfg, seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed + 1000);
    for (name, var) in &set.params {
        if !name.ends_with("lora_B.weight") {
            continue;
        }
        let dims = var.as_tensor().dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(-0.05..0.05)).collect();
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu).unwrap())
            .unwrap();
    }
    set.save_peft(dir, &fixture(variant).display().to_string())
        .unwrap();
}

fn lora(r: usize, alpha: f64, targets: &[&str], use_rslora: bool) -> LoraConfig {
    LoraConfig {
        lora_rank: r,
        lora_alpha: alpha,
        lora_dropout: 0.0,
        lora_target: targets.iter().map(|s| s.to_string()).collect(),
        additional_target: vec![],
        use_rslora,
        use_dora: false,
        init: LoraInit::Default,
    }
}

/// Adapter 1: q_proj and v_proj, r 4, alpha 8 (s = 2). Adapter 2: every projection, r 2,
/// alpha 4 with rsLoRA (s = 4/√2).
fn two_adapters(root: &Path) -> (PathBuf, PathBuf) {
    let (a1, a2) = (root.join("a1"), root.join("a2"));
    make_adapter("llama", &lora(4, 8.0, &["q_proj", "v_proj"], false), 1, &a1);
    make_adapter("llama", &lora(2, 4.0, &["all"], true), 2, &a2);
    (a1, a2)
}

fn adapter_tensors(dir: &Path) -> BTreeMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect()
}

/// `weights` with `W + s·B·A` added for every adapted module of the adapter in `dir`,
/// computed here from the files (independently of ferrotune's merge).
fn add_adapter(weights: &mut BTreeMap<String, Tensor>, dir: &Path, scaling: f64) {
    let t = adapter_tensors(dir);
    for (name, a) in &t {
        let Some(module) = name
            .strip_prefix(PEFT_PREFIX)
            .and_then(|n| n.strip_suffix(".lora_A.weight"))
        else {
            continue;
        };
        let b = &t[&format!("{PEFT_PREFIX}{module}.lora_B.weight")];
        let key = format!("{module}.weight");
        let delta = (b.matmul(a).unwrap() * scaling).unwrap();
        let merged = (&weights[&key] + delta).unwrap();
        weights.insert(key, merged);
    }
}

fn input_ids() -> Tensor {
    let ids: Vec<u32> = vec![5, 17, 42, 99, 3, 250, 128, 64, 7, 1];
    Tensor::from_vec(ids, (1, 10), &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn merged_adapter_then_new_adapter_keeps_the_adapted_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let (a1, _) = two_adapters(tmp.path());
    // The base with adapter 1 applied (not merged).
    let mut reference = load("llama");
    load_peft(&a1, &mut reference).unwrap();
    let want = reference.forward(&input_ids(), None).unwrap();
    let base = load("llama").forward(&input_ids(), None).unwrap();

    let path = format!("adapter_name_or_path={}", a1.display());
    let t = setup(
        "llama",
        &[
            "finetuning_type=lora",
            &path,
            "create_new_adapter=true",
            "lora_rank=2",
            "lora_target=all",
        ],
    )
    .unwrap();
    let got = t.model.forward(&input_ids(), None).unwrap();
    let (d, moved) = (max_diff(&got, &want), max_diff(&base, &want));
    let scale = max_diff(&want, &want.zeros_like().unwrap());
    println!(
        "step-0 logits vs base+adapter 1: max diff {d:.3e} (max |logit| {scale:.2}, adapter 1 moves them {moved:.3e})"
    );
    assert!(moved > 1e-2, "adapter 1 should change the logits");
    assert!(d < 1e-5, "max diff {d}");

    // A fresh adapter from the lora_* keys: r = 2 on every projection, B = 0.
    let WeightsFormat::Peft {
        adapters,
        base_model,
    } = &t.weights
    else {
        panic!("LoRA saves a PEFT adapter");
    };
    assert_eq!(base_model, &fixture("llama").display().to_string());
    assert_eq!(adapters.config.lora_rank, 2);
    assert_eq!(adapters.target_modules.len(), 7);
    let mut n_b = 0;
    for (name, var) in &adapters.params {
        if name.ends_with("lora_B.weight") {
            n_b += 1;
            let abs_sum = var
                .as_tensor()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(abs_sum, 0.0, "{name} should start at zero");
        }
    }
    assert_eq!(n_b, 14, "7 projections × 2 layers");
    assert_eq!(t.params.len(), 28);
}

#[test]
fn last_adapter_is_resumed_with_its_own_config_and_values() {
    let tmp = tempfile::tempdir().unwrap();
    let (a1, a2) = two_adapters(tmp.path());
    let path = format!("adapter_name_or_path={},{}", a1.display(), a2.display());
    // The lora_* keys differ from adapter 2's config and must not apply to it.
    let t = setup(
        "llama",
        &[
            "finetuning_type=lora",
            &path,
            "lora_rank=8",
            "lora_target=q_proj",
        ],
    )
    .unwrap();
    let WeightsFormat::Peft { adapters, .. } = &t.weights else {
        panic!("LoRA saves a PEFT adapter");
    };
    assert_eq!(adapters.config.lora_rank, 2);
    assert!(adapters.config.use_rslora);
    assert_eq!(adapters.target_modules.len(), 7);
    // The trainable tensors are adapter 2's values, bit for bit, before any step.
    let saved = adapter_tensors(&a2);
    assert_eq!(t.params.len(), saved.len());
    for p in &t.params {
        let want: Vec<f32> = saved[&p.name].flatten_all().unwrap().to_vec1().unwrap();
        let got: Vec<f32> = p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, want, "{}", p.name);
    }
    // And the model computes base + adapter 1 (merged) + adapter 2.
    let want = reference_logits(&[(&a1, 2.0), (&a2, 4.0 / 2f64.sqrt())]);
    let d = max_diff(&t.model.forward(&input_ids(), None).unwrap(), &want);
    println!("resumed adapter logits vs base + a1 + a2 from the files: max diff {d:.3e}");
    assert!(d < 1e-5, "max diff {d}");
}

/// Logits of the tiny llama whose weights are `W + Σ s·B·A` over `adapters` (folder,
/// scaling), built from the adapter files.
fn reference_logits(adapters: &[(&Path, f64)]) -> Tensor {
    let base = load("llama");
    let mut weights: BTreeMap<String, Tensor> = base.named_tensors().into_iter().collect();
    for (dir, s) in adapters {
        add_adapter(&mut weights, dir, *s);
    }
    let model = CausalLM::from_weights(
        base.config.clone(),
        ferrotune_model::WeightStore::new(Path::new("reference"), weights),
    )
    .unwrap();
    model.forward(&input_ids(), None).unwrap()
}

#[test]
fn evaluation_merges_every_listed_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let (a1, a2) = two_adapters(tmp.path());
    let path = format!("adapter_name_or_path={},{}", a1.display(), a2.display());
    let cfg = config(&["finetuning_type=lora", &path]);
    let mut model = load("llama");
    load_adapters(&cfg, &mut model).unwrap();
    // Merged: no adapter is left on any projection, the weights hold both updates.
    let mut weights: BTreeMap<String, Tensor> = load("llama").named_tensors().into_iter().collect();
    add_adapter(&mut weights, &a1, 2.0);
    add_adapter(&mut weights, &a2, 4.0 / 2f64.sqrt());
    let mut worst = 0f32;
    for (name, t) in model.named_tensors() {
        worst = worst.max(max_diff(&t, &weights[&name]));
    }
    println!("merged weights vs W + s1·B1·A1 + s2·B2·A2: max diff {worst:.3e}");
    assert!(worst < 1e-6, "max diff {worst}");
    let want = reference_logits(&[(&a1, 2.0), (&a2, 4.0 / 2f64.sqrt())]);
    let d = max_diff(&model.forward(&input_ids(), None).unwrap(), &want);
    assert!(d < 1e-5, "max diff {d}");
}

#[test]
fn adapter_for_another_base_names_the_tensor_and_both_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("head_dim");
    // llama_head_dim: head_dim 32, so q_proj is [128, 64] where the tiny llama has [64, 64].
    make_adapter("llama_head_dim", &lora(4, 8.0, &["q_proj"], false), 3, &dir);
    let path = format!("adapter_name_or_path={}", dir.display());
    for extra in ["create_new_adapter=false", "create_new_adapter=true"] {
        let err = setup("llama", &["finetuning_type=lora", &path, extra]).unwrap_err();
        println!("{err}");
        assert!(
            err.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"),
            "{err}"
        );
        assert!(err.contains("[128, 4]") && err.contains("[64, 4]"), "{err}");
    }
    let cfg = config(&["finetuning_type=lora", &path]);
    let mut model = load("llama");
    let err = load_adapters(&cfg, &mut model).unwrap_err().to_string();
    assert!(
        err.contains("has shape [128, 4], the base model needs [64, 4]"),
        "{err}"
    );
    // A path that is not a folder.
    let missing = format!("adapter_name_or_path={}", tmp.path().join("nope").display());
    let err = setup("llama", &["finetuning_type=lora", &missing]).unwrap_err();
    assert!(err.contains("not a folder"), "{err}");
}

#[test]
fn full_tuning_trains_every_weight_in_f32() {
    let t = setup("qwen2", &["finetuning_type=full"]).unwrap();
    let model = load("qwen2");
    assert_eq!(t.params.len(), model.named_tensors().len());
    assert!(t
        .params
        .iter()
        .all(|p| p.var.as_tensor().dtype() == DType::F32));
}
