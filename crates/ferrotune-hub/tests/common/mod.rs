//! Shared test helpers: locating the demo model and fixtures, and a small GGUF writer for
//! building valid and hostile files in memory.
#![allow(dead_code)] // each test binary uses a different subset

use ferrotune_hub::gguf::GgufValue;
use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `fixtures/<rel>` in the workspace; panics with the script that makes it when absent.
pub fn fixture(rel: &str) -> PathBuf {
    let path = workspace_root().join("fixtures").join(rel);
    assert!(
        path.exists(),
        "fixture {} is missing; regenerate it with the scripts listed in fixtures/README.md",
        path.display()
    );
    path
}

/// The demo GGUF: `$FERROTUNE_DEMO_GGUF` or `<workspace>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
/// Fails (never skips) when it is missing.
pub fn demo_gguf() -> PathBuf {
    let path = std::env::var_os("FERROTUNE_DEMO_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        path.is_file(),
        "demo model {} is missing: run scripts/fetch_model.sh (or set FERROTUNE_DEMO_GGUF)",
        path.display()
    );
    path
}

/// The tokenizer files of the demo model's HF conversion, as Python's tokenizers wrote them
/// (`fixtures/smollm2/hf_tokenizer`, from tools/make_smollm2_hub_fixtures.py).
pub fn demo_hf_tokenizer_dir() -> PathBuf {
    workspace_root().join("fixtures/smollm2/hf_tokenizer")
}

/// Little-endian byte-writing helpers for hand-made GGUF files.
#[derive(Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A GGUF string: u64 length + bytes.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
}

fn type_id(v: &GgufValue) -> u32 {
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

fn put_value(b: &mut Bytes, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => b.raw(&[*x]),
        GgufValue::I8(x) => b.raw(&x.to_le_bytes()),
        GgufValue::U16(x) => b.raw(&x.to_le_bytes()),
        GgufValue::I16(x) => b.raw(&x.to_le_bytes()),
        GgufValue::U32(x) => b.u32(*x),
        GgufValue::I32(x) => b.raw(&x.to_le_bytes()),
        GgufValue::U64(x) => b.u64(*x),
        GgufValue::I64(x) => b.raw(&x.to_le_bytes()),
        GgufValue::F32(x) => b.raw(&x.to_le_bytes()),
        GgufValue::F64(x) => b.raw(&x.to_le_bytes()),
        GgufValue::Bool(x) => b.raw(&[*x as u8]),
        GgufValue::String(s) => b.str(s),
        GgufValue::Array(items) => {
            // An empty array is written as an array of strings.
            b.u32(items.first().map(type_id).unwrap_or(8));
            b.u64(items.len() as u64);
            for item in items {
                put_value(b, item);
            }
            b
        }
    };
}

/// A tensor to write: name, ggml `ne` (fastest-varying first), ggml type id, raw data.
pub struct RawTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
}

/// Builds a GGUF file in memory (version 3, alignment 32 unless `general.alignment` is set).
pub struct GgufWriter {
    pub version: u32,
    pub kvs: Vec<(String, GgufValue)>,
    pub tensors: Vec<RawTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter {
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

impl GgufWriter {
    pub fn kv(mut self, key: &str, v: GgufValue) -> Self {
        self.kvs.push((key.to_string(), v));
        self
    }

    /// An F32 tensor with row-major shape `[rows, cols]` (ggml `ne = [cols, rows]`).
    pub fn f32_matrix(mut self, name: &str, rows: usize, cols: usize, values: &[f32]) -> Self {
        assert_eq!(values.len(), rows * cols);
        self.tensors.push(RawTensor {
            name: name.to_string(),
            ne: vec![cols as u64, rows as u64],
            type_id: 0,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        self
    }

    pub fn tensor(mut self, t: RawTensor) -> Self {
        self.tensors.push(t);
        self
    }

    /// The header (magic through tensor infos, unpadded) with tensor offsets laid out
    /// consecutively at the alignment, and the data section.
    pub fn to_bytes(&self) -> Vec<u8> {
        let alignment = self
            .kvs
            .iter()
            .find_map(|(k, v)| match (k.as_str(), v) {
                ("general.alignment", GgufValue::U32(a)) => Some(*a as usize),
                _ => None,
            })
            .unwrap_or(32)
            .max(1);
        let mut b = Bytes::default();
        b.raw(b"GGUF").u32(self.version);
        b.u64(self.tensors.len() as u64).u64(self.kvs.len() as u64);
        for (k, v) in &self.kvs {
            b.str(k).u32(type_id(v));
            put_value(&mut b, v);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::new();
        for t in &self.tensors {
            b.str(&t.name).u32(t.ne.len() as u32);
            for &d in &t.ne {
                b.u64(d);
            }
            b.u32(t.type_id).u64(offset as u64);
            offsets.push(offset);
            offset = (offset + t.data.len()).div_ceil(alignment) * alignment;
        }
        let mut out = b.0;
        out.resize(out.len().div_ceil(alignment) * alignment, 0);
        let data_start = out.len();
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.resize(data_start + off, 0);
            out.extend_from_slice(&t.data);
        }
        out
    }

    /// Writes the file into `dir` as `name` and returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.to_bytes()).expect("write test gguf");
        path
    }
}

/// A small valid file: two metadata keys and one `[2, 32]` F32 tensor `w` (values 0..64).
pub fn tiny_valid() -> GgufWriter {
    let values: Vec<f32> = (0..64).map(|i| i as f32).collect();
    GgufWriter::default()
        .kv("general.architecture", GgufValue::String("llama".into()))
        .kv("llama.block_count", GgufValue::U32(2))
        .f32_matrix("w", 2, 32, &values)
}

/// Loads an F32 tensor from a safetensors file as `(shape, values)`.
pub fn read_safetensors_f32(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let file = std::fs::File::open(path).expect("open safetensors");
    // SAFETY: test-only read-only map of a fixture nobody modifies during the test.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map safetensors");
    let st = safetensors::SafeTensors::deserialize(&map).expect("parse safetensors");
    let view = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("{name} in {}: {e}", path.display()));
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (view.shape().to_vec(), values)
}

/// Largest |a - b| over two equally long slices (NaN counts as infinite).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs();
            if d.is_nan() {
                f32::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f32::max)
}
