//! Times one LoRA training micro-batch on the demo model, with and without gradient
//! checkpointing, and the parts of one decoder layer (forward and backward).
//!
//! ```text
//! cargo run -p ferrotune-train --example train_step_bench -- \
//!     [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--batch 1] [--seq 512] [--reps 2]
//!     [--mode both|ckpt|full|parts|none] [--fused both|on|off]
//! ```
//!
//! LoRA r = 8, alpha 16, dropout 0 on every linear layer (`lora_target: all`), random token
//! ids (seeded), labels = input ids. `--fused both` alternates the fused kernels of
//! `ferrotune_model::kernels` on and off rep by rep, so that the ratio comes from one run on a
//! noisy machine. tokens/s = B·T / seconds of one micro-batch (forward, loss, backward; no
//! optimizer step, which is negligible for LoRA).

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use ferrotune_hub::gguf::GgufFile;
use ferrotune_model::adapters::{apply_lora, set_training, LoraConfig, LoraInit};
use ferrotune_model::kernels;
use ferrotune_model::layers::attention_bias;
use ferrotune_model::rope::{arange_positions, RopeTables};
use ferrotune_model::CausalLM;
use ferrotune_train::collate::Batch;
use ferrotune_train::recompute::{checkpointed_backward, full_graph_backward, GradAccumulator};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn arg(args: &[String], key: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let model_path = arg(&args, "--model", "models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let b: usize = arg(&args, "--batch", "1").parse()?;
    let t: usize = arg(&args, "--seq", "512").parse()?;
    let reps: usize = arg(&args, "--reps", "2").parse()?;
    let mode = arg(&args, "--mode", "both");
    let fused = arg(&args, "--fused", "both");
    let dev = Device::Cpu;

    let mut model =
        ferrotune_model::load_gguf(&GgufFile::open(std::path::Path::new(&model_path))?, &dev)?;
    let cfg = LoraConfig {
        lora_rank: 8,
        lora_alpha: 16.0,
        lora_dropout: 0.0,
        lora_target: vec!["all".into()],
        additional_target: vec![],
        use_rslora: false,
        use_dora: false,
        init: LoraInit::Default,
    };
    let set = apply_lora(&mut model, &cfg, 42)?;
    set_training(&mut model, true);
    let params: Vec<(String, Tensor)> = set
        .params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    // B = 0 at init would leave A without gradient; a small B gives every path work.
    let mut seed = 7u64;
    for (name, v) in &set.params {
        if name.contains("lora_B") {
            let n = v.as_tensor().elem_count();
            let vals: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04
                })
                .collect();
            v.set(&Tensor::from_vec(vals, v.as_tensor().shape(), &dev)?)?;
        }
    }

    let v = model.config.vocab_size as u32;
    let mut s = 12345u64;
    let ids: Vec<u32> = (0..b * t)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as u32) % v
        })
        .collect();
    let input_ids = Tensor::from_vec(ids.clone(), (b, t), &dev)?;
    let labels = Tensor::from_vec(ids.iter().map(|&x| i64::from(x)).collect(), (b, t), &dev)?;
    let batch = Batch {
        input_ids,
        labels,
        attention_mask: Tensor::ones((b, t), DType::U32, &dev)?,
        n_target_tokens: b * (t - 1),
        n_tokens: b * t,
        n_rows: b,
    };
    let scale = 1.0 / batch.n_target_tokens as f64;
    let settings: Vec<bool> = match fused.as_str() {
        "on" => vec![true],
        "off" => vec![false],
        _ => vec![true, false],
    };
    println!(
        "batch {b} × seq {t}, {reps} reps, threads {}",
        candle_core::utils::get_num_threads()
    );
    let run = |ckpt: bool, model: &CausalLM| -> AnyResult<(f64, f64)> {
        let mut acc = GradAccumulator::new(params.clone());
        let start = Instant::now();
        let loss = if ckpt {
            checkpointed_backward(model, &batch, scale, None, &mut acc)?
        } else {
            full_graph_backward(model, &batch, scale, &mut acc)?
        };
        Ok((loss, start.elapsed().as_secs_f64()))
    };
    if mode != "parts" && mode != "none" {
        for rep in 0..reps {
            for &on in &settings {
                kernels::set_fused(on);
                for ckpt in [true, false] {
                    if (mode == "ckpt" && !ckpt) || (mode == "full" && ckpt) {
                        continue;
                    }
                    let (loss, secs) = run(ckpt, &model)?;
                    println!(
                        "rep {rep} fused {on:5} ckpt {ckpt:5}: loss {loss:.6} {secs:.2} s {:.1} tokens/s",
                        (b * t) as f64 / secs
                    );
                }
            }
        }
    }
    if mode == "parts" || mode == "both" {
        for &on in &settings {
            kernels::set_fused(on);
            parts(&model, b, t, reps)?;
        }
    }
    Ok(())
}

/// Forward and backward time of each part of layer 0 on a random input (the attention and
/// MLP blocks with their residual sums, as `DecoderLayer::forward` runs them).
fn parts(model: &CausalLM, b: usize, t: usize, reps: usize) -> AnyResult<()> {
    let dev = Device::Cpu;
    let c = model.config.hidden_size;
    let rope = RopeTables::new(&model.config, &arange_positions(t), &dev)?;
    let mask = attention_bias(
        t,
        None,
        Some(&Tensor::ones((b, t), DType::U32, &dev)?),
        &dev,
    )?;
    let layer = &model.layers[0];
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, c), &dev)?)?;
    let xt = x.as_tensor();
    type Part<'a> = (
        &'a str,
        Box<dyn Fn(&Tensor) -> ferrotune_model::Result<Tensor> + 'a>,
    );
    let parts: Vec<Part> = vec![
        ("norm", Box::new(|x| layer.input_layernorm.forward(x))),
        // As the layer runs them: each block with its residual sum (x + block(x)).
        (
            "attn",
            Box::new(|x| layer.self_attn.forward_residual(x, x, &rope, &mask)),
        ),
        ("mlp", Box::new(|x| layer.mlp.forward_residual(x, x))),
        ("layer", Box::new(|x| layer.forward(x, &rope, &mask))),
    ];
    for (name, f) in &parts {
        let (mut fwd, mut bwd) = (f64::MAX, f64::MAX);
        for _ in 0..reps {
            let start = Instant::now();
            let y = f(xt)?;
            fwd = fwd.min(start.elapsed().as_secs_f64());
            let g = Tensor::randn(0f32, 1.0, y.shape(), &dev)?;
            let start = Instant::now();
            let _store = (y * g)?.sum_all()?.backward()?;
            bwd = bwd.min(start.elapsed().as_secs_f64());
        }
        println!(
            "fused {:5} part {name:6}: forward {:.1} ms, backward {:.1} ms (×{} layers: {:.2} s)",
            kernels::fused(),
            fwd * 1e3,
            bwd * 1e3,
            model.layers.len(),
            (fwd + bwd) * model.layers.len() as f64
        );
    }
    Ok(())
}
