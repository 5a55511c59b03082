//! Choosing the next token from one row of logits `[V]` f32, in the order transformers applies
//! its logits processors in `generate` (`generation/utils.py`, `_get_logits_processor`, v5.24):
//! the repetition penalty, then, only when sampling, temperature, top-k and top-p; then argmax
//! (greedy) or a draw from the softmax. The rules of each step are those of
//! `generation/logits_process.py` (`RepetitionPenaltyLogitsProcessor`, `TemperatureLogitsWarper`,
//! `TopKLogitsWarper`, `TopPLogitsWarper`, each keeping at least one token).

use rand::rngs::StdRng;
use rand::Rng;

use crate::params::GenerationParams;

/// CTRL's repetition penalty (Keskar et al. 2019, §4.1) on every id in `seen` (each once, however
/// often it occurs): a logit `s < 0` becomes `s · penalty`, otherwise `s / penalty`, so a penalty
/// above 1 always makes a seen token less likely. Ids outside the vocabulary are ignored.
pub fn apply_repetition_penalty(logits: &mut [f32], seen: &[u32], penalty: f64) {
    if penalty == 1.0 {
        return;
    }
    let p = penalty as f32;
    let mut done = vec![false; logits.len()];
    for &id in seen {
        let i = id as usize;
        if let (Some(s), Some(d)) = (logits.get_mut(i), done.get_mut(i)) {
            if !*d {
                *s = if *s < 0.0 { *s * p } else { *s / p };
                *d = true;
            }
        }
    }
}

/// Top-k filter: logits strictly below the `k`-th largest become `-inf` (ties with it are
/// kept, as with `scores < topk(scores, k)[..., -1]`). `k` 0 or ≥ V keeps everything.
pub fn apply_top_k(logits: &mut [f32], k: usize) {
    if k == 0 || k >= logits.len() {
        return;
    }
    let mut sorted = logits.to_vec();
    // Descending by value: the k-th largest lands at index k - 1.
    let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let threshold = *kth;
    for s in logits.iter_mut() {
        if *s < threshold {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Top-p (nucleus) filter (Holtzman et al. 2019, §3.1) as transformers computes it: sort
/// ascending, accumulate softmax probabilities, drop every token whose cumulative probability
/// is ≤ `1 - top_p`; the most probable token always stays. `top_p` ≥ 1 keeps everything.
pub fn apply_top_p(logits: &mut [f32], top_p: f64) {
    if top_p >= 1.0 {
        return;
    }
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).filter(|&i| probs[i] > 0.0).collect();
    order.sort_by(|&a, &b| probs[a].total_cmp(&probs[b]));
    let mut cumulative = 0.0;
    let keep_from = order.len().saturating_sub(1);
    for (rank, &i) in order.iter().enumerate() {
        cumulative += probs[i];
        if rank < keep_from && cumulative <= 1.0 - top_p {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

/// Softmax in f64 over f32 logits; `-inf` gives probability 0.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p: Vec<f64> = logits.iter().map(|&s| f64::from(s - max).exp()).collect();
    let sum: f64 = p.iter().sum();
    for x in &mut p {
        *x /= sum;
    }
    p
}

/// Index of the largest logit, the first one on ties (as `torch.argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &s) in logits.iter().enumerate() {
        if s > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The next token of one row: `logits` `[V]` (modified in place), `seen` the row's ids so far
/// (prompt and generated) for the repetition penalty.
pub fn next_token(
    logits: &mut [f32],
    seen: &[u32],
    params: &GenerationParams,
    rng: &mut StdRng,
) -> u32 {
    apply_repetition_penalty(logits, seen, params.repetition_penalty);
    if !params.do_sample {
        return argmax(logits);
    }
    if params.temperature != 1.0 {
        let t = params.temperature as f32;
        for s in logits.iter_mut() {
            *s /= t;
        }
    }
    apply_top_k(logits, params.top_k);
    apply_top_p(logits, params.top_p);
    let probs = softmax(logits);
    let u: f64 = rng.random();
    let mut cumulative = 0.0;
    let mut last_nonzero = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cumulative += p;
            last_nonzero = i;
            if u < cumulative {
                return i as u32;
            }
        }
    }
    // Rounding left the total just under 1 and `u` above it.
    last_nonzero as u32
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_once() {
        let mut s = vec![2.0, -2.0, 1.0, 4.0];
        apply_repetition_penalty(&mut s, &[0, 1, 0, 0, 9], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 1.0, 4.0]);
    }

    #[test]
    fn top_k_keeps_ties_with_the_kth_value() {
        let mut s = vec![1.0, 3.0, 2.0, 2.0, 0.5];
        apply_top_k(&mut s, 2);
        let inf = f32::NEG_INFINITY;
        assert_eq!(s, vec![inf, 3.0, 2.0, 2.0, inf]);
    }

    #[test]
    fn top_p_matches_transformers_rule() {
        // Probabilities 0.5, 0.25, 0.125, 0.125 (logits ln p). Ascending cumulative sums:
        // 0.125, 0.25, 0.5, 1.0. With top_p 0.6, drop those ≤ 0.4: the two 0.125 tokens.
        let p = [0.5f32, 0.25, 0.125, 0.125];
        let mut s: Vec<f32> = p.iter().map(|x| x.ln()).collect();
        apply_top_p(&mut s, 0.6);
        assert!(s[0].is_finite() && s[1].is_finite());
        assert!(s[2] == f32::NEG_INFINITY && s[3] == f32::NEG_INFINITY);
        // top_p 0 keeps only the best token.
        let mut s: Vec<f32> = p.iter().map(|x| x.ln()).collect();
        apply_top_p(&mut s, 0.0);
        assert_eq!(s.iter().filter(|x| x.is_finite()).count(), 1);
        assert!(s[0].is_finite());
    }

    #[test]
    fn sampling_is_reproducible_and_follows_the_distribution() {
        let params = GenerationParams {
            do_sample: true,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            ..GenerationParams::default()
        };
        let logits: Vec<f32> = [0.7f32, 0.2, 0.1].iter().map(|x| x.ln()).collect();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..4000)
                .map(|_| next_token(&mut logits.clone(), &[], &params, &mut rng))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        let share = a.iter().filter(|&&t| t == 0).count() as f64 / a.len() as f64;
        assert!(
            (share - 0.7).abs() < 0.03,
            "token 0 drawn {share} of the time"
        );
        // Greedy ignores the generator and takes the first maximum.
        let greedy = GenerationParams::greedy(1);
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(next_token(&mut [1.0, 3.0, 3.0], &[], &greedy, &mut rng), 1);
    }
}
