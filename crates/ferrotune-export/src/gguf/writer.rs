//! The GGUF v3 container, written (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>):
//!
//! ```text
//! "GGUF" | u32 3 | u64 tensor_count | u64 kv_count
//! kv_count x (u64 len + key bytes | u32 value type | value)
//! tensor_count x (u64 len + name | u32 n_dims | n_dims x u64 ne | u32 ggml type | u64 offset)
//! zero padding to 32 bytes; tensor data, each tensor padded to 32 bytes
//! ```
//!
//! Dimensions are ggml's `ne` (fastest-varying first): a row-major `[out, in]` weight is
//! written as `ne = [in, out]`. Offsets are relative to the start of the data section.

use std::io::Write;
use std::path::Path;

use ferrotune_hub::gguf::{GgmlType, GgufValue};

use crate::error::{ExportError, Result};

/// Data alignment (GGUF's default; `general.alignment` is not written).
pub const ALIGNMENT: u64 = 32;

/// A tensor to write: its data is produced when its turn comes, so only one tensor's bytes
/// are in memory at a time.
pub struct TensorEntry<'a> {
    /// GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Row-major (PyTorch order) shape.
    pub dims: Vec<usize>,
    /// Stored type.
    pub ty: GgmlType,
    /// Produces exactly `n_bytes(dims, ty)` bytes.
    pub data: Box<dyn Fn() -> Result<Vec<u8>> + 'a>,
}

/// Stored size of a tensor: `elements / block_size * type_size`.
pub fn n_bytes(dims: &[usize], ty: GgmlType) -> u64 {
    let elems: u64 = dims.iter().map(|&d| d as u64).product();
    elems / ty.block_size() as u64 * ty.type_size() as u64
}

fn value_type_id(v: &GgufValue) -> u32 {
    match v {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Appends the payload of `v` (without its type id).
fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.extend(x.to_le_bytes()),
        GgufValue::U16(x) => out.extend(x.to_le_bytes()),
        GgufValue::I16(x) => out.extend(x.to_le_bytes()),
        GgufValue::U32(x) => out.extend(x.to_le_bytes()),
        GgufValue::I32(x) => out.extend(x.to_le_bytes()),
        GgufValue::U64(x) => out.extend(x.to_le_bytes()),
        GgufValue::I64(x) => out.extend(x.to_le_bytes()),
        GgufValue::F32(x) => out.extend(x.to_le_bytes()),
        GgufValue::F64(x) => out.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_string(out, s),
        GgufValue::Array(items) => {
            // An empty array is written as an empty string array.
            let elem_type = items.first().map_or(8, value_type_id);
            out.extend(elem_type.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
    }
}

/// Writes a GGUF v3 file at `path` with `metadata` (in order) and `tensors` (in order), then
/// syncs it.
///
/// Errors: [`ExportError::Config`] when an array mixes element types or a tensor's data has the
/// wrong size; [`ExportError::Io`] naming the file (a full disk ends here); whatever a tensor's
/// data producer returns.
pub fn write_gguf_file(
    path: &Path,
    metadata: &[(String, GgufValue)],
    tensors: &[TensorEntry<'_>],
) -> Result<()> {
    let mut header = Vec::new();
    header.extend(b"GGUF");
    header.extend(3u32.to_le_bytes());
    header.extend((tensors.len() as u64).to_le_bytes());
    header.extend((metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        if let GgufValue::Array(items) = value {
            if let Some(first) = items.first() {
                let id = value_type_id(first);
                if items.iter().any(|i| value_type_id(i) != id) {
                    return Err(ExportError::Config(format!(
                        "gguf metadata `{key}`: array elements must share one type"
                    )));
                }
            }
        }
        put_string(&mut header, key);
        header.extend(value_type_id(value).to_le_bytes());
        put_value(&mut header, value);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_string(&mut header, &t.name);
        header.extend((t.dims.len() as u32).to_le_bytes());
        for &d in t.dims.iter().rev() {
            header.extend((d as u64).to_le_bytes());
        }
        header.extend(t.ty.id().to_le_bytes());
        header.extend(offset.to_le_bytes());
        offset += n_bytes(&t.dims, t.ty).div_ceil(ALIGNMENT) * ALIGNMENT;
    }
    let pad = |len: u64| vec![0u8; (len.div_ceil(ALIGNMENT) * ALIGNMENT - len) as usize];
    header.extend(pad(header.len() as u64));

    let io = |e| ExportError::io(path, e);
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(&header).map_err(io)?;
    for t in tensors {
        let bytes = (t.data)()?;
        let expected = n_bytes(&t.dims, t.ty);
        if bytes.len() as u64 != expected {
            return Err(ExportError::Config(format!(
                "gguf tensor `{}` ({} {:?}) produced {} bytes, expected {expected}",
                t.name,
                t.ty,
                t.dims,
                bytes.len()
            )));
        }
        w.write_all(&bytes).map_err(io)?;
        w.write_all(&pad(expected)).map_err(io)?;
    }
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}
