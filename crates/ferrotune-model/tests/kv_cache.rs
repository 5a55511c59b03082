//! Cached decoding equals the full forward pass: for the tiny models of the llama, qwen2,
//! mistral (with a sliding window) and phi3 families, logits from a prefill followed by
//! incremental steps over a [`KvCache`] match [`CausalLM::forward`] on the whole sequence at
//! every position (f32, ≤ 1e-4), for one row and for a left-padded batch of two rows.

mod common;

use candle_core::{Device, IndexOp, Tensor};
use common::{fixture, golden, max_abs_diff};
use ferrotune_model::{CausalLM, KvCache};

/// Tolerance on logits: both paths are f32 and differ only in summation order.
const TOL: f32 = 1e-4;

fn load(variant: &str, sliding_window: Option<usize>) -> (CausalLM, Vec<Vec<u32>>) {
    let dir = fixture(&format!("tiny/{variant}"));
    let mut model = ferrotune_model::load_hf_dir(&dir, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{variant}: {e}"));
    if sliding_window.is_some() {
        model.config.sliding_window = sliding_window;
    }
    let (ids, _) = golden(&dir.join("golden.safetensors"));
    (model, ids.to_vec2::<u32>().unwrap())
}

/// Full-forward logits of one unpadded row: `[T, V]`.
fn full_logits(model: &CausalLM, ids: &[u32]) -> Tensor {
    let x = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    model.forward(&x, None).unwrap().squeeze(0).unwrap()
}

/// One row: prefill 4 tokens, one step of 3 tokens (a causal block after a cached past), then
/// single tokens to the end.
fn check_single_row(variant: &str, sliding_window: Option<usize>) {
    let (model, rows) = load(variant, sliding_window);
    let ids = &rows[0];
    let want = full_logits(&model, ids);
    let mut cache = KvCache::new(&model.config);
    let mut start = 0;
    let mut worst = 0f32;
    for len in [4, 3, 1, 1, 1] {
        let chunk = Tensor::new(&ids[start..start + len], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let got = model
            .forward_with_cache(&chunk, None, &mut cache)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let diff = max_abs_diff(&got, &want.narrow(0, start, len).unwrap());
        worst = worst.max(diff);
        start += len;
    }
    assert_eq!(cache.len(), ids.len());
    println!("{variant} (window {sliding_window:?}), one row: max |Δlogit| = {worst:.3e}");
    assert!(
        worst <= TOL,
        "{variant}: max |Δlogit| = {worst:e} > {TOL:e}"
    );
}

/// Two rows of different prompt lengths, the shorter left-padded, prefilled together and then
/// decoded three steps together; each row compared with its own unpadded full forward.
fn check_left_padded_batch(variant: &str, sliding_window: Option<usize>) {
    let (model, rows) = load(variant, sliding_window);
    let (a, b) = (&rows[0][..10], &rows[1][..7]);
    let (want_a, want_b) = (full_logits(&model, a), full_logits(&model, b));
    let pad = 3; // b's prompt (4 tokens) is padded to a's (7 tokens)
    let mut prompt = vec![a[..7].to_vec(), vec![0; pad]];
    prompt[1].extend_from_slice(&b[..4]);
    let mask: Vec<Vec<u32>> = vec![vec![1; 7], [vec![0; pad], vec![1; 4]].concat()];
    let mut cache = KvCache::new(&model.config);
    let logits = model
        .forward_with_cache(
            &Tensor::new(prompt, &Device::Cpu).unwrap(),
            Some(&Tensor::new(mask, &Device::Cpu).unwrap()),
            &mut cache,
        )
        .unwrap();
    let mut worst =
        max_abs_diff(&logits.i(0).unwrap(), &want_a.narrow(0, 0, 7).unwrap()).max(max_abs_diff(
            &logits.i(1).unwrap().narrow(0, pad, 4).unwrap(),
            &want_b.narrow(0, 0, 4).unwrap(),
        ));
    assert_eq!(cache.next_positions(), &[7, 4]);
    for step in 0..3 {
        let x = Tensor::new(&[[a[7 + step]], [b[4 + step]]], &Device::Cpu).unwrap();
        let got = model.forward_with_cache(&x, None, &mut cache).unwrap(); // [2, 1, V]
        worst = worst
            .max(max_abs_diff(
                &got.i((0, 0)).unwrap(),
                &want_a.i(7 + step).unwrap(),
            ))
            .max(max_abs_diff(
                &got.i((1, 0)).unwrap(),
                &want_b.i(4 + step).unwrap(),
            ));
    }
    println!(
        "{variant} (window {sliding_window:?}), left-padded batch: max |Δlogit| = {worst:.3e}"
    );
    assert!(
        worst <= TOL,
        "{variant}: max |Δlogit| = {worst:e} > {TOL:e}"
    );
}

#[test]
fn llama_cached_equals_full() {
    check_single_row("llama", None);
    check_left_padded_batch("llama", None);
}

#[test]
fn qwen2_cached_equals_full() {
    check_single_row("qwen2", None);
    check_left_padded_batch("qwen2", None);
}

#[test]
fn mistral_sliding_window_cached_equals_full() {
    // A window of 3 is shorter than every sequence here, so it hides keys in the prefill, in the
    // 3-token step and in every single-token step.
    check_single_row("mistral", Some(3));
    check_left_padded_batch("mistral", Some(3));
    // The window really changes the logits (so the test above could fail).
    let (windowed, rows) = load("mistral", Some(3));
    let (plain, _) = load("mistral", None);
    let diff = max_abs_diff(
        &full_logits(&windowed, &rows[0]),
        &full_logits(&plain, &rows[0]),
    );
    assert!(diff > 1e-2, "window 3 changed logits by only {diff:e}");
}

#[test]
fn phi3_cached_equals_full() {
    check_single_row("phi3", None);
    check_left_padded_batch("phi3", None);
}

#[test]
fn cache_rejects_another_batch_size() {
    let (model, rows) = load("llama", None);
    let mut cache = KvCache::new(&model.config);
    let one = Tensor::new(&rows[0][..3], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    model.forward_with_cache(&one, None, &mut cache).unwrap();
    let two = Tensor::new(&[[1u32], [2]], &Device::Cpu).unwrap();
    let err = model
        .forward_with_cache(&two, None, &mut cache)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch of 2 rows but the cache holds 1"),
        "{err}"
    );
    cache.reset();
    assert!(cache.is_empty());
    model.forward_with_cache(&two, None, &mut cache).unwrap();
    assert_eq!(cache.next_positions(), &[1, 1]);
}
