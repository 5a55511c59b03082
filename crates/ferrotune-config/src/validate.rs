//! Cross-key checks: LLaMA-Factory v0.9.5's `__post_init__` checks (`model_args.py`,
//! `data_args.py`, `finetuning_args.py`), its `parser.py` `get_train_args` and
//! `_verify_model_args` checks, the Hugging Face `TrainingArguments.__post_init__` checks of
//! transformers 4.57.1, and a few range checks of ours (marked). Data-time checks (such as
//! ranking data for `rm`/`dpo`) belong to the data pipeline.

use crate::args::{FinetuningType, IntervalStrategy, PrefLoss, SaveStrategy, SchedulerType, Stage};
use crate::{Config, ConfigError};

/// Runs every check in order and returns the first violation.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the keys in conflict and how to fix them.
pub(crate) fn validate(cfg: &Config) -> Result<(), ConfigError> {
    let fail = |keys: &[&'static str], message: String| {
        Err(ConfigError::Invalid {
            source_path: cfg.source.clone(),
            keys: keys.to_vec(),
            message,
        })
    };
    let (m, d, f, t) = (&cfg.model, &cfg.data, &cfg.finetuning, &cfg.training);
    let lora = f.finetuning_type == FinetuningType::Lora;

    // model_args.py
    if m.model_name_or_path.is_none() {
        return fail(
            &["model_name_or_path"],
            "`model_name_or_path` is required: set it to a model folder, a GGUF file or a hub id"
                .into(),
        );
    }
    if m.export_quantization_bit.is_some() && m.export_quantization_dataset.is_none() {
        return fail(
            &["export_quantization_bit", "export_quantization_dataset"],
            "`export_quantization_bit` needs `export_quantization_dataset` for calibration".into(),
        );
    }
    if m.image_max_pixels < m.image_min_pixels {
        return fail(
            &["image_max_pixels", "image_min_pixels"],
            format!(
                "`image_max_pixels` ({}) cannot be smaller than `image_min_pixels` ({})",
                m.image_max_pixels, m.image_min_pixels
            ),
        );
    }
    if m.video_max_pixels < m.video_min_pixels {
        return fail(
            &["video_max_pixels", "video_min_pixels"],
            format!(
                "`video_max_pixels` ({}) cannot be smaller than `video_min_pixels` ({})",
                m.video_max_pixels, m.video_min_pixels
            ),
        );
    }

    // data_args.py
    let has_val_split = d.val_size > 1e-6;
    if has_val_split && d.dataset.is_empty() {
        return fail(
            &["val_size", "dataset"],
            format!("`val_size` ({}) needs `dataset` to split from", d.val_size),
        );
    }
    if has_val_split && !d.eval_dataset.is_empty() {
        return fail(
            &["val_size", "eval_dataset"],
            "`val_size` and `eval_dataset` exclude each other: use one of them".into(),
        );
    }
    // Ours: the help text's range.
    if d.val_size < 0.0 || (d.val_size >= 1.0 && d.val_size.fract() != 0.0) {
        return fail(
            &["val_size"],
            format!(
                "`val_size` ({}) must be a fraction in [0,1) or an integer number of examples",
                d.val_size
            ),
        );
    }
    if !d.interleave_probs.is_empty() {
        if d.mix_strategy == crate::args::MixStrategy::Concat {
            return fail(
                &["interleave_probs", "mix_strategy"],
                "`interleave_probs` is only valid with an interleaving `mix_strategy` \
                 (interleave_under, interleave_over or interleave_once), not `concat`"
                    .into(),
            );
        }
        for (key, names) in [("dataset", &d.dataset), ("eval_dataset", &d.eval_dataset)] {
            if !names.is_empty() && names.len() != d.interleave_probs.len() {
                return fail(
                    &["interleave_probs", key],
                    format!(
                        "`interleave_probs` has {} values but `{key}` has {} datasets",
                        d.interleave_probs.len(),
                        names.len()
                    ),
                );
            }
        }
    }
    if d.streaming && has_val_split && d.val_size < 1.0 {
        return fail(
            &["streaming", "val_size"],
            format!(
                "`streaming` needs an integer `val_size` (number of examples), got {}",
                d.val_size
            ),
        );
    }
    if d.streaming && d.max_samples.is_some() {
        return fail(
            &["streaming", "max_samples"],
            "`max_samples` is incompatible with `streaming`".into(),
        );
    }
    if d.mask_history && d.train_on_prompt {
        return fail(
            &["mask_history", "train_on_prompt"],
            "`mask_history` and `train_on_prompt` exclude each other".into(),
        );
    }

    // finetuning_args.py
    for (key, bits) in [
        ("ref_model_quantization_bit", f.ref_model_quantization_bit),
        (
            "reward_model_quantization_bit",
            f.reward_model_quantization_bit,
        ),
    ] {
        if let Some(bits) = bits.filter(|b| *b != 4 && *b != 8) {
            return fail(&[key], format!("`{key}` must be 4 or 8, got {bits}"));
        }
    }
    if f.stage == Stage::Ppo && f.reward_model.is_none() {
        return fail(
            &["stage", "reward_model"],
            "`stage: ppo` needs `reward_model`".into(),
        );
    }
    if f.stage == Stage::Ppo && f.reward_model_type.as_str() == "lora" && !lora {
        return fail(
            &["reward_model_type", "finetuning_type"],
            format!(
                "`reward_model_type: lora` needs `finetuning_type: lora` in PPO, got `{}`",
                f.finetuning_type
            ),
        );
    }
    if f.stage == Stage::Dpo && f.pref_loss != PrefLoss::Sigmoid && f.dpo_label_smoothing > 1e-6 {
        return fail(
            &["dpo_label_smoothing", "pref_loss"],
            format!(
                "`dpo_label_smoothing` is only valid with `pref_loss: sigmoid`, got `{}`",
                f.pref_loss
            ),
        );
    }
    if f.use_llama_pro && f.finetuning_type == FinetuningType::Full {
        return fail(
            &["use_llama_pro", "finetuning_type"],
            "`use_llama_pro` is only valid with `finetuning_type: freeze` or `lora`".into(),
        );
    }
    if lora && (f.use_galore || f.use_apollo || f.use_badam) {
        return fail(
            &["finetuning_type", "use_galore", "use_apollo", "use_badam"],
            "`finetuning_type: lora` cannot be combined with `use_galore`, `use_apollo` or `use_badam`"
                .into(),
        );
    }
    if u8::from(f.use_galore) + u8::from(f.use_apollo) + u8::from(f.use_badam) > 1 {
        return fail(
            &["use_galore", "use_apollo", "use_badam"],
            "at most one of `use_galore`, `use_apollo` and `use_badam` can be true".into(),
        );
    }
    let use_ref_model =
        f.stage == Stage::Dpo && !matches!(f.pref_loss, PrefLoss::Orpo | PrefLoss::Simpo);
    if f.pissa_init && (matches!(f.stage, Stage::Ppo | Stage::Kto) || use_ref_model) {
        return fail(
            &["pissa_init", "stage"],
            format!(
                "`pissa_init` cannot be used with `stage: {}` and `pref_loss: {}`",
                f.stage, f.pref_loss
            ),
        );
    }
    if !lora {
        let lora_only = [
            ("loraplus_lr_ratio", f.loraplus_lr_ratio.is_some()),
            ("use_rslora", f.use_rslora),
            ("use_dora", f.use_dora),
            ("pissa_init", f.pissa_init),
        ];
        if let Some((key, _)) = lora_only.iter().find(|(_, set)| *set) {
            return fail(
                &[key, "finetuning_type"],
                format!(
                    "`{key}` is only valid with `finetuning_type: lora`, got `{}`",
                    f.finetuning_type
                ),
            );
        }
    }
    // Ours: a zero rank has no adapter.
    if lora && f.lora_rank == 0 {
        return fail(&["lora_rank"], "`lora_rank` must be >= 1".into());
    }
    // Ours: dropout is a probability.
    if !(0.0..1.0).contains(&f.lora_dropout) {
        return fail(
            &["lora_dropout"],
            format!("`lora_dropout` must be in [0,1), got {}", f.lora_dropout),
        );
    }

    // parser.py get_train_args
    if f.stage != Stage::Sft {
        let sft_only = [
            ("predict_with_generate", t.predict_with_generate),
            ("neat_packing", d.neat_packing),
            ("train_on_prompt", d.train_on_prompt),
            ("mask_history", d.mask_history),
        ];
        if let Some((key, _)) = sft_only.iter().find(|(_, set)| *set) {
            return fail(
                &[key, "stage"],
                format!("`{key}` is only valid with `stage: sft`, got `{}`", f.stage),
            );
        }
    }
    if f.stage == Stage::Sft && t.do_predict && !t.predict_with_generate {
        return fail(
            &["do_predict", "predict_with_generate"],
            "`do_predict` needs `predict_with_generate: true` to save predictions".into(),
        );
    }
    if matches!(f.stage, Stage::Rm | Stage::Ppo) && t.load_best_model_at_end {
        return fail(
            &["load_best_model_at_end", "stage"],
            format!(
                "`load_best_model_at_end` is not supported with `stage: {}`",
                f.stage
            ),
        );
    }
    if f.stage == Stage::Ppo && !t.do_train {
        return fail(
            &["stage", "do_train"],
            "`stage: ppo` only trains (`do_train: true`); evaluate with `stage: sft`".into(),
        );
    }
    if f.stage == Stage::Ppo && m.shift_attn {
        return fail(
            &["stage", "shift_attn"],
            "`shift_attn` is incompatible with `stage: ppo`".into(),
        );
    }
    if t.max_steps <= 0 && d.streaming {
        return fail(
            &["max_steps", "streaming"],
            "`streaming` needs `max_steps` > 0 (the dataset length is unknown)".into(),
        );
    }
    if t.do_train && d.dataset.is_empty() {
        return fail(
            &["do_train", "dataset"],
            "`do_train` needs `dataset`".into(),
        );
    }
    if (t.do_eval || t.do_predict || t.predict_with_generate)
        && d.eval_dataset.is_empty()
        && d.val_size < 1e-6
    {
        return fail(
            &["do_eval", "do_predict", "eval_dataset", "val_size"],
            "`do_eval`, `do_predict` and `predict_with_generate` need `eval_dataset` or `val_size` > 0"
                .into(),
        );
    }
    if t.predict_with_generate && f.compute_accuracy {
        return fail(
            &["predict_with_generate", "compute_accuracy"],
            "`predict_with_generate` and `compute_accuracy` exclude each other".into(),
        );
    }
    if t.do_train && m.quantization_device_map.as_deref() == Some("auto") {
        return fail(
            &["quantization_device_map", "do_train"],
            "`quantization_device_map: auto` cannot be used in training".into(),
        );
    }
    if t.fp8 && m.quantization_bit.is_some() {
        return fail(
            &["fp8", "quantization_bit"],
            "`fp8` and `quantization_bit` exclude each other".into(),
        );
    }

    // parser.py _verify_model_args
    if !m.adapter_name_or_path.is_empty() && !lora {
        return fail(
            &["adapter_name_or_path", "finetuning_type"],
            format!(
                "`adapter_name_or_path` needs `finetuning_type: lora`, got `{}`",
                f.finetuning_type
            ),
        );
    }
    if m.quantization_bit.is_some() {
        let quantized_conflicts = [
            (
                "finetuning_type",
                !matches!(
                    f.finetuning_type,
                    FinetuningType::Lora | FinetuningType::Oft
                ),
                "quantization needs `finetuning_type: lora` or `oft`",
            ),
            (
                "pissa_init",
                f.pissa_init,
                "initialize PiSSA before quantizing",
            ),
            (
                "resize_vocab",
                m.resize_vocab,
                "a quantized model cannot resize its embeddings",
            ),
            (
                "create_new_adapter",
                !m.adapter_name_or_path.is_empty() && f.create_new_adapter,
                "cannot create a new adapter on a quantized model",
            ),
            (
                "adapter_name_or_path",
                m.adapter_name_or_path.len() > 1,
                "a quantized model takes a single adapter: merge them first",
            ),
        ];
        if let Some((key, _, why)) = quantized_conflicts.iter().find(|(_, bad, _)| *bad) {
            return fail(
                &["quantization_bit", key],
                format!("`quantization_bit` conflicts with `{key}`: {why}"),
            );
        }
    }

    // transformers training_args.py __post_init__
    if t.fp16 && t.bf16 {
        return fail(
            &["fp16", "bf16"],
            "`fp16` and `bf16` cannot both be true: set one of them to false".into(),
        );
    }
    if t.fp16_full_eval && t.bf16_full_eval {
        return fail(
            &["fp16_full_eval", "bf16_full_eval"],
            "`fp16_full_eval` and `bf16_full_eval` cannot both be true".into(),
        );
    }
    // Ours: pure bf16 weights with fp16 mixed precision is contradictory.
    if f.pure_bf16 && t.fp16 {
        return fail(
            &["pure_bf16", "fp16"],
            "`pure_bf16` trains in bf16 and cannot be combined with `fp16`".into(),
        );
    }
    if t.logging_strategy == IntervalStrategy::Steps && t.logging_steps == 0.0 {
        return fail(
            &["logging_steps", "logging_strategy"],
            "`logging_strategy: steps` needs `logging_steps` > 0".into(),
        );
    }
    let step_keys = [
        (
            "logging_steps",
            t.logging_strategy == IntervalStrategy::Steps,
            Some(t.logging_steps),
        ),
        (
            "eval_steps",
            t.eval_strategy == IntervalStrategy::Steps,
            t.eval_steps,
        ),
        (
            "save_steps",
            t.save_strategy == SaveStrategy::Steps,
            Some(t.save_steps),
        ),
    ];
    for (key, active, steps) in step_keys {
        let Some(steps) = steps.filter(|_| active) else {
            continue;
        };
        if steps <= 0.0 || (steps > 1.0 && steps.fract() != 0.0) {
            return fail(
                &[key],
                format!("`{key}` must be > 0 and an integer when above 1, got {steps}"),
            );
        }
    }
    if t.load_best_model_at_end && t.save_strategy != SaveStrategy::Best {
        if t.eval_strategy.as_str() != t.save_strategy.as_str() {
            return fail(
                &["load_best_model_at_end", "eval_strategy", "save_strategy"],
                format!(
                    "`load_best_model_at_end` needs `save_strategy` equal to `eval_strategy`, got `{}` and `{}`",
                    t.save_strategy, t.eval_strategy
                ),
            );
        }
        if let (IntervalStrategy::Steps, Some(eval_steps)) = (t.eval_strategy, t.eval_steps) {
            // Compare in millionths as transformers does, to absorb float error of fractions.
            let (save, eval) = (
                (t.save_steps * 1e6).round() as i64,
                (eval_steps * 1e6).round() as i64,
            );
            let mixed = (t.save_steps < 1.0) != (eval_steps < 1.0);
            if mixed || eval == 0 || save % eval != 0 {
                return fail(
                    &["load_best_model_at_end", "save_steps", "eval_steps"],
                    format!(
                        "`load_best_model_at_end` needs `save_steps` ({}) to be a multiple of `eval_steps` ({eval_steps})",
                        t.save_steps
                    ),
                );
            }
        }
    }
    if !(0.0..=1.0).contains(&t.warmup_ratio) {
        return fail(
            &["warmup_ratio"],
            format!("`warmup_ratio` must lie in [0,1], got {}", t.warmup_ratio),
        );
    }
    if t.lr_scheduler_type == SchedulerType::ReduceLrOnPlateau
        && t.eval_strategy == IntervalStrategy::No
    {
        return fail(
            &["lr_scheduler_type", "eval_strategy"],
            "`lr_scheduler_type: reduce_lr_on_plateau` needs an `eval_strategy` other than `no`"
                .into(),
        );
    }
    if t.dataloader_num_workers == 0 && t.dataloader_prefetch_factor.is_some() {
        return fail(
            &["dataloader_prefetch_factor", "dataloader_num_workers"],
            "`dataloader_prefetch_factor` needs `dataloader_num_workers` > 0".into(),
        );
    }
    // Ours: empty batches and windows.
    for (key, value) in [
        ("per_device_train_batch_size", t.per_device_train_batch_size),
        ("per_device_eval_batch_size", t.per_device_eval_batch_size),
        ("gradient_accumulation_steps", t.gradient_accumulation_steps),
        ("cutoff_len", d.cutoff_len),
    ] {
        if value == 0 {
            return fail(&[key], format!("`{key}` must be >= 1"));
        }
    }
    Ok(())
}
