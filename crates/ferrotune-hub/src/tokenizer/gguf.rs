//! Rebuilding a tokenizer from GGUF metadata (`tokenizer.ggml.*`, llama.cpp's key names).
//!
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE from `tokens` and `merges` (no byte
//!   fallback). The pre-tokenizer is chosen by `tokenizer.ggml.pre`, matching the
//!   `tokenizer.json` that `shared/tools/gguf_to_hf.py` writes and the split regexes of
//!   transformers 5.x `integrations/gguf/gguf_tokenizer_mapping.py`.
//! - `tokenizer.ggml.model = "llama"`: SentencePiece-style BPE with byte fallback, as
//!   transformers' `LlamaTokenizer` builds it (`models/llama/tokenization_llama.py`): Metaspace
//!   `▁` pre-tokenizer, merges from the file or derived from `tokenizer.ggml.scores`.
//!
//! Tokens whose `tokenizer.ggml.token_type` is 2 (unknown, e.g. SentencePiece's `<unk>`), 3
//! (control) or 4 (user-defined) are added as special tokens that are matched before
//! normalization, as `gguf_to_hf.py` does for 3 and 4 and llama.cpp's tokenizer does for all
//! three (`cache_special_tokens` in `llama-vocab.cpp`).

use super::TokenizerBundle;
use crate::error::{HubError, Result};
use crate::gguf::GgufFile;
use std::collections::HashMap;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Replace, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// Qwen2's split regex (transformers `models/qwen2/tokenization_qwen2.py` `PRETOKENIZE_REGEX`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split regex (digits in groups of up to three).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The `tokenizer.ggml.pre` values we know how to build.
const KNOWN_PRE: &str = "smollm, qwen2, llama-bpe, llama3, gpt2, default";
/// SentencePiece's word-boundary marker.
const SPIECE_UNDERLINE: char = '\u{2581}';

/// See [`TokenizerBundle::from_gguf`].
pub(super) fn build(file: &GgufFile) -> Result<TokenizerBundle> {
    let err = |msg: String| HubError::Tokenizer {
        path: file.path().to_path_buf(),
        msg,
    };
    let model = file.get_str("tokenizer.ggml.model")?;
    let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
    let token_types = match file.get("tokenizer.ggml.token_type") {
        Some(_) => file.get_i32_array("tokenizer.ggml.token_type")?,
        None => Vec::new(),
    };
    if !token_types.is_empty() && token_types.len() != tokens.len() {
        return Err(err(format!(
            "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
            token_types.len(),
            tokens.len()
        )));
    }
    let token_of = |key: &str| -> Result<Option<String>> {
        let Some(id) = file.get_u32_opt(key)? else {
            return Ok(None);
        };
        match tokens.get(id as usize) {
            Some(t) => Ok(Some(t.to_string())),
            None => Err(err(format!(
                "`{key}` is {id}, outside the vocabulary of {} tokens",
                tokens.len()
            ))),
        }
    };
    let unk_token = token_of("tokenizer.ggml.unknown_token_id")?;
    let (mut tokenizer, default_add_bos) = match model {
        "gpt2" => (byte_level_bpe(file, &tokens)?, false),
        "llama" => (
            sentencepiece_bpe(file, &tokens, unk_token.as_deref())?,
            true,
        ),
        other => {
            return Err(err(format!(
                "unsupported tokenizer.ggml.model {other:?}; supported: gpt2, llama"
            )))
        }
    };
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(&token_types)
        .filter(|(_, &ty)| matches!(ty, 2..=4))
        .map(|(t, _)| AddedToken::from(t.to_string(), true).normalized(false))
        .collect();
    tokenizer.add_special_tokens(&specials);
    let arch = file.architecture()?;
    let context = file.get_u32_opt(&format!("{arch}.context_length"))?;
    let mut bundle = TokenizerBundle {
        tokenizer,
        bos_token: token_of("tokenizer.ggml.bos_token_id")?,
        eos_token: token_of("tokenizer.ggml.eos_token_id")?,
        pad_token: token_of("tokenizer.ggml.padding_token_id")?,
        unk_token,
        add_bos_token: file
            .get_bool_opt("tokenizer.ggml.add_bos_token")?
            .unwrap_or(default_add_bos),
        add_eos_token: file
            .get_bool_opt("tokenizer.ggml.add_eos_token")?
            .unwrap_or(false),
        chat_template: file
            .get_str_opt("tokenizer.chat_template")?
            .map(str::to_owned),
        additional_special_tokens: specials.iter().map(|t| t.content.clone()).collect(),
        model_max_length: context.map(|c| c as usize),
        source: file.path().to_path_buf(),
        fast: Default::default(),
    };
    // A GGUF always states (or defaults) add_bos_token, so the template is always installed.
    bundle.apply_bos_eos(true)?;
    Ok(bundle)
}

/// `tokenizer.ggml.merges` as pairs; each entry is `"left right"`.
fn file_merges(file: &GgufFile) -> Result<Vec<(String, String)>> {
    let key = "tokenizer.ggml.merges";
    file.get_str_array(key)?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| HubError::Tokenizer {
                    path: file.path().to_path_buf(),
                    msg: format!("{key}[{i}] = {m:?} is not two tokens separated by a space"),
                })
        })
        .collect()
}

fn vocab(tokens: &[&str]) -> Vocab {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect()
}

fn tokenizer_error(file: &GgufFile, what: &str, e: impl std::fmt::Display) -> HubError {
    HubError::Tokenizer {
        path: file.path().to_path_buf(),
        msg: format!("{what}: {e}"),
    }
}

/// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
fn byte_level_bpe(file: &GgufFile, tokens: &[&str]) -> Result<Tokenizer> {
    let bpe = BPE::builder()
        .vocab_and_merges(vocab(tokens), file_merges(file)?)
        .build()
        .map_err(|e| tokenizer_error(file, "building the bpe model", e))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let pre = file.get_str_opt("tokenizer.ggml.pre")?.unwrap_or("default");
    // ByteLevel::new(add_prefix_space, trim_offsets, use_regex)
    let byte_level = |use_regex| PreTokenizerWrapper::from(ByteLevel::new(false, true, use_regex));
    let split = |regex: &str| -> Result<PreTokenizerWrapper> {
        Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(PreTokenizerWrapper::from)
        .map_err(|e| tokenizer_error(file, "compiling the split regex", e))
    };
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level(true)]).into(),
        "qwen2" => {
            tokenizer.with_normalizer(Some(NFC));
            Sequence::new(vec![split(QWEN2_SPLIT)?, byte_level(false)]).into()
        }
        "llama-bpe" | "llama3" => {
            Sequence::new(vec![split(LLAMA3_SPLIT)?, byte_level(false)]).into()
        }
        "gpt2" | "default" => byte_level(true),
        other => {
            return Err(HubError::Tokenizer {
                path: file.path().to_path_buf(),
                msg: format!("unsupported tokenizer.ggml.pre {other:?}; supported: {KNOWN_PRE}"),
            })
        }
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    Ok(tokenizer)
}

/// SentencePiece-style BPE (`tokenizer.ggml.model = "llama"`), as transformers' `LlamaTokenizer`.
fn sentencepiece_bpe(file: &GgufFile, tokens: &[&str], unk: Option<&str>) -> Result<Tokenizer> {
    let merges = match file.get("tokenizer.ggml.merges") {
        Some(_) => file_merges(file)?,
        None => {
            let scores = file.get_f32_array("tokenizer.ggml.scores")?;
            if scores.len() != tokens.len() {
                return Err(HubError::Tokenizer {
                    path: file.path().to_path_buf(),
                    msg: format!(
                        "tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}",
                        scores.len(),
                        tokens.len()
                    ),
                });
            }
            merges_from_scores(tokens, &scores)
        }
    };
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab(tokens), merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk.to_string());
    }
    let bpe = builder
        .build()
        .map_err(|e| tokenizer_error(file, "building the bpe model", e))?;
    let add_prefix_space = file
        .get_bool_opt("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let scheme = if add_prefix_space {
        PrependScheme::First
    } else {
        PrependScheme::Never
    };
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Metaspace::new(SPIECE_UNDERLINE, scheme, false)));
    let replace = Replace::new(SPIECE_UNDERLINE.to_string(), " ")
        .map_err(|e| tokenizer_error(file, "building the decoder", e))?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        replace.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_prefix_space {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// BPE merges implied by a SentencePiece vocabulary and its scores.
///
/// Every split of a token into two vocabulary tokens is a merge ranked by the whole token's
/// score, best first; ties keep vocabulary order and break on the lengths of the two halves.
/// This is the rule of transformers' `generate_merges` (`tokenization_utils_base.py`), which
/// its GGUF loader uses for files that carry scores but no merges.
fn merges_from_scores(tokens: &[&str], scores: &[f32]) -> Vec<(String, String)> {
    let index: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let mut score_of: HashMap<&str, f32> = HashMap::with_capacity(tokens.len());
    let mut order = Vec::with_capacity(tokens.len());
    for (&t, &s) in tokens.iter().zip(scores) {
        if score_of.insert(t, s).is_none() {
            order.push(t);
        }
    }
    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    for token in order {
        let score = score_of.get(token).copied().unwrap_or(0.0);
        let mut local: Vec<(&str, &str, f32)> = token
            .char_indices()
            .skip(1)
            .map(|(at, _)| token.split_at(at))
            .filter(|(l, r)| index.contains_key(l) && index.contains_key(r))
            .map(|(l, r)| (l, r, score))
            .collect();
        local.sort_by_key(|(l, r, _)| (index.get(l), index.get(r)));
        merges.extend(local);
    }
    let chars = |s: &str| s.chars().count();
    // Stable sort, descending: equal keys keep their order, as Python's sort(reverse=True).
    merges.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| chars(b.0).cmp(&chars(a.0)))
            .then_with(|| chars(b.1).cmp(&chars(a.1)))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}
