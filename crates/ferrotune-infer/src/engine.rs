//! The generation loop: one prefill of the (left-padded) prompts over a fresh [`KvCache`],
//! then one forward step per new token, each row choosing its token from its last logits
//! (`crate::sampling`) until it meets a stop id or its budget.
//!
//! Shapes: B prompts, T padded prompt length, V vocabulary.
//!
//! Batches follow transformers' `generate` for decoder-only models (`generation/utils.py`,
//! `_sample`, v5.24): prompts are left-padded with the pad id and masked; a finished row keeps
//! stepping with the pad id until every row is done, and its later tokens are dropped. Token
//! choices equal transformers' for greedy decoding (`tests/greedy_parity.rs`); sampling draws
//! from the same distribution with another generator (`StdRng`), so sampled tokens differ from
//! PyTorch's.

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::{Device, Tensor};
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_model::{CausalLM, KvCache};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{InferError, Result};
use crate::params::GenerationParams;
use crate::sampling::next_token;
use crate::stream::StreamDecoder;

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It produced this stop id (kept as the row's last token).
    Stop(u32),
    /// It reached its new-token budget (`max_new_tokens`, or `max_length`).
    Length,
    /// It reached the model's context, `max_position_embeddings`.
    ContextFull,
    /// The token callback asked to stop.
    Cancelled,
}

/// The new tokens of one prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Generated ids, the stop id included when the row stopped on one; no padding.
    pub token_ids: Vec<u32>,
    /// Why generation ended for this row.
    pub finish_reason: FinishReason,
}

/// Token counts and wall-clock times of one `generate` call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Real prompt tokens over all rows (padding not counted).
    pub prompt_tokens: usize,
    /// Seconds of the prefill forward pass and the choice of the first tokens.
    pub prefill_seconds: f64,
    /// Tokens generated over all rows, the first (chosen from the prefill) included.
    pub generated_tokens: usize,
    /// Tokens produced by decode steps (forward passes after the prefill), over unfinished rows.
    pub decode_tokens: usize,
    /// Seconds spent in decode steps, sampling included.
    pub decode_seconds: f64,
}

impl GenerationStats {
    /// Prompt tokens per second of the prefill; 0 when nothing was timed.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill_seconds)
    }

    /// Decode-step tokens per second; 0 when nothing was timed.
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.decode_tokens, self.decode_seconds)
    }
}

fn rate(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// One generated token, as passed to the streaming callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent {
    /// Index of the prompt in the batch.
    pub row: usize,
    /// The chosen id.
    pub token_id: u32,
    /// Its index among the row's new tokens (0 for the first).
    pub index: usize,
}

/// Streamed text of one prompt ([`Generator::generate_text`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TextGeneration {
    /// The new tokens and why they ended.
    pub generation: Generation,
    /// The decoded text of every new token (stop id included, so it shows unless
    /// `skip_special_tokens` removes it); equal to the concatenation of the streamed pieces.
    pub text: String,
    /// Token counts and times.
    pub stats: GenerationStats,
}

/// Generates with a model (adapters, if any, already applied to it) and its tokenizer.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ferrotune_hub::{gguf::GgufFile, tokenizer::TokenizerBundle};
/// use ferrotune_infer::{GenerationParams, Generator};
///
/// let gguf = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
/// let model = ferrotune_model::load_gguf(&gguf, &candle_core::Device::Cpu)?;
/// let generator = Generator::new(model, TokenizerBundle::from_gguf(&gguf)?);
/// let prompt = generator.tokenizer().encode("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n", false)?;
/// let out = generator.generate_text(&prompt, &GenerationParams::greedy(32), &mut |piece| print!("{piece}"))?;
/// println!("\n{:.1} tokens/s", out.stats.decode_tokens_per_second());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Generator {
    model: CausalLM,
    tokenizer: TokenizerBundle,
    /// Sorted, deduplicated ids that end a row.
    stop_token_ids: Vec<u32>,
    /// Id used for left padding and for finished rows.
    pad_token_id: u32,
}

impl Generator {
    /// A generator stopping on the tokenizer's eos and the model config's eos ids. Add the ids
    /// of `generation_config.json` (`eos_token_id`) and of the template's stop words with
    /// [`Generator::with_stop_token_ids`]. Padding uses the tokenizer's pad id, else the first
    /// stop id, else 0 (padding is masked, so only its id's repetition penalty depends on it).
    pub fn new(model: CausalLM, tokenizer: TokenizerBundle) -> Self {
        let mut stop: Vec<u32> = tokenizer
            .eos_token_id()
            .into_iter()
            .chain(model.config.eos_token_ids.iter().copied())
            .collect();
        stop.sort_unstable();
        stop.dedup();
        let pad_token_id = tokenizer
            .pad_token_id()
            .or_else(|| stop.first().copied())
            .unwrap_or(0);
        Self {
            model,
            tokenizer,
            stop_token_ids: stop,
            pad_token_id,
        }
    }

    /// Adds ids that end a row (generation_config eos ids, template stop words).
    pub fn with_stop_token_ids(mut self, ids: impl IntoIterator<Item = u32>) -> Self {
        self.stop_token_ids.extend(ids);
        self.stop_token_ids.sort_unstable();
        self.stop_token_ids.dedup();
        self
    }

    /// The ids that end a row, sorted.
    pub fn stop_token_ids(&self) -> &[u32] {
        &self.stop_token_ids
    }

    /// The id used for left padding and for finished rows.
    pub fn pad_token_id(&self) -> u32 {
        self.pad_token_id
    }

    /// The model.
    pub fn model(&self) -> &CausalLM {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TokenizerBundle {
        &self.tokenizer
    }

    /// New tokens for each prompt (token ids, e.g. a chat rendered by its template), batched
    /// with left padding. Returns one [`Generation`] per prompt, in order.
    ///
    /// Errors: see [`Generator::generate_streaming`].
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        params: &GenerationParams,
    ) -> Result<(Vec<Generation>, GenerationStats)> {
        self.generate_streaming(prompts, params, &mut |_| ControlFlow::Continue(()))
    }

    /// As [`Generator::generate`], calling `on_token` with every new token as soon as it is
    /// chosen (row by row within a step). `ControlFlow::Break` stops every unfinished row with
    /// [`FinishReason::Cancelled`].
    ///
    /// Errors: [`InferError::InvalidParam`] (see [`GenerationParams::validate`], and a prompt
    /// that fills `max_length`), [`InferError::EmptyPrompt`], [`InferError::TokenOutOfRange`],
    /// [`InferError::PromptTooLong`] when the padded prompts reach `max_position_embeddings`,
    /// and [`InferError::Model`] from the forward pass.
    pub fn generate_streaming(
        &self,
        prompts: &[Vec<u32>],
        params: &GenerationParams,
        on_token: &mut dyn FnMut(TokenEvent) -> ControlFlow<()>,
    ) -> Result<(Vec<Generation>, GenerationStats)> {
        params.validate()?;
        let mut stats = GenerationStats::default();
        if prompts.is_empty() {
            return Ok((Vec::new(), stats));
        }
        let cfg = &self.model.config;
        let width = self.check_prompts(prompts)?;
        let budget = params
            .new_token_budget(width)?
            .min(cfg.max_position_embeddings - width);
        let context_bound = params.new_token_budget(width)? > budget;

        let device = self.model.embed_tokens.device().clone();
        let b = prompts.len();
        let padded = prompts.iter().any(|p| p.len() < width);
        let mut input = Vec::with_capacity(b * width);
        let mut mask = Vec::with_capacity(b * width);
        // Ids the repetition penalty sees: transformers penalizes every id of `input_ids`,
        // padding included.
        let mut seen: Vec<Vec<u32>> = Vec::with_capacity(b);
        for p in prompts {
            let pad = width - p.len();
            input.extend(std::iter::repeat_n(self.pad_token_id, pad).chain(p.iter().copied()));
            mask.extend(std::iter::repeat_n(0u32, pad).chain(std::iter::repeat_n(1, p.len())));
            let mut s = p.clone();
            if pad > 0 {
                s.push(self.pad_token_id);
            }
            seen.push(s);
            stats.prompt_tokens += p.len();
        }

        let start = Instant::now();
        let mut cache = KvCache::new(cfg);
        let ids = Tensor::from_vec(input, (b, width), &device)?;
        let mask = if padded {
            Some(Tensor::from_vec(mask, (b, width), &device)?)
        } else {
            None
        };
        let hidden = self
            .model
            .forward_hidden_with_cache(&ids, mask.as_ref(), &mut cache)?;
        let mut logits = self.last_logits(&hidden)?;

        let mut rng = StdRng::seed_from_u64(params.seed);
        let mut out: Vec<Generation> = (0..b)
            .map(|_| Generation {
                token_ids: Vec::new(),
                finish_reason: FinishReason::Length,
            })
            .collect();
        let mut done = vec![false; b];
        let mut cancelled = false;
        for step in 0..budget {
            if step > 0 {
                let next: Vec<u32> = (0..b)
                    .map(|r| match (done[r], out[r].token_ids.last()) {
                        (false, Some(&t)) => t,
                        _ => self.pad_token_id,
                    })
                    .collect();
                let x = Tensor::from_vec(next, (b, 1), &device)?;
                let hidden = self.model.forward_hidden_with_cache(&x, None, &mut cache)?;
                logits = self.last_logits(&hidden)?;
            }
            for (r, row_logits) in logits.iter_mut().enumerate() {
                if done[r] {
                    continue;
                }
                let token = next_token(row_logits, &seen[r], params, &mut rng);
                seen[r].push(token);
                out[r].token_ids.push(token);
                if step > 0 {
                    stats.decode_tokens += 1;
                }
                let event = TokenEvent {
                    row: r,
                    token_id: token,
                    index: step,
                };
                if self.stop_token_ids.binary_search(&token).is_ok() {
                    out[r].finish_reason = FinishReason::Stop(token);
                    done[r] = true;
                }
                if on_token(event).is_break() {
                    cancelled = true;
                }
            }
            if step == 0 {
                stats.prefill_seconds = start.elapsed().as_secs_f64();
            }
            if cancelled || done.iter().all(|&d| d) {
                break;
            }
        }
        stats.decode_seconds = (start.elapsed().as_secs_f64() - stats.prefill_seconds).max(0.0);
        for (g, &d) in out.iter_mut().zip(&done) {
            if !d {
                g.finish_reason = if cancelled {
                    FinishReason::Cancelled
                } else if context_bound {
                    FinishReason::ContextFull
                } else {
                    FinishReason::Length
                };
            }
            stats.generated_tokens += g.token_ids.len();
        }
        tracing::debug!(
            rows = b,
            prompt_tokens = stats.prompt_tokens,
            generated_tokens = stats.generated_tokens,
            prefill_tokens_per_second = stats.prefill_tokens_per_second(),
            decode_tokens_per_second = stats.decode_tokens_per_second(),
            "generation finished"
        );
        Ok((out, stats))
    }

    /// Generates for one prompt and streams its text: `on_text` receives each stable piece of
    /// decoded text (never a broken UTF-8 character; see [`StreamDecoder`]), with
    /// `params.skip_special_tokens`.
    ///
    /// Errors: as [`Generator::generate_streaming`], plus [`InferError::Tokenizer`] and
    /// [`InferError::Detokenize`] from decoding.
    pub fn generate_text(
        &self,
        prompt_ids: &[u32],
        params: &GenerationParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<TextGeneration> {
        let mut decoder = StreamDecoder::new(&self.tokenizer, params.skip_special_tokens);
        let mut text = String::new();
        let mut failure = None;
        let mut on_token = |ev: TokenEvent| match decoder.push(ev.token_id) {
            Ok(Some(piece)) => {
                on_text(&piece);
                text.push_str(&piece);
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        };
        let (mut gens, stats) =
            self.generate_streaming(&[prompt_ids.to_vec()], params, &mut on_token)?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(piece) = decoder.finish()? {
            on_text(&piece);
            text.push_str(&piece);
        }
        let generation = gens.pop().ok_or_else(|| InferError::InvalidParam {
            key: "prompt",
            value: "[]".into(),
            msg: "no generation came back for the prompt".into(),
        })?;
        Ok(TextGeneration {
            generation,
            text,
            stats,
        })
    }

    /// Checks every prompt and returns the padded width T.
    fn check_prompts(&self, prompts: &[Vec<u32>]) -> Result<usize> {
        let cfg = &self.model.config;
        let mut width = 0;
        for (row, p) in prompts.iter().enumerate() {
            if p.is_empty() {
                return Err(InferError::EmptyPrompt { row });
            }
            if let Some(&token) = p.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                return Err(InferError::TokenOutOfRange {
                    row,
                    token,
                    vocab_size: cfg.vocab_size,
                });
            }
            width = width.max(p.len());
        }
        if width >= cfg.max_position_embeddings {
            let row = prompts.iter().position(|p| p.len() == width).unwrap_or(0);
            return Err(InferError::PromptTooLong {
                row,
                len: width,
                limit: cfg.max_position_embeddings,
            });
        }
        Ok(width)
    }

    /// Logits of the last position of each row: hidden `[B, T, C]` → `B` rows of `[V]` f32.
    fn last_logits(&self, hidden: &Tensor) -> Result<Vec<Vec<f32>>> {
        let t = hidden.dim(1)?;
        let last = hidden.narrow(1, t - 1, 1)?;
        let logits = self.model.logits(&last)?.squeeze(1)?; // [B, V]
        Ok(logits.to_device(&Device::Cpu)?.to_vec2::<f32>()?)
    }
}
