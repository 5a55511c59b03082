//! What `streaming: true` changes, after LLaMA-Factory v0.9.5 (`data/loader.py`,
//! `data/data_utils.py::split_dataset`) on Hugging Face `datasets`' `IterableDataset`:
//!
//! - the merged examples pass through a shuffle buffer of `buffer_size`
//!   ([`shuffle_buffer`], `IterableDataset.shuffle(buffer_size, seed)`), the evaluation
//!   dataset too;
//! - `val_size` is a count: the first `val_size` examples of the shuffled stream are the
//!   evaluation split (`take`), the rest the training split (`skip`);
//! - `num_samples` is ignored (LLaMA-Factory samples only map-style datasets).
//!
//! The buffer draws its slots from rand's `StdRng` seeded with `seed`, not numpy's generator,
//! so the order is reproducible but not LLaMA-Factory's (as for the other random orders here).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A buffered shuffle: the first `buffer_size` items fill the buffer; each later item takes
/// the place of a uniformly drawn buffered one, which is emitted; at the end the buffer is
/// shuffled and emitted. With `buffer_size >= items.len()` this is a full shuffle; with
/// `buffer_size <= 1` the order is kept. Works on any iterator, holding at most
/// `buffer_size` items.
pub fn shuffle_buffer<T>(
    items: impl IntoIterator<Item = T>,
    buffer_size: usize,
    seed: u64,
) -> impl Iterator<Item = T> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buffer: Vec<T> = Vec::with_capacity(buffer_size.min(1 << 16));
    let mut source = items.into_iter();
    let mut tail: Option<std::vec::IntoIter<T>> = None;
    std::iter::from_fn(move || loop {
        if let Some(rest) = tail.as_mut() {
            return rest.next();
        }
        match source.next() {
            Some(item) if buffer_size <= 1 => return Some(item),
            Some(item) if buffer.len() < buffer_size => buffer.push(item),
            Some(item) => {
                let i = rng.random_range(0..buffer.len());
                return Some(std::mem::replace(&mut buffer[i], item));
            }
            None => {
                let mut rest = std::mem::take(&mut buffer);
                rest.shuffle(&mut rng);
                tail = Some(rest.into_iter());
            }
        }
    })
}

/// Splits a stream into (train, eval) as LLaMA-Factory does in streaming mode: the first
/// `val_size` items (a count; fractions are refused by config validation) are the evaluation
/// split.
pub fn take_skip<T>(items: Vec<T>, val_size: usize) -> (Vec<T>, Vec<T>) {
    let mut train = items;
    let eval: Vec<T> = train.drain(..val_size.min(train.len())).collect();
    (train, eval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_shuffle_is_a_seeded_permutation() {
        let a: Vec<u32> = shuffle_buffer(0..1000, 64, 42).collect();
        let b: Vec<u32> = shuffle_buffer(0..1000, 64, 42).collect();
        let c: Vec<u32> = shuffle_buffer(0..1000, 64, 43).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_small_buffer_only_moves_items_locally() {
        // Item k cannot come out before position k - buffer_size + 1 ... and nothing is emitted
        // before the buffer is full, so the first output is one of the first 9 items.
        let out: Vec<usize> = shuffle_buffer(0..200usize, 8, 7).collect();
        assert!(out[0] < 9, "{}", out[0]);
        for (pos, item) in out.iter().enumerate() {
            assert!(*item <= pos + 8, "item {item} at {pos}");
        }
    }

    #[test]
    fn buffer_of_one_keeps_the_order_and_take_skip_splits_the_head() {
        let out: Vec<u8> = shuffle_buffer(0..10u8, 1, 1).collect();
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        let (train, eval) = take_skip(out, 3);
        assert_eq!(eval, vec![0, 1, 2]);
        assert_eq!(train, (3..10).collect::<Vec<_>>());
        let (train, eval) = take_skip(vec![1, 2], 5);
        assert_eq!((train.len(), eval.len()), (0, 2));
    }
}
