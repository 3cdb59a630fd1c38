//! Named weight tensors, as a checkpoint names them (Hugging Face names:
//! `model.layers.0.self_attn.q_proj.weight`), so loading a model is a walk over
//! its own parameter names.

use super::ModelError;
use std::collections::BTreeMap;
use tch::Tensor;

/// Weights by name, taken out one by one as the model is built (so each is held once).
pub struct WeightMap {
    origin: String,
    tensors: BTreeMap<String, Tensor>,
}

impl WeightMap {
    pub fn new(origin: impl Into<String>) -> WeightMap {
        WeightMap { origin: origin.into(), tensors: BTreeMap::new() }
    }

    /// Where the weights came from (a file or folder), for error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Removes and returns a weight; an error names the checkpoint and the weight.
    pub fn take(&mut self, name: &str) -> Result<Tensor, ModelError> {
        self.tensors.remove(name).ok_or_else(|| ModelError::MissingWeight { origin: self.origin.clone(), name: name.into() })
    }

    /// As [`take`](Self::take), checking the shape.
    pub fn take_shaped(&mut self, name: &str, shape: &[i64]) -> Result<Tensor, ModelError> {
        let t = self.take(name)?;
        if t.size() != shape {
            return Err(ModelError::Shape { origin: self.origin.clone(), name: name.into(), found: t.size(), expected: shape.to_vec() });
        }
        Ok(t)
    }

    /// Names not taken yet (a checkpoint with leftovers is not the architecture we think).
    pub fn remaining(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}
