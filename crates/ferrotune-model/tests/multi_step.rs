//! Continuous batching: one `CausalLM::forward_step_multi` over several sequences, each with
//! its own batch-1 cache and its own length, gives the logits of stepping each sequence alone
//! with `forward_with_cache` (≤ 1e-5), while sequences join and leave between steps. Checked on
//! the demo GGUF with its quantized blocks (the decode kernels), and on the tiny mistral model
//! with a sliding window (per-sequence masks) and more rows than the few-row kernels take.
//! `CausalLM::forward_multi` prefills several prompts in the same call as decode rows, and a
//! forked cache (`KvCache::fork`, prefix caching) continues a shared prefix: both give exactly
//! the logits of running alone.

mod common;

use candle_core::{Device, Tensor};
use common::{demo_gguf, fixture, golden};
use ferrotune_hub::gguf::GgufFile;
use ferrotune_model::{CausalLM, KvCache};

/// Tolerance on logits: the same per-row kernels, so only rounding may differ.
const TOL: f32 = 1e-5;

/// A sequence stepped both ways: `multi` through the shared step, `alone` by itself.
struct Seq {
    tokens: Vec<u32>,
    next: usize,
    multi: KvCache,
    alone: KvCache,
}

fn prefill(model: &CausalLM, prompt: &[u32], rest: Vec<u32>) -> Seq {
    let mut seq = Seq {
        tokens: rest,
        next: 0,
        multi: KvCache::new(&model.config),
        alone: KvCache::new(&model.config),
    };
    let x = Tensor::new(prompt, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    model.forward_with_cache(&x, None, &mut seq.multi).unwrap();
    model.forward_with_cache(&x, None, &mut seq.alone).unwrap();
    seq
}

/// One shared step over `seqs` compared row by row with single steps; returns the max |Δ|.
fn step(model: &CausalLM, seqs: &mut [Seq]) -> f32 {
    let ids: Vec<u32> = seqs.iter().map(|s| s.tokens[s.next]).collect();
    let mut caches: Vec<&mut KvCache> = seqs.iter_mut().map(|s| &mut s.multi).collect();
    let got = model.forward_step_multi(&ids, &mut caches).unwrap();
    assert_eq!(got.dims(), [seqs.len(), model.config.vocab_size]);
    let got = got.to_vec2::<f32>().unwrap();
    let mut worst = 0f32;
    for (row, seq) in got.iter().zip(seqs.iter_mut()) {
        let x = Tensor::new(&[[seq.tokens[seq.next]]], &Device::Cpu).unwrap();
        let want = model
            .forward_with_cache(&x, None, &mut seq.alone)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, b) in row.iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
        assert_eq!(seq.multi.len(), seq.alone.len());
        seq.next += 1;
    }
    worst
}

/// Three sequences of different lengths step together; a fourth joins after two steps, the
/// first leaves after three.
fn check_join_and_leave(model: &CausalLM, ids: &[u32], label: &str) {
    let mut seqs = vec![
        prefill(model, &ids[..5], ids[5..12].to_vec()),
        prefill(model, &ids[..9], ids[9..16].to_vec()),
        prefill(model, &ids[2..4], ids[4..11].to_vec()),
    ];
    let mut worst = 0f32;
    for s in 0..5 {
        if s == 2 {
            seqs.push(prefill(model, &ids[1..8], ids[8..15].to_vec()));
        }
        if s == 3 {
            seqs.remove(0);
        }
        worst = worst.max(step(model, &mut seqs));
    }
    println!("{label}: max |Δlogit| multi vs alone = {worst:.3e}");
    assert!(worst <= TOL, "{label}: max |Δlogit| = {worst:e} > {TOL:e}");
}

#[test]
fn demo_gguf_quantized_multi_step_equals_single_steps() {
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    let model = ferrotune_model::load_gguf_quantized(&gguf, &Device::Cpu).unwrap();
    let ids: Vec<u32> = (0..16).map(|i| 100 + 37 * i).collect();
    check_join_and_leave(&model, &ids, "demo gguf (quantized)");
}

#[test]
fn tiny_mistral_sliding_window_and_many_rows() {
    let dir = fixture("tiny/mistral");
    let mut model = ferrotune_model::load_hf_dir(&dir, &Device::Cpu).unwrap();
    let (ids, _) = golden(&dir.join("golden.safetensors"));
    let ids: Vec<u32> = ids.to_vec2::<u32>().unwrap().concat();
    assert!(ids.len() >= 16, "golden ids too short: {}", ids.len());
    check_join_and_leave(&model, &ids, "tiny mistral");
    // A window of 3 hides keys of every sequence (per-sequence masks).
    model.config.sliding_window = Some(3);
    check_join_and_leave(&model, &ids, "tiny mistral, window 3");
    // More rows than the few-row kernels take (the projections become one GEMM).
    let mut seqs: Vec<Seq> = (0..12)
        .map(|i| prefill(&model, &ids[i % 5..i % 5 + 2 + i % 4], ids[8..12].to_vec()))
        .collect();
    let worst = (0..3).map(|_| step(&model, &mut seqs)).fold(0f32, f32::max);
    println!("tiny mistral, 12 rows: max |Δlogit| = {worst:.3e}");
    assert!(worst <= TOL, "12 rows: max |Δlogit| = {worst:e} > {TOL:e}");
}

#[test]
fn multi_step_rejects_mismatched_inputs() {
    let dir = fixture("tiny/llama");
    let model = ferrotune_model::load_hf_dir(&dir, &Device::Cpu).unwrap();
    let mut a = KvCache::new(&model.config);
    let err = model
        .forward_step_multi(&[1, 2], &mut [&mut a])
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 tokens but 1 caches"), "{err}");
    let v = model.config.vocab_size as u32;
    let err = model
        .forward_step_multi(&[v], &mut [&mut a])
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("token id {v}")), "{err}");
    let empty = model.forward_step_multi(&[], &mut []).unwrap();
    assert_eq!(empty.dims(), [0, model.config.vocab_size]);
}

/// The property the shared step relies on: a quantized projection of several rows gives each
/// row the values it gets alone (rows are independent in the few-row kernels).
#[test]
fn quantized_projection_rows_do_not_depend_on_each_other() {
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    let model = ferrotune_model::load_gguf_quantized(&gguf, &Device::Cpu).unwrap();
    let lin = &model.layers[0].mlp.down_proj;
    let k = lin.weight.dim(1).unwrap();
    for rows in [2usize, 3, 8] {
        let xs: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 7919) % 113) as f32 / 113.0 - 0.5)
            .collect();
        let x = Tensor::from_vec(xs, (rows, k), &Device::Cpu).unwrap();
        let together = lin.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let mut worst = 0f32;
        for (r, row) in together.iter().enumerate() {
            let alone = lin
                .forward(&x.narrow(0, r, 1).unwrap())
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for (a, b) in row.iter().zip(&alone[0]) {
                worst = worst.max((a - b).abs());
            }
        }
        println!("down_proj, {rows} rows together vs alone: max |Δ| = {worst:.3e}");
        assert!(worst <= TOL, "{rows} rows: max |Δ| = {worst:e}");
    }
}

/// As above for q/k/v computed together (`Linear::forward_many`).
#[test]
fn quantized_qkv_rows_do_not_depend_on_each_other() {
    use ferrotune_model::layers::{Linear, Qkv};
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    let model = ferrotune_model::load_gguf_quantized(&gguf, &Device::Cpu).unwrap();
    let Qkv::Separate {
        q_proj,
        k_proj,
        v_proj,
    } = &model.layers[0].self_attn.qkv
    else {
        panic!("the demo model has separate q/k/v");
    };
    let k = q_proj.weight.dim(1).unwrap();
    let rows = 3;
    let xs: Vec<f32> = (0..rows * k)
        .map(|i| ((i * 7919) % 113) as f32 / 113.0 - 0.5)
        .collect();
    let x = Tensor::from_vec(xs, (rows, k), &Device::Cpu).unwrap();
    let together = Linear::forward_many(&[q_proj, k_proj, v_proj], &x).unwrap();
    let mut worst = 0f32;
    for r in 0..rows {
        let alone =
            Linear::forward_many(&[q_proj, k_proj, v_proj], &x.narrow(0, r, 1).unwrap()).unwrap();
        for (t, a) in together.iter().zip(&alone) {
            let t = t
                .narrow(0, r, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (x, y) in t.iter().zip(&a) {
                worst = worst.max((x - y).abs());
            }
        }
    }
    println!("q/k/v, {rows} rows together vs alone: max |Δ| = {worst:.3e}");
    assert!(worst <= TOL, "max |Δ| = {worst:e}");
}

/// Prompts prefilled together in one `forward_multi` (two longer than the few-row kernels take,
/// one short), in the same call as decode steps of running sequences, give each sequence the
/// logits of running it alone (`Generator`'s prefill: the head on the last position); later
/// shared decode steps still agree.
#[test]
fn packed_prefill_with_decode_rows_equals_running_alone() {
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    let model = ferrotune_model::load_gguf_quantized(&gguf, &Device::Cpu).unwrap();
    let ids: Vec<u32> = (0..40).map(|i| 100 + 37 * i).collect();
    // Two sequences already decoding.
    let mut running = vec![
        prefill(&model, &ids[..6], ids[6..12].to_vec()),
        prefill(&model, &ids[3..14], ids[14..20].to_vec()),
    ];
    // Three new prompts of 20, 11 and 3 tokens, joining in the same call (the first two share
    // one GEMM).
    let prompts: [&[u32]; 3] = [&ids[..20], &ids[23..34], &ids[20..23]];
    let mut joined: Vec<Seq> = prompts
        .iter()
        .map(|_| Seq {
            tokens: ids[34..40].to_vec(),
            next: 0,
            multi: KvCache::new(&model.config),
            alone: KvCache::new(&model.config),
        })
        .collect();
    let decode: Vec<u32> = running.iter().map(|s| s.tokens[s.next]).collect();
    let mut new_tokens: Vec<&[u32]> = decode.iter().map(std::slice::from_ref).collect();
    new_tokens.extend(prompts);
    let mut caches: Vec<&mut KvCache> = running
        .iter_mut()
        .chain(joined.iter_mut())
        .map(|s| &mut s.multi)
        .collect();
    let got = model
        .forward_multi(&new_tokens, &mut caches)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut worst = 0f32;
    let mut alone_rows = Vec::new();
    for s in running.iter_mut() {
        let x = Tensor::new(&[[s.tokens[s.next]]], &Device::Cpu).unwrap();
        alone_rows.push(model.forward_with_cache(&x, None, &mut s.alone).unwrap());
        s.next += 1;
    }
    for (s, p) in joined.iter_mut().zip(prompts) {
        let x = Tensor::new(p, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        // As `Generator` prefills: the LM head on the last position only.
        let hidden = model
            .forward_hidden_with_cache(&x, None, &mut s.alone)
            .unwrap();
        let last = hidden.narrow(1, p.len() - 1, 1).unwrap();
        alone_rows.push(model.logits(&last).unwrap());
    }
    for (i, (row, want)) in got.iter().zip(&alone_rows).enumerate() {
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut w = 0f32;
        for (a, b) in row.iter().zip(&want) {
            w = w.max((a - b).abs());
        }
        println!("sequence {i}: max |Δlogit| = {w:.3e}");
        worst = worst.max(w);
    }
    println!("packed prefill + decode: max |Δlogit| vs alone = {worst:.3e}");
    assert!(worst <= TOL, "packed prefill: max |Δlogit| = {worst:e}");
    running.append(&mut joined);
    let worst = (0..3)
        .map(|_| step(&model, &mut running))
        .fold(0f32, f32::max);
    println!("then 5 sequences decoding together: max |Δlogit| = {worst:.3e}");
    assert!(
        worst <= TOL,
        "decode after packed prefill: max |Δlogit| = {worst:e}"
    );
}

/// Prefix caching: a cache forked at a shared prefix, then the rest of a prompt prefilled over
/// it, gives the logits of prefilling the whole prompt alone, exactly (both prefills are GEMMs
/// whose rows do not depend on each other); the cache forked from stays untouched.
#[test]
fn forked_prefix_then_suffix_equals_the_whole_prompt() {
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    let model = ferrotune_model::load_gguf_quantized(&gguf, &Device::Cpu).unwrap();
    let ids: Vec<u32> = (0..40).map(|i| 100 + 37 * i).collect();
    let other: Vec<u32> = ids[..15].iter().chain(&ids[30..40]).copied().collect();
    let last_logits = |prompt: &[u32], cache: &mut KvCache| {
        let x = Tensor::new(prompt, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let h = model.forward_hidden_with_cache(&x, None, cache).unwrap();
        let last = h.narrow(1, prompt.len() - 1, 1).unwrap();
        model
            .logits(&last)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    // A first prompt sharing 15 tokens with `other`.
    let mut first = KvCache::new(&model.config);
    let first_logits = last_logits(&ids[..28], &mut first);
    let mut alone = KvCache::new(&model.config);
    let want = last_logits(&other, &mut alone);
    let mut forked = first.fork(15).unwrap();
    assert_eq!((forked.len(), forked.next_positions()), (15, &[15u32][..]));
    let suffix: &[u32] = &other[15..];
    let got = model
        .forward_multi(&[suffix], &mut [&mut forked])
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("forked prefix + suffix vs whole prompt: max |Δlogit| = {worst:.3e}");
    assert_eq!(worst, 0.0);
    // The first cache still continues as before.
    let mut again = KvCache::new(&model.config);
    last_logits(&ids[..28], &mut again);
    let step = |c: &mut KvCache| {
        let x = Tensor::new(&[[ids[28]]], &Device::Cpu).unwrap();
        model
            .forward_with_cache(&x, None, c)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(step(&mut first), step(&mut again));
    assert_eq!(first_logits.len(), model.config.vocab_size);
    assert!(first.fork(30).is_err(), "only 29 positions are cached");
}
