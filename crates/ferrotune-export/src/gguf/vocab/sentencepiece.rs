//! SentencePiece-style BPE tokenizers (Llama 2, Mistral, Gemma, Phi-3) as llama.cpp's `llama`
//! vocabulary (`LLAMA_VOCAB_TYPE_SPM`), from a `tokenizer.json` alone.
//!
//! Such a `tokenizer.json` (what transformers' `LlamaTokenizer`/`GemmaTokenizer` conversion of
//! a SentencePiece model writes) has a BPE model with `byte_fallback: true`, the word marker `▁`
//! (a Metaspace pre-tokenizer, or a normalizer replacing `" "` by `"▁"`, with or without a
//! prepended `▁`) and the 256 byte tokens `<0x00>`…`<0xFF>`.
//!
//! What is written, following llama.cpp's `convert_hf_to_gguf.py` (`_set_vocab_sentencepiece`,
//! `_set_vocab_llama_hf`, `GemmaModel.set_vocab`) and gguf-py's `LlamaHfVocab`:
//! - `tokenizer.ggml.model = "llama"`, `tokenizer.ggml.pre = "default"`;
//! - token types ([`token_type`]): 6 byte for `<0xNN>`, 2 unknown for the unknown token, 3
//!   control for special added tokens, 4 user-defined for other added tokens (their `▁` written
//!   as spaces, the converter's "pre-normalize user-defined spaces"), 1 normal, and 5 unused for
//!   `[PAD<id>]` filling ids the tokenizer does not use;
//! - `tokenizer.ggml.scores` ([`scores`]): the converter reads them from `tokenizer.model`; from
//!   `tokenizer.json` alone (`LlamaHfVocab`) it writes the placeholder `-1000.0` for every
//!   token, with which llama.cpp's SentencePiece tokenizer, which merges the adjacent pair whose
//!   concatenation has the highest score, no longer follows the merge order. We derive them
//!   from the merges instead: the token made by merge rank `r` (its first) scores `-r`, so the
//!   best-ranked merge has the highest score, as in a SentencePiece BPE model, whose merges
//!   transformers generated from the scores in the first place;
//! - `tokenizer.ggml.merges` too (llama.cpp ignores them for `llama`; ferrotune's and
//!   transformers' GGUF tokenizers use them instead of re-deriving merges from the scores);
//! - `tokenizer.ggml.add_space_prefix`: whether a `▁` is put before the text (Llama 2 and
//!   Mistral yes, Gemma no: the converter writes `false` for Gemma);
//! - `tokenizer.ggml.eot_token_id` for `<end_of_turn>` when the vocabulary has it (Gemma's
//!   converter sets it).
//!
//! A known difference that no metadata can express: llama.cpp puts a `▁` before every text
//! segment, also one that starts with a space or follows an added token (the behaviour of the
//! older `legacy` tokenizer.json form, normalizer `Prepend("▁")` + `Replace(" ", "▁")`), while a
//! Metaspace pre-tokenizer with `prepend_scheme: first` puts one only at the very start of the
//! text and not before a space. The two give the same ids on other text
//! (`tools/make_spm_tokenizer_fixture.py` measures both).

use std::collections::HashMap;

use ferrotune_hub::gguf::GgufValue;
use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::Value;

use super::{merge_pairs, token_table, CONTROL, NORMAL, UNUSED, USER_DEFINED};
use crate::error::{ExportError, Result};

/// GGUF token type of the unknown token (`gguf-py` `TokenType.UNKNOWN`).
const UNKNOWN: i32 = 2;
/// GGUF token type of the byte tokens `<0xNN>` (`gguf-py` `TokenType.BYTE`).
const BYTE: i32 = 6;
/// Score of added tokens (control and user-defined), as the converter writes them.
const ADDED_SCORE: f32 = -1000.0;
/// Score of `[PAD<id>]` filler tokens, the converter's default for ids SentencePiece lacks.
const UNUSED_SCORE: f32 = -10000.0;
/// SentencePiece's word-boundary marker.
const SPIECE_UNDERLINE: &str = "\u{2581}";

/// Whether `json` (a parsed `tokenizer.json`) is a SentencePiece-style BPE: `model.type` BPE
/// with `byte_fallback: true`.
pub(super) fn is_sentencepiece_bpe(json: &Value) -> bool {
    json["model"]["type"].as_str() == Some("BPE") && json["model"]["byte_fallback"] == true
}

/// Whether `text` is a byte token `<0xNN>` (two upper- or lower-case hex digits).
fn is_byte_token(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 6
        && b.starts_with(b"<0x")
        && b[5] == b'>'
        && b[3..5].iter().all(u8::is_ascii_hexdigit)
}

/// Whether `v` is a `{"String": s}` pattern.
fn is_string_pattern(v: &Value, s: &str) -> bool {
    v["String"].as_str() == Some(s)
}

/// Whether `v` is a normalizer replacing `" "` by `"▁"`.
fn is_space_to_marker(v: &Value) -> bool {
    v["type"] == "Replace"
        && is_string_pattern(&v["pattern"], " ")
        && v["content"] == SPIECE_UNDERLINE
}

/// llama.cpp's `add_space_prefix` for the word-marker handling of `json`, or a description of
/// the unsupported normalizer/pre-tokenizer.
///
/// Accepted: a Metaspace pre-tokenizer (`▁`, `split: false`, no normalizer; prefix unless
/// `prepend_scheme` is `never`); no pre-tokenizer (or Gemma's `Split` on `" "`, a no-op once
/// spaces are `▁`) with a normalizer `Replace(" ", "▁")` (no prefix) or
/// `Sequence[Prepend("▁"), Replace(" ", "▁")]` (prefix).
fn space_prefix(json: &Value) -> std::result::Result<bool, String> {
    let pre = &json["pre_tokenizer"];
    let norm = &json["normalizer"];
    if pre["type"] == "Metaspace" {
        if pre["replacement"] != SPIECE_UNDERLINE {
            return Err(format!(
                "Metaspace replacement {} is not \"▁\"",
                pre["replacement"]
            ));
        }
        if pre["split"] != false {
            return Err(
                "Metaspace with `split: true` (llama.cpp does not split words at ▁)".into(),
            );
        }
        if !norm.is_null() {
            return Err(format!(
                "a normalizer ({}) besides the Metaspace pre-tokenizer",
                norm["type"]
            ));
        }
        return match pre["prepend_scheme"].as_str() {
            Some("first") | Some("always") => Ok(true),
            Some("never") => Ok(false),
            other => Err(format!("Metaspace prepend_scheme {other:?}")),
        };
    }
    let gemma_split = pre["type"] == "Split"
        && is_string_pattern(&pre["pattern"], " ")
        && pre["behavior"] == "MergedWithPrevious";
    if !(pre.is_null() || gemma_split) {
        return Err(format!("pre-tokenizer {}", pre["type"]));
    }
    if is_space_to_marker(norm) {
        return Ok(false);
    }
    if norm["type"] == "Sequence" {
        if let Some([prepend, replace]) = norm["normalizers"].as_array().map(Vec::as_slice) {
            if prepend["type"] == "Prepend"
                && prepend["prepend"] == SPIECE_UNDERLINE
                && is_space_to_marker(replace)
            {
                return Ok(true);
            }
        }
    }
    Err(format!("normalizer {norm}"))
}

/// GGUF token type of base-vocabulary token `text`: byte, unknown (`unk`) or normal; added
/// tokens are typed by the caller (control when special, else user-defined).
fn token_type(text: &str, unk: Option<&str>) -> i32 {
    if is_byte_token(text) {
        BYTE
    } else if unk == Some(text) {
        UNKNOWN
    } else {
        NORMAL
    }
}

/// `tokenizer.ggml.scores` of `tokens` (text and type per id): the token first made by merge
/// rank `r` scores `-r`; other normal tokens (single characters, which never result from a
/// merge) score `-merges.len()`, below every merge; bytes 0, like SentencePiece; added tokens
/// `-1000` and fillers `-10000`, as the converter writes them.
fn scores(tokens: &[(String, i32)], merges: &[(String, String)]) -> Vec<f32> {
    let mut first_rank: HashMap<String, usize> = HashMap::with_capacity(merges.len());
    for (rank, (a, b)) in merges.iter().enumerate() {
        first_rank.entry(format!("{a}{b}")).or_insert(rank);
    }
    let lowest = -(merges.len() as f32);
    tokens
        .iter()
        .map(|(text, ty)| match *ty {
            BYTE => 0.0,
            NORMAL => first_rank.get(text).map_or(lowest, |&r| 0.0 - r as f32),
            UNUSED => UNUSED_SCORE,
            _ => ADDED_SCORE,
        })
        .collect()
}

/// Vocabulary metadata (`tokenizer.ggml.model`, `pre`, `tokens`, `scores`, `token_type`,
/// `merges`, `add_space_prefix`, and `eot_token_id` when `<end_of_turn>` exists) of the
/// SentencePiece-style `json` for a model of `vocab_size` rows. See the module doc.
///
/// Errors: [`ExportError::Tokenizer`] for a malformed vocabulary or merge, or a token id
/// outside the model's rows; [`ExportError::NotBuilt`] for a word-marker handling other than
/// those of [`space_prefix`].
pub(super) fn metadata(
    json: &Value,
    tok: &TokenizerBundle,
    vocab_size: usize,
) -> Result<Vec<(String, GgufValue)>> {
    let path = &tok.source;
    let err = |msg: String| ExportError::Tokenizer {
        path: path.clone(),
        msg,
    };
    let add_space_prefix = space_prefix(json).map_err(|why| ExportError::NotBuilt {
        what: format!(
            "gguf export of the sentencepiece-style tokenizer in {}: {why}",
            path.display()
        ),
        supported: "Metaspace `▁` pre-tokenizer with `split: false`, or a normalizer replacing \" \" by \"▁\" (optionally after Prepend(\"▁\"))".into(),
    })?;
    let model = &json["model"];
    let unk = model["unk_token"].as_str().or(tok.unk_token.as_deref());
    let tokens = token_table(
        json,
        vocab_size,
        &err,
        |text| token_type(text, unk),
        |content, special| {
            if unk == Some(content) {
                (content.to_string(), UNKNOWN)
            } else if special {
                (content.to_string(), CONTROL)
            } else {
                (content.replace(SPIECE_UNDERLINE, " "), USER_DEFINED)
            }
        },
    )?;
    let merges = merge_pairs(model).map_err(err)?;
    let scores = scores(&tokens, &merges);
    let eot = tokens.iter().position(|(t, _)| t == "<end_of_turn>");
    let (texts, types): (Vec<GgufValue>, Vec<GgufValue>) = tokens
        .into_iter()
        .map(|(text, ty)| (GgufValue::String(text), GgufValue::I32(ty)))
        .unzip();
    let mut meta = vec![
        (
            "tokenizer.ggml.model".into(),
            GgufValue::String("llama".into()),
        ),
        (
            "tokenizer.ggml.pre".into(),
            GgufValue::String("default".into()),
        ),
        ("tokenizer.ggml.tokens".into(), GgufValue::Array(texts)),
        (
            "tokenizer.ggml.scores".into(),
            GgufValue::Array(scores.into_iter().map(GgufValue::F32).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), GgufValue::Array(types)),
    ];
    // A merge part containing a space cannot be written as "left right"; the scores carry
    // the merge order on their own.
    if merges
        .iter()
        .all(|(a, b)| !a.contains(' ') && !b.contains(' '))
    {
        let merges = merges
            .into_iter()
            .map(|(a, b)| GgufValue::String(format!("{a} {b}")))
            .collect();
        meta.push(("tokenizer.ggml.merges".into(), GgufValue::Array(merges)));
    }
    meta.push((
        "tokenizer.ggml.add_space_prefix".into(),
        GgufValue::Bool(add_space_prefix),
    ));
    if let Some(id) = eot {
        meta.push((
            "tokenizer.ggml.eot_token_id".into(),
            GgufValue::U32(id as u32),
        ));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn byte_tokens_are_recognised() {
        assert!(is_byte_token("<0x0A>"));
        assert!(is_byte_token("<0xff>"));
        assert!(!is_byte_token("<0x0G>"));
        assert!(!is_byte_token("<0x0A"));
        assert!(!is_byte_token("<0x0AB>"));
    }

    #[test]
    fn space_prefix_follows_the_word_marker_handling() {
        let meta = |prepend: &str, split: bool| {
            json!({"pre_tokenizer": {"type": "Metaspace", "replacement": "▁",
                   "prepend_scheme": prepend, "split": split}, "normalizer": null})
        };
        assert_eq!(space_prefix(&meta("first", false)), Ok(true));
        assert_eq!(space_prefix(&meta("never", false)), Ok(false));
        assert!(space_prefix(&meta("first", true)).is_err());
        let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"});
        let gemma = json!({"normalizer": replace,
            "pre_tokenizer": {"type": "Split", "pattern": {"String": " "},
                              "behavior": "MergedWithPrevious", "invert": false}});
        assert_eq!(space_prefix(&gemma), Ok(false));
        let legacy = json!({"pre_tokenizer": null, "normalizer": {"type": "Sequence",
            "normalizers": [{"type": "Prepend", "prepend": "▁"}, replace]}});
        assert_eq!(space_prefix(&legacy), Ok(true));
        let nfkc = json!({"pre_tokenizer": null, "normalizer": {"type": "NFKC"}});
        assert!(space_prefix(&nfkc).is_err());
    }

    #[test]
    fn scores_follow_the_first_merge_making_each_token() {
        let tokens: Vec<(String, i32)> = [
            ("<unk>", UNKNOWN),
            ("<0x41>", BYTE),
            ("a", NORMAL),
            ("b", NORMAL),
            ("ab", NORMAL),
            ("▁", NORMAL),
            ("▁ab", NORMAL),
            ("<tool>", USER_DEFINED),
            ("[PAD8]", UNUSED),
        ]
        .into_iter()
        .map(|(t, ty)| (t.to_string(), ty))
        .collect();
        let merges: Vec<(String, String)> = [("a", "b"), ("▁", "ab"), ("▁a", "b")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            scores(&tokens, &merges),
            vec![-1000.0, 0.0, -3.0, -3.0, 0.0, -3.0, -1.0, -1000.0, -10000.0]
        );
    }
}
