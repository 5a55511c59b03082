//! Finetuning arguments: the training stage, the fine-tuning method (LoRA, freeze, full) and
//! its options, preference-optimization losses and optimizer variants. Mirrors LLaMA-Factory
//! v0.9.5 `hparams/finetuning_args.py` (`FreezeArguments`, `LoraArguments`, `OFTArguments`,
//! `RLHFArguments`, `GaloreArguments`, `ApolloArguments`, `BAdamArgument`,
//! `SwanLabArguments`, `FinetuningArguments`); help texts paraphrase its `help` strings.

arg_enum! {
    /// Training stage.
    pub enum Stage {
        /// Pre-training (causal LM on raw text).
        Pt = "pt",
        /// Supervised fine-tuning.
        Sft = "sft",
        /// Reward modeling.
        Rm = "rm",
        /// Proximal policy optimization.
        Ppo = "ppo",
        /// Direct preference optimization (and its ORPO/SimPO/IPO variants via `pref_loss`).
        Dpo = "dpo",
        /// Kahneman-Tversky optimization.
        Kto = "kto",
    }
}

arg_enum! {
    /// Fine-tuning method.
    pub enum FinetuningType {
        /// Low-rank adapters.
        Lora = "lora",
        /// Orthogonal fine-tuning.
        Oft = "oft",
        /// Train only some layers/modules (partial-parameter).
        Freeze = "freeze",
        /// Train every parameter.
        Full = "full",
    }
}

arg_enum! {
    /// Preference loss of the DPO stage.
    pub enum PrefLoss {
        /// DPO's sigmoid loss.
        Sigmoid = "sigmoid",
        /// Hinge loss (SLiC).
        Hinge = "hinge",
        /// IPO loss.
        Ipo = "ipo",
        /// Paired KTO loss.
        KtoPair = "kto_pair",
        /// ORPO (reference-free).
        Orpo = "orpo",
        /// SimPO (reference-free).
        Simpo = "simpo",
    }
}

arg_enum! {
    /// Kind of reward model in PPO.
    pub enum RewardModelType {
        /// A LoRA adapter on the policy's base model.
        Lora = "lora",
        /// A full model.
        Full = "full",
        /// A reward API.
        Api = "api",
    }
}

arg_enum! {
    /// GaLore projection type.
    pub enum GaloreProjType {
        /// Standard.
        Std = "std",
        /// Reverse standard.
        ReverseStd = "reverse_std",
        /// Right projection.
        Right = "right",
        /// Left projection.
        Left = "left",
        /// Full projection.
        Full = "full",
    }
}

arg_enum! {
    /// APOLLO low-rank projection algorithm.
    pub enum ApolloProj {
        /// SVD projection.
        Svd = "svd",
        /// Random projection.
        Random = "random",
    }
}

arg_enum! {
    /// APOLLO projection type.
    pub enum ApolloProjType {
        /// Standard.
        Std = "std",
        /// Right projection.
        Right = "right",
        /// Left projection.
        Left = "left",
    }
}

arg_enum! {
    /// APOLLO scaling granularity.
    pub enum ApolloScaleType {
        /// Per channel.
        Channel = "channel",
        /// Per tensor.
        Tensor = "tensor",
    }
}

arg_enum! {
    /// BAdam mode.
    pub enum BadamMode {
        /// Layer-wise.
        Layer = "layer",
        /// Ratio-wise.
        Ratio = "ratio",
    }
}

arg_enum! {
    /// Order in which layer-wise BAdam picks blocks.
    pub enum BadamSwitchMode {
        /// First to last.
        Ascending = "ascending",
        /// Last to first.
        Descending = "descending",
        /// Random.
        Random = "random",
        /// Always the same block.
        Fixed = "fixed",
    }
}

arg_enum! {
    /// Which weights ratio-wise BAdam updates.
    pub enum BadamMaskMode {
        /// Adjacent parameters.
        Adjacent = "adjacent",
        /// Randomly scattered parameters.
        Scatter = "scatter",
    }
}

arg_enum! {
    /// SwanLab mode.
    pub enum SwanlabMode {
        /// Cloud logging.
        Cloud = "cloud",
        /// Local logging.
        Local = "local",
    }
}

arg_group! {
    /// Arguments pertaining to the fine-tuning technique.
    pub struct FinetuningArguments ("finetuning arguments") {
        /// Trainable layers in freeze tuning: positive n trains the last n layers, negative n
        /// the first n. Default: 2.
        freeze_trainable_layers: i64 = 2,
        /// Trainable module names in freeze tuning (comma list); `all` for every module.
        /// Default: `all`.
        freeze_trainable_modules: Vec<String> = vec!["all".into()],
        /// Modules besides the hidden layers to train in freeze tuning (comma list).
        /// Default: none.
        freeze_extra_modules: Vec<String> = Vec::new(),

        /// Modules besides the LoRA layers to train and save (comma list), e.g.
        /// `embed_tokens,lm_head`. Default: none.
        additional_target: Vec<String> = Vec::new(),
        /// LoRA scale numerator: the update is scaled by `lora_alpha / lora_rank` (or
        /// `/ sqrt(lora_rank)` with `use_rslora`). Unset or 0 resolves to `2 * lora_rank` at
        /// load time. Default: 16 (resolved).
        lora_alpha: u32 = 16,
        /// Dropout rate on the LoRA input. Default: 0.0.
        lora_dropout: f64 = 0.0,
        /// LoRA rank (inner dimension). Default: 8.
        lora_rank: u32 = 8,
        /// Modules that get LoRA adapters (comma list); `all` for every linear module.
        /// Default: `all`.
        lora_target: Vec<String> = vec!["all".into()],
        /// LoRA+ learning-rate ratio `lr_B / lr_A`. Default: none (plain LoRA).
        loraplus_lr_ratio: Option<f64> = None,
        /// LoRA+ learning rate of LoRA embedding layers. Default: 1e-6.
        loraplus_lr_embedding: f64 = 1e-6,
        /// Rank-stabilized LoRA scaling `lora_alpha / sqrt(lora_rank)`. Default: false.
        use_rslora: bool = false,
        /// Weight-decomposed LoRA (DoRA). Default: false.
        use_dora: bool = false,
        /// Initialize the adapter with PiSSA. Default: false.
        pissa_init: bool = false,
        /// Fast-SVD iterations in PiSSA initialization; -1 for exact SVD. Default: 16.
        pissa_iter: i64 = 16,
        /// Convert the PiSSA adapter to a plain LoRA adapter when saving. Default: false.
        pissa_convert: bool = false,
        /// Create a new randomly initialized adapter on top of `adapter_name_or_path`.
        /// Default: false.
        create_new_adapter: bool = false,

        /// Dropout rate of OFT. Default: 0.0.
        module_dropout: f64 = 0.0,
        /// OFT rank. Default: 0.
        oft_rank: u32 = 0,
        /// OFT block size. Default: 32.
        oft_block_size: u32 = 32,
        /// Modules that get OFT (comma list); `all` for every linear module. Default: `all`.
        oft_target: Vec<String> = vec!["all".into()],

        /// Beta of the preference loss. Default: 0.1.
        pref_beta: f64 = 0.1,
        /// Coefficient of the SFT loss added in DPO training. Default: 0.0.
        pref_ftx: f64 = 0.0,
        /// Coefficient of the Binary Classifier Optimization loss in DPO. Default: 0.0.
        pref_bco_weight: f64 = 0.0,
        /// DPO loss: `sigmoid`, `hinge`, `ipo`, `kto_pair`, `orpo` or `simpo`.
        /// Default: `sigmoid`.
        pref_loss: PrefLoss = PrefLoss::Sigmoid,
        /// Label smoothing of robust DPO (cDPO), in `[0, 0.5]`. Default: 0.0.
        dpo_label_smoothing: f64 = 0.0,
        /// Weight of desirable losses in KTO. Default: 1.0.
        kto_chosen_weight: f64 = 1.0,
        /// Weight of undesirable losses in KTO. Default: 1.0.
        kto_rejected_weight: f64 = 1.0,
        /// Target reward margin of SimPO. Default: 0.5.
        simpo_gamma: f64 = 0.5,
        /// Mini-batches in the PPO experience buffer. Default: 1.
        ppo_buffer_size: u32 = 1,
        /// Epochs per PPO optimization step. Default: 4.
        ppo_epochs: u32 = 4,
        /// Normalize scores in PPO. Default: false.
        ppo_score_norm: bool = false,
        /// Target KL of adaptive KL control in PPO. Default: 6.0.
        ppo_target: f64 = 6.0,
        /// Whiten rewards before computing advantages in PPO. Default: false.
        ppo_whiten_rewards: bool = false,
        /// Reference model for PPO or DPO. Default: none (the initial policy).
        ref_model: Option<String> = None,
        /// Adapters of the reference model. Default: none.
        ref_model_adapters: Option<String> = None,
        /// Bits to quantize the reference model to (4 or 8). Default: none.
        ref_model_quantization_bit: Option<u32> = None,
        /// Reward model for PPO. Default: none.
        reward_model: Option<String> = None,
        /// Adapters of the reward model. Default: none.
        reward_model_adapters: Option<String> = None,
        /// Bits to quantize the reward model to (4 or 8). Default: none.
        reward_model_quantization_bit: Option<u32> = None,
        /// Reward model kind in PPO: `lora`, `full` or `api`. Default: `lora`.
        reward_model_type: RewardModelType = RewardModelType::Lora,
        /// Alpha of LD-DPO, weighting the log-probabilities of verbose tokens. Default: none.
        ld_alpha: Option<f64> = None,

        /// Use gradient low-rank projection (GaLore). Default: false.
        use_galore: bool = false,
        /// Modules GaLore applies to (comma list); `all` for every linear module.
        /// Default: `all`.
        galore_target: Vec<String> = vec!["all".into()],
        /// Rank of GaLore gradients. Default: 16.
        galore_rank: u32 = 16,
        /// Steps between GaLore projection updates. Default: 200.
        galore_update_interval: u32 = 200,
        /// GaLore scaling coefficient. Default: 2.0.
        galore_scale: f64 = 2.0,
        /// GaLore projection type. Default: `std`.
        galore_proj_type: GaloreProjType = GaloreProjType::Std,
        /// Layer-wise GaLore updates to save memory. Default: false.
        galore_layerwise: bool = false,

        /// Use the APOLLO optimizer. Default: false.
        use_apollo: bool = false,
        /// Modules APOLLO applies to (comma list); `all` for every linear module.
        /// Default: `all`.
        apollo_target: Vec<String> = vec!["all".into()],
        /// Rank of APOLLO gradients. Default: 16.
        apollo_rank: u32 = 16,
        /// Steps between APOLLO projection updates. Default: 200.
        apollo_update_interval: u32 = 200,
        /// APOLLO scaling coefficient. Default: 32.0.
        apollo_scale: f64 = 32.0,
        /// APOLLO projection algorithm: `svd` or `random`. Default: `random`.
        apollo_proj: ApolloProj = ApolloProj::Random,
        /// APOLLO projection type: `std`, `right` or `left`. Default: `std`.
        apollo_proj_type: ApolloProjType = ApolloProjType::Std,
        /// APOLLO scaling: `channel` or `tensor`. Default: `channel`.
        apollo_scale_type: ApolloScaleType = ApolloScaleType::Channel,
        /// Layer-wise APOLLO updates to save memory. Default: false.
        apollo_layerwise: bool = false,
        /// Norm-growth limiter before gradient scaling in APOLLO. Default: false.
        apollo_scale_front: bool = false,

        /// Use the BAdam optimizer. Default: false.
        use_badam: bool = false,
        /// BAdam mode: `layer` or `ratio`. Default: `layer`.
        badam_mode: BadamMode = BadamMode::Layer,
        /// First block of layer-wise BAdam. Default: none.
        badam_start_block: Option<u32> = None,
        /// Block order of layer-wise BAdam. Default: `ascending`.
        badam_switch_mode: Option<BadamSwitchMode> = Some(BadamSwitchMode::Ascending),
        /// Steps between block switches of layer-wise BAdam; -1 disables switching.
        /// Default: 50.
        badam_switch_interval: Option<i64> = Some(50),
        /// Update ratio of ratio-wise BAdam. Default: 0.05.
        badam_update_ratio: f64 = 0.05,
        /// Mask mode of ratio-wise BAdam: `adjacent` or `scatter`. Default: `adjacent`.
        badam_mask_mode: BadamMaskMode = BadamMaskMode::Adjacent,
        /// BAdam verbosity: 0 silent, 1 block prefix, 2 trainable parameters. Default: 0.
        badam_verbose: u32 = 0,

        /// Log to SwanLab. Default: false.
        use_swanlab: bool = false,
        /// SwanLab project. Default: `llamafactory`.
        swanlab_project: Option<String> = Some("llamafactory".into()),
        /// SwanLab workspace. Default: none.
        swanlab_workspace: Option<String> = None,
        /// SwanLab experiment name. Default: none.
        swanlab_run_name: Option<String> = None,
        /// SwanLab mode: `cloud` or `local`. Default: `cloud`.
        swanlab_mode: SwanlabMode = SwanlabMode::Cloud,
        /// SwanLab API key. Default: none.
        swanlab_api_key: Option<String> = None,
        /// SwanLab log folder. Default: none.
        swanlab_logdir: Option<String> = None,
        /// Lark webhook URL for SwanLab. Default: none.
        swanlab_lark_webhook_url: Option<String> = None,
        /// Lark secret for SwanLab. Default: none.
        swanlab_lark_secret: Option<String> = None,

        /// Train purely in bf16 (bf16 weights, no mixed precision). Default: false.
        pure_bf16: bool = false,
        /// Training stage: `pt`, `sft`, `rm`, `ppo`, `dpo` or `kto`. Default: `sft`.
        stage: Stage = Stage::Sft,
        /// Fine-tuning method: `lora`, `oft`, `freeze` or `full`. Default: `lora`.
        finetuning_type: FinetuningType = FinetuningType::Lora,
        /// Train only the expanded blocks (LLaMA Pro). Default: false.
        use_llama_pro: bool = false,
        /// Use the Adam-mini optimizer. Default: false.
        use_adam_mini: bool = false,
        /// Megatron Core Adapter training. Default: false.
        use_mca: bool = false,
        /// HyperParallel distributed training backend. Default: false.
        use_hyper_parallel: bool = false,
        /// JSON file of HyperParallel strategy arguments. Default: none.
        hyper_parallel_args: Option<String> = None,
        /// Use the Muon optimizer. Default: false.
        use_muon: bool = false,
        /// Use the DFT loss. Default: false.
        use_dft_loss: bool = false,
        /// Use the ASFT loss. Default: false.
        use_asft_loss: bool = false,
        /// Power of the ASFT adaptive weight. Default: 0.1.
        asft_alpha: f64 = 0.1,
        /// Use the EAFT loss. Default: false.
        use_eaft_loss: bool = false,
        /// Power of the EAFT adaptive weight. Default: 1.0.
        eaft_alpha: f64 = 1.0,
        /// Freeze the vision tower in multimodal training. Default: true.
        freeze_vision_tower: bool = true,
        /// Freeze the multimodal projector in multimodal training. Default: true.
        freeze_multi_modal_projector: bool = true,
        /// Freeze the language model in multimodal training. Default: false.
        freeze_language_model: bool = false,
        /// Compute token-level accuracy at evaluation. Default: false.
        compute_accuracy: bool = false,
        /// Do not shuffle the training set. Default: false.
        disable_shuffling: bool = false,
        /// Stop after this many evaluations without improvement of `metric_for_best_model`.
        /// Default: none.
        early_stopping_steps: Option<u32> = None,
        /// Save the training loss curve as an image. Default: false.
        plot_loss: bool = false,
        /// Report effective tokens per second. Default: false.
        include_effective_tokens_per_second: bool = false,
    }
}
