//! Generating arguments: decoding parameters for chat, API and `predict_with_generate`.
//! Mirrors LLaMA-Factory v0.9.5 `hparams/generating_args.py`; help texts paraphrase its
//! `help` strings. (`default_system` and `enable_thinking` live in the data arguments in
//! v0.9.5.)

arg_group! {
    /// Arguments pertaining to decoding.
    pub struct GeneratingArguments ("generating arguments") {
        /// Sample the next token; greedy decoding otherwise. Default: true.
        do_sample: bool = true,
        /// Temperature applied to the next-token logits. Default: 0.95.
        temperature: f64 = 0.95,
        /// Nucleus sampling: keep the smallest set of tokens whose probabilities add up to
        /// `top_p`. Default: 0.7.
        top_p: f64 = 0.7,
        /// Keep only the `top_k` most probable tokens. Default: 50.
        top_k: u32 = 50,
        /// Beams in beam search; 1 means no beam search. Default: 1.
        num_beams: u32 = 1,
        /// Maximum length of prompt plus generated tokens; `max_new_tokens` takes precedence
        /// when it is > 0. Default: 1024.
        max_length: usize = 1024,
        /// Maximum number of generated tokens, not counting the prompt. Default: 1024.
        max_new_tokens: usize = 1024,
        /// Repetition penalty; 1.0 means none. Default: 1.0.
        repetition_penalty: f64 = 1.0,
        /// Exponential length penalty in beam search. Default: 1.0.
        length_penalty: f64 = 1.0,
        /// Remove special tokens when decoding. Default: true.
        skip_special_tokens: bool = true,
    }
}
