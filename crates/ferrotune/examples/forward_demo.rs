//! The forward-pass demo: loads a model (GGUF file or HF folder), renders a chat
//! prompt with the model's own template, and prints the most likely next tokens and a
//! short greedy answer (full forward per token: the KV cache comes with the inference
//! engine), plus the perplexity of a sentence.
//!
//! Usage: `cargo run --example forward_demo -- MODEL [QUESTION] [--adapter DIR] [--max-new-tokens N]`
//! (`--adapter` applies a PEFT-format LoRA adapter, e.g. the output of `ferrotune train`).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use ferrotune_data::chat_template::{ChatTemplate, RenderContext};
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::resolve::{resolve_model, HubOptions, ModelSource};
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_model::CausalLM;

fn main() -> Result<()> {
    let mut positional = Vec::new();
    let mut adapter = None;
    let mut max_new_tokens = 64usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--adapter" => adapter = Some(args.next().context("--adapter needs a folder")?),
            "--max-new-tokens" => {
                max_new_tokens = args
                    .next()
                    .context("--max-new-tokens needs a number")?
                    .parse()
                    .context("--max-new-tokens needs a number")?
            }
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let Some(model_arg) = positional.next() else {
        bail!("usage: forward_demo MODEL [QUESTION] [--adapter DIR] [--max-new-tokens N]  (MODEL: a .gguf file, an HF folder or a hub id)");
    };
    let question = positional
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let device = Device::Cpu;

    let t0 = Instant::now();
    let source = resolve_model(&model_arg, &HubOptions::from_env())?;
    let (mut model, tok) = match &source {
        ModelSource::Gguf(path) => {
            let gguf = GgufFile::open(path)?;
            (
                ferrotune_model::load_gguf(&gguf, &device)?,
                TokenizerBundle::from_gguf(&gguf)?,
            )
        }
        ModelSource::HfDir(dir) => (
            ferrotune_model::load_hf_dir(dir, &device)?,
            TokenizerBundle::from_hf_dir(dir)?,
        ),
    };
    if let Some(dir) = &adapter {
        ferrotune_model::adapters::load_peft(std::path::Path::new(dir), &mut model)?;
        println!("applied the LoRA adapter in {dir}");
    }
    let c = &model.config;
    println!(
        "loaded {model_arg}: {} family, {} layers, hidden {}, heads {}/{} (q/kv), vocab {}, {:.1}M parameters, in {:.2}s",
        c.family.name(),
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.vocab_size,
        model.num_parameters() as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );

    // 1. The chat prompt, rendered by the model's own Jinja template.
    let template = tok
        .chat_template
        .as_deref()
        .context("the model has no chat template")?;
    let messages = serde_json::json!([{"role": "user", "content": question}]);
    let prompt = ChatTemplate::new(template)?.render(&RenderContext {
        messages: &messages,
        tools: None,
        add_generation_prompt: true,
        bos_token: tok.bos_token.as_deref(),
        eos_token: tok.eos_token.as_deref(),
        extra: Default::default(),
    })?;
    let ids = tok.encode(&prompt, false)?;
    println!("\nprompt ({} tokens):\n{prompt}", ids.len());

    // 2. The next-token distribution at the end of the prompt.
    let logits = last_logits(&model, &ids, &device)?;
    let probs = softmax(&logits);
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    println!("top next tokens:");
    for &i in order.iter().take(5) {
        println!(
            "  {:>6}  {:>6.2}%  {:?}",
            i,
            probs[i] * 100.0,
            tok.decode(&[i as u32], false)?
        );
    }

    // 3. A short greedy answer.
    let eos = tok.eos_token_id();
    let mut answer = Vec::new();
    let mut ctx = ids.clone();
    let t1 = Instant::now();
    for _ in 0..max_new_tokens {
        let logits = last_logits(&model, &ctx, &device)?;
        let next = argmax(&logits) as u32;
        if Some(next) == eos || tok.decode(&[next], false)? == "<|im_end|>" {
            break;
        }
        answer.push(next);
        ctx.push(next);
    }
    println!(
        "\ngreedy answer ({} tokens, {:.2}s without KV cache): {}",
        answer.len(),
        t1.elapsed().as_secs_f64(),
        tok.decode(&answer, true)?
    );

    // 4. Perplexity of a plain sentence.
    let text = "The quick brown fox jumps over the lazy dog.";
    let ids = tok.encode(text, false)?;
    let nll = mean_nll(&model, &ids, &device)?;
    println!(
        "\nmean NLL of {text:?}: {nll:.4} (perplexity {:.2})",
        nll.exp()
    );
    Ok(())
}

/// Logits at the last position of `ids`, `[V]`.
fn last_logits(model: &CausalLM, ids: &[u32], device: &Device) -> Result<Vec<f32>> {
    let input = Tensor::new(ids, device)?.unsqueeze(0)?;
    let logits = model.forward(&input, None)?; // [1, T, V]
    Ok(logits.squeeze(0)?.get(ids.len() - 1)?.to_vec1()?)
}

/// Mean next-token negative log-likelihood of `ids[1..]`.
fn mean_nll(model: &CausalLM, ids: &[u32], device: &Device) -> Result<f64> {
    let input = Tensor::new(ids, device)?.unsqueeze(0)?;
    let logits = model.forward(&input, None)?.squeeze(0)?; // [T, V]
    let lse = logits.log_sum_exp(D::Minus1)?.to_vec1::<f32>()?;
    let rows: Vec<Vec<f32>> = logits.to_vec2()?;
    let n = ids.len();
    let total: f64 = (1..n)
        .map(|i| f64::from(lse[i - 1]) - f64::from(rows[i - 1][ids[i] as usize]))
        .sum();
    Ok(total / (n - 1) as f64)
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}
