//! The f32 products of LoRA training on the demo model's shapes, by the gemm crate and by
//! oneDNN (when it loads), alternated in one run so that the ratio survives a noisy machine.
//!
//! ```text
//! cargo run -p ferrotune-model --example bench_gemm -- [--rows 2048] [--seconds 1]
//! ```
//!
//! Shapes: `x [rows, k] · Wᵀ` for SmolLM2-135M's q/o (576 → 576), gate/up (576 → 1,536),
//! down (1,536 → 576) and the LM head (576 → 49,152), and `dy · W` (the input gradient) for
//! gate/up. GFLOP/s = 2·rows·out·k per product / seconds.

use std::time::Instant;

use ferrotune_model::kernels::{blas, matmul_nn, matmul_nt};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn arg(args: &[String], key: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// GFLOP/s of `f` (one product of `flop` operations) repeated for about `seconds`.
fn rate(seconds: f64, flop: f64, mut f: impl FnMut() -> AnyResult<()>) -> AnyResult<f64> {
    f()?;
    let t = Instant::now();
    let mut reps = 0u32;
    while t.elapsed().as_secs_f64() < seconds {
        f()?;
        reps += 1;
    }
    Ok(flop * f64::from(reps) / t.elapsed().as_secs_f64() / 1e9)
}

fn main() -> AnyResult<()> {
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        std::env::set_var("OMP_WAIT_POLICY", "passive");
    }
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = arg(&args, "--rows", "2048").parse()?;
    let seconds: f64 = arg(&args, "--seconds", "1").parse()?;
    println!("gemm library: {}", blas::describe());
    println!("threads: {}", candle_core::utils::get_num_threads());
    let shapes = [
        ("q_proj x·Wᵀ", 576usize, 576usize, false),
        ("up_proj x·Wᵀ", 1536, 576, false),
        ("down_proj x·Wᵀ", 576, 1536, false),
        ("up_proj dy·W", 1536, 576, true),
        ("lm_head x·Wᵀ", 49152, 576, false),
    ];
    println!(
        "{:<16} {:>7} {:>6} {:>14} {:>14} {:>7}",
        "product", "out", "k", "gemm GFLOP/s", "oneDNN GFLOP/s", "ratio"
    );
    for (name, out, k, backward) in shapes {
        let x: Vec<f32> = (0..rows * if backward { out } else { k })
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..out * k)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let flop = 2.0 * (rows * out * k) as f64;
        let mut run = || -> AnyResult<()> {
            let y = if backward {
                matmul_nn(&x, &w, rows, out, k)?
            } else {
                matmul_nt(&x, &w, rows, out, k)?
            };
            std::hint::black_box(y);
            Ok(())
        };
        // Alternate: portable, library, portable, library; keep the better of each.
        let mut best = [0f64; 2];
        for round in 0..4 {
            let lib = round % 2 == 1;
            blas::set_enabled(lib);
            if lib && blas::library().is_none() {
                continue;
            }
            best[round % 2] = best[round % 2].max(rate(seconds / 2.0, flop, &mut run)?);
        }
        blas::set_enabled(true);
        let ratio = if best[1] > 0.0 {
            format!("{:.2}x", best[1] / best[0])
        } else {
            "-".into()
        };
        println!(
            "{name:<16} {out:>7} {k:>6} {:>14.0} {:>14.0} {ratio:>7}",
            best[0], best[1]
        );
    }
    Ok(())
}
