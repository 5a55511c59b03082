//! Decode speed of ferrotune on GGUF files, one JSON object per line on stdout, for
//! `tools/bench_decode.py` (which runs llama.cpp and transformers on the same prompt).
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run -p ferrotune-infer --example bench_decode -- \
//!     [--prompt TEXT] [--max-new-tokens N] [--f32] MODEL.gguf...
//! ```
//!
//! For each file: a short warm-up generation, then one greedy generation of up to
//! `--max-new-tokens` (default 128) new tokens from the prompt (default: a ChatML story
//! request), with the weights kept quantized (`load_gguf_quantized`), and also dequantized to
//! f32 (`load_gguf`) with `--f32`. Decode tokens/s counts the tokens of the steps after the
//! prefill, as `GenerationStats` does; generation stops early only at an end-of-sequence id.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::Device;
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_infer::{GenerationParams, Generator};
use serde_json::json;

const DEFAULT_PROMPT: &str = "<|im_start|>user\nWrite a long story about a little robot who \
explores a quiet city at night.<|im_end|>\n<|im_start|>assistant\n";

struct Args {
    prompt: String,
    max_new_tokens: usize,
    with_f32: bool,
    files: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        prompt: DEFAULT_PROMPT.to_string(),
        max_new_tokens: 128,
        with_f32: false,
        files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--prompt" => args.prompt = it.next().ok_or("--prompt needs a value")?,
            "--max-new-tokens" => {
                let v = it.next().ok_or("--max-new-tokens needs a value")?;
                args.max_new_tokens = v
                    .parse()
                    .map_err(|e| format!("--max-new-tokens `{v}`: {e}"))?;
            }
            "--f32" => args.with_f32 = true,
            other if other.starts_with("--") => return Err(format!("unknown flag `{other}`")),
            file => args.files.push(PathBuf::from(file)),
        }
    }
    if args.files.is_empty() {
        return Err("no GGUF file given".into());
    }
    Ok(args)
}

fn bench(args: &Args, path: &Path, quantized: bool) -> Result<serde_json::Value, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let gguf = GgufFile::open(path).map_err(|e| err(&e))?;
    let tokenizer = TokenizerBundle::from_gguf(&gguf).map_err(|e| err(&e))?;
    let model = if quantized {
        ferrotune_model::load_gguf_quantized(&gguf, &Device::Cpu)
    } else {
        ferrotune_model::load_gguf(&gguf, &Device::Cpu)
    }
    .map_err(|e| err(&e))?;
    let generator = Generator::new(model, tokenizer);
    let prompt = generator
        .tokenizer()
        .encode(&args.prompt, false)
        .map_err(|e| err(&e))?;
    let prompts = [prompt];
    generator
        .generate(&prompts, &GenerationParams::greedy(4))
        .map_err(|e| err(&e))?;
    let (out, stats) = generator
        .generate(&prompts, &GenerationParams::greedy(args.max_new_tokens))
        .map_err(|e| err(&e))?;
    let ids = out.first().map(|g| g.token_ids.clone()).unwrap_or_default();
    Ok(json!({
        "engine": "ferrotune",
        "model": path.display().to_string(),
        "weights": if quantized { "quantized" } else { "f32" },
        "threads": candle_core::utils::get_num_threads(),
        "prompt_tokens": stats.prompt_tokens,
        "prefill_tokens_per_second": stats.prefill_tokens_per_second(),
        "generated_tokens": stats.generated_tokens,
        "decode_tokens": stats.decode_tokens,
        "decode_seconds": stats.decode_seconds,
        "decode_tokens_per_second": stats.decode_tokens_per_second(),
        "first_token_ids": ids.iter().take(16).collect::<Vec<_>>(),
    }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_decode: {e}");
            return ExitCode::from(2);
        }
    };
    for path in &args.files {
        let modes: &[bool] = if args.with_f32 {
            &[true, false]
        } else {
            &[true]
        };
        for &quantized in modes {
            match bench(&args, path, quantized) {
                Ok(v) => println!("{v}"),
                Err(e) => {
                    eprintln!("bench_decode: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
