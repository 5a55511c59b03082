//! Data arguments: datasets, prompt template, tokenization and mixing. Mirrors LLaMA-Factory
//! v0.9.5 `hparams/data_args.py`; help texts paraphrase its `help` strings.

arg_enum! {
    /// How several datasets are mixed.
    pub enum MixStrategy {
        /// Concatenate them.
        Concat = "concat",
        /// Interleave, stopping when the first dataset is exhausted (undersampling).
        InterleaveUnder = "interleave_under",
        /// Interleave until every dataset is exhausted (oversampling).
        InterleaveOver = "interleave_over",
        /// Interleave, sampling without replacement.
        InterleaveOnce = "interleave_once",
    }
}

arg_group! {
    /// Arguments pertaining to the data used for training and evaluation.
    pub struct DataArguments ("data arguments") {
        /// Chat template used to build prompts in training and inference. Default: none.
        template: Option<String> = None,
        /// Training dataset name(s) from `dataset_info.json` (comma list). Default: none.
        dataset: Vec<String> = Vec::new(),
        /// Evaluation dataset name(s) (comma list). Default: none.
        eval_dataset: Vec<String> = Vec::new(),
        /// Folder holding the datasets and `dataset_info.json`. Default: `data`.
        dataset_dir: String = "data".into(),
        /// Folder holding images, videos or audios. Default: none (`dataset_dir`).
        media_dir: Option<String> = None,
        /// Maximum length of a tokenized example, in tokens. LLaMA-Factory trains packed
        /// sequences to `cutoff_len - 1`; the data pipeline applies that, this value stays as
        /// written. Default: 2048.
        cutoff_len: usize = 2048,
        /// Compute the loss on prompt tokens too (no prompt mask). Default: false.
        train_on_prompt: bool = false,
        /// Mask the history and train on the last turn only. Default: false.
        mask_history: bool = false,
        /// Stream the dataset instead of loading it. Default: false.
        streaming: bool = false,
        /// Size of the shuffle buffer in streaming mode. Default: 16384.
        buffer_size: usize = 16384,
        /// Dataset mixing: `concat`, `interleave_under`, `interleave_over` or `interleave_once`.
        /// Default: `concat`.
        mix_strategy: MixStrategy = MixStrategy::Concat,
        /// Sampling probability of each dataset when interleaving (comma list of numbers).
        /// Default: none.
        interleave_probs: Vec<f64> = Vec::new(),
        /// Overwrite the cached training and evaluation sets. Default: false.
        overwrite_cache: bool = false,
        /// Examples per group in preprocessing. Default: 1000.
        preprocessing_batch_size: usize = 1000,
        /// Processes used for preprocessing. Default: none.
        preprocessing_num_workers: Option<usize> = None,
        /// Truncate each dataset to this many examples (debugging). Default: none.
        max_samples: Option<usize> = None,
        /// Beams used in evaluation; passed to generation. Default: none.
        eval_num_beams: Option<u32> = None,
        /// Ignore pad-token labels in the loss. Default: true.
        ignore_pad_token_for_loss: bool = true,
        /// Validation split: a fraction in `[0,1)` or an integer number of examples. Default: 0.0.
        val_size: f64 = 0.0,
        /// Evaluate on each dataset separately. Default: false.
        eval_on_each_dataset: bool = false,
        /// Pack sequences in training. Unset means on for `stage: pt` only; `neat_packing`
        /// turns it on. Resolved at load time. Default: false (resolved).
        packing: bool = false,
        /// Pack sequences without cross-attention between packed examples. Default: false.
        neat_packing: bool = false,
        /// Tool format used to build function-calling examples. Default: none (template's).
        tool_format: Option<String> = None,
        /// Replace the template's default system message. Default: none.
        default_system: Option<String> = None,
        /// Enable thinking mode for reasoning models. Default: true.
        enable_thinking: Option<bool> = Some(true),
        /// Keep the thinking content of earlier turns for reasoning models. Default: false.
        preserve_thinking: bool = false,
        /// Folder to save the tokenized datasets to, or load them from when it exists.
        /// Default: none.
        tokenized_path: Option<String> = None,
        /// Datasets live on a file system shared by all nodes. Default: false.
        data_shared_file_system: bool = false,
    }
}
