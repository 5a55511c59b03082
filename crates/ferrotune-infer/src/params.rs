//! Decoding parameters: LLaMA-Factory's generating arguments (v0.9.5
//! `hparams/generating_args.py`), their defaults, and the adjustments its HF engine makes before
//! calling transformers' `generate` (`chat/hf_engine.py`, `_process_args`).

use ferrotune_config::args::GeneratingArguments;

use crate::error::{InferError, Result};

/// How to decode. Field names and defaults are LLaMA-Factory's generating keys.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    /// Sample the next token; greedy (argmax) otherwise. Default: true.
    pub do_sample: bool,
    /// Divides the logits before sampling; must be > 0 when sampling. Default: 0.95.
    pub temperature: f64,
    /// Nucleus sampling: keep the most probable tokens whose probabilities add up to `top_p`,
    /// in `[0, 1]`; 1 disables it. Default: 0.7.
    pub top_p: f64,
    /// Keep the `top_k` most probable tokens; 0 disables it. Default: 50.
    pub top_k: usize,
    /// Beams; only 1 is built (beam search is not). Default: 1.
    pub num_beams: usize,
    /// Limit on prompt plus new tokens (the padded prompt, in a batch), used only when
    /// `max_new_tokens` is 0. Default: 1024.
    pub max_length: usize,
    /// New tokens per prompt; 0 means "use `max_length`". Default: 1024.
    pub max_new_tokens: usize,
    /// CTRL's repetition penalty (Keskar et al. 2019, §4.1), > 0; 1 means none. Default: 1.0.
    pub repetition_penalty: f64,
    /// Beam-search length penalty; ignored, since `num_beams` is 1. Default: 1.0.
    pub length_penalty: f64,
    /// Leave special tokens out of decoded text. Default: true.
    pub skip_special_tokens: bool,
    /// Seed of the sampling generator (`StdRng`); the same seed, prompts and parameters give
    /// the same tokens. Default: 42 (LLaMA-Factory's `seed`).
    pub seed: u64,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self::from_args(&GeneratingArguments::default(), 42)
    }
}

impl GenerationParams {
    /// Greedy decoding of at most `max_new_tokens` tokens, other keys at their defaults.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            do_sample: false,
            max_new_tokens,
            ..Self::default()
        }
    }

    /// The parameters of a config's generating arguments and `seed`, adjusted as LLaMA-Factory's
    /// HF engine does: a temperature of 0 turns sampling off.
    pub fn from_args(args: &GeneratingArguments, seed: u64) -> Self {
        Self {
            do_sample: args.do_sample && args.temperature != 0.0,
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: args.top_k as usize,
            num_beams: args.num_beams as usize,
            max_length: args.max_length,
            max_new_tokens: args.max_new_tokens,
            repetition_penalty: args.repetition_penalty,
            length_penalty: args.length_penalty,
            skip_special_tokens: args.skip_special_tokens,
            seed,
        }
    }

    /// Checks every value generation relies on, as transformers' `GenerationConfig.validate`
    /// and logits warpers do (`generation/logits_process.py`).
    ///
    /// Errors: [`InferError::InvalidParam`] naming the key: `num_beams` ≠ 1, `temperature` ≤ 0
    /// or not finite while sampling, `top_p` outside `[0, 1]`, `repetition_penalty` ≤ 0, or
    /// both `max_new_tokens` and `max_length` 0.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, msg: &str| {
            Err(InferError::InvalidParam {
                key,
                value,
                msg: msg.to_string(),
            })
        };
        if self.num_beams != 1 {
            return bad(
                "num_beams",
                self.num_beams.to_string(),
                "beam search is not built; hint: set num_beams: 1",
            );
        }
        if self.do_sample && !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(
                "temperature",
                self.temperature.to_string(),
                "sampling needs a temperature > 0; hint: set do_sample: false for greedy decoding",
            );
        }
        if self.do_sample && !(0.0..=1.0).contains(&self.top_p) {
            return bad(
                "top_p",
                self.top_p.to_string(),
                "must lie in [0, 1]; hint: 1.0 disables nucleus sampling",
            );
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(
                "repetition_penalty",
                self.repetition_penalty.to_string(),
                "must be > 0; hint: 1.0 means no penalty",
            );
        }
        if self.max_new_tokens == 0 && self.max_length == 0 {
            return bad(
                "max_new_tokens",
                "0".into(),
                "with max_length 0 too, no token may be generated; hint: set max_new_tokens > 0",
            );
        }
        Ok(())
    }

    /// New tokens allowed after a prompt of `prompt_len` tokens (padded width in a batch):
    /// `max_new_tokens`, or `max_length - prompt_len` when `max_new_tokens` is 0 (LLaMA-Factory's
    /// `GeneratingArguments.to_dict` keeps only one of the two).
    ///
    /// Errors: [`InferError::InvalidParam`] on `max_length` when the prompt already fills it.
    pub fn new_token_budget(&self, prompt_len: usize) -> Result<usize> {
        if self.max_new_tokens > 0 {
            return Ok(self.max_new_tokens);
        }
        match self.max_length.checked_sub(prompt_len) {
            Some(n) if n > 0 => Ok(n),
            _ => Err(InferError::InvalidParam {
                key: "max_length",
                value: self.max_length.to_string(),
                msg: format!(
                    "the prompt has {prompt_len} tokens, leaving no room; hint: raise max_length or set max_new_tokens"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_llamafactory_generating_defaults() {
        let p = GenerationParams::default();
        assert!(p.do_sample);
        assert_eq!(p.temperature, 0.95);
        assert_eq!(p.top_p, 0.7);
        assert_eq!(p.top_k, 50);
        assert_eq!(p.num_beams, 1);
        assert_eq!(p.max_length, 1024);
        assert_eq!(p.max_new_tokens, 1024);
        assert_eq!(p.repetition_penalty, 1.0);
        assert!(p.skip_special_tokens);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn zero_temperature_means_greedy_and_bad_values_name_their_key() {
        let args = GeneratingArguments {
            temperature: 0.0,
            ..GeneratingArguments::default()
        };
        let p = GenerationParams::from_args(&args, 1);
        assert!(!p.do_sample);
        assert!(p.validate().is_ok());

        let beams = GenerationParams {
            num_beams: 4,
            ..GenerationParams::default()
        };
        let msg = beams.validate().unwrap_err().to_string();
        assert!(
            msg.contains("`num_beams` = 4") && msg.contains("num_beams: 1"),
            "{msg}"
        );

        let top_p = GenerationParams {
            top_p: 1.5,
            ..GenerationParams::default()
        };
        assert!(top_p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`top_p`"));
    }

    #[test]
    fn budget_uses_max_length_only_without_max_new_tokens() {
        let p = GenerationParams {
            max_new_tokens: 0,
            max_length: 10,
            ..GenerationParams::default()
        };
        assert_eq!(p.new_token_budget(4).unwrap(), 6);
        let msg = p.new_token_budget(10).unwrap_err().to_string();
        assert!(msg.contains("`max_length` = 10"), "{msg}");
        assert_eq!(
            GenerationParams::greedy(7).new_token_budget(4000).unwrap(),
            7
        );
    }
}
