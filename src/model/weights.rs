//! Named weight tensors, as a checkpoint names them (Hugging Face names:
//! `model.layers.0.self_attn.q_proj.weight`), so loading a model is a walk over
//! its own parameter names.

use super::ModelError;
use std::collections::BTreeMap;
use tch::Tensor;

/// Weights by name, taken out one by one as the model is built (so each is held once).
///
/// A weight read from a safetensors file stays in the memory-mapped file until it
/// is taken: only then is it converted (kind, device), so loading a model holds one
/// tensor at a time in host memory beside the parameters themselves.
pub struct WeightMap {
    origin: String,
    tensors: BTreeMap<String, Entry>,
}

enum Entry {
    Loaded(Tensor),
    /// Bytes `range` of a mapped file, `src` kind, made `kind` on `device` when taken.
    Mapped { file: Arc<memmap2::Mmap>, range: std::ops::Range<usize>, src: Kind, shape: Vec<i64>, kind: Kind, device: Device },
}

impl Entry {
    fn shape(&self) -> Vec<i64> {
        match self {
            Entry::Loaded(t) => t.size(),
            Entry::Mapped { shape, .. } => shape.clone(),
        }
    }

    fn into_tensor(self) -> Result<Tensor, tch::TchError> {
        match self {
            Entry::Loaded(t) => Ok(t),
            Entry::Mapped { file, range, src, shape, kind, device } => {
                let cpu = Tensor::f_from_data_size(&file[range], &shape, src)?;
                if src == kind && device == Device::Cpu {
                    Ok(cpu)
                } else {
                    cpu.f_to_device_(device, kind, false, false)
                }
            }
        }
    }
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
        self.tensors.insert(name.into(), Entry::Loaded(tensor));
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// A weight's shape, without reading it.
    pub fn shape(&self, name: &str) -> Option<Vec<i64>> {
        self.tensors.get(name).map(Entry::shape)
    }

    /// Removes and returns a weight; an error names the checkpoint and the weight.
    pub fn take(&mut self, name: &str) -> Result<Tensor, ModelError> {
        let entry = self.tensors.remove(name).ok_or_else(|| ModelError::MissingWeight { origin: self.origin.clone(), name: name.into() })?;
        Ok(entry.into_tensor()?)
    }

    /// As [`take`](Self::take), checking the shape first.
    pub fn take_shaped(&mut self, name: &str, shape: &[i64]) -> Result<Tensor, ModelError> {
        let found = self.shape(name).ok_or_else(|| ModelError::MissingWeight { origin: self.origin.clone(), name: name.into() })?;
        if found != shape {
            return Err(ModelError::Shape { origin: self.origin.clone(), name: name.into(), found, expected: shape.to_vec() });
        }
        self.take(name)
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

/// `root` extended by the dotted module path `a.b.c` (Hugging Face naming).
pub(crate) fn sub_path<'a>(root: &tch::nn::Path<'a>, dotted: &str) -> tch::nn::Path<'a> {
    dotted.split('.').filter(|s| !s.is_empty()).fold(root.clone(), |p, s| p.sub(s))
}


// ---------------------------------------------------------------------------
// Hugging Face checkpoints on disk: config.json and safetensors files.

use super::config::{ConfigError, ModelConfig};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind};

/// Reads and validates `config.json` from a checkpoint folder (or the file itself
/// when `dir` names a `.json` file, or the folder holding `dir` when it names a
/// weights file); every error names the file.
pub fn read_config(dir: &Path) -> Result<ModelConfig, ModelError> {
    let path = if dir.is_file() {
        if dir.extension().is_some_and(|e| e == "json") {
            dir.to_path_buf()
        } else {
            dir.parent().unwrap_or(Path::new(".")).join("config.json")
        }
    } else {
        dir.join("config.json")
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::file(&path, format!("cannot read the model config: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::file(&path, format!("not valid JSON: {e}")))?;
    let config: ModelConfig = match serde_json::from_value(value.clone()) {
        Ok(c) => c,
        Err(e) => {
            // A checkpoint of another architecture (gpt2: n_embd, n_layer ...) lacks our
            // fields; say it is the architecture, not a missing key, that is wrong.
            let model_type = value.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
            if !matches!(model_type, "llama" | "mistral" | "qwen2" | "qwen3") {
                let arch = value.pointer("/architectures/0").and_then(|v| v.as_str()).unwrap_or("");
                let name = if model_type.is_empty() { arch } else { model_type };
                return Err(ModelError::Config { origin: path.display().to_string(), source: ConfigError::Architecture(name.to_string()) });
            }
            return Err(ModelError::file(&path, format!("not a usable model config: {e}")));
        }
    };
    config.validate().map_err(|source| ModelError::Config { origin: path.display().to_string(), source })?;
    Ok(config)
}

/// Loads every tensor of a checkpoint, converted to `kind` on `device`.
///
/// `path` is a `.safetensors` file, a folder with `model.safetensors`, or a folder
/// with a sharded `model.safetensors.index.json`. Files are memory-mapped and each
/// tensor is converted when the model takes it, so the checkpoint is never held twice.
pub fn load_safetensors(path: &Path, kind: Kind, device: Device) -> Result<WeightMap, ModelError> {
    let mut map = WeightMap::new(path.display().to_string());
    if path.is_file() {
        read_file_into(path, kind, device, &mut map, None)?;
        return Ok(map);
    }
    if !path.is_dir() {
        return Err(ModelError::file(path, "no such checkpoint file or folder"));
    }
    let index = path.join("model.safetensors.index.json");
    let single = path.join("model.safetensors");
    if index.is_file() {
        let shards = read_index(&index)?;
        for (file, names) in &shards {
            let shard = path.join(file);
            read_file_into(&shard, kind, device, &mut map, Some(names))?;
        }
        // The index is the checkpoint's table of contents: a name it lists that no shard holds is a broken download.
        for names in shards.values() {
            if let Some(name) = names.iter().find(|n| !map.contains(n)) {
                return Err(ModelError::file(&index, format!("lists weight `{name}`, which its shard does not contain")));
            }
        }
        map.origin = path.display().to_string();
        Ok(map)
    } else if single.is_file() {
        read_file_into(&single, kind, device, &mut map, None)?;
        map.origin = single.display().to_string();
        Ok(map)
    } else {
        Err(ModelError::file(path, "no model.safetensors or model.safetensors.index.json in this folder"))
    }
}

/// Shard file -> the weight names the index assigns to it, in a stable order.
fn read_index(index: &Path) -> Result<BTreeMap<String, Vec<String>>, ModelError> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::file(index, format!("cannot read: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::file(index, format!("not valid JSON: {e}")))?;
    let weight_map = value
        .get("weight_map")
        .and_then(|w| w.as_object())
        .ok_or_else(|| ModelError::file(index, "has no `weight_map` object"))?;
    let mut shards: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, file) in weight_map {
        let file = file.as_str().ok_or_else(|| ModelError::file(index, format!("weight `{name}`: shard is not a file name")))?;
        // A shard name is a bare file name beside the index, never a path elsewhere.
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(ModelError::file(index, format!("weight `{name}`: shard `{file}` is not a file name in this folder")));
        }
        shards.entry(file.to_string()).or_default().push(name.clone());
    }
    Ok(shards)
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F16 => Some(Kind::Half),
        Dtype::BF16 => Some(Kind::BFloat16),
        _ => None,
    }
}

fn read_file_into(path: &Path, kind: Kind, device: Device, map: &mut WeightMap, expected: Option<&[String]>) -> Result<(), ModelError> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::file(path, format!("cannot open: {e}")))?;
    // SAFETY: the file is only read; changing it on disk while it loads is undefined, as for any mmap.
    let mmap = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::file(path, format!("cannot map: {e}")))?);
    let tensors = SafeTensors::deserialize(&mmap)
        .map_err(|e| ModelError::file(path, format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
    let mut names: Vec<&str> = tensors.names();
    names.sort_unstable();
    let base = mmap.as_ptr() as usize;
    for name in names {
        if expected.is_some_and(|e| !e.iter().any(|n| n == name)) {
            continue; // the index puts this weight in another shard; that shard is authoritative
        }
        if map.contains(name) {
            return Err(ModelError::file(path, format!("weight `{name}` appears in more than one file")));
        }
        let view = tensors.tensor(name).map_err(|e| ModelError::file(path, format!("weight `{name}`: {e}")))?;
        let src = kind_of(view.dtype())
            .ok_or_else(|| ModelError::file(path, format!("weight `{name}` has dtype {:?}; icdbench reads F32, F16 and BF16", view.dtype())))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let numel: usize = view.shape().iter().product();
        let data = view.data();
        if data.len() != numel * src.elt_size_in_bytes() {
            return Err(ModelError::file(path, format!("weight `{name}`: data length does not match its shape")));
        }
        // Where the tensor's bytes lie in the file: read when the model takes it.
        let start = data.as_ptr() as usize - base;
        let entry = Entry::Mapped { file: Arc::clone(&mmap), range: start..start + data.len(), src, shape, kind, device };
        map.tensors.insert(name.to_string(), entry);
    }
    Ok(())
}

/// A tensor copied to host memory, as safetensors writes it.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes tensors (f32, f16, bf16; i64 for token ids) to a `.safetensors` file, through a temporary
/// file renamed into place so a reader never sees half a file.
pub fn save_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), ModelError> {
    let mut host: Vec<(String, HostTensor)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let dtype = match t.kind() {
            Kind::Float => Dtype::F32,
            Kind::Half => Dtype::F16,
            Kind::BFloat16 => Dtype::BF16,
            Kind::Int64 => Dtype::I64,
            other => return Err(ModelError::file(path, format!("weight `{name}` has kind {other:?}; icdbench writes f32, f16, bf16 and i64"))),
        };
        let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        host.push((name.clone(), HostTensor { dtype, shape, bytes }));
    }
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let tmp: PathBuf = {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".partial");
        path.with_file_name(name)
    };
    safetensors::tensor::serialize_to_file(host.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata), &tmp)
        .map_err(|e| ModelError::file(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::file(path, format!("cannot write: {e}")))
}
