//! Decoding GGUF tensor data to `f32` candle tensors.
//!
//! F32, F16 and BF16 are converted element by element (`half` for the 16-bit types). The block
//! quantized types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) are decoded by candle's
//! CPU kernels (`candle_core::quantized`), whose block structs have the same byte layout as
//! ggml's (`ggml-common.h`). Decoding always runs on the CPU, so every device gets the same
//! values; the result is then moved to the requested device.

use super::{GgmlType, GgufFile, GgufTensorInfo};
use crate::error::{HubError, Result};
use candle_core::{Device, Tensor};

impl GgufFile {
    /// Tensor `name` decoded to an `f32` tensor of shape `info.dims` on `device`.
    ///
    /// Errors: [`HubError::Tensor`] (naming the file and the tensor) if the tensor is absent,
    /// its type is not one we decode (see [`GgmlType::is_dequantizable`]), or candle fails.
    pub fn dequantize(&self, name: &str, device: &Device) -> Result<Tensor> {
        let info = self.tensor_info(name).ok_or_else(|| HubError::Tensor {
            path: self.path.clone(),
            tensor: name.to_string(),
            msg: "not found in the file".to_string(),
        })?;
        self.dequantize_info(info, device)
    }

    fn dequantize_info(&self, info: &GgufTensorInfo, device: &Device) -> Result<Tensor> {
        let err = |msg: String| HubError::Tensor {
            path: self.path.clone(),
            tensor: info.name.clone(),
            msg,
        };
        let bytes = self.tensor_bytes(info);
        if bytes.len() != info.n_bytes {
            return Err(err(format!(
                "expected {} bytes of data, the file holds {}",
                info.n_bytes,
                bytes.len()
            )));
        }
        let dims = info.dims.clone();
        let candle_err = |e: candle_core::Error| err(format!("decoding {} data: {e}", info.dtype));
        let values: Vec<f32> = match info.dtype {
            GgmlType::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            GgmlType::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            GgmlType::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                let Some(dtype) = other.candle_dtype() else {
                    return Err(err(format!(
                        "unsupported tensor type {other}; supported: {}",
                        GgmlType::dequantizable_names()
                    )));
                };
                let aligned = AlignedBytes::new(bytes);
                let q = candle_core::quantized::ggml_file::qtensor_from_ggml(
                    dtype,
                    aligned.as_slice(),
                    dims,
                    &Device::Cpu,
                )
                .map_err(candle_err)?;
                return q.dequantize(device).map_err(candle_err);
            }
        };
        Tensor::from_vec(values, dims, device).map_err(candle_err)
    }
}

/// Tensor bytes at an address aligned for candle's block structs.
///
/// candle reinterprets the byte slice as a slice of block structs (which hold `f16`/`f32`
/// fields), so the bytes must be suitably aligned. Data in a memory-mapped GGUF normally is
/// (page-aligned map, offsets multiples of `general.alignment`); when it is not, the bytes are
/// copied to an 8-byte-aligned position inside an owned buffer.
enum AlignedBytes<'a> {
    Borrowed(&'a [u8]),
    Copied { buf: Vec<u8>, start: usize },
}

impl<'a> AlignedBytes<'a> {
    const ALIGN: usize = 8;

    fn new(bytes: &'a [u8]) -> Self {
        if bytes.as_ptr().align_offset(Self::ALIGN) == 0 {
            return AlignedBytes::Borrowed(bytes);
        }
        let mut buf = vec![0u8; bytes.len() + Self::ALIGN];
        let start = buf.as_ptr().align_offset(Self::ALIGN).min(Self::ALIGN);
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        buf.truncate(start + bytes.len());
        AlignedBytes::Copied { buf, start }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            AlignedBytes::Borrowed(b) => b,
            AlignedBytes::Copied { buf, start } => &buf[*start..],
        }
    }
}
