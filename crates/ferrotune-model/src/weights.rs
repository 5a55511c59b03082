//! Named weight tensors on their way into the model: every tensor the
//! architecture needs is taken out by its HF name with its shape checked, and
//! whatever is left at the end is reported, so a wrong config never loads silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{ModelError, Result};

/// Tensors by HF name (`model.layers.0.self_attn.q_proj.weight`), all f32 on one device.
#[derive(Debug)]
pub struct WeightStore {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    missing: Vec<String>,
}

impl WeightStore {
    /// Wraps tensors read from `path` (a folder or a file, used in error messages).
    pub fn new(path: &Path, tensors: BTreeMap<String, Tensor>) -> Self {
        Self {
            path: path.to_path_buf(),
            tensors,
            missing: Vec::new(),
        }
    }

    /// Reads every tensor of the safetensors files of an HF folder, converted to f32.
    ///
    /// Files are memory-mapped; each tensor is copied once into its f32 buffer.
    /// Errors: [`ModelError::Io`], [`ModelError::Weights`] (a header that lies,
    /// an unsupported dtype, a tensor in two shards).
    pub fn from_safetensors(path: &Path, files: &[PathBuf], device: &Device) -> Result<Self> {
        let mut tensors = BTreeMap::new();
        for file in files {
            for (name, t) in read_safetensors(file, device)? {
                if tensors.insert(name.clone(), t).is_some() {
                    return Err(ModelError::Weights {
                        path: file.clone(),
                        msg: format!("tensor `{name}` appears in more than one shard"),
                    });
                }
            }
        }
        Ok(Self::new(path, tensors))
    }

    /// Whether a tensor of that name is present (and not yet taken).
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Takes the tensor `name`, checking its shape. A missing tensor is recorded and
    /// reported by [`WeightStore::finish`] together with all the others, so the user
    /// sees every missing name at once; meanwhile a zero tensor stands in.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        match self.tensors.remove(name) {
            Some(t) if t.dims() == shape => Ok(t),
            Some(t) => Err(ModelError::Shape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            }),
            None => {
                self.missing.push(name.to_string());
                Ok(Tensor::zeros(shape, DType::F32, &Device::Cpu)?)
            }
        }
    }

    /// Ends loading: errors with every missing tensor, then with every unused one.
    pub fn finish(self) -> Result<()> {
        if !self.missing.is_empty() {
            return Err(ModelError::MissingTensors {
                path: self.path,
                names: self.missing,
            });
        }
        let unused: Vec<String> = self
            .tensors
            .into_keys()
            .filter(|n| !n.ends_with("rotary_emb.inv_freq"))
            .collect();
        if !unused.is_empty() {
            return Err(ModelError::UnexpectedTensors {
                path: self.path,
                names: unused,
            });
        }
        Ok(())
    }
}

/// Reads one safetensors file through a memory map into f32 tensors.
fn read_safetensors(file: &Path, device: &Device) -> Result<Vec<(String, Tensor)>> {
    let io = |source| ModelError::Io {
        path: file.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(file).map_err(io)?;
    // SAFETY: the map is read-only and dropped before this function returns; a file
    // changed by another process while we read it gives wrong values, not UB in safe code we rely on.
    let mmap = unsafe { memmap2::MmapOptions::new().map(&f) }.map_err(io)?;
    let bad = |msg: String| ModelError::Weights {
        path: file.to_path_buf(),
        msg,
    };
    let st = safetensors::SafeTensors::deserialize(&mmap).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has dtype {other:?}; expected F32, F16 or BF16"
                )))
            }
        };
        let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), device)?
            .to_dtype(DType::F32)?;
        out.push((name, t));
    }
    Ok(out)
}
