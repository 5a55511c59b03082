//! Index arithmetic for sampling, mixing and splitting datasets, after Hugging Face `datasets`
//! (`interleave_datasets` on map-style datasets, `Dataset.train_test_split`) and LLaMA-Factory's
//! `num_samples` rule (`data/loader.py`).
//!
//! The orders that need no randomness (concatenation, round-robin interleaving) match exactly.
//! Random choices use rand's `StdRng` seeded with `seed` instead of numpy's generators, so
//! shuffled and probability-driven orders are reproducible but differ from LLaMA-Factory's; the
//! *algorithms* (how many items, which stopping rule, numpy's inverse-CDF source choice) match.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::DatasetError;

/// `num_samples` selection: a random permutation of `0..len` cut to `target`, then, when
/// `target > len`, further indices drawn with replacement (every row appears at least once).
pub(crate) fn sample_indices(len: usize, target: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut indices: Vec<usize> = (0..len).collect();
    indices.shuffle(&mut rng);
    indices.truncate(target);
    while indices.len() < target && len > 0 {
        indices.push(rng.random_range(0..len));
    }
    indices
}

/// When interleaving stops (LLaMA-Factory's `mix_strategy` → `datasets` stopping strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// `interleave_under` (`first_exhausted`): stop when any dataset runs out.
    FirstExhausted,
    /// `interleave_over` (`all_exhausted`): restart exhausted datasets until every one has been
    /// seen in full.
    AllExhausted,
    /// `interleave_once` (`all_exhausted_without_replacement`): every example exactly once,
    /// exhausted datasets drop out of the choice.
    Once,
}

/// The interleaved order as `(dataset, row)` pairs, for datasets of `lengths` rows.
///
/// Without `probs` datasets take turns (exact `datasets` order); with `probs` each step picks a
/// dataset by inverse CDF over a uniform draw, as numpy's `Generator.choice` does.
///
/// Errors: [`DatasetError::Options`] when `probs` has the wrong length, a negative value, or
/// does not sum to 1.
pub(crate) fn interleave(
    lengths: &[usize],
    probs: Option<&[f64]>,
    stop: Stop,
    seed: u64,
) -> Result<Vec<(usize, usize)>, DatasetError> {
    let n = lengths.len();
    if lengths.contains(&0) {
        return Ok(Vec::new());
    }
    let Some(probs) = probs else {
        return Ok(round_robin(lengths, stop));
    };
    check_probs(probs, n)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut current = vec![0usize; n];
    let mut exhausted = vec![false; n];
    let mut out = Vec::new();
    loop {
        let done = match stop {
            Stop::FirstExhausted => exhausted.iter().any(|&e| e),
            Stop::AllExhausted | Stop::Once => exhausted.iter().all(|&e| e),
        };
        if done {
            return Ok(out);
        }
        let weights: Vec<f64> = match stop {
            Stop::Once => probs
                .iter()
                .zip(&exhausted)
                .map(|(p, e)| if *e { 0.0 } else { *p })
                .collect(),
            _ => probs.to_vec(),
        };
        let Some(source) = choose(&weights, rng.random::<f64>()) else {
            // Only zero-probability datasets are left (interleave_once): append them in order.
            for (d, len) in lengths.iter().enumerate().filter(|(d, _)| !exhausted[*d]) {
                out.extend((current[d]..*len).map(|i| (d, i)));
            }
            return Ok(out);
        };
        out.push((source, current[source]));
        current[source] += 1;
        if current[source] >= lengths[source] {
            exhausted[source] = true;
            current[source] = 0;
        }
    }
}

/// Inverse-CDF choice: the first index whose normalized cumulative weight exceeds `u` in [0,1);
/// `None` when every weight is zero.
fn choose(weights: &[f64], u: f64) -> Option<usize> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut cdf = 0.0;
    for (i, w) in weights.iter().enumerate() {
        cdf += w;
        if u < cdf / total && *w > 0.0 {
            return Some(i);
        }
    }
    weights.iter().rposition(|w| *w > 0.0)
}

/// Round-robin orders: `first_exhausted` takes `min(lengths)` rows of each dataset;
/// `all_exhausted` takes `max(lengths)` of each, wrapping around; `Once` takes each row once,
/// skipping exhausted datasets.
fn round_robin(lengths: &[usize], stop: Stop) -> Vec<(usize, usize)> {
    let rounds = match stop {
        Stop::FirstExhausted => lengths.iter().copied().min().unwrap_or(0),
        Stop::AllExhausted | Stop::Once => lengths.iter().copied().max().unwrap_or(0),
    };
    let mut out = Vec::new();
    for i in 0..rounds {
        for (d, &len) in lengths.iter().enumerate() {
            match stop {
                Stop::Once if i >= len => {}
                _ => out.push((d, i % len)),
            }
        }
    }
    out
}

/// `interleave_probs` must give one non-negative probability per dataset, summing to 1 within
/// numpy's tolerance (√ε ≈ 1.5e-8).
fn check_probs(probs: &[f64], n: usize) -> Result<(), DatasetError> {
    let fail = |message: String| Err(DatasetError::Options { message });
    if probs.len() != n {
        return fail(format!(
            "`interleave_probs` has {} values for {n} datasets; hint: give one per dataset",
            probs.len()
        ));
    }
    if let Some(p) = probs.iter().find(|p| p.is_nan() || **p < 0.0) {
        return fail(format!(
            "`interleave_probs` holds {p}; probabilities must be non-negative"
        ));
    }
    let sum: f64 = probs.iter().sum();
    if (sum - 1.0).abs() > f64::EPSILON.sqrt() {
        return fail(format!(
            "`interleave_probs` {probs:?} sums to {sum}; hint: make them sum to 1"
        ));
    }
    Ok(())
}

/// `train_test_split(test_size=val_size, seed)`: `val_size` > 1 is a count, else a fraction
/// (eval size `ceil(val_size * n)`); returns `(train, eval)` row indices from one shuffle
/// (eval first, as `datasets` takes them).
///
/// Errors: [`DatasetError::Options`] when the split would leave either side empty or `val_size`
/// is not below the number of examples.
pub(crate) fn train_eval_indices(
    n: usize,
    val_size: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DatasetError> {
    let n_eval = if val_size > 1.0 {
        val_size as usize
    } else {
        (val_size * n as f64).ceil() as usize
    };
    if (val_size - 1.0).abs() < f64::EPSILON || n_eval == 0 || n_eval >= n {
        return Err(DatasetError::Options {
            message: format!(
                "`val_size` {val_size} does not split {n} examples into non-empty train and eval sets; \
                 hint: use a fraction in (0,1) or a count below {n}"
            ),
        });
    }
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut StdRng::seed_from_u64(seed));
    let train = perm.split_off(n_eval);
    Ok((train, perm))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples in `datasets`' own comments: lengths [3, 4, 5].
    #[test]
    fn round_robin_matches_datasets() {
        let flat = |v: Vec<(usize, usize)>| -> Vec<usize> {
            let offsets = [0, 3, 7];
            v.into_iter().map(|(d, i)| offsets[d] + i).collect()
        };
        let under = interleave(&[3, 4, 5], None, Stop::FirstExhausted, 0).unwrap_or_default();
        assert_eq!(flat(under), [0, 3, 7, 1, 4, 8, 2, 5, 9]);
        let over = interleave(&[3, 4, 5], None, Stop::AllExhausted, 0).unwrap_or_default();
        assert_eq!(flat(over), [0, 3, 7, 1, 4, 8, 2, 5, 9, 0, 6, 10, 1, 3, 11]);
        let once = interleave(&[3, 4, 5], None, Stop::Once, 0).unwrap_or_default();
        assert_eq!(flat(once), [0, 3, 7, 1, 4, 8, 2, 5, 9, 6, 10, 11]);
    }
}
