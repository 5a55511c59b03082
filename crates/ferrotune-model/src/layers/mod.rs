//! The building blocks of a decoder layer, bottom-up: projections, norms, the
//! gated MLP and attention. Each is a struct with `load` and `forward`, built
//! only from differentiable candle ops so that training can backpropagate.
//!
//! Shapes: B batch, T sequence, C hidden, H query heads, K key/value heads, D head_dim.

mod attention;
mod frozen;
mod gemv;
mod linear;
mod mlp;
mod norm;
mod quantized;
mod trained;

pub use attention::{attention_bias, Attention, Qkv};
pub use frozen::matmul_wt;
pub use gemv::{gemv_f32, GEMV_MAX_ROWS};
pub use linear::Linear;
pub use mlp::{GateUp, Mlp};
pub use norm::RmsNorm;
pub use quantized::{QFormat, QMatrix, QuantizedWeight};

/// A deterministic pseudo-random sequence in [-1, 1) (xorshift32) for the kernel tests.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}
