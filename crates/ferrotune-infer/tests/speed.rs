//! Prefill and decode speed on the demo model (SmolLM2-135M-Instruct, Q4_1 GGUF), printed,
//! never asserted: the numbers depend on the machine and its load. Two loads of the same file
//! run the same greedy generation: `load_gguf` (every weight dequantized to f32) and
//! `load_gguf_quantized` (decode steps read the Q4_1/Q8_0 blocks). Their tokens must agree for
//! the first few steps (the quantized path rounds activations to 8 bits, so long continuations
//! may drift apart). Run with `cargo test -p ferrotune-infer --test speed -- --nocapture`;
//! `examples/bench_decode.rs` and `tools/bench_decode.py` compare with llama.cpp and transformers.

mod common;

use candle_core::Device;
use common::demo_gguf;
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_infer::{GenerationParams, Generator};

#[test]
fn print_prefill_and_decode_tokens_per_second() {
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    let tokenizer = TokenizerBundle::from_gguf(&gguf).unwrap();
    let story = "The little robot walked through the quiet city at night, looking at the lights. ";
    let prompt = tokenizer
        .encode(
            &format!(
                "<|im_start|>user\n{}Continue the story.<|im_end|>\n<|im_start|>assistant\n",
                story.repeat(7)
            ),
            false,
        )
        .unwrap();
    let params = GenerationParams::greedy(64);
    let mut tokens = Vec::new();
    for (label, quantized) in [("f32 weights", false), ("quantized weights", true)] {
        let model = if quantized {
            ferrotune_model::load_gguf_quantized(&gguf, &Device::Cpu).unwrap()
        } else {
            ferrotune_model::load_gguf(&gguf, &Device::Cpu).unwrap()
        };
        let generator = Generator::new(model, tokenizer.clone());
        let (out, stats) = generator
            .generate(std::slice::from_ref(&prompt), &params)
            .unwrap();
        println!(
            "demo model, {label}, 1 prompt: prefill {} tokens in {:.3} s = {:.1} tokens/s; decode {} tokens in {:.3} s = {:.1} tokens/s ({} threads)",
            stats.prompt_tokens,
            stats.prefill_seconds,
            stats.prefill_tokens_per_second(),
            stats.decode_tokens,
            stats.decode_seconds,
            stats.decode_tokens_per_second(),
            candle_core::utils::get_num_threads()
        );
        assert_eq!(stats.generated_tokens, out[0].token_ids.len());
        assert!(stats.prompt_tokens > 100 && stats.generated_tokens > 0);
        tokens.push(out[0].token_ids.clone());
    }
    let n = 8.min(tokens[0].len()).min(tokens[1].len());
    assert_eq!(tokens[0][..n], tokens[1][..n], "first {n} greedy tokens");
}
