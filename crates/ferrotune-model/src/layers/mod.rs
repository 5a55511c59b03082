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

pub use attention::{attention_bias, Attention, Qkv};
pub use frozen::matmul_wt;
pub use gemv::{gemv_f32, GEMV_MAX_ROWS};
pub use linear::Linear;
pub use mlp::{GateUp, Mlp};
pub use norm::RmsNorm;
pub use quantized::{QFormat, QMatrix, QuantizedWeight};
