//! Text similarity of a prediction to its reference answer, as LLaMA-Factory's
//! `ComputeSimilarity` scores `do_predict` runs (v0.9.5 `train/sft/metric.py`):
//!
//! - both texts are segmented into words with jieba (precise mode, HMM on; `jieba-rs`, which
//!   ships jieba's dictionary and HMM tables);
//! - ROUGE-1, ROUGE-2 and ROUGE-L are the f-scores of the `rouge_chinese` package (1.0.3,
//!   `rouge.py`/`rouge_score.py`) on the space-joined words, 0 for all three when either text
//!   has no non-space word;
//! - BLEU-4 is nltk's `sentence_bleu` (3.x, `translate/bleu_score.py`; Papineni et al. 2002)
//!   with uniform weights and `SmoothingFunction().method3` (NIST geometric smoothing, Chen &
//!   Cherry 2014) on the two texts' *character* lists;
//! - each score is multiplied by 100 and rounded to 4 decimals (Python's `round`), and a run
//!   reports the mean of every example's scores (`np.mean`, pairwise summation).
//!
//! Every step keeps the reference's float operations in the same order (including the `1e-8`
//! in ROUGE's f-score and `math.fsum` in BLEU), so scores equal LLaMA-Factory's to the last
//! bit (`fixtures/metrics/similarity.json`, made by `tools/make_metric_fixtures.py`).
//!
//! ```
//! use ferrotune_train::metrics::SimilarityScorer;
//!
//! let scorer = SimilarityScorer::new();
//! let s = scorer.score("The cat sat on the mat.", "The cat is sitting on the mat.");
//! assert_eq!((s.rouge_1, s.rouge_2, s.rouge_l, s.bleu_4), (80.0, 61.5385, 80.0, 60.0938));
//! ```

use std::collections::{HashMap, HashSet};

use jieba_rs::Jieba;

/// The four scores of one prediction, or their mean over a prediction run; each ×100 (0 to
/// 100), per-example scores rounded to 4 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Similarity {
    /// ROUGE-1 f-score on jieba words (`rouge-1`).
    pub rouge_1: f64,
    /// ROUGE-2 f-score on jieba words (`rouge-2`).
    pub rouge_2: f64,
    /// ROUGE-L (summary-level LCS) f-score on jieba words (`rouge-l`).
    pub rouge_l: f64,
    /// Sentence BLEU-4 on characters, method-3 smoothing (`bleu-4`).
    pub bleu_4: f64,
}

impl Similarity {
    /// The mean of each score over `scores` as `np.mean` computes it ([`np_mean`]); all zeros
    /// for an empty slice (numpy would give NaN, which JSON cannot hold).
    pub fn mean(scores: &[Similarity]) -> Similarity {
        if scores.is_empty() {
            return Similarity::default();
        }
        let of = |f: fn(&Similarity) -> f64| np_mean(&scores.iter().map(f).collect::<Vec<_>>());
        Similarity {
            rouge_1: of(|s| s.rouge_1),
            rouge_2: of(|s| s.rouge_2),
            rouge_l: of(|s| s.rouge_l),
            bleu_4: of(|s| s.bleu_4),
        }
    }
}

/// Scores predictions against references; holds the jieba dictionary (loaded once, about
/// 0.3 s and 50 MB).
pub struct SimilarityScorer {
    jieba: Jieba,
}

impl std::fmt::Debug for SimilarityScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimilarityScorer { jieba: default dictionary }")
    }
}

impl Default for SimilarityScorer {
    fn default() -> Self {
        Self::new()
    }
}

impl SimilarityScorer {
    /// A scorer with jieba's default dictionary.
    pub fn new() -> Self {
        Self {
            jieba: Jieba::new(),
        }
    }

    /// The words of `text` as `list(jieba.cut(text))`: precise mode with the HMM for unknown
    /// words; spaces and punctuation are words of their own, and the words concatenate back
    /// to `text`.
    ///
    /// `jieba-rs` 0.11 keeps ASCII runs joined by `-`, `_` or `.` together outside the
    /// dictionary (`step-by-step`, `v1.2.3`), where Python jieba's HMM step splits them with
    /// `[a-zA-Z0-9]+(?:\.\d+)?%?` (`finalseg/__init__.py`, `re_skip`); such words are split
    /// again here the Python way ([`split_like_re_skip`]).
    pub fn segment<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut words = Vec::new();
        for token in self.jieba.cut(text, true) {
            let w = token.word;
            let joined_run = w.starts_with(|c: char| c.is_ascii_alphanumeric())
                && w.contains(['-', '_', '.'])
                && w.is_ascii()
                && !self.jieba.has_word(w);
            if joined_run {
                words.extend(split_like_re_skip(w));
            } else {
                words.push(w);
            }
        }
        words
    }

    /// The four scores of `predict` against `label` (decoded texts), ×100 and rounded to 4
    /// decimals as LLaMA-Factory's `ComputeSimilarity.__call__`.
    pub fn score(&self, predict: &str, label: &str) -> Similarity {
        let hypothesis = self.segment(predict).join(" ");
        let reference = self.segment(label).join(" ");
        let (r1, r2, rl) = if py_split_whitespace(&hypothesis).next().is_none()
            || py_split_whitespace(&reference).next().is_none()
        {
            (0.0, 0.0, 0.0)
        } else {
            rouge_f_scores(&hypothesis, &reference)
        };
        let hyp_chars: Vec<char> = predict.chars().collect();
        let ref_chars: Vec<char> = label.chars().collect();
        let bleu = sentence_bleu4(&ref_chars, &hyp_chars);
        Similarity {
            rouge_1: py_round(r1 * 100.0, 4),
            rouge_2: py_round(r2 * 100.0, 4),
            rouge_l: py_round(rl * 100.0, 4),
            bleu_4: py_round(bleu * 100.0, 4),
        }
    }
}

/// Splits ASCII `text` as Python jieba's `re_skip.split` (with empty pieces dropped) does:
/// runs matching `[a-zA-Z0-9]+(?:\.\d+)?%?`, scanned left to right, and the text between
/// them, in order.
pub fn split_like_re_skip(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut pieces = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let Some(start) = (pos..b.len()).find(|&i| b[i].is_ascii_alphanumeric()) else {
            pieces.push(&text[pos..]);
            break;
        };
        if start > pos {
            pieces.push(&text[pos..start]);
        }
        let mut end = start;
        while end < b.len() && b[end].is_ascii_alphanumeric() {
            end += 1;
        }
        if end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit() {
            end += 1;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
        }
        if end < b.len() && b[end] == b'%' {
            end += 1;
        }
        pieces.push(&text[start..end]);
        pos = end;
    }
    pieces
}

/// Python's `str.isspace` for one character: Rust's Unicode `White_Space` plus the
/// information separators U+001C–U+001F, which Python also counts as whitespace.
fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()`: runs of whitespace separate words, none are empty.
fn py_split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_is_space).filter(|w| !w.is_empty())
}

/// ROUGE-1, ROUGE-2 and ROUGE-L f-scores (0 to 1, unrounded) of `rouge_chinese`'s
/// `Rouge().get_scores(hypothesis, reference)[0]` for two texts whose words are separated by
/// spaces. Both texts must hold a non-space character (the reference raises otherwise;
/// here the scores are 0).
///
/// As the package does: each text is cut into sentences ([`cut_sentences`]), each sentence's
/// whitespace runs become single spaces, and the sentences' words (split on `" "`) are
/// concatenated; ROUGE-N counts *distinct* n-grams (sets, `exclusive=True`); ROUGE-L takes
/// the longest common subsequence of the whole word lists; `f = 2·(p·r)/(p + r + 1e-8)`.
pub fn rouge_f_scores(hypothesis: &str, reference: &str) -> (f64, f64, f64) {
    let hyp = rouge_words(hypothesis);
    let refs = rouge_words(reference);
    if hyp.is_empty() || refs.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    (
        rouge_n(&hyp, &refs, 1),
        rouge_n(&hyp, &refs, 2),
        rouge_l(&hyp, &refs),
    )
}

/// The word list `rouge_chinese` scores: sentences of [`cut_sentences`] that are not empty,
/// each normalized to `" ".join(s.split())`, then split on `" "` and concatenated (an
/// all-space sentence contributes one empty word, as in the reference).
fn rouge_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for sentence in cut_sentences(text).iter().filter(|s| !s.is_empty()) {
        let normalized = py_split_whitespace(sentence).collect::<Vec<_>>().join(" ");
        words.extend(normalized.split(' ').map(str::to_owned));
    }
    words
}

/// `rouge_chinese.Rouge.cut_sent`: a newline is put after `。！？?` not followed by a closing
/// quote `”’`, after six dots and after two `…` not followed by one, and after `。！？?` plus
/// a closing quote not followed by `，。！？?`; trailing whitespace is stripped and the text is
/// split at newlines (its own ones included). Each rule scans left to right without overlaps,
/// as `re.sub` does.
pub fn cut_sentences(text: &str) -> Vec<String> {
    fn is_end(c: char) -> bool {
        matches!(c, '。' | '！' | '？' | '?')
    }
    fn is_close_quote(c: char) -> bool {
        matches!(c, '”' | '’')
    }
    fn not_close_quote(c: char) -> bool {
        !is_close_quote(c)
    }
    fn is_dot(c: char) -> bool {
        c == '.'
    }
    fn is_ellipsis(c: char) -> bool {
        c == '…'
    }
    fn not_end_or_comma(c: char) -> bool {
        !(c == '，' || is_end(c))
    }
    let mut s: Vec<char> = text.chars().collect();
    // ([。！？\?])([^”’])
    s = break_after(&s, &[is_end], not_close_quote);
    // (\.{6})([^”’])
    s = break_after(&s, &[is_dot as fn(char) -> bool; 6], not_close_quote);
    // (\…{2})([^”’])
    s = break_after(&s, &[is_ellipsis as fn(char) -> bool; 2], not_close_quote);
    // ([。！？\?][”’])([^，。！？\?])
    s = break_after(&s, &[is_end, is_close_quote], not_end_or_comma);
    let text: String = s.into_iter().collect();
    text.trim_end_matches(py_is_space)
        .split('\n')
        .map(str::to_owned)
        .collect()
}

/// One `re.sub(r"(H)(N)", r"\1\n\2", text)` for a fixed-length head `H` (one predicate per
/// character) and a one-character tail `N`: scanning left to right, each match gets a newline
/// between head and tail and the scan continues after the tail.
fn break_after(s: &[char], head: &[fn(char) -> bool], tail: fn(char) -> bool) -> Vec<char> {
    let k = head.len();
    let mut out = Vec::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        let matched =
            i + k < s.len() && head.iter().zip(&s[i..i + k]).all(|(p, &c)| p(c)) && tail(s[i + k]);
        if matched {
            out.extend_from_slice(&s[i..=i + k]);
            out.insert(out.len() - 1, '\n');
            i += k + 1;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// `2·(p·r)/(p + r + 1e-8)` in the reference's operation order.
fn f_score(p: f64, r: f64) -> f64 {
    2.0 * ((p * r) / (p + r + 1e-8))
}

/// ROUGE-N f-score over distinct n-grams (`rouge_score.rouge_n`, `exclusive=True`).
fn rouge_n(hyp: &[String], refs: &[String], n: usize) -> f64 {
    let grams =
        |w: &[String]| -> HashSet<Vec<String>> { w.windows(n).map(<[String]>::to_vec).collect() };
    let (h, r) = (grams(hyp), grams(refs));
    let overlap = h.intersection(&r).count() as f64;
    let p = if h.is_empty() {
        0.0
    } else {
        overlap / h.len() as f64
    };
    let rc = if r.is_empty() {
        0.0
    } else {
        overlap / r.len() as f64
    };
    f_score(p, rc)
}

/// ROUGE-L f-score: the longest common subsequence of the two word lists
/// (`rouge_score.rouge_l_summary_level`), `r = lcs / |reference|`, `p = lcs / |hypothesis|`.
fn rouge_l(hyp: &[String], refs: &[String]) -> f64 {
    // One row of the LCS table at a time: prev[j] = LCS(refs[..i-1], hyp[..j]).
    let mut prev = vec![0usize; hyp.len() + 1];
    let mut cur = vec![0usize; hyp.len() + 1];
    for r in refs {
        for (j, h) in hyp.iter().enumerate() {
            cur[j + 1] = if r == h {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let lcs = prev[hyp.len()] as f64;
    let r = lcs / refs.len() as f64;
    let p = lcs / hyp.len() as f64;
    f_score(p, r)
}

/// nltk's `sentence_bleu([reference], hypothesis, smoothing_function=SmoothingFunction().method3)`
/// for one reference, with weights `(0.25, 0.25, 0.25, 0.25)`; 0 to 1, unrounded.
///
/// For n = 1..4 the modified precision is `clipped n-gram matches / max(1, hypothesis
/// n-grams)`; 0 when there is no unigram match; a precision with no match becomes
/// `1 / (2^k · denominator)` for the k-th such order (method 3). The score is
/// `BP · exp(fsum(¼ · ln pₙ))` with `BP = 1` when the hypothesis is longer than the reference,
/// 0 when it is empty, else `exp(1 − |ref| / |hyp|)`.
pub fn sentence_bleu4<T: Eq + std::hash::Hash>(reference: &[T], hypothesis: &[T]) -> f64 {
    const N: usize = 4;
    let mut precisions = [(0u64, 1u64); N];
    for (i, p) in precisions.iter_mut().enumerate() {
        let n = i + 1;
        let counts = ngram_counts(hypothesis, n);
        let ref_counts = ngram_counts(reference, n);
        let matched: usize = counts
            .iter()
            .map(|(g, &c)| c.min(ref_counts.get(g).copied().unwrap_or(0)))
            .sum();
        let total: usize = counts.values().sum();
        *p = (matched as u64, total.max(1) as u64);
    }
    let (hyp_len, ref_len) = (hypothesis.len(), reference.len());
    let bp = if hyp_len > ref_len {
        1.0
    } else if hyp_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    };
    if precisions[0].0 == 0 {
        return 0.0;
    }
    let mut k = 1u32;
    let logs: Vec<f64> = precisions
        .iter()
        .map(|&(num, den)| {
            let p = if num == 0 {
                let smoothed = 1.0 / ((1u64 << k) * den) as f64;
                k += 1;
                smoothed
            } else {
                num as f64 / den as f64
            };
            0.25 * p.ln()
        })
        .collect();
    bp * fsum(&logs).exp()
}

/// Counts of the n-grams of `seq` (none when `seq` is shorter than `n`).
fn ngram_counts<T: Eq + std::hash::Hash>(seq: &[T], n: usize) -> HashMap<&[T], usize> {
    let mut counts = HashMap::new();
    if seq.len() >= n {
        for g in seq.windows(n) {
            *counts.entry(g).or_insert(0) += 1;
        }
    }
    counts
}

/// The correctly rounded sum of `values` (Python's `math.fsum`, finite inputs): Shewchuk's
/// exact partial sums ("Adaptive Precision Floating-Point Arithmetic", 1997), added from the
/// largest with a final round-half-even correction.
pub fn fsum(values: &[f64]) -> f64 {
    // Non-overlapping partials, smallest magnitude first, whose exact sum is the running total.
    let mut partials: Vec<f64> = Vec::new();
    for &v in values {
        let mut x = v;
        let mut kept = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    let Some(mut i) = partials.len().checked_sub(1) else {
        return 0.0;
    };
    let mut hi = partials[i];
    let mut lo = 0.0;
    while i > 0 {
        i -= 1;
        let x = hi;
        let y = partials[i];
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    // Halfway case: the rest of the partials decide the rounding direction.
    if i > 0 && ((lo < 0.0 && partials[i - 1] < 0.0) || (lo > 0.0 && partials[i - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

/// Python's `round(x, digits)` for a float: the decimal with `digits` places nearest to the
/// exact binary value of `x` (ties to even), as a float. Rust's `{:.N}` formatting rounds the
/// exact value the same way.
pub fn py_round(x: f64, digits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// The mean of `values` as `np.mean` computes it for a float64 array: numpy's pairwise sum
/// (`pairwise_sum` in `numpy/_core/src/umath/loops_utils.h.src`: a plain loop below 8
/// values, eight interleaved accumulators up to 128, halves above) divided by the count.
/// NaN for an empty slice, as numpy.
pub fn np_mean(values: &[f64]) -> f64 {
    pairwise_sum(values) / values.len() as f64
}

fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, &v| s + v)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        for chunk in a[8..full].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[full..] {
            res += v;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding_and_sums() {
        // round(0.03125, 4) == 0.0312 (an exact tie, to even); round(2.675, 2) == 2.67 (the
        // binary value is below the tie).
        assert_eq!(py_round(0.03125, 4), 0.0312);
        assert_eq!(py_round(2.675, 2), 2.67);
        assert_eq!(py_round(99.999_999_5, 4), 100.0);
        // math.fsum([1e100, 1.0, -1e100, 1e-100]) == 1.0; naive summation gives 1e-100.
        assert_eq!(fsum(&[1e100, 1.0, -1e100, 1e-100]), 1.0);
        assert_eq!(fsum(&[0.1; 10]), 1.0);
        assert_eq!(fsum(&[]), 0.0);
    }

    #[test]
    fn ascii_runs_split_as_python_re_skip() {
        // re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)").split(...) without empty pieces.
        assert_eq!(
            split_like_re_skip("step-by-step"),
            ["step", "-", "by", "-", "step"]
        );
        assert_eq!(split_like_re_skip("v1.2.3"), ["v1.2", ".", "3"]);
        assert_eq!(split_like_re_skip("1.5a%"), ["1.5", "a%"]);
        assert_eq!(split_like_re_skip("a_b.c"), ["a", "_", "b", ".", "c"]);
        assert_eq!(split_like_re_skip("3.5%"), ["3.5%"]);
    }

    #[test]
    fn sentence_cutting_follows_rouge_chinese() {
        // "？？" matches once (the second "？" is the tail), then "！！" likewise.
        assert_eq!(
            cut_sentences("真的吗？？是的！！好。"),
            ["真的吗？", "？是的！", "！好。"]
        );
        assert_eq!(
            cut_sentences("他说：“你好？”然后"),
            ["他说：“你好？”", "然后"]
        );
        assert_eq!(cut_sentences("a......b  \n"), ["a......", "b"]);
    }
}
