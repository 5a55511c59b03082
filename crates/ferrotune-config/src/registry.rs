//! The key status registry: for every known key, whether ferrotune supports it, has not built
//! its feature yet, or accepts it without effect (Python machinery such as data-loader worker
//! counts). Issues that build a feature flip its keys to [`KeyStatus::Supported`] here.

use crate::args::{
    DataArguments, FinetuningArguments, GeneratingArguments, ModelArguments, TrainingArguments,
};

/// What ferrotune does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// The key is read by ferrotune (or will be by the trainer, data and inference issues that
    /// consume it).
    Supported,
    /// The key's feature is not built yet: setting it to a non-default value is an error.
    Unbuilt,
    /// The key tunes Python machinery that has no counterpart in ferrotune (worker processes,
    /// distributed timeouts, caches): accepted, and logged once when set to a non-default value.
    NoEffect,
}

/// A known key with its argument group and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key as written in configs.
    pub key: &'static str,
    /// The argument group, e.g. `model arguments`.
    pub group: &'static str,
    /// What ferrotune does with it.
    pub status: KeyStatus,
}

/// Values of supported keys whose feature is not built yet: `(key, value as written)`.
pub const UNBUILT_VALUES: &[(&str, &str)] = &[("finetuning_type", "oft")];

use KeyStatus::{NoEffect as N, Supported as S, Unbuilt as U};

/// Status of every known key, grouped like the argument structs (a test checks that the table
/// and the structs hold the same keys).
pub const KEY_STATUS: &[(&str, KeyStatus)] = &[
    // model arguments
    ("model_name_or_path", S),
    ("adapter_name_or_path", S),
    ("adapter_folder", U),
    ("cache_dir", S),
    ("use_fast_tokenizer", N),
    ("resize_vocab", U),
    ("split_special_tokens", U),
    ("add_tokens", U),
    ("add_special_tokens", U),
    ("new_special_tokens_config", U),
    ("init_special_tokens", U),
    ("model_revision", S),
    ("low_cpu_mem_usage", N),
    ("rope_scaling", U),
    ("flash_attn", U),
    ("shift_attn", U),
    ("mixture_of_depths", U),
    ("use_unsloth", U),
    ("use_unsloth_gc", U),
    ("enable_liger_kernel", N),
    ("moe_aux_loss_coef", U),
    ("disable_gradient_checkpointing", S),
    ("use_reentrant_gc", N),
    ("upcast_layernorm", S),
    ("upcast_lmhead_output", S),
    ("train_from_scratch", U),
    ("infer_backend", U),
    ("offload_folder", N),
    ("use_kv_cache", S),
    ("use_v1_kernels", N),
    ("infer_dtype", S),
    ("hf_hub_token", S),
    ("ms_hub_token", U),
    ("om_hub_token", U),
    ("print_param_status", U),
    ("trust_remote_code", N),
    ("quantization_method", U),
    ("quantization_bit", U),
    ("quantization_type", U),
    ("double_quantization", U),
    ("quantization_device_map", U),
    ("image_max_pixels", U),
    ("image_min_pixels", U),
    ("image_do_pan_and_scan", U),
    ("crop_to_patches", U),
    ("video_max_pixels", U),
    ("video_min_pixels", U),
    ("video_fps", U),
    ("video_maxlen", U),
    ("use_audio_in_video", U),
    ("audio_sampling_rate", U),
    ("export_dir", S),
    ("export_size", S),
    ("export_device", N),
    ("export_quantization_bit", U),
    ("export_quantization_dataset", U),
    ("export_quantization_nsamples", U),
    ("export_quantization_maxlen", U),
    ("export_legacy_format", U),
    ("export_hub_model_id", U),
    ("export_format", S),
    ("export_quantization", S),
    ("vllm_maxlen", U),
    ("vllm_gpu_util", U),
    ("vllm_enforce_eager", U),
    ("vllm_max_lora_rank", U),
    ("vllm_config", U),
    ("sglang_maxlen", U),
    ("sglang_mem_fraction", U),
    ("sglang_tp_size", U),
    ("sglang_config", U),
    ("sglang_lora_backend", U),
    ("use_kt", U),
    ("kt_weight_path", U),
    ("kt_expert_checkpoint_path", U),
    ("kt_use_lora_experts", U),
    ("kt_lora_expert_num", U),
    ("kt_lora_expert_intermediate_size", U),
    // data arguments
    ("template", S),
    ("dataset", S),
    ("eval_dataset", S),
    ("dataset_dir", S),
    ("media_dir", U),
    ("cutoff_len", S),
    ("train_on_prompt", S),
    ("mask_history", S),
    ("streaming", S),
    ("buffer_size", S),
    ("mix_strategy", S),
    ("interleave_probs", S),
    ("overwrite_cache", N),
    ("preprocessing_batch_size", N),
    ("preprocessing_num_workers", N),
    ("max_samples", S),
    ("eval_num_beams", S),
    ("ignore_pad_token_for_loss", S),
    ("val_size", S),
    ("eval_on_each_dataset", S),
    ("packing", S),
    ("neat_packing", S),
    ("tool_format", S),
    ("default_system", S),
    ("enable_thinking", S),
    ("preserve_thinking", S),
    ("tokenized_path", S),
    ("data_shared_file_system", N),
    // finetuning arguments
    ("freeze_trainable_layers", S),
    ("freeze_trainable_modules", S),
    ("freeze_extra_modules", S),
    ("additional_target", S),
    ("lora_alpha", S),
    ("lora_dropout", S),
    ("lora_rank", S),
    ("lora_target", S),
    ("loraplus_lr_ratio", S),
    ("loraplus_lr_embedding", S),
    ("use_rslora", S),
    ("use_dora", S),
    ("pissa_init", S),
    ("pissa_iter", S),
    ("pissa_convert", S),
    ("create_new_adapter", S),
    ("module_dropout", U),
    ("oft_rank", U),
    ("oft_block_size", U),
    ("oft_target", U),
    ("pref_beta", S),
    ("pref_ftx", S),
    ("pref_bco_weight", U),
    ("pref_loss", S),
    ("dpo_label_smoothing", S),
    ("kto_chosen_weight", S),
    ("kto_rejected_weight", S),
    ("simpo_gamma", S),
    ("ppo_buffer_size", S),
    ("ppo_epochs", S),
    ("ppo_score_norm", S),
    ("ppo_target", S),
    ("ppo_whiten_rewards", S),
    ("ref_model", S),
    ("ref_model_adapters", S),
    ("ref_model_quantization_bit", U),
    ("reward_model", S),
    ("reward_model_adapters", S),
    ("reward_model_quantization_bit", U),
    ("reward_model_type", S),
    ("ld_alpha", U),
    ("use_galore", U),
    ("galore_target", U),
    ("galore_rank", U),
    ("galore_update_interval", U),
    ("galore_scale", U),
    ("galore_proj_type", U),
    ("galore_layerwise", U),
    ("use_apollo", U),
    ("apollo_target", U),
    ("apollo_rank", U),
    ("apollo_update_interval", U),
    ("apollo_scale", U),
    ("apollo_proj", U),
    ("apollo_proj_type", U),
    ("apollo_scale_type", U),
    ("apollo_layerwise", U),
    ("apollo_scale_front", U),
    ("use_badam", U),
    ("badam_mode", U),
    ("badam_start_block", U),
    ("badam_switch_mode", U),
    ("badam_switch_interval", U),
    ("badam_update_ratio", U),
    ("badam_mask_mode", U),
    ("badam_verbose", U),
    ("use_swanlab", U),
    ("swanlab_project", U),
    ("swanlab_workspace", U),
    ("swanlab_run_name", U),
    ("swanlab_mode", U),
    ("swanlab_api_key", U),
    ("swanlab_logdir", U),
    ("swanlab_lark_webhook_url", U),
    ("swanlab_lark_secret", U),
    ("pure_bf16", S),
    ("stage", S),
    ("finetuning_type", S),
    ("use_llama_pro", U),
    ("use_adam_mini", U),
    ("use_mca", U),
    ("use_hyper_parallel", U),
    ("hyper_parallel_args", U),
    ("use_muon", U),
    ("use_dft_loss", U),
    ("use_asft_loss", U),
    ("asft_alpha", U),
    ("use_eaft_loss", U),
    ("eaft_alpha", U),
    ("freeze_vision_tower", U),
    ("freeze_multi_modal_projector", U),
    ("freeze_language_model", U),
    ("compute_accuracy", S),
    ("disable_shuffling", S),
    ("early_stopping_steps", U),
    ("plot_loss", S),
    ("include_effective_tokens_per_second", S),
    // training arguments
    ("output_dir", S),
    ("overwrite_output_dir", S),
    ("do_train", S),
    ("do_eval", S),
    ("do_predict", S),
    ("eval_strategy", S),
    ("prediction_loss_only", S),
    ("per_device_train_batch_size", S),
    ("per_device_eval_batch_size", S),
    ("per_gpu_train_batch_size", U),
    ("per_gpu_eval_batch_size", U),
    ("gradient_accumulation_steps", S),
    ("eval_accumulation_steps", N),
    ("eval_delay", S),
    ("torch_empty_cache_steps", N),
    ("learning_rate", S),
    ("weight_decay", S),
    ("adam_beta1", S),
    ("adam_beta2", S),
    ("adam_epsilon", S),
    ("max_grad_norm", S),
    ("num_train_epochs", S),
    ("max_steps", S),
    ("lr_scheduler_type", S),
    ("lr_scheduler_kwargs", S),
    ("warmup_ratio", S),
    ("warmup_steps", S),
    ("log_level", N),
    ("log_level_replica", N),
    ("log_on_each_node", N),
    ("logging_dir", N),
    ("logging_strategy", S),
    ("logging_first_step", S),
    ("logging_steps", S),
    ("logging_nan_inf_filter", S),
    ("save_strategy", S),
    ("save_steps", S),
    ("save_total_limit", S),
    ("save_safetensors", U),
    ("save_on_each_node", N),
    ("save_only_model", S),
    ("restore_callback_states_from_checkpoint", U),
    ("no_cuda", N),
    ("use_cpu", S),
    ("use_mps_device", N),
    ("seed", S),
    ("data_seed", S),
    ("jit_mode_eval", U),
    ("bf16", S),
    ("fp16", S),
    ("fp16_opt_level", N),
    ("half_precision_backend", N),
    ("bf16_full_eval", U),
    ("fp16_full_eval", U),
    ("tf32", N),
    ("local_rank", N),
    ("ddp_backend", N),
    ("tpu_num_cores", N),
    ("tpu_metrics_debug", N),
    ("debug", U),
    ("dataloader_drop_last", S),
    ("eval_steps", S),
    ("dataloader_num_workers", N),
    ("dataloader_prefetch_factor", N),
    ("past_index", U),
    ("run_name", N),
    ("disable_tqdm", S),
    ("remove_unused_columns", N),
    ("label_names", N),
    ("load_best_model_at_end", U),
    ("metric_for_best_model", U),
    ("greater_is_better", U),
    ("ignore_data_skip", S),
    ("fsdp", U),
    ("fsdp_min_num_params", U),
    ("fsdp_config", U),
    ("fsdp_transformer_layer_cls_to_wrap", U),
    ("accelerator_config", N),
    ("parallelism_config", U),
    ("deepspeed", U),
    ("label_smoothing_factor", U),
    ("optim", S),
    ("optim_args", U),
    ("adafactor", U),
    ("group_by_length", U),
    ("length_column_name", N),
    ("report_to", U),
    ("project", N),
    ("trackio_space_id", N),
    ("trackio_bucket_id", N),
    ("trackio_static_space_id", N),
    ("ddp_find_unused_parameters", N),
    ("ddp_bucket_cap_mb", N),
    ("ddp_broadcast_buffers", N),
    ("ddp_static_graph", N),
    ("dataloader_pin_memory", N),
    ("dataloader_persistent_workers", N),
    ("skip_memory_metrics", N),
    ("use_legacy_prediction_loop", N),
    ("push_to_hub", U),
    ("resume_from_checkpoint", S),
    ("hub_model_id", U),
    ("hub_strategy", U),
    ("hub_token", U),
    ("hub_private_repo", U),
    ("hub_always_push", U),
    ("hub_revision", U),
    ("gradient_checkpointing", S),
    ("gradient_checkpointing_kwargs", N),
    ("include_inputs_for_metrics", N),
    ("include_for_metrics", N),
    ("eval_do_concat_batches", N),
    ("fp16_backend", N),
    ("push_to_hub_model_id", U),
    ("push_to_hub_organization", U),
    ("push_to_hub_token", U),
    ("mp_parameters", N),
    ("auto_find_batch_size", U),
    ("full_determinism", N),
    ("torchdynamo", N),
    ("ray_scope", N),
    ("ddp_timeout", N),
    ("torch_compile", N),
    ("torch_compile_backend", N),
    ("torch_compile_mode", N),
    ("include_tokens_per_second", S),
    ("include_num_input_tokens_seen", N),
    ("neftune_noise_alpha", U),
    ("optim_target_modules", U),
    ("batch_eval_metrics", N),
    ("eval_on_start", S),
    ("use_liger_kernel", N),
    ("liger_kernel_config", N),
    ("eval_use_gather_object", N),
    ("average_tokens_across_devices", N),
    ("use_cache", N),
    ("enable_jit_checkpoint", U),
    ("train_sampling_strategy", U),
    ("sortish_sampler", U),
    ("predict_with_generate", S),
    ("generation_max_length", S),
    ("generation_num_beams", S),
    ("generation_config", U),
    ("ray_num_workers", U),
    ("ray_init_kwargs", U),
    ("master_addr", N),
    ("master_port", N),
    ("enable_torch_profiler", U),
    ("profiler_output_dir", U),
    ("profiler_wait_steps", U),
    ("profiler_warmup_steps", U),
    ("profiler_active_steps", U),
    ("profiler_repeat", U),
    ("profiler_record_shapes", U),
    ("profiler_profile_memory", U),
    ("profiler_with_stack", U),
    ("profile_modules", U),
    ("fp8", U),
    ("fp8_backend", U),
    ("fp8_enable_fsdp_float8_all_gather", U),
    // generating arguments
    ("do_sample", S),
    ("temperature", S),
    ("top_p", S),
    ("top_k", S),
    ("num_beams", S),
    ("max_length", S),
    ("max_new_tokens", S),
    ("repetition_penalty", S),
    ("length_penalty", S),
    ("skip_special_tokens", S),
];

/// Every argument group as `(group name, keys)`.
pub const GROUPS: [(&str, &[&str]); 5] = [
    (ModelArguments::GROUP, ModelArguments::KEYS),
    (DataArguments::GROUP, DataArguments::KEYS),
    (FinetuningArguments::GROUP, FinetuningArguments::KEYS),
    (TrainingArguments::GROUP, TrainingArguments::KEYS),
    (GeneratingArguments::GROUP, GeneratingArguments::KEYS),
];

/// Looks up a known key; `None` for unknown keys.
pub fn lookup(key: &str) -> Option<KeyInfo> {
    let (key, status) = KEY_STATUS.iter().find(|(k, _)| *k == key).copied()?;
    let group = GROUPS
        .iter()
        .find(|(_, keys)| keys.contains(&key))
        .map_or("unknown group", |(group, _)| group);
    Some(KeyInfo { key, group, status })
}

/// Every known key, in table order.
pub fn known_keys() -> impl Iterator<Item = &'static str> {
    KEY_STATUS.iter().map(|(k, _)| *k)
}

/// The known key closest to `key` by Jaro-Winkler similarity, when it is close enough (>= 0.85)
/// to be a likely typo.
pub fn suggest(key: &str) -> Option<&'static str> {
    known_keys()
        .map(|known| (known, strsim::jaro_winkler(key, known)))
        .filter(|(_, score)| *score >= 0.85)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(known, _)| known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn table_and_structs_hold_the_same_keys() {
        let table: Vec<&str> = known_keys().collect();
        let unique: BTreeSet<&str> = table.iter().copied().collect();
        assert_eq!(unique.len(), table.len(), "duplicate keys in KEY_STATUS");
        let structs: Vec<&str> = GROUPS
            .iter()
            .flat_map(|(_, keys)| keys.iter().copied())
            .collect();
        let struct_set: BTreeSet<&str> = structs.iter().copied().collect();
        assert_eq!(struct_set.len(), structs.len(), "a key is in two groups");
        let missing: Vec<_> = struct_set.difference(&unique).collect();
        let extra: Vec<_> = unique.difference(&struct_set).collect();
        assert!(missing.is_empty(), "keys without a status: {missing:?}");
        assert!(
            extra.is_empty(),
            "statuses of keys no struct has: {extra:?}"
        );
        for (key, value) in UNBUILT_VALUES {
            assert_eq!(
                lookup(key).map(|i| i.status),
                Some(KeyStatus::Supported),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn statuses_of_representative_keys() {
        let status = |k| lookup(k).map(|i| (i.group, i.status));
        assert_eq!(status("lora_rank"), Some(("finetuning arguments", S)));
        assert_eq!(status("quantization_bit"), Some(("model arguments", U)));
        assert_eq!(status("deepspeed"), Some(("training arguments", U)));
        assert_eq!(
            status("preprocessing_num_workers"),
            Some(("data arguments", N))
        );
        assert_eq!(status("ddp_timeout"), Some(("training arguments", N)));
        assert_eq!(status("temperature"), Some(("generating arguments", S)));
        assert_eq!(status("lora_rnak"), None);
    }

    #[test]
    fn suggestions_find_typos_only() {
        assert_eq!(suggest("lora_rnak"), Some("lora_rank"));
        assert_eq!(suggest("learning_rat"), Some("learning_rate"));
        assert_eq!(suggest("evaluation_strategy"), Some("eval_strategy"));
        assert_eq!(suggest("num_train_epoch"), Some("num_train_epochs"));
        assert_eq!(suggest("zzzz"), None);
    }
}
