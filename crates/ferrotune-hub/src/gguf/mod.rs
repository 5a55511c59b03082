//! The GGUF container: header, metadata, tensor directory, and memory-mapped tensor data.
//!
//! Layout (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>), all little-endian:
//!
//! ```text
//! "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//! kv_count x (string key | u32 value type | value)
//! tensor_count x (string name | u32 n_dims | n_dims x u64 ne | u32 ggml type | u64 offset)
//! padding to `general.alignment` (default 32)
//! tensor data; each tensor at data_start + offset, offset a multiple of the alignment
//! ```
//!
//! ggml lists dimensions fastest-varying first (`ne[0]` is the row length); [`GgufTensorInfo::dims`]
//! reverses them into row-major (PyTorch) order, so a `[out, in]` weight has `dims == [out, in]`.
//!
//! The parser never trusts a count or length: each is checked against the bytes left in the file
//! before anything is allocated, so a hostile file gives a [`HubError::Gguf`] and not an abort.
//! candle's own `gguf_file` reader is not used for that reason.

mod cursor;
mod dequant;
mod ggml_type;
mod metadata;
mod value;

pub use ggml_type::GgmlType;
pub use value::GgufValue;

use crate::error::{HubError, Result};
use cursor::Cursor;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The four bytes every GGUF file starts with.
const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of the tensor data when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions (`GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;

/// Where one tensor lives in a GGUF file and how to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Row-major (PyTorch order) shape: ggml's `ne` reversed; a `[out, in]` matrix is `[out, in]`.
    pub dims: Vec<usize>,
    /// The element type of the stored data.
    pub dtype: GgmlType,
    /// Absolute byte offset of the data from the start of the file.
    pub offset: u64,
    /// Size of the stored data in bytes: `elements / block_size * type_size`.
    pub n_bytes: usize,
}

impl GgufTensorInfo {
    /// Number of elements (product of `dims`; 1 for a scalar).
    pub fn elem_count(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An opened, validated, memory-mapped GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// What the header parser produces before the file is wrapped into a [`GgufFile`].
struct Header {
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
}

impl GgufFile {
    /// Memory-maps and validates the GGUF file at `path`.
    ///
    /// Checks the magic, the version (2 or 3), every count and string length against the file
    /// size, `general.alignment` (a power of two), duplicate keys and tensor names, the number of
    /// dimensions (at most 4), that each row length is a multiple of its type's block size, that
    /// each offset is aligned, and that every tensor's bytes lie within the file.
    ///
    /// Errors: [`HubError::Io`] if the file cannot be opened or mapped, [`HubError::Gguf`] for any
    /// malformation, with the byte offset where it was found.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| HubError::io(path, e))?;
        let len = file.metadata().map_err(|e| HubError::io(path, e))?.len();
        if len < 24 {
            return Err(HubError::Gguf {
                path: path.to_path_buf(),
                msg: format!("file is {len} bytes, shorter than the 24-byte gguf header"),
            });
        }
        // SAFETY: the map is read-only and private to this struct. As with every memory map,
        // another process truncating or rewriting the file while it is open is undefined
        // behaviour; model files are not expected to change while being read.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| HubError::io(path, e))?;
        let header = parse(&mmap).map_err(|msg| HubError::Gguf {
            path: path.to_path_buf(),
            msg,
        })?;
        let by_name = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            by_name,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// All metadata key-value pairs, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    /// The value of metadata key `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// The tensor directory, in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The directory entry of tensor `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.by_name.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The stored bytes of a tensor, borrowed from the memory map.
    ///
    /// `info` should come from this file; bounds were checked by [`GgufFile::open`]. An `info`
    /// from another file whose range does not fit yields an empty slice rather than a panic.
    pub fn tensor_bytes(&self, info: &GgufTensorInfo) -> &[u8] {
        let start = usize::try_from(info.offset).unwrap_or(usize::MAX);
        start
            .checked_add(info.n_bytes)
            .and_then(|end| self.mmap.get(start..end))
            .unwrap_or(&[])
    }
}

/// Parses and validates everything before the tensor data.
fn parse(data: &[u8]) -> std::result::Result<Header, String> {
    let mut cur = Cursor::new(data);
    let magic = cur.take(4, "magic")?;
    if magic != MAGIC {
        return Err(format!(
            "bad magic {magic:02x?} (expected \"GGUF\"); hint: is this a gguf file? older ggml/ggjt \
             files must be converted with llama.cpp first"
        ));
    }
    let version = cur.u32("version")?;
    if version != 2 && version != 3 {
        let endian = if matches!(version.swap_bytes(), 2 | 3) {
            " (this looks like a big-endian file, which is not supported)"
        } else {
            ""
        };
        return Err(format!(
            "unsupported gguf version {version}{endian}; supported: 2, 3"
        ));
    }
    let tensor_count = cur.u64("tensor count")?;
    let kv_count = cur.u64("metadata count")?;
    // A key-value pair takes at least 8 (key length) + 4 (type) + 1 (smallest value) bytes.
    let kv_count = cur.check_count(kv_count, 13, "metadata count")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let at = cur.pos();
        let key = cur.string("metadata key")?.to_owned();
        let type_id = cur.u32("metadata value type")?;
        let value = value::read_value(&mut cur, type_id, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("duplicate metadata key `{key}` at offset {at}"));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(GgufValue::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(other) => {
            return Err(format!(
                "`general.alignment` must be a u32 power of two, found {}",
                other.describe()
            ))
        }
    };
    // A tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
    let tensor_count = cur.check_count(tensor_count, 24, "tensor count")?;
    let mut raw = Vec::with_capacity(tensor_count);
    for _ in 0..tensor_count {
        raw.push(read_tensor_info(&mut cur)?);
    }
    let data_start = (cur.pos() as u64).div_ceil(alignment) * alignment;
    let mut tensors = Vec::with_capacity(tensor_count);
    let mut seen = HashMap::with_capacity(tensor_count);
    for mut info in raw {
        if info.offset % alignment != 0 {
            return Err(format!(
                "tensor `{}` has offset {} that is not a multiple of the alignment {alignment}",
                info.name, info.offset
            ));
        }
        let end = data_start
            .checked_add(info.offset)
            .and_then(|start| start.checked_add(info.n_bytes as u64));
        match end {
            Some(end) if end <= data.len() as u64 => {}
            _ => {
                return Err(format!(
                    "tensor `{}` ({} {:?}, {} bytes at data offset {}) runs past the end of the \
                     {}-byte file (data section starts at {data_start}); the file is truncated or \
                     corrupt",
                    info.name,
                    info.dtype,
                    info.dims,
                    info.n_bytes,
                    info.offset,
                    data.len()
                ))
            }
        }
        info.offset += data_start;
        if seen.insert(info.name.clone(), ()).is_some() {
            return Err(format!("duplicate tensor name `{}`", info.name));
        }
        tensors.push(info);
    }
    Ok(Header {
        version,
        metadata,
        tensors,
    })
}

/// One tensor directory entry; `offset` is still relative to the data section.
fn read_tensor_info(cur: &mut Cursor<'_>) -> std::result::Result<GgufTensorInfo, String> {
    let at = cur.pos();
    let name = cur.string("tensor name")?.to_owned();
    let n_dims = cur.u32("tensor dimension count")?;
    if n_dims > MAX_DIMS {
        return Err(format!(
            "tensor `{name}` at offset {at} has {n_dims} dimensions; ggml allows at most {MAX_DIMS}"
        ));
    }
    let mut ne = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        ne.push(cur.u64("tensor dimension")?);
    }
    let type_id = cur.u32("tensor type")?;
    let dtype = GgmlType::from_id(type_id).ok_or_else(|| {
        format!("tensor `{name}` at offset {at} has unknown ggml tensor type id {type_id}")
    })?;
    let offset = cur.u64("tensor offset")?;
    let n_elems = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let n_elems = n_elems
        .filter(|&n| n <= usize::MAX as u64 / 8)
        .ok_or_else(|| format!("tensor `{name}` has dimensions {ne:?} whose product overflows"))?;
    let row = ne.first().copied().unwrap_or(1);
    if row % dtype.block_size() as u64 != 0 {
        return Err(format!(
            "tensor `{name}` has rows of {row} elements, not a multiple of the {dtype} block size {}",
            dtype.block_size()
        ));
    }
    let n_bytes = n_elems / dtype.block_size() as u64 * dtype.type_size() as u64;
    let dims = ne.iter().rev().map(|&d| d as usize).collect();
    Ok(GgufTensorInfo {
        name,
        dims,
        dtype,
        offset,
        n_bytes: n_bytes as usize,
    })
}
