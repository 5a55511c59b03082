//! GGML tensor element types: ids, names, and block geometry.
//!
//! Ids and `(block_size, type_size)` pairs follow `enum ggml_type` in ggml's `ggml.h` and
//! `GGML_QUANT_SIZES` in gguf-py's `constants.py` (gguf 0.19). Ids 4, 5, 31-33 and 36-38 were
//! removed from ggml and are rejected as unknown.

/// The element type of a tensor in a GGUF file.
///
/// Every type the GGUF spec defines is recognised so that a file opens and its sizes can be
/// checked; [`GgmlType::is_dequantizable`] says which ones [`super::GgufFile::dequantize`] decodes.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE half float.
    F16,
    /// 4-bit, 32 per block, one f16 scale.
    Q4_0,
    /// 4-bit, 32 per block, f16 scale and minimum.
    Q4_1,
    /// 5-bit, 32 per block, one f16 scale.
    Q5_0,
    /// 5-bit, 32 per block, f16 scale and minimum.
    Q5_1,
    /// 8-bit, 32 per block, one f16 scale.
    Q8_0,
    /// 8-bit, 32 per block, f32 scale and sum (intermediate type).
    Q8_1,
    /// 2-bit k-quant, 256 per super-block.
    Q2_K,
    /// 3-bit k-quant, 256 per super-block.
    Q3_K,
    /// 4-bit k-quant, 256 per super-block with 6-bit sub-block scales and minimums.
    Q4_K,
    /// 5-bit k-quant, 256 per super-block with 6-bit sub-block scales and minimums.
    Q5_K,
    /// 6-bit k-quant, 256 per super-block with 8-bit sub-block scales.
    Q6_K,
    /// 8-bit k-quant (intermediate type).
    Q8_K,
    /// 2.06 bits per weight i-quant.
    IQ2_XXS,
    /// 2.31 bits per weight i-quant.
    IQ2_XS,
    /// 3.06 bits per weight i-quant.
    IQ3_XXS,
    /// 1.56 bits per weight i-quant.
    IQ1_S,
    /// 4-bit non-linear i-quant, 32 per block.
    IQ4_NL,
    /// 3.44 bits per weight i-quant.
    IQ3_S,
    /// 2.5 bits per weight i-quant.
    IQ2_S,
    /// 4.25 bits per weight i-quant.
    IQ4_XS,
    /// 8-bit signed integer.
    I8,
    /// 16-bit signed integer.
    I16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 64-bit IEEE float.
    F64,
    /// 1.75 bits per weight i-quant.
    IQ1_M,
    /// bfloat16.
    BF16,
    /// ternary 1.69 bits per weight.
    TQ1_0,
    /// ternary 2.06 bits per weight.
    TQ2_0,
    /// OCP microscaling 4-bit float, 32 per block.
    MXFP4,
    /// NVIDIA 4-bit float, 64 per block.
    NVFP4,
    /// 1-bit, 128 per block.
    Q1_0,
}

/// `(type, ggml id, name, elements per block, bytes per block)`.
const TABLE: &[(GgmlType, u32, &str, usize, usize)] = &[
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 18),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 20),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 22),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 24),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 34),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 40),
    (GgmlType::Q2_K, 10, "Q2_K", 256, 84),
    (GgmlType::Q3_K, 11, "Q3_K", 256, 110),
    (GgmlType::Q4_K, 12, "Q4_K", 256, 144),
    (GgmlType::Q5_K, 13, "Q5_K", 256, 176),
    (GgmlType::Q6_K, 14, "Q6_K", 256, 210),
    (GgmlType::Q8_K, 15, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, 19, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, 21, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, 22, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 136),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::IQ1_M, 29, "IQ1_M", 256, 56),
    (GgmlType::BF16, 30, "BF16", 1, 2),
    (GgmlType::TQ1_0, 34, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, 35, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, 39, "MXFP4", 32, 17),
    (GgmlType::NVFP4, 40, "NVFP4", 64, 36),
    (GgmlType::Q1_0, 41, "Q1_0", 128, 18),
];

impl GgmlType {
    fn row(self) -> (GgmlType, u32, &'static str, usize, usize) {
        // Every variant has exactly one row; the fallback is unreachable but avoids a panic path.
        TABLE
            .iter()
            .copied()
            .find(|row| row.0 == self)
            .unwrap_or((self, u32::MAX, "?", 1, 1))
    }

    /// The type with ggml id `id`, or `None` for ids the spec does not define.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|row| row.1 == id).map(|row| row.0)
    }

    /// The ggml id stored in tensor infos.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// The name used by ggml and gguf-py, e.g. `Q4_K`.
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block (1 for plain float and integer types).
    pub fn block_size(self) -> usize {
        self.row().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.row().4
    }

    /// Whether [`super::GgufFile::dequantize`] decodes this type.
    pub fn is_dequantizable(self) -> bool {
        self.candle_dtype().is_some()
            || matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    /// The candle type whose block layout is identical, for the quantized types we decode.
    pub(crate) fn candle_dtype(self) -> Option<candle_core::quantized::GgmlDType> {
        use candle_core::quantized::GgmlDType as C;
        Some(match self {
            GgmlType::Q4_0 => C::Q4_0,
            GgmlType::Q4_1 => C::Q4_1,
            GgmlType::Q5_0 => C::Q5_0,
            GgmlType::Q5_1 => C::Q5_1,
            GgmlType::Q8_0 => C::Q8_0,
            GgmlType::Q4_K => C::Q4K,
            GgmlType::Q5_K => C::Q5K,
            GgmlType::Q6_K => C::Q6K,
            _ => return None,
        })
    }

    /// Names of the types [`super::GgufFile::dequantize`] decodes, for error messages.
    pub(crate) fn dequantizable_names() -> String {
        TABLE
            .iter()
            .filter(|row| row.0.is_dequantizable())
            .map(|row| row.2)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
