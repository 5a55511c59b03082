//! Saving and loading AdamW state for checkpoints.
//!
//! The file is safetensors with three tensors per parameter, named after it:
//! `<name>.exp_avg` and `<name>.exp_avg_sq` (f32, the parameter's shape) and `<name>.step`
//! (i64 scalar), the fields of torch's per-parameter AdamW state. Hyperparameters are not
//! stored: they come from the config on resume, as in the Hugging Face Trainer.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};

use super::error::join_names;
use super::{AdamW, OptimError};

const SUFFIXES: [&str; 3] = ["exp_avg", "exp_avg_sq", "step"];

impl AdamW {
    /// Writes the state to `path`, through `<path>.tmp` renamed over `path`, so that an
    /// interrupted save never leaves a truncated file under the final name.
    ///
    /// # Errors
    /// [`OptimError::StateWrite`] when the file cannot be written or renamed.
    pub fn save_state(&self, path: impl AsRef<Path>) -> Result<(), OptimError> {
        let path = path.as_ref();
        let write_error =
            |source: Box<dyn std::error::Error + Send + Sync>| OptimError::StateWrite {
                path: path.to_path_buf(),
                source,
            };
        let mut tensors = HashMap::new();
        for (name, exp_avg, exp_avg_sq, step) in self.state_entries() {
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            let step = Tensor::new(step, &Device::Cpu).map_err(|e| write_error(e.into()))?;
            tensors.insert(format!("{name}.exp_avg"), exp_avg.as_tensor().clone());
            tensors.insert(format!("{name}.exp_avg_sq"), exp_avg_sq.as_tensor().clone());
            tensors.insert(format!("{name}.step"), step);
        }
        let tmp = temp_path(path);
        candle_core::safetensors::save(&tensors, &tmp).map_err(|e| write_error(e.into()))?;
        std::fs::rename(&tmp, path).map_err(|e| write_error(e.into()))
    }

    /// Replaces the state with the one saved at `path`, moving moments to each parameter's
    /// device. Nothing changes unless the whole file matches the parameters.
    ///
    /// # Errors
    /// [`OptimError::StateRead`] when the file cannot be read, [`OptimError::StateMissing`] /
    /// [`OptimError::StateUnexpected`] naming every missing or extra tensor,
    /// [`OptimError::StateShape`] for a tensor of the wrong shape, [`OptimError::StateStep`]
    /// for a negative step.
    pub fn load_state(&mut self, path: impl AsRef<Path>) -> Result<(), OptimError> {
        let path = path.as_ref();
        let read_error = |source| OptimError::StateRead {
            path: path.to_path_buf(),
            source,
        };
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(read_error)?;
        let expected: Vec<String> = self
            .state_entries()
            .flat_map(|(name, ..)| SUFFIXES.map(|s| format!("{name}.{s}")))
            .collect();
        let missing: Vec<String> = expected
            .iter()
            .filter(|k| !tensors.contains_key(*k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(OptimError::StateMissing {
                path: path.to_path_buf(),
                names: join_names(&missing),
            });
        }
        let known: HashSet<&String> = expected.iter().collect();
        let mut unexpected: Vec<String> = tensors
            .keys()
            .filter(|k| !known.contains(k))
            .cloned()
            .collect();
        if !unexpected.is_empty() {
            unexpected.sort();
            return Err(OptimError::StateUnexpected {
                path: path.to_path_buf(),
                names: join_names(&unexpected),
            });
        }
        let mut states = Vec::with_capacity(expected.len() / 3);
        for (name, exp_avg, ..) in self.state_entries() {
            let target = exp_avg.as_tensor();
            let mut moment = |suffix: &str| -> Result<Var, OptimError> {
                let key = format!("{name}.{suffix}");
                let t = take(&mut tensors, &key, path)?;
                check_shape(path, &key, target.dims(), t.dims())?;
                t.to_dtype(DType::F32)
                    .and_then(|t| t.to_device(target.device()))
                    .and_then(|t| Var::from_tensor(&t))
                    .map_err(read_error)
            };
            let (m, v) = (moment("exp_avg")?, moment("exp_avg_sq")?);
            let key = format!("{name}.step");
            let step = take(&mut tensors, &key, path)?;
            check_shape(path, &key, &[], step.dims())?;
            let step = step
                .to_dtype(DType::I64)
                .and_then(|s| s.to_scalar::<i64>())
                .map_err(read_error)?;
            let step = u64::try_from(step).map_err(|_| OptimError::StateStep {
                path: path.to_path_buf(),
                tensor: key,
                value: step,
            })?;
            states.push((m, v, step));
        }
        self.replace_state(states);
        Ok(())
    }
}

/// `<path>.tmp` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn take(
    tensors: &mut HashMap<String, Tensor>,
    key: &str,
    path: &Path,
) -> Result<Tensor, OptimError> {
    tensors.remove(key).ok_or_else(|| OptimError::StateMissing {
        path: path.to_path_buf(),
        names: format!("`{key}`"),
    })
}

fn check_shape(
    path: &Path,
    key: &str,
    expected: &[usize],
    found: &[usize],
) -> Result<(), OptimError> {
    if expected == found {
        Ok(())
    } else {
        Err(OptimError::StateShape {
            path: path.to_path_buf(),
            tensor: key.to_string(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    }
}
