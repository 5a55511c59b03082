//! Greedy generation from the demo GGUF (SmolLM2-135M-Instruct, Q4_1) equals transformers'
//! greedy `generate` on its f32 conversion, token for token: four chat prompts one at a time
//! and three of them in one left-padded batch (fixtures/generation/greedy.json, written by
//! tools/make_generation_fixtures.py).

mod common;

use common::{demo_generator, fixture};
use ferrotune_infer::{FinishReason, GenerationParams};
use serde::Deserialize;

#[derive(Deserialize)]
struct Single {
    prompt_ids: Vec<u32>,
    generated_ids: Vec<u32>,
    min_top2_gap: f64,
}

#[derive(Deserialize)]
struct Batched {
    prompt_ids: Vec<Vec<u32>>,
    generated_ids: Vec<Vec<u32>>,
}

#[derive(Deserialize)]
struct Fixture {
    max_new_tokens: usize,
    eos_token_ids: Vec<u32>,
    pad_token_id: u32,
    single: Vec<Single>,
    batched: Batched,
}

fn load() -> Fixture {
    let text = std::fs::read_to_string(fixture("generation/greedy.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The finish reason transformers' output implies: a stop id last, else the budget.
fn expected_reason(ids: &[u32], eos: &[u32]) -> FinishReason {
    match ids.last() {
        Some(&t) if eos.contains(&t) => FinishReason::Stop(t),
        _ => FinishReason::Length,
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    let fx = load();
    let generator = demo_generator();
    assert_eq!(generator.stop_token_ids(), fx.eos_token_ids.as_slice());
    assert_eq!(generator.pad_token_id(), fx.pad_token_id);
    let params = GenerationParams::greedy(fx.max_new_tokens);

    for (i, case) in fx.single.iter().enumerate() {
        let (out, stats) = generator
            .generate(std::slice::from_ref(&case.prompt_ids), &params)
            .unwrap();
        let text = generator
            .tokenizer()
            .decode(&out[0].token_ids, false)
            .unwrap();
        println!(
            "prompt {i} ({} tokens, closest top-2 gap {:.3}): {text:?}; prefill {:.0} tok/s, decode {:.1} tok/s",
            case.prompt_ids.len(),
            case.min_top2_gap,
            stats.prefill_tokens_per_second(),
            stats.decode_tokens_per_second()
        );
        assert_eq!(out[0].token_ids, case.generated_ids, "prompt {i}");
        assert_eq!(
            out[0].finish_reason,
            expected_reason(&case.generated_ids, &fx.eos_token_ids),
            "prompt {i}"
        );
        assert_eq!(stats.generated_tokens, case.generated_ids.len());
    }

    let (out, stats) = generator.generate(&fx.batched.prompt_ids, &params).unwrap();
    for (r, (got, want)) in out.iter().zip(&fx.batched.generated_ids).enumerate() {
        assert_eq!(&got.token_ids, want, "batched row {r}");
        assert_eq!(
            got.finish_reason,
            expected_reason(want, &fx.eos_token_ids),
            "batched row {r}"
        );
    }
    println!(
        "batch of {}: prefill {:.0} tok/s, decode {:.1} tok/s",
        out.len(),
        stats.prefill_tokens_per_second(),
        stats.decode_tokens_per_second()
    );
}
