//! Prefill and decode speed on the demo model (SmolLM2-135M-Instruct, Q4_1 GGUF computed in
//! f32), printed, never asserted: the numbers depend on the machine and its load. Run with
//! `cargo test -p ferrotune-infer --test speed -- --nocapture`.

mod common;

use common::demo_generator;
use ferrotune_infer::GenerationParams;

#[test]
fn print_prefill_and_decode_tokens_per_second() {
    let generator = demo_generator();
    let tok = generator.tokenizer();
    let story = "The little robot walked through the quiet city at night, looking at the lights. ";
    let prompt = tok
        .encode(
            &format!(
                "<|im_start|>user\n{}Continue the story.<|im_end|>\n<|im_start|>assistant\n",
                story.repeat(7)
            ),
            false,
        )
        .unwrap();
    let params = GenerationParams::greedy(64);
    let (out, stats) = generator
        .generate(std::slice::from_ref(&prompt), &params)
        .unwrap();
    println!(
        "demo model, 1 prompt: prefill {} tokens in {:.3} s = {:.1} tokens/s; decode {} tokens in {:.3} s = {:.1} tokens/s ({} threads)",
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
}
