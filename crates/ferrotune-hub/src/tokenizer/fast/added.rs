//! Splitting text on added tokens exactly as `tokenizers`' `AddedVocabulary`
//! (`tokenizer/added_vocabulary.rs`, `find_matches` and `extract_and_normalize`, 0.22) does.
//!
//! Two passes: tokens with `normalized = false` are found in the raw text first; tokens with
//! `normalized = true` are then found in each remaining piece (after the normalizer, which the
//! fast encoder only accepts when there is none). Both use a leftmost-longest Aho-Corasick
//! automaton; `lstrip`/`rstrip` widen a match over neighbouring white space (Unicode
//! `White_Space`, the `\s` of the `regex` crate that `tokenizers` uses). Tokens with
//! `single_word` are not handled here: the fast encoder then declines the tokenizer.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use tokenizers::{AddedToken, Tokenizer};

/// One set of added tokens and the automaton that finds them.
#[derive(Debug, Clone)]
struct Matcher {
    automaton: AhoCorasick,
    /// Per pattern: its id and its `lstrip`/`rstrip` flags.
    tokens: Vec<(u32, bool, bool)>,
}

impl Matcher {
    fn new(tokens: &[(&AddedToken, u32)]) -> Option<Matcher> {
        if tokens.is_empty() {
            return None;
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(tokens.iter().map(|(t, _)| t.content.as_str()))
            .ok()?;
        let tokens = tokens
            .iter()
            .map(|(t, id)| (*id, t.lstrip, t.rstrip))
            .collect();
        Some(Matcher { automaton, tokens })
    }

    /// Calls `emit(Some(id), piece)` for each added token found in `text` and `emit(None,
    /// piece)` for the text between them, covering `text` in order as `find_matches` does.
    fn split<'t, E>(
        &self,
        text: &'t str,
        emit: &mut impl FnMut(Option<u32>, &'t str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut start_offset = 0;
        for mat in self.automaton.find_iter(text) {
            let Some(&(id, lstrip, rstrip)) = self.tokens.get(mat.pattern().as_usize()) else {
                continue;
            };
            let (mut start, mut stop) = (mat.start(), mat.end());
            if lstrip {
                let before = text.get(..start).unwrap_or_default();
                let spaces = before.trim_end_matches(char::is_whitespace).len();
                start = spaces.max(start_offset);
            }
            if rstrip {
                let after = text.get(stop..).unwrap_or_default();
                stop += after.len() - after.trim_start_matches(char::is_whitespace).len();
            }
            if start_offset < start {
                emit(None, text.get(start_offset..start).unwrap_or_default())?;
            }
            emit(Some(id), text.get(start..stop).unwrap_or_default())?;
            start_offset = stop;
        }
        if start_offset < text.len() {
            emit(None, text.get(start_offset..).unwrap_or_default())?;
        }
        Ok(())
    }
}

/// The added tokens of a tokenizer, split into the raw and the normalized pass.
#[derive(Debug, Clone)]
pub(super) struct AddedSplitter {
    raw: Option<Matcher>,
    normalized: Option<Matcher>,
}

impl AddedSplitter {
    /// The splitter for `tokenizer`'s added vocabulary; `None` when a token needs
    /// `single_word`, or the automaton cannot be built.
    pub(super) fn new(tokenizer: &Tokenizer) -> Option<AddedSplitter> {
        let decoder = tokenizer.get_added_tokens_decoder();
        let mut tokens: Vec<(&AddedToken, u32)> = decoder
            .iter()
            .filter(|(_, t)| !t.content.is_empty())
            .map(|(&id, t)| (t, id))
            .collect();
        if tokens.iter().any(|(t, _)| t.single_word) {
            return None;
        }
        // Patterns of equal content cannot both exist, so the order only names patterns.
        tokens.sort_unstable_by_key(|&(_, id)| id);
        let (normalized, raw): (Vec<_>, Vec<_>) =
            tokens.into_iter().partition(|(t, _)| t.normalized);
        let build = |set: &[(&AddedToken, u32)]| match set.is_empty() {
            true => Some(None),
            false => Matcher::new(set).map(Some),
        };
        Some(AddedSplitter {
            raw: build(&raw)?,
            normalized: build(&normalized)?,
        })
    }

    /// Calls `emit(Some(id), _)` for each added token of `text` and `emit(None, piece)` for
    /// each piece of plain text between them, in order.
    pub(super) fn split<'t, E>(
        &self,
        text: &'t str,
        emit: &mut impl FnMut(Option<u32>, &'t str) -> Result<(), E>,
    ) -> Result<(), E> {
        let second =
            |piece: &'t str, emit: &mut dyn FnMut(Option<u32>, &'t str) -> Result<(), E>| {
                match &self.normalized {
                    Some(m) => m.split(piece, &mut |id, p| emit(id, p)),
                    None => emit(None, piece),
                }
            };
        match &self.raw {
            Some(m) => m.split(text, &mut |id, piece| match id {
                Some(_) => emit(id, piece),
                None => second(piece, emit),
            }),
            None if text.is_empty() => Ok(()),
            None => second(text, emit),
        }
    }
}
