//! A fast encoder for byte-level BPE tokenizers, giving the same ids as `tokenizers`.
//!
//! `tokenizers` builds a `PreTokenizedString` with offsets for every piece, runs Oniguruma for
//! the GPT-2 split and allocates a `String` per token. For the layouts it recognizes, this
//! encoder does the same steps on `&str` slices instead:
//!
//! 1. split on added tokens ([`added`], as `AddedVocabulary` does);
//! 2. the hand-written pre-tokenizer ([`pretok`]: GPT-2 split, optionally after `Digits`);
//! 3. each pre-token's ids from a per-thread word cache, or from the BPE model itself ([`cache`]);
//! 4. with `add_special_tokens`, the ids the post-processor puts before and after.
//!
//! Recognized: no normalizer; pre-tokenizer `ByteLevel(add_prefix_space=false,
//! use_regex=true)`, alone or after `Digits(individual_digits=true)`; a BPE model without byte
//! fallback or dropout; no truncation, padding or `encode_special_tokens`; no `single_word`
//! added token. Anything else returns `None` from [`FastEncoder::new`] and the caller keeps
//! using `tokenizers`. The equality is tested on the demo tokenizer over the demo datasets,
//! every Unicode code point and random strings (`crates/ferrotune-hub/tests/fast_encode.rs`).

mod added;
mod cache;
mod pretok;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::{
    Encoding, ModelWrapper, PostProcessorWrapper, PreTokenizerWrapper, Token, Tokenizer,
};

use added::AddedSplitter;
use pretok::{Classes, Layout};

/// What a [`FastEncoder`] was built from, to notice a tokenizer changed since.
#[derive(Debug, Clone, PartialEq)]
struct Signature {
    vocab_size: usize,
    added: usize,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    post_processor: Option<PostProcessorWrapper>,
    has_normalizer: bool,
    limits: (bool, bool, bool),
}

impl Signature {
    fn of(tok: &Tokenizer) -> Signature {
        Signature {
            vocab_size: tok.get_vocab_size(false),
            added: tok.get_added_vocabulary().len(),
            pre_tokenizer: tok.get_pre_tokenizer().cloned(),
            post_processor: tok.get_post_processor().cloned(),
            has_normalizer: tok.get_normalizer().is_some(),
            limits: limits(tok),
        }
    }

    /// Whether `tok` still matches, the post-processor compared only when `with_post`.
    fn matches(&self, tok: &Tokenizer, with_post: bool) -> bool {
        self.vocab_size == tok.get_vocab_size(false)
            && self.added == tok.get_added_vocabulary().len()
            && self.has_normalizer == tok.get_normalizer().is_some()
            && self.limits == limits(tok)
            && self.pre_tokenizer.as_ref() == tok.get_pre_tokenizer()
            && (!with_post || self.post_processor.as_ref() == tok.get_post_processor())
    }
}

fn limits(tok: &Tokenizer) -> (bool, bool, bool) {
    (
        tok.get_truncation().is_some(),
        tok.get_padding().is_some(),
        tok.get_encode_special_tokens(),
    )
}

/// The BPE model of `tok` when the fast encoder can drive it.
fn plain_bpe(tok: &Tokenizer) -> Option<&BPE> {
    match tok.get_model() {
        ModelWrapper::BPE(bpe) if !bpe.byte_fallback && bpe.dropout.is_none_or(|p| p == 0.0) => {
            Some(bpe)
        }
        _ => None,
    }
}

/// The split layout of a recognized pre-tokenizer.
fn layout(pre: Option<&PreTokenizerWrapper>) -> Option<Layout> {
    let gpt2 = |p: &PreTokenizerWrapper| {
        matches!(
            p,
            PreTokenizerWrapper::ByteLevel(ByteLevel {
                add_prefix_space: false,
                use_regex: true,
                ..
            })
        )
    };
    match pre? {
        p if gpt2(p) => Some(Layout::Gpt2),
        PreTokenizerWrapper::Sequence(seq) => match seq.as_ref() {
            [PreTokenizerWrapper::Digits(Digits {
                individual_digits: true,
                ..
            }), p]
                if gpt2(p) =>
            {
                Some(Layout::DigitsGpt2)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The ids the post-processor puts before and after one sequence, found by processing two
/// probe sequences of ids that are in no vocabulary; `None` when it does anything else.
fn special_affixes(tok: &Tokenizer) -> Option<(Vec<u32>, Vec<u32>)> {
    let probe = |ids: &[u32]| -> Option<Vec<u32>> {
        let tokens = ids
            .iter()
            .map(|&id| Token::new(id, String::new(), (0, 0)))
            .collect();
        let out = tok
            .post_process(Encoding::from_tokens(tokens, 0), None, true)
            .ok()?;
        Some(out.get_ids().to_vec())
    };
    let one = [u32::MAX];
    let two = [u32::MAX - 2, u32::MAX - 1];
    let (a, b) = (probe(&one)?, probe(&two)?);
    let at = a.iter().position(|&id| id == u32::MAX)?;
    let (prefix, rest) = a.split_at(at);
    let suffix = rest.get(1..)?;
    let expected: Vec<u32> = prefix.iter().chain(&two).chain(suffix).copied().collect();
    (b == expected).then(|| (prefix.to_vec(), suffix.to_vec()))
}

/// A fast, exact encoder for one tokenizer (see the module doc).
#[derive(Debug)]
pub(crate) struct FastEncoder {
    /// Identifies this encoder's thread-local word caches.
    id: u64,
    added: AddedSplitter,
    layout: Layout,
    classes: Classes,
    bytes: [char; 256],
    /// What `add_special_tokens` puts before and after; `None`: leave it to `tokenizers`.
    affixes: Option<(Vec<u32>, Vec<u32>)>,
}

impl FastEncoder {
    /// The encoder for `tok`, or `None` when its layout is not recognized.
    pub(crate) fn new(tok: &Tokenizer) -> Option<FastEncoder> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let signature = Signature::of(tok);
        if signature.has_normalizer || signature.limits != (false, false, false) {
            return None;
        }
        plain_bpe(tok)?;
        Some(FastEncoder {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            layout: layout(tok.get_pre_tokenizer())?,
            added: AddedSplitter::new(tok)?,
            classes: Classes::new()?,
            bytes: cache::byte_chars(),
            affixes: special_affixes(tok),
        })
    }

    /// The ids of `text`, or `None` when `tokenizers` must do it (the post-processor does
    /// more than add fixed ids and `add_special_tokens` is set).
    ///
    /// Errors: those of the BPE model.
    pub(crate) fn encode(
        &self,
        tok: &Tokenizer,
        text: &str,
        add_special_tokens: bool,
    ) -> Option<tokenizers::Result<Vec<u32>>> {
        let bpe = plain_bpe(tok)?;
        let (prefix, suffix) = match (&self.affixes, add_special_tokens) {
            (_, false) => (&[][..], &[][..]),
            (Some((p, s)), true) => (p.as_slice(), s.as_slice()),
            (None, true) => return None,
        };
        let mut ids = Vec::with_capacity(prefix.len() + text.len() / 3 + suffix.len() + 4);
        ids.extend_from_slice(prefix);
        let result = cache::with_cache(self.id, |cache| {
            self.added.split(text, &mut |added, piece| match added {
                Some(id) => {
                    ids.push(id);
                    Ok(())
                }
                None => pretok::pre_tokenize(self.layout, &self.classes, piece, &mut |word| {
                    cache.push_ids(bpe, &self.bytes, word, &mut ids)
                }),
            })
        });
        ids.extend_from_slice(suffix);
        Some(result.map(|()| ids))
    }
}

/// The signature a slot's encoder was built for, and the encoder (`None`: not recognized).
type Entry = Arc<(Signature, Option<FastEncoder>)>;

/// A lazily built [`FastEncoder`] that is rebuilt when the tokenizer changes (the bundle's
/// `tokenizer` field is public). Cloning gives an empty slot.
#[derive(Debug, Default)]
pub(crate) struct FastSlot {
    /// The signature it was built for and the encoder (`None`: layout not recognized).
    state: RwLock<Option<Entry>>,
}

impl Clone for FastSlot {
    fn clone(&self) -> Self {
        FastSlot::default()
    }
}

impl FastSlot {
    /// The ids of `text` by the fast encoder, or `None` when `tokenizers` must do it.
    ///
    /// Errors: those of the BPE model.
    pub(crate) fn encode(
        &self,
        tok: &Tokenizer,
        text: &str,
        add_special_tokens: bool,
    ) -> Option<tokenizers::Result<Vec<u32>>> {
        let entry = self.entry(tok, add_special_tokens);
        entry.1.as_ref()?.encode(tok, text, add_special_tokens)
    }

    /// Whether [`FastSlot::encode`] takes the fast path for `tok` (without special tokens).
    pub(crate) fn is_fast(&self, tok: &Tokenizer) -> bool {
        self.entry(tok, false).1.is_some() && plain_bpe(tok).is_some()
    }

    /// The entry for `tok` as it is now, built on first use or after a change.
    fn entry(&self, tok: &Tokenizer, with_post: bool) -> Entry {
        let current = self.state.read().ok().and_then(|s| s.clone());
        if let Some(entry) = current.filter(|e| e.0.matches(tok, with_post)) {
            return entry;
        }
        let entry = Arc::new((Signature::of(tok), FastEncoder::new(tok)));
        if let Ok(mut state) = self.state.write() {
            *state = Some(entry.clone());
        }
        entry
    }
}
