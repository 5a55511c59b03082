//! GGUF export of a merged model: one GGUF v3 file with `general.*`, `<arch>.*` and tokenizer
//! metadata and the weights in llama.cpp's names and layout, stored as `f32`, `f16`, `bf16`,
//! `q8_0`, `q4_0` or `q4_1` (see [`tensor_type`]). Families written: llama and mistral (as
//! llama.cpp's `llama` architecture), qwen2, qwen3, gemma (Gemma 1) and phi3 (see
//! [`families`]).
//!
//! Read back by ferrotune's own GGUF loader (`ferrotune_model::load_gguf`), gguf-py and
//! llama.cpp.

pub mod families;
mod llama;
pub mod quant;
pub mod vocab;
pub mod writer;

use std::path::Path;

use ferrotune_config::args::ExportQuantization;
use ferrotune_hub::gguf::{GgmlType, GgufValue};
use ferrotune_model::CausalLM;

use crate::error::{ExportError, Result};
use writer::{write_gguf_file, TensorEntry};

pub use llama::{gguf_name, permute_qk, rope_freqs};

/// The ggml type of a quantization choice.
pub fn ggml_type(q: ExportQuantization) -> GgmlType {
    match q {
        ExportQuantization::F32 => GgmlType::F32,
        ExportQuantization::F16 => GgmlType::F16,
        ExportQuantization::Bf16 => GgmlType::BF16,
        ExportQuantization::Q8_0 => GgmlType::Q8_0,
        ExportQuantization::Q4_0 => GgmlType::Q4_0,
        ExportQuantization::Q4_1 => GgmlType::Q4_1,
    }
}

/// `general.file_type` (llama.cpp `llama_ftype`: `ALL_F32` 0, `MOSTLY_F16` 1, `MOSTLY_Q4_0` 2,
/// `MOSTLY_Q4_1` 3, `MOSTLY_Q8_0` 7, `MOSTLY_BF16` 32).
pub fn file_type(q: ExportQuantization) -> u32 {
    match q {
        ExportQuantization::F32 => 0,
        ExportQuantization::F16 => 1,
        ExportQuantization::Q4_0 => 2,
        ExportQuantization::Q4_1 => 3,
        ExportQuantization::Q8_0 => 7,
        ExportQuantization::Bf16 => 32,
    }
}

/// The stored type of tensor `gguf_name` of row-major shape `dims`: 1-D tensors (norms, biases,
/// `rope_freqs`) stay `f32` as `convert_hf_to_gguf.py` keeps them; with `q4_0`/`q4_1` the
/// embeddings and the LM head are `q8_0` (as in the demo model's Q4_1 file); a quantized type
/// whose block does not divide the row length falls back to `f16`, as gguf-py's converter does.
pub fn tensor_type(gguf_name: &str, dims: &[usize], q: ExportQuantization) -> GgmlType {
    if dims.len() <= 1 {
        return GgmlType::F32;
    }
    let mut ty = ggml_type(q);
    let is_embedding = gguf_name == "token_embd.weight" || gguf_name == "output.weight";
    if is_embedding && matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1) {
        ty = GgmlType::Q8_0;
    }
    let row = dims.last().copied().unwrap_or(0);
    if row % ty.block_size() != 0 {
        return GgmlType::F16;
    }
    ty
}

/// What [`write_gguf`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufSummary {
    /// Number of tensors.
    pub tensors: usize,
    /// Number of metadata keys.
    pub metadata_keys: usize,
}

/// Writes `model` (adapters merged, f32) to the GGUF file `path`: `general.architecture`,
/// `general.type`, `general.name = name`, `general.file_type`, `general.quantization_version`,
/// the family's `<arch>.*` hyper-parameters, then `tokenizer` (see
/// [`vocab::tokenizer_metadata`]; may be empty for a weights-only file), then the tensors
/// (llama/mistral Q/K rows permuted to llama.cpp's layout, the others' rows as they are; gemma's
/// RMSNorm weights stored as `1 + w`; Llama 3 RoPE scaling as `rope_freqs.weight`). The
/// architecture of each family: [`families::layout`].
///
/// Errors: [`ExportError::NotBuilt`] for models the family's llama.cpp architecture cannot
/// express (see [`families::layout`]),
/// [`ExportError::Config`] for a tensor outside the family's layout, [`ExportError::Io`]
/// naming the file.
pub fn write_gguf(
    path: &Path,
    model: &CausalLM,
    quantization: ExportQuantization,
    name: &str,
    tokenizer: &[(String, GgufValue)],
) -> Result<GgufSummary> {
    let cfg = &model.config;
    let layout = families::layout(cfg)?;
    let mut metadata: Vec<(String, GgufValue)> = vec![
        (
            "general.architecture".into(),
            GgufValue::String(layout.arch.into()),
        ),
        ("general.type".into(), GgufValue::String("model".into())),
        ("general.name".into(), GgufValue::String(name.into())),
        (
            "general.file_type".into(),
            GgufValue::U32(file_type(quantization)),
        ),
        ("general.quantization_version".into(), GgufValue::U32(2)),
    ];
    metadata.extend(llama::metadata(layout.arch, cfg));
    metadata.extend(families::family_metadata(&layout, cfg));
    metadata.extend(tokenizer.iter().cloned());

    let mut tensors = Vec::new();
    for (hf, t) in model.named_tensors() {
        let gname = gguf_name(&hf).ok_or_else(|| {
            ExportError::Config(format!(
                "tensor `{hf}` has no llama.cpp name in the `{}` layout",
                layout.arch
            ))
        })?;
        let dims = t.dims().to_vec();
        let ty = tensor_type(&gname, &dims, quantization);
        let label = gname.clone();
        tensors.push(TensorEntry {
            name: gname,
            dims,
            ty,
            data: Box::new(move || {
                let mut t = if layout.permute_qk {
                    permute_qk(&hf, t.detach(), cfg)?
                } else {
                    t.detach()
                };
                if layout.norm_weight_offset != 0.0 && hf.ends_with("norm.weight") {
                    // Computed in f32 as the converter's `data_torch + 1`.
                    t = (t.to_dtype(candle_core::DType::F32)?
                        + f64::from(layout.norm_weight_offset))?;
                }
                let values = t
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                quant::encode(&values, ty).ok_or_else(|| {
                    ExportError::Config(format!("tensor `{label}` cannot be stored as {ty}"))
                })
            }),
        });
    }
    if let Some(factors) = rope_freqs(cfg) {
        tensors.push(TensorEntry {
            name: "rope_freqs.weight".into(),
            dims: vec![factors.len()],
            ty: GgmlType::F32,
            data: Box::new(move || Ok(factors.iter().flat_map(|v| v.to_le_bytes()).collect())),
        });
    }
    write_gguf_file(path, &metadata, &tensors)?;
    Ok(GgufSummary {
        tensors: tensors.len(),
        metadata_keys: metadata.len(),
    })
}
