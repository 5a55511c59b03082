//! Training arguments: the keys of Hugging Face `Seq2SeqTrainingArguments` that LLaMA-Factory
//! accepts in YAML, plus LLaMA-Factory's own `RayArguments`, `ProfilerArguments` and
//! `Fp8Arguments` (`hparams/training_args.py`). LLaMA-Factory v0.9.5 accepts transformers
//! 4.55 to 5.6; the key set here is the union of transformers 4.57.1 and 5.6.0
//! `training_args.py` + `training_args_seq2seq.py`, with 4.57.1 defaults where they differ.
//! Help texts paraphrase the `help` strings of those files.

use serde_json::Value;

arg_enum! {
    /// Learning-rate schedule (transformers `trainer_utils.SchedulerType`).
    pub enum SchedulerType {
        /// Linear decay to 0 after warmup.
        Linear = "linear",
        /// Cosine decay to 0 after warmup.
        Cosine = "cosine",
        /// Cosine with hard restarts.
        CosineWithRestarts = "cosine_with_restarts",
        /// Polynomial decay.
        Polynomial = "polynomial",
        /// Constant, no warmup.
        Constant = "constant",
        /// Constant after warmup.
        ConstantWithWarmup = "constant_with_warmup",
        /// Inverse square root decay.
        InverseSqrt = "inverse_sqrt",
        /// Reduce on plateau of the evaluation metric.
        ReduceLrOnPlateau = "reduce_lr_on_plateau",
        /// Cosine decay to a minimum learning rate.
        CosineWithMinLr = "cosine_with_min_lr",
        /// Cosine with a warmup-relative minimum learning rate.
        CosineWarmupWithMinLr = "cosine_warmup_with_min_lr",
        /// Warmup, stable, decay.
        WarmupStableDecay = "warmup_stable_decay",
    }
}

arg_enum! {
    /// When to log or evaluate (transformers `IntervalStrategy`).
    pub enum IntervalStrategy {
        /// Never.
        No = "no",
        /// Every `*_steps` optimizer steps.
        Steps = "steps",
        /// At the end of every epoch.
        Epoch = "epoch",
    }
}

arg_enum! {
    /// When to save checkpoints (transformers `SaveStrategy`).
    pub enum SaveStrategy {
        /// Never.
        No = "no",
        /// Every `save_steps` optimizer steps.
        Steps = "steps",
        /// At the end of every epoch.
        Epoch = "epoch",
        /// Whenever `metric_for_best_model` improves.
        Best = "best",
    }
}

arg_enum! {
    /// What to push to the hub and when (transformers `HubStrategy`).
    pub enum HubStrategy {
        /// At the end of training.
        End = "end",
        /// At every save.
        EverySave = "every_save",
        /// At every save, plus the last checkpoint in `last-checkpoint`.
        Checkpoint = "checkpoint",
        /// At every save, with all checkpoints.
        AllCheckpoints = "all_checkpoints",
    }
}

arg_group! {
    /// Arguments pertaining to the trainer.
    pub struct TrainingArguments ("training arguments") {
        /// Folder for checkpoints, adapters, logs and predictions. Default: `trainer_output`.
        output_dir: String = "trainer_output".into(),
        /// Overwrite the content of `output_dir` instead of resuming from its last checkpoint.
        /// Default: false.
        overwrite_output_dir: bool = false,
        /// Run training. Default: false.
        do_train: bool = false,
        /// Run evaluation on the validation set. Default: false.
        do_eval: bool = false,
        /// Run predictions on the test set. Default: false.
        do_predict: bool = false,
        /// When to evaluate: `no`, `steps` or `epoch`. Default: `no`.
        eval_strategy: IntervalStrategy = IntervalStrategy::No,
        /// Return only the loss when evaluating and predicting. Default: false.
        prediction_loss_only: bool = false,
        /// Training batch size per device. Default: 8.
        per_device_train_batch_size: usize = 8,
        /// Evaluation batch size per device. Default: 8.
        per_device_eval_batch_size: usize = 8,
        /// Deprecated alias of `per_device_train_batch_size`. Default: none.
        per_gpu_train_batch_size: Option<usize> = None,
        /// Deprecated alias of `per_device_eval_batch_size`. Default: none.
        per_gpu_eval_batch_size: Option<usize> = None,
        /// Micro-batches accumulated per optimizer step. Default: 1.
        gradient_accumulation_steps: usize = 1,
        /// Prediction steps accumulated before moving outputs to the host. Default: none.
        eval_accumulation_steps: Option<usize> = None,
        /// Epochs or steps to wait before the first evaluation. Default: 0.
        eval_delay: f64 = 0.0,
        /// Steps between emptying the accelerator cache. Default: none.
        torch_empty_cache_steps: Option<u64> = None,
        /// Peak learning rate. Default: 5e-5.
        learning_rate: f64 = 5e-5,
        /// AdamW decoupled weight decay. Default: 0.0.
        weight_decay: f64 = 0.0,
        /// Adam beta1 (first-moment decay). Default: 0.9.
        adam_beta1: f64 = 0.9,
        /// Adam beta2 (second-moment decay). Default: 0.999.
        adam_beta2: f64 = 0.999,
        /// Adam epsilon. Default: 1e-8.
        adam_epsilon: f64 = 1e-8,
        /// Gradient clipping max norm; 0 disables clipping. Default: 1.0.
        max_grad_norm: f64 = 1.0,
        /// Training epochs; fractional epochs stop mid-epoch. Default: 3.0.
        num_train_epochs: f64 = 3.0,
        /// Total optimizer steps when > 0; overrides `num_train_epochs`. Default: -1.
        max_steps: i64 = -1,
        /// Learning-rate schedule (see [`SchedulerType`]). Default: `linear`.
        lr_scheduler_type: SchedulerType = SchedulerType::Linear,
        /// Extra scheduler parameters, e.g. `{min_lr: 1e-6}` or `{num_cycles: 1}`.
        /// Default: none.
        lr_scheduler_kwargs: Option<Value> = None,
        /// Linear warmup over this fraction of total steps, in `[0,1]`. Default: 0.0.
        warmup_ratio: f64 = 0.0,
        /// Linear warmup steps; takes precedence over `warmup_ratio` when > 0. Default: 0.
        warmup_steps: u64 = 0,
        /// Log level of the main process (`passive` keeps the library's). Default: `passive`.
        log_level: String = "passive".into(),
        /// Log level of replica processes. Default: `warning`.
        log_level_replica: String = "warning".into(),
        /// Log once per node in multi-node training. Default: true.
        log_on_each_node: bool = true,
        /// TensorBoard log folder. Default: none.
        logging_dir: Option<String> = None,
        /// When to log: `no`, `steps` or `epoch`. Default: `steps`.
        logging_strategy: IntervalStrategy = IntervalStrategy::Steps,
        /// Log the first optimizer step. Default: false.
        logging_first_step: bool = false,
        /// Log every this many steps; below 1, a fraction of total steps. Default: 500.
        logging_steps: f64 = 500.0,
        /// Leave NaN and Inf losses out of the logged averages. Default: true.
        logging_nan_inf_filter: bool = true,
        /// When to save checkpoints: `no`, `steps`, `epoch` or `best`. Default: `steps`.
        save_strategy: SaveStrategy = SaveStrategy::Steps,
        /// Save every this many steps; below 1, a fraction of total steps. Default: 500.
        save_steps: f64 = 500.0,
        /// Keep at most this many checkpoints, deleting the oldest. Default: none (keep all).
        save_total_limit: Option<u32> = None,
        /// Save weights as safetensors. Default: true.
        save_safetensors: bool = true,
        /// Save on every node in multi-node training. Default: false.
        save_on_each_node: bool = false,
        /// Save only the model in checkpoints (no optimizer/scheduler/RNG state; no resume).
        /// Default: false.
        save_only_model: bool = false,
        /// Restore callback states from the checkpoint. Default: false.
        restore_callback_states_from_checkpoint: bool = false,
        /// Deprecated: do not use CUDA. Default: false.
        no_cuda: bool = false,
        /// Run on the CPU even when an accelerator is present. Default: false.
        use_cpu: bool = false,
        /// Deprecated: use the MPS device. Default: false.
        use_mps_device: bool = false,
        /// Random seed set at the start of training. Default: 42.
        seed: u64 = 42,
        /// Seed of the data sampler. Default: none (`seed`).
        data_seed: Option<u64> = None,
        /// Trace the model with the PyTorch JIT for inference. Default: false.
        jit_mode_eval: bool = false,
        /// bf16 mixed precision. Default: false.
        bf16: bool = false,
        /// fp16 mixed precision. Default: false.
        fp16: bool = false,
        /// Apex AMP optimization level. Default: `O1`.
        fp16_opt_level: String = "O1".into(),
        /// Backend of half precision. Default: `auto`.
        half_precision_backend: String = "auto".into(),
        /// Evaluate in full bf16. Default: false.
        bf16_full_eval: bool = false,
        /// Evaluate in full fp16. Default: false.
        fp16_full_eval: bool = false,
        /// TF32 matmuls on Ampere GPUs. Default: none.
        tf32: Option<bool> = None,
        /// Local rank in distributed training (set by launchers). Default: -1.
        local_rank: i64 = -1,
        /// Distributed backend (`nccl`, `gloo`, ...). Default: none.
        ddp_backend: Option<String> = None,
        /// TPU cores. Default: none.
        tpu_num_cores: Option<u32> = None,
        /// Deprecated: print TPU debug metrics. Default: false.
        tpu_metrics_debug: bool = false,
        /// Debug features (`underflow_overflow`, `tpu_metrics_debug`). Default: none.
        debug: Vec<String> = Vec::new(),
        /// Drop the last incomplete batch. Default: false.
        dataloader_drop_last: bool = false,
        /// Evaluate every this many steps with `eval_strategy: steps`; below 1, a fraction of
        /// total steps. Unset resolves to `logging_steps` at load time. Default: none.
        eval_steps: Option<f64> = None,
        /// Data-loading worker processes. Default: 0.
        dataloader_num_workers: usize = 0,
        /// Batches prefetched per data-loading worker. Default: none.
        dataloader_prefetch_factor: Option<usize> = None,
        /// Index of the model output used as past state. Default: -1.
        past_index: i64 = -1,
        /// Run name for experiment trackers. Default: none.
        run_name: Option<String> = None,
        /// Disable progress bars. Default: none (on unless the log level is warning or lower).
        disable_tqdm: Option<bool> = None,
        /// Drop dataset columns the model's forward does not take. Default: true.
        remove_unused_columns: bool = true,
        /// Input keys holding the labels (comma list). Default: none.
        label_names: Vec<String> = Vec::new(),
        /// Load the best checkpoint at the end of training. Default: false.
        load_best_model_at_end: bool = false,
        /// Metric that decides the best checkpoint. Default: none (`loss`).
        metric_for_best_model: Option<String> = None,
        /// Whether a larger `metric_for_best_model` is better. Default: none.
        greater_is_better: Option<bool> = None,
        /// Do not skip already-seen batches when resuming. Default: false.
        ignore_data_skip: bool = false,
        /// PyTorch FSDP options (e.g. `full_shard auto_wrap`). Default: none.
        fsdp: Option<Value> = None,
        /// Deprecated FSDP auto-wrap minimum parameter count. Default: 0.
        fsdp_min_num_params: u64 = 0,
        /// FSDP config (mapping or JSON file path). Default: none.
        fsdp_config: Option<Value> = None,
        /// Deprecated FSDP layer class to wrap. Default: none.
        fsdp_transformer_layer_cls_to_wrap: Option<String> = None,
        /// Accelerate config (mapping or JSON file path). Default: none.
        accelerator_config: Option<Value> = None,
        /// Accelerate parallelism config. Default: none.
        parallelism_config: Option<Value> = None,
        /// DeepSpeed config (mapping or JSON file path). Default: none.
        deepspeed: Option<Value> = None,
        /// Label smoothing epsilon; 0 means none. Default: 0.0.
        label_smoothing_factor: f64 = 0.0,
        /// Optimizer name (transformers `OptimizerNames`, e.g. `adamw_torch`). Default:
        /// `adamw_torch`.
        optim: String = "adamw_torch".into(),
        /// Extra optimizer arguments (`key=value,...`). Default: none.
        optim_args: Option<String> = None,
        /// Use Adafactor instead of AdamW. Default: false.
        adafactor: bool = false,
        /// Group examples of similar length into batches. Default: false.
        group_by_length: bool = false,
        /// Column with precomputed lengths for `group_by_length`. Default: `length`.
        length_column_name: String = "length".into(),
        /// Experiment trackers to report to (comma list); `none` is the empty list.
        /// Default: none.
        report_to: Vec<String> = Vec::new(),
        /// Project name for Trackio. Default: `huggingface`.
        project: String = "huggingface".into(),
        /// Hugging Face Space of Trackio. Default: `trackio`.
        trackio_space_id: Option<String> = Some("trackio".into()),
        /// Hugging Face bucket of Trackio. Default: none.
        trackio_bucket_id: Option<String> = None,
        /// Static Trackio Space. Default: none.
        trackio_static_space_id: Option<Value> = None,
        /// DDP `find_unused_parameters`. Default: none.
        ddp_find_unused_parameters: Option<bool> = None,
        /// DDP `bucket_cap_mb`. Default: none.
        ddp_bucket_cap_mb: Option<u64> = None,
        /// DDP `broadcast_buffers`. Default: none.
        ddp_broadcast_buffers: Option<bool> = None,
        /// DDP `static_graph`. Default: none.
        ddp_static_graph: Option<bool> = None,
        /// Pin data-loader memory. Default: true.
        dataloader_pin_memory: bool = true,
        /// Keep data-loading workers alive between epochs. Default: false.
        dataloader_persistent_workers: bool = false,
        /// Skip memory profiler reports in metrics. Default: true.
        skip_memory_metrics: bool = true,
        /// Use the legacy prediction loop. Default: false.
        use_legacy_prediction_loop: bool = false,
        /// Push the model to the hub at every save. Default: false.
        push_to_hub: bool = false,
        /// Checkpoint folder to resume training from. Default: none.
        resume_from_checkpoint: Option<String> = None,
        /// Hub repository kept in sync with `output_dir`. Default: none.
        hub_model_id: Option<String> = None,
        /// What to push and when. Default: `every_save`.
        hub_strategy: HubStrategy = HubStrategy::EverySave,
        /// Token to push to the hub. Default: none.
        hub_token: Option<String> = None,
        /// Make the hub repository private. Default: none.
        hub_private_repo: Option<bool> = None,
        /// Push even while a previous push is running. Default: false.
        hub_always_push: bool = false,
        /// Hub revision to push to. Default: none.
        hub_revision: Option<String> = None,
        /// Recompute activations in backward to save memory. Default: false.
        gradient_checkpointing: bool = false,
        /// Options of gradient checkpointing, e.g. `{use_reentrant: false}`. Default: none.
        gradient_checkpointing_kwargs: Option<Value> = None,
        /// Deprecated: pass inputs to `compute_metrics`. Default: false.
        include_inputs_for_metrics: bool = false,
        /// Extra data for `compute_metrics` (`inputs`, `loss`). Default: none.
        include_for_metrics: Vec<String> = Vec::new(),
        /// Concatenate evaluation outputs across batches. Default: true.
        eval_do_concat_batches: bool = true,
        /// Deprecated alias of `half_precision_backend`. Default: `auto`.
        fp16_backend: String = "auto".into(),
        /// Deprecated hub repository name. Default: none.
        push_to_hub_model_id: Option<String> = None,
        /// Deprecated hub organization. Default: none.
        push_to_hub_organization: Option<String> = None,
        /// Deprecated hub token. Default: none.
        push_to_hub_token: Option<String> = None,
        /// SageMaker model-parallel arguments. Default: empty.
        mp_parameters: String = String::new(),
        /// Halve the batch size on out-of-memory and retry. Default: false.
        auto_find_batch_size: bool = false,
        /// Fully deterministic kernels (slow; debugging). Default: false.
        full_determinism: bool = false,
        /// Deprecated alias of `torch_compile_backend`. Default: none.
        torchdynamo: Option<String> = None,
        /// Ray hyperparameter-search checkpoint scope. Default: `last`.
        ray_scope: Option<String> = Some("last".into()),
        /// Distributed process-group timeout, in seconds. Default: 1800.
        ddp_timeout: u64 = 1800,
        /// Compile the model with `torch.compile`. Default: false.
        torch_compile: bool = false,
        /// `torch.compile` backend. Default: none.
        torch_compile_backend: Option<String> = None,
        /// `torch.compile` mode. Default: none.
        torch_compile_mode: Option<String> = None,
        /// Report tokens per second per device. Default: false.
        include_tokens_per_second: bool = false,
        /// Track input tokens seen: `all`, `non_padding`, `no`, or a boolean. Default: false.
        include_num_input_tokens_seen: Value = Value::Bool(false),
        /// NEFTune noise alpha on embeddings. Default: none.
        neftune_noise_alpha: Option<f64> = None,
        /// Modules the `optim` optimizer targets (GaLore/APOLLO). Default: none.
        optim_target_modules: Vec<String> = Vec::new(),
        /// Compute evaluation metrics batch by batch. Default: false.
        batch_eval_metrics: bool = false,
        /// Evaluate once before training. Default: false.
        eval_on_start: bool = false,
        /// Liger kernels (transformers flag). Default: false.
        use_liger_kernel: bool = false,
        /// Liger kernel options. Default: none.
        liger_kernel_config: Option<Value> = None,
        /// Gather objects across devices at evaluation. Default: false.
        eval_use_gather_object: bool = false,
        /// Average token counts across devices for the loss. Default: true.
        average_tokens_across_devices: bool = true,
        /// Use the model's KV cache in training. Default: false.
        use_cache: bool = false,
        /// Checkpoint on SIGTERM before preemption. Default: false.
        enable_jit_checkpoint: bool = false,
        /// Training sampler: `random`, `sequential`, `group_by_length` or `batch_rebalance`.
        /// Default: `random`.
        train_sampling_strategy: String = "random".into(),

        /// Sort-ish sampler for seq2seq. Default: false.
        sortish_sampler: bool = false,
        /// Generate at evaluation/prediction to compute ROUGE/BLEU and save predictions.
        /// Default: false.
        predict_with_generate: bool = false,
        /// `max_length` of generation at evaluation. Default: none (LLaMA-Factory uses
        /// `cutoff_len`).
        generation_max_length: Option<usize> = None,
        /// Beams of generation at evaluation. Default: none (LLaMA-Factory uses
        /// `eval_num_beams`).
        generation_num_beams: Option<u32> = None,
        /// Generation config (model id, file or URL) used at prediction. Default: none.
        generation_config: Option<String> = None,

        /// Ray training workers. Default: 1.
        ray_num_workers: u32 = 1,
        /// Arguments of `ray.init` (mapping or JSON string). Default: none.
        ray_init_kwargs: Option<Value> = None,
        /// Master address for `init_process_group`. Default: none.
        master_addr: Option<String> = None,
        /// Master port for `init_process_group`. Default: none.
        master_port: Option<String> = None,
        /// Collect torch profiler traces. Default: false.
        enable_torch_profiler: bool = false,
        /// Folder of profiler traces. Default: none (`<output_dir>/profiler`).
        profiler_output_dir: Option<String> = None,
        /// Steps skipped at the start of each profiling cycle. Default: 1.
        profiler_wait_steps: u32 = 1,
        /// Profiler warm-up steps per cycle. Default: 1.
        profiler_warmup_steps: u32 = 1,
        /// Steps recorded per profiling cycle. Default: 1.
        profiler_active_steps: u32 = 1,
        /// Profiling cycles; 0 profiles continuously. Default: 1.
        profiler_repeat: u32 = 1,
        /// Record tensor shapes while profiling. Default: true.
        profiler_record_shapes: bool = true,
        /// Profile memory. Default: true.
        profiler_profile_memory: bool = true,
        /// Record stack traces while profiling. Default: true.
        profiler_with_stack: bool = true,
        /// Module name patterns timed with CUDA events (comma list, fnmatch wildcards).
        /// Default: none.
        profile_modules: Vec<String> = Vec::new(),
        /// FP8 mixed precision via Accelerate. Default: false.
        fp8: bool = false,
        /// FP8 backend: `auto`, `torchao`, `te` or `msamp`. Default: `auto`.
        fp8_backend: String = "auto".into(),
        /// FP8 all-gather in FSDP2. Default: false.
        fp8_enable_fsdp_float8_all_gather: bool = false,
    }
}
