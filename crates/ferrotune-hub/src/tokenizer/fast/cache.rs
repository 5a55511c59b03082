//! Byte-level BPE of one pre-token, with a per-thread cache of pre-token → ids.
//!
//! Real text repeats its words, so most pre-tokens are found in the cache and never reach BPE.
//! A miss maps the pre-token's bytes to GPT-2's byte alphabet and asks the `tokenizers` BPE
//! model itself (`Model::tokenize`), so the ids are those of the model by construction.
//! Caches live in thread-local storage (no lock is shared between encoding threads), one per
//! encoder, and are emptied when they reach [`MAX_WORDS`] entries.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tokenizers::models::bpe::BPE;
use tokenizers::Model;

/// Entries of one cache before it is emptied.
const MAX_WORDS: usize = 1 << 17;
/// Longer pre-tokens are not cached.
const MAX_WORD_BYTES: usize = 128;
/// Caches kept per thread (one per encoder); the oldest goes first.
const MAX_CACHES: usize = 8;

/// GPT-2's byte → character table (`bytes_to_unicode` in OpenAI's `gpt-2/src/encoder.py`):
/// printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves, the other
/// 68 bytes take U+0100 onwards in byte order.
pub(super) fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in (0u32..256).zip(table.iter_mut()) {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let code = if printable {
            b
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or('\0');
    }
    table
}

/// FxHash (rustc's hasher): fast for the short keys of a word cache.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type WordMap = HashMap<Box<str>, Box<[u32]>, BuildHasherDefault<FxHasher>>;

/// The word cache of one encoder on one thread, plus a scratch buffer for byte mapping.
pub(super) struct WordCache {
    words: WordMap,
    mapped: String,
}

impl WordCache {
    fn new() -> WordCache {
        WordCache {
            words: WordMap::default(),
            mapped: String::new(),
        }
    }

    /// Appends the ids of pre-token `word` to `ids`.
    ///
    /// Errors: those of the BPE model (e.g. a byte character missing from its vocabulary).
    pub(super) fn push_ids(
        &mut self,
        bpe: &BPE,
        bytes: &[char; 256],
        word: &str,
        ids: &mut Vec<u32>,
    ) -> tokenizers::Result<()> {
        if let Some(hit) = self.words.get(word) {
            ids.extend_from_slice(hit);
            return Ok(());
        }
        self.mapped.clear();
        self.mapped.extend(
            word.bytes()
                .map(|b| bytes.get(usize::from(b)).copied().unwrap_or('\0')),
        );
        let start = ids.len();
        ids.extend(bpe.tokenize(&self.mapped)?.iter().map(|t| t.id));
        if word.len() <= MAX_WORD_BYTES {
            if self.words.len() >= MAX_WORDS {
                self.words.clear();
            }
            let new = ids.get(start..).unwrap_or_default();
            self.words.insert(word.into(), new.into());
        }
        Ok(())
    }
}

thread_local! {
    static CACHES: RefCell<Vec<(u64, WordCache)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's word cache of encoder `encoder_id` (created when missing).
pub(super) fn with_cache<R>(encoder_id: u64, f: impl FnOnce(&mut WordCache) -> R) -> R {
    CACHES.with(|caches| match caches.try_borrow_mut() {
        Ok(mut caches) => {
            let pos = match caches.iter().position(|(id, _)| *id == encoder_id) {
                Some(pos) => pos,
                None => {
                    if caches.len() >= MAX_CACHES {
                        caches.remove(0);
                    }
                    caches.push((encoder_id, WordCache::new()));
                    caches.len() - 1
                }
            };
            match caches.get_mut(pos) {
                Some((_, cache)) => f(cache),
                None => f(&mut WordCache::new()),
            }
        }
        // Re-entered from inside `f` (cannot happen today): use a fresh, unshared cache.
        Err(_) => f(&mut WordCache::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let t = byte_chars();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[b' ' as usize], '\u{120}'); // Ġ
        assert_eq!(t[b'\n' as usize], '\u{10a}'); // Ċ
        assert_eq!(t[0], '\u{100}');
        assert_eq!(t[173], '\u{143}');
        let distinct: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }
}
