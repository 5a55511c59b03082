//! Encoding f32 values into ggml tensor types, byte for byte as gguf-py 0.19 `quants.py`
//! writes them (whose Q8_0 is documented bit-exact with ggml's `quantize_row_q8_0_ref`; Q4_0
//! and Q4_1 follow `quantize_row_q4_0_ref`/`_q4_1_ref` of `ggml-quants.c`). Block layouts are
//! ggml's `block_q8_0 {f16 d; i8 qs[32]}`, `block_q4_0 {f16 d; u8 qs[16]}` and
//! `block_q4_1 {f16 d; f16 m; u8 qs[16]}`, little-endian; in a 4-bit block, byte `j` holds
//! element `j` in its low nibble and element `j + 16` in its high nibble.

use ferrotune_hub::gguf::GgmlType;
use half::{bf16, f16};

/// Elements per block of the quantized types written here.
pub const QK: usize = 32;

/// Whether [`encode`] writes this type.
pub fn is_supported(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q4_1
    )
}

/// The bytes of `values` (row-major, rows a multiple of the block size) stored as `ty`, or
/// `None` for a type [`is_supported`] rejects or a length that is not a whole number of blocks.
/// Floats convert with round-to-nearest-even (`half`), as numpy's `astype` and ggml do.
pub fn encode(values: &[f32], ty: GgmlType) -> Option<Vec<u8>> {
    let whole_blocks = values.len().is_multiple_of(QK);
    match ty {
        GgmlType::F32 => Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        GgmlType::F16 => Some(
            values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        GgmlType::BF16 => Some(
            values
                .iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        GgmlType::Q8_0 if whole_blocks => Some(blocks(values, 34, q8_0_block)),
        GgmlType::Q4_0 if whole_blocks => Some(blocks(values, 18, q4_0_block)),
        GgmlType::Q4_1 if whole_blocks => Some(blocks(values, 20, q4_1_block)),
        _ => None,
    }
}

/// Applies `f` to each block of [`QK`] values, concatenating `block_bytes` bytes per block.
fn blocks(values: &[f32], block_bytes: usize, f: fn(&[f32], &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / QK * block_bytes);
    for block in values.chunks_exact(QK) {
        f(block, &mut out);
    }
    out
}

/// `1/d`, or 0 when `d` is 0 (gguf-py `np.where(d == 0, 0, 1 / d)`).
fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// Q8_0: `d = max|x| / 127`, `q = round(x · (1/d))` with halves away from zero (`roundf`).
fn q8_0_block(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    out.extend(f16::from_f32(d).to_le_bytes());
    // Values lie in [-127, 127] by construction; the cast saturates otherwise.
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

/// Pairs element `j` (low nibble) with element `j + 16` (high nibble).
fn pack_nibbles(q: &[u8; QK], out: &mut Vec<u8>) {
    let (lo, hi) = q.split_at(QK / 2);
    out.extend(lo.iter().zip(hi).map(|(l, h)| l | (h << 4)));
}

/// Q4_0: `d = m / -8` where `m` is the value of largest magnitude (the first one on ties),
/// `q = min(15, trunc(x · (1/d) + 8.5))`.
fn q4_0_block(x: &[f32], out: &mut Vec<u8>) {
    let mut max = x.first().copied().unwrap_or(0.0);
    let mut amax = max.abs();
    for &v in x.iter().skip(1) {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qi, &v) in q.iter_mut().zip(x) {
        // trunc then clip to [0, 15], as numpy's astype(uint8) of a value in [0, 16.5] then clip.
        *qi = ((v * id + 8.5).trunc().clamp(0.0, 15.0)) as u8;
    }
    out.extend(f16::from_f32(d).to_le_bytes());
    pack_nibbles(&q, out);
}

/// Q4_1: `d = (max - min) / 15`, `m = min`, `q = min(15, trunc((x - min) · (1/d) + 0.5))`.
fn q4_1_block(x: &[f32], out: &mut Vec<u8>) {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qi, &v) in q.iter_mut().zip(x) {
        *qi = (((v - min) * id + 0.5).trunc().clamp(0.0, 15.0)) as u8;
    }
    out.extend(f16::from_f32(d).to_le_bytes());
    out.extend(f16::from_f32(min).to_le_bytes());
    pack_nibbles(&q, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_block_layout() {
        // max |x| = 127 gives d = 1 exactly: the quants are the values rounded half away from 0.
        let mut x = [0f32; QK];
        x[0] = 127.0;
        x[1] = -2.5;
        x[2] = 2.5;
        x[3] = 0.49;
        let bytes = encode(&x, GgmlType::Q8_0).unwrap_or_default();
        assert_eq!(bytes.len(), 34);
        assert_eq!(&bytes[..2], &f16::from_f32(1.0).to_le_bytes());
        assert_eq!(bytes[2] as i8, 127);
        assert_eq!(bytes[3] as i8, -3);
        assert_eq!(bytes[4] as i8, 3);
        assert_eq!(bytes[5] as i8, 0);
    }

    #[test]
    fn q4_blocks_layout() {
        let x: Vec<f32> = (0..QK).map(|i| i as f32 - 16.0).collect(); // -16..=15
        let q40 = encode(&x, GgmlType::Q4_0).unwrap_or_default();
        assert_eq!(q40.len(), 18);
        // The largest magnitude is -16, so d = 2 and x = -16 maps to trunc(-8 + 8.5) = 0.
        assert_eq!(&q40[..2], &f16::from_f32(2.0).to_le_bytes());
        assert_eq!(q40[2] & 0x0f, 0);
        // Element 16 (x = 0) is the high nibble of byte 0: trunc(0 + 8.5) = 8.
        assert_eq!(q40[2] >> 4, 8);
        let q41 = encode(&x, GgmlType::Q4_1).unwrap_or_default();
        assert_eq!(q41.len(), 20);
        assert_eq!(&q41[..2], &f16::from_f32(31.0 / 15.0).to_le_bytes());
        assert_eq!(&q41[2..4], &f16::from_f32(-16.0).to_le_bytes());
        assert_eq!(q41[4] & 0x0f, 0);
        assert_eq!(q41[4 + 15] >> 4, 15); // element 31 is the maximum
        assert!(encode(&x[..31], GgmlType::Q4_1).is_none());
    }
}
