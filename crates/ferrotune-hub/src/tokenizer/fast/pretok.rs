//! Hand-written pre-tokenizers equal to `tokenizers`' `ByteLevel(use_regex=true)` split and its
//! `Digits(individual_digits=true)` split, working on `&str` slices without allocating.
//!
//! The split is GPT-2's regex (`pre_tokenizers/byte_level.rs` in `tokenizers` 0.22, from
//! OpenAI's `gpt-2/src/encoder.py`), which `tokenizers` runs through Oniguruma:
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! Every character is exactly one of letter (`\p{L}`), number (`\p{N}`), white space (`\s`) or
//! other, so the regex reduces to: a contraction at an apostrophe; else a run of one class,
//! optionally led by one U+0020 space; else a white-space run, less its last character when a
//! non-space follows (that character then stands alone or, being U+0020, leads the next run).

use std::sync::OnceLock;

use regex_syntax::hir::{Class as HirClass, HirKind};

/// The class of a character for the GPT-2 split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// `\p{L}`.
    Letter,
    /// `\p{N}`.
    Number,
    /// `\s` (Unicode `White_Space`).
    Space,
    /// Anything else.
    Other,
}

/// Sorted, disjoint `(first, last, class)` code point ranges of the non-ASCII letters, numbers
/// and white space, from `regex-syntax`'s Unicode tables; `None` if they cannot be built.
fn ranges() -> Option<&'static [(u32, u32, Class)]> {
    static RANGES: OnceLock<Option<Vec<(u32, u32, Class)>>> = OnceLock::new();
    RANGES
        .get_or_init(|| {
            let mut out = Vec::new();
            for (pattern, class) in [
                (r"\p{L}", Class::Letter),
                (r"\p{N}", Class::Number),
                (r"\s", Class::Space),
            ] {
                let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
                let HirKind::Class(HirClass::Unicode(set)) = hir.kind() else {
                    return None;
                };
                out.extend(
                    set.ranges()
                        .iter()
                        .map(|r| (u32::from(r.start()), u32::from(r.end()), class)),
                );
            }
            out.sort_unstable_by_key(|r| r.0);
            // The three classes are disjoint; refuse the tables if they are not.
            let disjoint = out.windows(2).all(|w| w[0].1 < w[1].0);
            disjoint.then_some(out)
        })
        .as_deref()
}

/// Character classes for the GPT-2 split.
#[derive(Debug, Clone, Copy)]
pub(super) struct Classes {
    ascii: [Class; 128],
    ranges: &'static [(u32, u32, Class)],
}

impl Classes {
    /// The classes from `regex-syntax`'s Unicode tables; `None` if they cannot be built.
    pub(super) fn new() -> Option<Classes> {
        let ranges = ranges()?;
        let mut ascii = [Class::Other; 128];
        for (c, slot) in (0u8..128).zip(ascii.iter_mut()) {
            *slot = lookup(ranges, u32::from(c));
        }
        Some(Classes { ascii, ranges })
    }

    /// The class of `c`.
    #[inline]
    pub(super) fn of(&self, c: char) -> Class {
        match self.ascii.get(c as usize) {
            Some(&class) => class,
            None => lookup(self.ranges, u32::from(c)),
        }
    }
}

fn lookup(ranges: &[(u32, u32, Class)], c: u32) -> Class {
    let i = ranges.partition_point(|r| r.0 <= c);
    match i.checked_sub(1).and_then(|i| ranges.get(i)) {
        Some(&(_, last, class)) if c <= last => class,
        _ => Class::Other,
    }
}

/// Which split runs before byte-level BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// `ByteLevel(add_prefix_space=false, use_regex=true)`: the GPT-2 split.
    Gpt2,
    /// `Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false,
    /// use_regex=true)]`: every numeric character (Rust's `char::is_numeric`, as `Digits` uses)
    /// stands alone, then the GPT-2 split runs on the text between them.
    DigitsGpt2,
}

/// Calls `emit` with each pre-token of `text`, in order; stops at the first error.
pub(super) fn pre_tokenize<E>(
    layout: Layout,
    classes: &Classes,
    text: &str,
    emit: &mut impl FnMut(&str) -> Result<(), E>,
) -> Result<(), E> {
    match layout {
        Layout::Gpt2 => split_gpt2(classes, text, emit),
        Layout::DigitsGpt2 => {
            let mut start = 0;
            for (at, c) in text.char_indices() {
                if c.is_numeric() {
                    split_gpt2(classes, text.get(start..at).unwrap_or_default(), emit)?;
                    let end = at + c.len_utf8();
                    emit(text.get(at..end).unwrap_or_default())?;
                    start = end;
                }
            }
            split_gpt2(classes, text.get(start..).unwrap_or_default(), emit)
        }
    }
}

/// The GPT-2 regex split of `s` (see the module doc).
fn split_gpt2<E>(
    classes: &Classes,
    s: &str,
    emit: &mut impl FnMut(&str) -> Result<(), E>,
) -> Result<(), E> {
    let mut i = 0;
    while let Some(rest) = s.get(i..).filter(|r| !r.is_empty()) {
        let len = piece_len(classes, rest);
        emit(rest.get(..len).unwrap_or(rest))?;
        i += len.max(1);
    }
    Ok(())
}

/// Byte length of the first GPT-2 piece of the non-empty `rest`.
fn piece_len(classes: &Classes, rest: &str) -> usize {
    let mut chars = rest.chars();
    let Some(c) = chars.next() else {
        return 0;
    };
    if c == '\'' {
        if let Some(n) = contraction_len(rest.as_bytes()) {
            return n;
        }
    }
    // ` ?X+` for X one of letter, number, other: the class of the first non-space character.
    let (lead, first) = match (c, chars.next()) {
        (' ', Some(next)) if classes.of(next) != Class::Space => (1, next),
        _ => (0, c),
    };
    let class = classes.of(first);
    if class != Class::Space {
        return lead + run_len(classes, rest.get(lead..).unwrap_or_default(), class);
    }
    // A white-space run: all of it at the end of the text, else all but its last character.
    let run = run_len(classes, rest, Class::Space);
    if run == rest.len() {
        return run;
    }
    let last = rest
        .get(..run)
        .and_then(|r| r.chars().next_back())
        .map_or(0, char::len_utf8);
    if run > last {
        run - last
    } else {
        run
    }
}

/// Length of `'s`, `'t`, `'re`, `'ve`, `'m`, `'ll` or `'d` at the start of `b`, if one is there.
fn contraction_len(b: &[u8]) -> Option<usize> {
    match (b.get(1), b.get(2)) {
        (Some(b's' | b't' | b'm' | b'd'), _) => Some(2),
        (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => Some(3),
        _ => None,
    }
}

/// Byte length of the longest prefix of `s` whose characters are all of `class`.
fn run_len(classes: &Classes, s: &str, class: Class) -> usize {
    s.char_indices()
        .find(|&(_, c)| classes.of(c) != class)
        .map_or(s.len(), |(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(layout: Layout, text: &str) -> Vec<String> {
        let classes = Classes::new().expect("unicode tables");
        let mut out = Vec::new();
        let _ = pre_tokenize(layout, &classes, text, &mut |p: &str| {
            out.push(p.to_owned());
            Ok::<(), ()>(())
        });
        out
    }

    #[test]
    fn gpt2_split_matches_the_regex_by_hand() {
        // Worked through the regex alternation by hand.
        assert_eq!(
            split(Layout::Gpt2, "I'm  here\t\tnow's 12 !!'s  "),
            ["I", "'m", " ", " here", "\t", "\t", "now", "'s", " 12", " !!'", "s", "  "]
        );
        assert_eq!(
            split(Layout::DigitsGpt2, "a 12b"),
            ["a", " ", "1", "2", "b"]
        );
        assert_eq!(split(Layout::Gpt2, "\u{3000}x"), ["\u{3000}", "x"]);
        assert!(split(Layout::Gpt2, "").is_empty());
    }
}
