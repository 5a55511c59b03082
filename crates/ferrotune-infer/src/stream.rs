//! Incremental detokenization for streamed output.
//!
//! Decoding token by token and concatenating goes wrong in two ways: a token may end in the
//! middle of a UTF-8 character (byte-level BPE splits emoji and CJK characters across tokens,
//! and decoding the partial bytes yields U+FFFD), and some decoders change a token's text by
//! its neighbours (SentencePiece's leading-space marker is dropped at the start of a decode).
//! The approach is the one `tokenizers`' `DecodeStream` documents (`tokenizer/mod.rs`,
//! `step_decode_stream`): decode a small window of recent tokens with and without the new one,
//! emit the difference once it does not end in U+FFFD, and hold the text back otherwise.
//! The window starts at the previous emission point, which always lies on a character
//! boundary, so the emitted pieces concatenate to the full decode of all tokens.

use ferrotune_hub::tokenizer::TokenizerBundle;

use crate::error::{InferError, Result};

/// The Unicode replacement character that lossy UTF-8 decoding puts for incomplete bytes.
const REPLACEMENT: char = '\u{FFFD}';

/// Streams text for token ids pushed one at a time; see the module doc.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t TokenizerBundle,
    skip_special_tokens: bool,
    /// Ids from the start of the window on.
    ids: Vec<u32>,
    /// `ids[..read_offset]` have been emitted; the window's context is `ids[..read_offset]`.
    read_offset: usize,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder with no tokens yet; `skip_special_tokens` as in [`TokenizerBundle::decode`].
    pub fn new(tokenizer: &'t TokenizerBundle, skip_special_tokens: bool) -> Self {
        Self {
            tokenizer,
            skip_special_tokens,
            ids: Vec::new(),
            read_offset: 0,
        }
    }

    /// Adds one token; returns the text it completes, or `None` while the text is not stable
    /// yet (an incomplete UTF-8 character, or a token whose text is empty so far).
    ///
    /// Errors: [`InferError::Tokenizer`] from decoding; [`InferError::Detokenize`] when the
    /// decoder's text for the longer window does not extend its text for the shorter one.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = self.decode(&self.ids[..self.read_offset])?;
        let full = self.decode(&self.ids)?;
        if full.len() <= prefix.len() || full.ends_with(REPLACEMENT) {
            return Ok(None);
        }
        let piece = self.suffix(&prefix, &full)?;
        // Drop the old context: the tokens just emitted are the next step's context.
        self.ids.drain(..self.read_offset);
        self.read_offset = self.ids.len();
        Ok(Some(piece))
    }

    /// Flushes whatever is held back (at the end of generation), even an incomplete character,
    /// which then decodes to U+FFFD exactly as the full decode does.
    ///
    /// Errors: as [`StreamDecoder::push`].
    pub fn finish(&mut self) -> Result<Option<String>> {
        if self.read_offset == self.ids.len() {
            return Ok(None);
        }
        let prefix = self.decode(&self.ids[..self.read_offset])?;
        let full = self.decode(&self.ids)?;
        self.ids.drain(..self.read_offset);
        self.read_offset = self.ids.len();
        if full.len() <= prefix.len() {
            return Ok(None);
        }
        self.suffix(&prefix, &full).map(Some)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        if ids.is_empty() {
            return Ok(String::new());
        }
        Ok(self.tokenizer.decode(ids, self.skip_special_tokens)?)
    }

    fn suffix(&self, prefix: &str, full: &str) -> Result<String> {
        full.strip_prefix(prefix)
            .map(str::to_string)
            .ok_or_else(|| InferError::Detokenize {
                source_path: self.tokenizer.source.display().to_string(),
                msg: format!(
                    "decoded text {full:?} does not start with the text before it {prefix:?}"
                ),
            })
    }
}
