//! Model arguments: which model, adapters and tokenizer to load, how to run inference and how to
//! export. Mirrors LLaMA-Factory v0.9.5 `hparams/model_args.py` (`BaseModelArguments`,
//! `QuantizationArguments`, `ProcessorArguments`, `ExportArguments`, `VllmArguments`,
//! `SGLangArguments`, `KTransformersArguments`); help texts paraphrase its `help` strings.

use serde_json::Value;

arg_enum! {
    /// RoPE scaling strategy (`extras/constants.py` `RopeScaling`).
    pub enum RopeScaling {
        /// Linear position interpolation.
        Linear = "linear",
        /// Dynamic NTK scaling.
        Dynamic = "dynamic",
        /// YaRN.
        Yarn = "yarn",
        /// Llama 3.1 frequency-dependent scaling.
        Llama3 = "llama3",
    }
}

arg_enum! {
    /// Attention implementation (`extras/constants.py` `AttentionFunction`).
    pub enum AttentionFunction {
        /// Let the framework choose.
        Auto = "auto",
        /// Plain (eager) attention.
        Disabled = "disabled",
        /// PyTorch scaled dot-product attention.
        Sdpa = "sdpa",
        /// FlashAttention 2.
        Fa2 = "fa2",
        /// FlashAttention 3.
        Fa3 = "fa3",
    }
}

arg_enum! {
    /// Inference engine (`extras/constants.py` `EngineName`).
    pub enum InferBackend {
        /// The built-in engine (Hugging Face `generate` in LLaMA-Factory, ferrotune's own here).
        Huggingface = "huggingface",
        /// vLLM.
        Vllm = "vllm",
        /// SGLang.
        Sglang = "sglang",
    }
}

arg_enum! {
    /// Weight and activation dtype at inference.
    pub enum InferDtype {
        /// The checkpoint's `torch_dtype`.
        Auto = "auto",
        /// IEEE half precision.
        Float16 = "float16",
        /// bfloat16.
        Bfloat16 = "bfloat16",
        /// Single precision.
        Float32 = "float32",
    }
}

arg_enum! {
    /// On-the-fly quantization method (`extras/constants.py` `QuantizationMethod`).
    pub enum QuantizationMethod {
        /// bitsandbytes.
        Bnb = "bnb",
        /// GPTQ.
        Gptq = "gptq",
        /// AWQ.
        Awq = "awq",
        /// AQLM.
        Aqlm = "aqlm",
        /// Quanto.
        Quanto = "quanto",
        /// EETQ.
        Eetq = "eetq",
        /// HQQ.
        Hqq = "hqq",
        /// MXFP4.
        Mxfp4 = "mxfp4",
        /// FP8.
        Fp8 = "fp8",
    }
}

arg_enum! {
    /// bitsandbytes 4-bit data type.
    pub enum QuantizationType {
        /// 4-bit float.
        Fp4 = "fp4",
        /// 4-bit NormalFloat.
        Nf4 = "nf4",
    }
}

arg_enum! {
    /// How new special tokens are initialized.
    pub enum InitSpecialTokens {
        /// Random noise around the embedding mean.
        NoiseInit = "noise_init",
        /// From the embedding of a text description.
        DescInit = "desc_init",
        /// From a description, plus noise.
        DescInitWNoise = "desc_init_w_noise",
    }
}

arg_enum! {
    /// Mixture-of-depths mode.
    pub enum MixtureOfDepths {
        /// Convert a dense model to MoD.
        Convert = "convert",
        /// Load a MoD model.
        Load = "load",
    }
}

arg_enum! {
    /// Device used while exporting.
    pub enum ExportDevice {
        /// Export on the CPU.
        Cpu = "cpu",
        /// Export on the accelerator when there is one.
        Auto = "auto",
    }
}

arg_enum! {
    /// File format of `ferrotune export` (a ferrotune extension; LLaMA-Factory always writes
    /// a Hugging Face folder).
    pub enum ExportFormat {
        /// A Hugging Face folder: safetensors shards, config.json, tokenizer files.
        Hf = "hf",
        /// One GGUF v3 file for llama.cpp and Ollama, with an Ollama `Modelfile` beside it.
        Gguf = "gguf",
        /// The one adapter of `adapter_name_or_path` (an adapter folder or a `checkpoint-N`),
        /// checked against the base and rewritten in PEFT's format, with the tokenizer files.
        Peft = "peft",
    }
}

arg_enum! {
    /// Tensor type of a GGUF export (a ferrotune extension, as llama.cpp's `--outtype`/
    /// `llama-quantize` types). Norms and other 1-D tensors always stay `f32`.
    #[allow(non_camel_case_types)]
    pub enum ExportQuantization {
        /// 32-bit floats.
        F32 = "f32",
        /// IEEE half floats.
        F16 = "f16",
        /// bfloat16.
        Bf16 = "bf16",
        /// 8-bit blocks of 32 with an f16 scale (ggml `Q8_0`).
        Q8_0 = "q8_0",
        /// 4-bit blocks of 32 with an f16 scale (ggml `Q4_0`).
        Q4_0 = "q4_0",
        /// 4-bit blocks of 32 with an f16 scale and minimum (ggml `Q4_1`).
        Q4_1 = "q4_1",
    }
}

arg_enum! {
    /// SGLang LoRA GEMM backend.
    pub enum SglangLoraBackend {
        /// Triton kernels.
        Triton = "triton",
        /// FlashInfer kernels.
        Flashinfer = "flashinfer",
    }
}

arg_group! {
    /// Arguments pertaining to the model, its tokenizer, quantization, multimodal processors,
    /// export and inference engines.
    pub struct ModelArguments ("model arguments") {
        /// Path to the model folder or GGUF file, or a model id on huggingface.co. Required.
        /// Default: none.
        model_name_or_path: Option<String> = None,
        /// Path(s) or hub id(s) of adapter weights; comma-separated string or list for several
        /// adapters. Default: none.
        adapter_name_or_path: Vec<String> = Vec::new(),
        /// Folder holding the adapter weights to load. Default: none.
        adapter_folder: Option<String> = None,
        /// Where models downloaded from the hub are stored. Default: the hub cache.
        cache_dir: Option<String> = None,
        /// Use a fast (Rust `tokenizers`) tokenizer. Default: true.
        use_fast_tokenizer: bool = true,
        /// Resize the tokenizer vocabulary and the embedding layers. Default: false.
        resize_vocab: bool = false,
        /// Split special tokens during tokenization. Default: false.
        split_special_tokens: bool = false,
        /// Non-special tokens to add to the tokenizer (comma list). Default: none.
        add_tokens: Vec<String> = Vec::new(),
        /// Special tokens to add to the tokenizer (comma list). Default: none.
        add_special_tokens: Vec<String> = Vec::new(),
        /// Path to a YAML file mapping new special tokens to descriptions, used for their
        /// initialization; takes precedence over `add_special_tokens`. Default: none.
        new_special_tokens_config: Option<String> = None,
        /// Initialization of new special tokens: `noise_init`, `desc_init` or
        /// `desc_init_w_noise` (the last two need `new_special_tokens_config`). Default: `noise_init`.
        init_special_tokens: InitSpecialTokens = InitSpecialTokens::NoiseInit,
        /// Model revision on the hub: branch, tag or commit id. Default: `main`.
        model_revision: String = "main".into(),
        /// Memory-efficient model loading. Default: true.
        low_cpu_mem_usage: bool = true,
        /// RoPE scaling strategy: `linear`, `dynamic`, `yarn` or `llama3`. Default: none.
        rope_scaling: Option<RopeScaling> = None,
        /// Attention implementation: `auto`, `disabled`, `sdpa`, `fa2` or `fa3`. Default: `auto`.
        flash_attn: AttentionFunction = AttentionFunction::Auto,
        /// Shift short attention (S^2-Attn) from LongLoRA. Default: false.
        shift_attn: bool = false,
        /// Convert the model to mixture-of-depths (`convert`) or load a MoD model (`load`).
        /// Default: none.
        mixture_of_depths: Option<MixtureOfDepths> = None,
        /// Use unsloth's LoRA optimizations. Default: false.
        use_unsloth: bool = false,
        /// Use unsloth's gradient checkpointing. Default: false.
        use_unsloth_gc: bool = false,
        /// Use Liger kernels for faster training. Default: false.
        enable_liger_kernel: bool = false,
        /// Coefficient of the mixture-of-experts router auxiliary loss. Default: none (model's).
        moe_aux_loss_coef: Option<f64> = None,
        /// Disable gradient checkpointing. Default: false.
        disable_gradient_checkpointing: bool = false,
        /// Use reentrant gradient checkpointing. Default: true.
        use_reentrant_gc: bool = true,
        /// Keep layernorm weights in f32. Default: false. ferrotune always does: norm weights
        /// and their compute are f32 at every precision (`bf16`/`fp16` round only the
        /// operands of matmuls).
        upcast_layernorm: bool = false,
        /// Compute the `lm_head` output in f32. Default: false. ferrotune always does: the
        /// logits accumulate in f32 and the loss is computed in f32 at every precision.
        upcast_lmhead_output: bool = false,
        /// Initialize the model weights randomly instead of loading them. Default: false.
        train_from_scratch: bool = false,
        /// Inference engine: `huggingface`, `vllm` or `sglang`. Default: `huggingface`.
        infer_backend: InferBackend = InferBackend::Huggingface,
        /// Folder for offloaded model weights. Default: `offload`.
        offload_folder: String = "offload".into(),
        /// Use the KV cache in generation. Default: true.
        use_kv_cache: bool = true,
        /// Use LLaMA-Factory's v1 high-performance training kernels. Default: false.
        use_v1_kernels: Option<bool> = Some(false),
        /// Weight and activation dtype at inference: `auto`, `float16`, `bfloat16` or `float32`.
        /// Default: `auto`.
        infer_dtype: InferDtype = InferDtype::Auto,
        /// Hugging Face Hub token. Default: none (the `HF_TOKEN` environment or saved login).
        hf_hub_token: Option<String> = None,
        /// ModelScope Hub token. Default: none.
        ms_hub_token: Option<String> = None,
        /// Modelers Hub token. Default: none.
        om_hub_token: Option<String> = None,
        /// Print the trainable status of every parameter (debugging). Default: false.
        print_param_status: bool = false,
        /// Allow executing code shipped with hub models/datasets (Python only). Default: false.
        trust_remote_code: bool = false,

        /// On-the-fly quantization method (see [`QuantizationMethod`]). Default: `bnb`.
        quantization_method: QuantizationMethod = QuantizationMethod::Bnb,
        /// Bits of on-the-fly quantization (4 or 8). Default: none.
        quantization_bit: Option<u32> = None,
        /// bitsandbytes int4 data type: `fp4` or `nf4`. Default: `nf4`.
        quantization_type: QuantizationType = QuantizationType::Nf4,
        /// Double quantization in bitsandbytes int4 training. Default: true.
        double_quantization: bool = true,
        /// Device map for inference of 4-bit models (`auto`). Default: none.
        quantization_device_map: Option<String> = None,

        /// Maximum pixels of an image input. Default: 589824 (768*768).
        image_max_pixels: u64 = 768 * 768,
        /// Minimum pixels of an image input. Default: 1024 (32*32).
        image_min_pixels: u64 = 32 * 32,
        /// Pan-and-scan image processing (Gemma 3). Default: false.
        image_do_pan_and_scan: bool = false,
        /// Crop images to patches (InternVL). Default: false.
        crop_to_patches: bool = false,
        /// Maximum pixels of a video frame. Default: 65536 (256*256).
        video_max_pixels: u64 = 256 * 256,
        /// Minimum pixels of a video frame. Default: 256 (16*16).
        video_min_pixels: u64 = 16 * 16,
        /// Frames sampled per second of video. Default: 2.0.
        video_fps: f64 = 2.0,
        /// Maximum sampled frames per video. Default: 128.
        video_maxlen: u64 = 128,
        /// Use the audio track of video inputs. Default: false.
        use_audio_in_video: bool = false,
        /// Sampling rate of audio inputs, in Hz. Default: 16000.
        audio_sampling_rate: u64 = 16000,

        /// Folder to save the exported (merged) model to. Default: none.
        export_dir: Option<String> = None,
        /// Shard size of the exported model, in GB. Default: 5.
        export_size: u64 = 5,
        /// Device used for export: `cpu` or `auto`. Default: `cpu`.
        export_device: ExportDevice = ExportDevice::Cpu,
        /// Bits to quantize the exported model to. Default: none.
        export_quantization_bit: Option<u32> = None,
        /// Dataset used to calibrate export quantization. Default: none.
        export_quantization_dataset: Option<String> = None,
        /// Samples used for export quantization. Default: 128.
        export_quantization_nsamples: u64 = 128,
        /// Maximum input length for export quantization. Default: 1024.
        export_quantization_maxlen: u64 = 1024,
        /// Save `.bin` files instead of `.safetensors`. Default: false.
        export_legacy_format: bool = false,
        /// Hub repository to push the exported model to. Default: none.
        export_hub_model_id: Option<String> = None,
        /// ferrotune extension: what `ferrotune export` writes, `hf` (a Hugging Face folder,
        /// as LLaMA-Factory) or `gguf` (one GGUF file plus an Ollama `Modelfile`). Default: `hf`.
        export_format: ExportFormat = ExportFormat::Hf,
        /// ferrotune extension: tensor type of a GGUF export: `f32`, `f16`, `bf16`, `q8_0`,
        /// `q4_0` or `q4_1` (1-D tensors stay f32; with the 4-bit types the embeddings and the
        /// LM head are stored as `q8_0`). Ignored by `hf` exports, whose dtype is `infer_dtype`.
        /// Default: `f16`.
        export_quantization: ExportQuantization = ExportQuantization::F16,

        /// Maximum sequence length (prompt + response) of the vLLM engine. Default: 4096.
        vllm_maxlen: u64 = 4096,
        /// Fraction of GPU memory in (0,1) for the vLLM engine. Default: 0.7.
        vllm_gpu_util: f64 = 0.7,
        /// Disable CUDA graphs in vLLM. Default: false.
        vllm_enforce_eager: bool = false,
        /// Maximum LoRA rank in the vLLM engine. Default: 32.
        vllm_max_lora_rank: u64 = 32,
        /// Extra vLLM engine config (mapping or JSON string). Default: none.
        vllm_config: Option<Value> = None,
        /// Maximum sequence length (prompt + response) of the SGLang engine. Default: 4096.
        sglang_maxlen: u64 = 4096,
        /// Memory fraction (0-1) for the SGLang engine. Default: 0.7.
        sglang_mem_fraction: f64 = 0.7,
        /// Tensor parallel size of the SGLang engine (-1: all devices). Default: -1.
        sglang_tp_size: i64 = -1,
        /// Extra SGLang engine config (mapping or JSON string). Default: none.
        sglang_config: Option<Value> = None,
        /// SGLang LoRA GEMM backend: `triton` or `flashinfer`. Default: `triton`.
        sglang_lora_backend: SglangLoraBackend = SglangLoraBackend::Triton,

        /// Use the KTransformers AMX MoE backend for SFT. Default: false.
        use_kt: bool = false,
        /// Path to pre-quantized INT8 expert weights (`.kt` files). Default: none.
        kt_weight_path: Option<String> = None,
        /// Path to expert safetensors for online conversion. Default: none.
        kt_expert_checkpoint_path: Option<String> = None,
        /// Use GPU-side LoRA experts. Default: none.
        kt_use_lora_experts: Option<bool> = None,
        /// Number of GPU-side LoRA experts. Default: none.
        kt_lora_expert_num: Option<u64> = None,
        /// Intermediate size of GPU-side LoRA experts. Default: none.
        kt_lora_expert_intermediate_size: Option<u64> = None,
    }
}
