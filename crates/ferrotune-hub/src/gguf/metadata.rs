//! Typed access to GGUF metadata, with errors that name the file and the key.

use super::{GgufFile, GgufValue};
use crate::error::{HubError, Result};

impl GgufFile {
    fn missing(&self, key: &str) -> HubError {
        HubError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        }
    }

    fn wrong(&self, key: &str, expected: &str, got: &GgufValue) -> HubError {
        HubError::WrongType {
            path: self.path.clone(),
            key: key.to_string(),
            expected: expected.to_string(),
            got: got.describe(),
        }
    }

    /// Looks up `key` and converts it with `convert`, which returns `None` for a wrong type.
    fn typed_opt<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&'a GgufValue) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(v) => convert(v)
                .map(Some)
                .ok_or_else(|| self.wrong(key, expected, v)),
        }
    }

    /// `key` as a `u32`. Any integer type is accepted if its value is in `0..=u32::MAX`.
    ///
    /// Errors: [`HubError::MissingKey`], [`HubError::WrongType`].
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_u32_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// Like [`GgufFile::get_u32`], but `Ok(None)` when the key is absent.
    pub fn get_u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.typed_opt(key, "an integer in 0..=4294967295", |v| {
            v.as_integer().and_then(|i| u32::try_from(i).ok())
        })
    }

    /// `key` as an `f32`; `F32` and `F64` values are accepted (the latter narrowed).
    ///
    /// Errors: [`HubError::MissingKey`], [`HubError::WrongType`].
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.get_f32_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// Like [`GgufFile::get_f32`], but `Ok(None)` when the key is absent.
    pub fn get_f32_opt(&self, key: &str) -> Result<Option<f32>> {
        self.typed_opt(key, "a float", GgufValue::as_f32)
    }

    /// `key` as a string.
    ///
    /// Errors: [`HubError::MissingKey`], [`HubError::WrongType`].
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get_str_opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// Like [`GgufFile::get_str`], but `Ok(None)` when the key is absent.
    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>> {
        self.typed_opt(key, "a string", GgufValue::as_str)
    }

    /// `key` as a bool, `Ok(None)` when absent. Errors: [`HubError::WrongType`].
    pub fn get_bool_opt(&self, key: &str) -> Result<Option<bool>> {
        self.typed_opt(key, "a bool", |v| match v {
            GgufValue::Bool(b) => Some(*b),
            _ => None,
        })
    }

    /// The elements of array `key`, each converted by `convert`.
    fn typed_array<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        convert: impl Fn(&'a GgufValue) -> Option<T>,
    ) -> Result<Vec<T>> {
        let value = self.metadata.get(key).ok_or_else(|| self.missing(key))?;
        let GgufValue::Array(items) = value else {
            return Err(self.wrong(key, expected, value));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                convert(item).ok_or_else(|| HubError::WrongType {
                    path: self.path.clone(),
                    key: format!("{key}[{i}]"),
                    expected: expected.to_string(),
                    got: item.describe(),
                })
            })
            .collect()
    }

    /// Array `key` as strings, e.g. `tokenizer.ggml.tokens`.
    ///
    /// Errors: [`HubError::MissingKey`], [`HubError::WrongType`] (naming the bad element).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.typed_array(key, "an array of strings", GgufValue::as_str)
    }

    /// Array `key` as `f32`s (`F32` or `F64` elements), e.g. `tokenizer.ggml.scores`.
    ///
    /// Errors: [`HubError::MissingKey`], [`HubError::WrongType`].
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.typed_array(key, "an array of floats", GgufValue::as_f32)
    }

    /// Array `key` as `i32`s (any integer elements that fit), e.g. `tokenizer.ggml.token_type`.
    ///
    /// Errors: [`HubError::MissingKey`], [`HubError::WrongType`].
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.typed_array(key, "an array of i32 integers", |v| {
            v.as_integer().and_then(|i| i32::try_from(i).ok())
        })
    }

    /// `general.architecture`, e.g. `llama` or `qwen2`; metadata keys of the model are prefixed
    /// with it (`llama.block_count`).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }
}
