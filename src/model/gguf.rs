//! GGUF checkpoints (llama.cpp's single-file format): header, metadata,
//! tensor directory, dequantisation to f32, and the walk from llama.cpp's
//! tensor names and row order to Hugging Face's, so a GGUF file loads into the
//! same [`WeightMap`] and [`ModelConfig`] as a safetensors checkpoint.
//!
//! Layout (little-endian throughout): `GGUF` magic, version (2 or 3), tensor
//! count, metadata count, the metadata key/value pairs, one directory entry per
//! tensor (name, dims innermost-first, ggml type, offset), padding to the
//! alignment (`general.alignment`, default 32), then the tensor data, each
//! tensor's offset counted from the start of that data section.
//!
//! Every read is bounds-checked against the file: a truncated or corrupt file
//! is a [`ModelError::File`] naming the path and what is wrong, never a panic.

use super::config::{ModelConfig, RopeScaling, TokenIds};
use super::tokenizer::TextTokenizer;
use super::weights::WeightMap;
use super::ModelError;
use memmap2::Mmap;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const MAGIC: &[u8; 4] = b"GGUF";
/// Data alignment when the file does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: usize = 4;
/// Arrays of arrays deeper than this are corrupt (and would exhaust the stack).
const MAX_NESTING: usize = 16;

/// A checkpoint read from one GGUF file: everything a model needs to run.
pub struct GgufCheckpoint {
    pub config: ModelConfig,
    /// Hugging Face names and layouts (`model.layers.0.self_attn.q_proj.weight`, `[out, in]`).
    pub weights: WeightMap,
    pub tokenizer: TextTokenizer,
    /// One paragraph for logs and run records: name, architecture, tensor types, sizes.
    pub metadata_summary: String,
}

/// llama.cpp's Llama 3.1 RoPE scaling: per-frequency divisors of the default inverse frequencies.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// Reads a GGUF checkpoint: config from its metadata, tokenizer from its
/// vocabulary, weights dequantised to `kind` on `device` under Hugging Face names.
pub fn load_gguf(path: &Path, kind: Kind, device: Device) -> Result<GgufCheckpoint, ModelError> {
    let mapped = MappedGguf::open(path)?;
    let file = mapped.file();
    let config = mapped.model_config()?;
    config.validate().map_err(|source| ModelError::Config { origin: path.display().to_string(), source })?;
    let tokenizer = TextTokenizer::from_gguf(file)?;
    let weights = mapped.hf_weights(&config, kind, device)?;
    let metadata_summary = file.summary();
    Ok(GgufCheckpoint { config, weights, tokenizer, metadata_summary })
}

/// Reads the header, metadata and tensor directory (no tensor data).
pub fn read_metadata(path: &Path) -> Result<GgufFile, ModelError> {
    Ok(MappedGguf::open(path)?.file)
}

// ---------------------------------------------------------------------------
// Metadata values

/// One metadata value, in the type the file stores it as.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    /// The GGUF name of the value's type (for error messages).
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "uint8",
            MetaValue::I8(_) => "int8",
            MetaValue::U16(_) => "uint16",
            MetaValue::I16(_) => "int16",
            MetaValue::U32(_) => "uint32",
            MetaValue::I32(_) => "int32",
            MetaValue::F32(_) => "float32",
            MetaValue::Bool(_) => "bool",
            MetaValue::Str(_) => "string",
            MetaValue::Array(_) => "array",
            MetaValue::U64(_) => "uint64",
            MetaValue::I64(_) => "int64",
            MetaValue::F64(_) => "float64",
        }
    }

    /// Any integer type holding a value >= 0 (writers differ in which width they use).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::I64(v) => Some(v),
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Floats and integers as f64. A float32 goes through its shortest decimal
    /// form, so `1e-5` stored as f32 reads as 1e-5 (as config.json would say),
    /// not 9.99999974737875e-6.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => v.to_string().parse::<f64>().ok(),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for MetaValue {
    /// Short form: long strings and arrays are abbreviated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::Str(s) if s.chars().count() > 60 => {
                let head: String = s.chars().take(57).collect();
                write!(f, "{head:?}...")
            }
            MetaValue::Str(s) => write!(f, "{s:?}"),
            MetaValue::Array(v) if v.len() > 4 => write!(f, "[{}, {}, ... {} items]", v[0], v[1], v.len()),
            MetaValue::Array(v) => {
                let items: Vec<String> = v.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
            MetaValue::U8(v) => write!(f, "{v}"),
            MetaValue::I8(v) => write!(f, "{v}"),
            MetaValue::U16(v) => write!(f, "{v}"),
            MetaValue::I16(v) => write!(f, "{v}"),
            MetaValue::U32(v) => write!(f, "{v}"),
            MetaValue::I32(v) => write!(f, "{v}"),
            MetaValue::F32(v) => write!(f, "{v}"),
            MetaValue::Bool(v) => write!(f, "{v}"),
            MetaValue::U64(v) => write!(f, "{v}"),
            MetaValue::I64(v) => write!(f, "{v}"),
            MetaValue::F64(v) => write!(f, "{v}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Tensor types

/// A ggml tensor element type.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    I8,
    I16,
    I32,
    I64,
    F64,
    BF16,
    /// A type this reader knows only by number (the IQ and ternary families, ...).
    Other(u32),
}

impl GgmlType {
    pub fn from_id(id: u32) -> GgmlType {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            9 => GgmlType::Q8_1,
            10 => GgmlType::Q2_K,
            11 => GgmlType::Q3_K,
            12 => GgmlType::Q4_K,
            13 => GgmlType::Q5_K,
            14 => GgmlType::Q6_K,
            15 => GgmlType::Q8_K,
            24 => GgmlType::I8,
            25 => GgmlType::I16,
            26 => GgmlType::I32,
            27 => GgmlType::I64,
            28 => GgmlType::F64,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// Values per block and bytes per block; None for types whose layout this reader does not know.
    pub fn layout(self) -> Option<(u64, u64)> {
        Some(match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 => (1, 2),
            GgmlType::BF16 => (1, 2),
            GgmlType::F64 => (1, 8),
            GgmlType::I8 => (1, 1),
            GgmlType::I16 => (1, 2),
            GgmlType::I32 => (1, 4),
            GgmlType::I64 => (1, 8),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q8_1 => (32, 36),
            GgmlType::Q2_K => (256, 84),
            GgmlType::Q3_K => (256, 110),
            GgmlType::Q4_K => (256, 144),
            GgmlType::Q5_K => (256, 176),
            GgmlType::Q6_K => (256, 210),
            GgmlType::Q8_K => (256, 292),
            GgmlType::Other(_) => return None,
        })
    }

    /// Whether [`dequantize`] handles this type.
    pub fn can_dequantize(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::F64
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q5_0
                | GgmlType::Q5_1
                | GgmlType::Q8_0
                | GgmlType::Q2_K
                | GgmlType::Q3_K
                | GgmlType::Q4_K
                | GgmlType::Q5_K
                | GgmlType::Q6_K
        )
    }

    pub fn name(self) -> String {
        let known = match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q8_1 => "Q8_1",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::Q8_K => "Q8_K",
            GgmlType::I8 => "I8",
            GgmlType::I16 => "I16",
            GgmlType::I32 => "I32",
            GgmlType::I64 => "I64",
            GgmlType::F64 => "F64",
            GgmlType::BF16 => "BF16",
            GgmlType::Other(16) => "IQ2_XXS",
            GgmlType::Other(17) => "IQ2_XS",
            GgmlType::Other(18) => "IQ3_XXS",
            GgmlType::Other(19) => "IQ1_S",
            GgmlType::Other(20) => "IQ4_NL",
            GgmlType::Other(21) => "IQ3_S",
            GgmlType::Other(22) => "IQ2_S",
            GgmlType::Other(23) => "IQ4_XS",
            GgmlType::Other(29) => "IQ1_M",
            GgmlType::Other(34) => "TQ1_0",
            GgmlType::Other(35) => "TQ2_0",
            GgmlType::Other(39) => "MXFP4",
            GgmlType::Other(id) => return format!("ggml type {id}"),
        };
        known.to_string()
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// As the file stores them: innermost (contiguous) dimension first.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// From the start of the data section.
    pub offset: u64,
    /// Bytes of data; None for a type whose layout is unknown.
    pub n_bytes: Option<u64>,
}

impl TensorInfo {
    /// The torch shape: GGUF dims reversed (`[in, out]` in the file is `[out, in]` in torch).
    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }

    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

// ---------------------------------------------------------------------------
// The file's header, metadata and directory

/// A GGUF file's header, metadata and tensor directory, without tensor data.
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub alignment: u64,
    /// Where the data section starts, in bytes from the start of the file.
    pub data_offset: u64,
    pub file_len: u64,
    pub metadata: BTreeMap<String, MetaValue>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
}

impl GgufFile {
    /// Parses a whole GGUF file held in memory; `path` only names it in errors.
    /// Checks that every tensor's data lies inside `bytes`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<GgufFile, ModelError> {
        let mut r = Reader { bytes, pos: 0, path };
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            let what = if bytes.len() < 4 {
                format!("the file is only {} bytes long", bytes.len())
            } else {
                format!("it starts with {:?}", String::from_utf8_lossy(&bytes[..4]))
            };
            return Err(ModelError::file(path, format!("not a GGUF file: {what}, expected the magic `GGUF`")));
        }
        r.pos = 4;
        let version = r.u32("the format version")?;
        match version {
            2 | 3 => {}
            1 => return Err(r.error("GGUF version 1 (2023) is not supported; re-convert the model with a current llama.cpp (versions 2 and 3 are read)")),
            v if v.swap_bytes() <= 3 => return Err(r.error("big-endian GGUF files are not supported; use the little-endian file")),
            v => return Err(r.error(format!("unknown GGUF version {v}; this reader supports versions 2 and 3"))),
        }
        let n_tensors = r.u64("the tensor count")?;
        let n_kv = r.u64("the metadata count")?;

        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&format!("the type of metadata `{key}`"))?;
            let value = r.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(r.error(format!("metadata key `{key}` appears twice")));
            }
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => return Err(ModelError::file(path, format!("general.alignment is {v}; it must be a power of two"))),
            },
        };

        // Each directory entry takes at least 24 bytes; refuse absurd counts before allocating.
        if n_tensors > (bytes.len() as u64).saturating_sub(r.pos as u64) / 24 {
            return Err(r.error(format!("truncated or corrupt: the header announces {n_tensors} tensors, more than the rest of the file can describe")));
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut seen = std::collections::HashSet::new();
        for i in 0..n_tensors {
            let name = r.string(&format!("the name of tensor #{i}"))?;
            let n_dims = r.u32(&format!("the rank of tensor `{name}`"))? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(r.error(format!("tensor `{name}` has {n_dims} dimensions; ggml tensors have 1 to {MAX_DIMS}")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for d in 0..n_dims {
                let size = r.u64(&format!("dimension {d} of tensor `{name}`"))?;
                if size > i64::MAX as u64 {
                    return Err(r.error(format!("corrupt: dimension {d} of tensor `{name}` is {size}")));
                }
                dims.push(size);
            }
            let ggml_type = GgmlType::from_id(r.u32(&format!("the type of tensor `{name}`"))?);
            let offset = r.u64(&format!("the data offset of tensor `{name}`"))?;
            let n_bytes = tensor_bytes(&name, &dims, ggml_type).map_err(|m| ModelError::file(path, m))?;
            if !seen.insert(name.clone()) {
                return Err(r.error(format!("tensor `{name}` appears twice in the directory")));
            }
            tensors.push(TensorInfo { name, dims, ggml_type, offset, n_bytes });
        }

        let data_offset = (r.pos as u64).div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(ModelError::file(
                    path,
                    format!("corrupt: tensor `{}` starts at data offset {}, which is not a multiple of the alignment {alignment}", t.name, t.offset),
                ));
            }
            if let Some(n) = t.n_bytes {
                let end = data_offset.checked_add(t.offset).and_then(|s| s.checked_add(n));
                if end.is_none_or(|e| e > file_len) {
                    return Err(ModelError::file(
                        path,
                        format!(
                            "truncated: tensor `{}` ({}, dims {:?}, {n} bytes at file offset {}) runs past the end of the file ({file_len} bytes)",
                            t.name,
                            t.ggml_type,
                            t.dims,
                            data_offset.saturating_add(t.offset)
                        ),
                    ));
                }
            }
        }
        Ok(GgufFile { path: path.to_path_buf(), version, alignment, data_offset, file_len, metadata, tensors })
    }

    fn error(&self, message: impl Into<String>) -> ModelError {
        ModelError::file(&self.path, message)
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// An unsigned integer value; absent is `None`, another type is an error.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, ModelError> {
        self.typed(key, "a non-negative integer", MetaValue::as_u64)
    }

    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, ModelError> {
        self.typed(key, "a number", MetaValue::as_f64)
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, ModelError> {
        self.typed(key, "a bool", MetaValue::as_bool)
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>, ModelError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.error(format!("metadata `{key}` is a {}, expected a string", v.type_name()))),
        }
    }

    /// An array whose items all satisfy `item`; absent is `None`.
    pub fn get_array<'a, T>(&'a self, key: &str, expected: &str, item: impl Fn(&'a MetaValue) -> Option<T>) -> Result<Option<Vec<T>>, ModelError> {
        let Some(v) = self.metadata.get(key) else { return Ok(None) };
        let items = v.as_array().ok_or_else(|| self.error(format!("metadata `{key}` is a {}, expected an array of {expected}", v.type_name())))?;
        items
            .iter()
            .enumerate()
            .map(|(i, x)| item(x).ok_or_else(|| self.error(format!("metadata `{key}` item {i} is {x} ({}), expected {expected}", x.type_name()))))
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
    }

    fn typed<T>(&self, key: &str, expected: &str, f: impl Fn(&MetaValue) -> Option<T>) -> Result<Option<T>, ModelError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| self.error(format!("metadata `{key}` is {v} ({}), expected {expected}", v.type_name()))),
        }
    }

    fn require_u64(&self, key: &str) -> Result<u64, ModelError> {
        self.get_u64(key)?.ok_or_else(|| self.error(format!("metadata `{key}` is missing")))
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str, ModelError> {
        self.get_str("general.architecture")?.ok_or_else(|| self.error("metadata `general.architecture` is missing"))
    }

    /// The Hugging Face config the metadata describes (llama, qwen2, qwen3). A file with
    /// `rope_freqs.weight` needs that tensor's values too: read it with [`MappedGguf::model_config`].
    pub fn model_config(&self) -> Result<ModelConfig, ModelError> {
        if self.tensor(ROPE_FREQS).is_some() {
            return Err(self.error(format!("this file carries {ROPE_FREQS} (Llama 3.1-style RoPE scaling as a tensor); its config needs the tensor's values: MappedGguf::model_config reads them")));
        }
        self.config_from_metadata()
    }

    /// The config from metadata alone (RoPE frequency factors not filled in).
    fn config_from_metadata(&self) -> Result<ModelConfig, ModelError> {
        let arch = self.architecture()?;
        let (model_type, hf_class) = match arch {
            "llama" => ("llama", "LlamaForCausalLM"),
            "qwen2" => ("qwen2", "Qwen2ForCausalLM"),
            "qwen3" => ("qwen3", "Qwen3ForCausalLM"),
            "gemma3" => ("gemma3_text", "Gemma3ForCausalLM"),
            other => {
                return Err(self.error(format!(
                    "GGUF architecture `{other}` is not supported; icdbench loads llama (Llama, SmolLM, Mistral), qwen2, qwen3 and gemma3 GGUF files"
                )))
            }
        };
        let key = |k: &str| format!("{arch}.{k}");
        let usize_of = |v: u64, k: &str| usize::try_from(v).map_err(|_| self.error(format!("metadata `{k}` = {v} is too large")));
        let hidden_size = usize_of(self.require_u64(&key("embedding_length"))?, "embedding_length")?;
        let num_hidden_layers = usize_of(self.require_u64(&key("block_count"))?, "block_count")?;
        let intermediate_size = usize_of(self.require_u64(&key("feed_forward_length"))?, "feed_forward_length")?;
        let num_attention_heads = usize_of(self.require_u64(&key("attention.head_count"))?, "attention.head_count")?;
        let num_key_value_heads = match self.get_u64(&key("attention.head_count_kv"))? {
            Some(v) => usize_of(v, "attention.head_count_kv")?,
            None => num_attention_heads,
        };
        let rms_norm_eps = self
            .get_f64(&key("attention.layer_norm_rms_epsilon"))?
            .ok_or_else(|| self.error(format!("metadata `{}` is missing", key("attention.layer_norm_rms_epsilon"))))?;
        let gemma = arch == "gemma3";
        let rope_theta = self.get_f64(&key("rope.freq_base"))?.unwrap_or(if gemma { 1_000_000.0 } else { 10_000.0 });
        let max_position_embeddings = match self.get_u64(&key("context_length"))? {
            Some(v) => usize_of(v, "context_length")?,
            None => 2048,
        };
        let head_dim = match self.get_u64(&key("attention.key_length"))? {
            Some(k) if gemma || num_attention_heads == 0 || k as usize != hidden_size / num_attention_heads => Some(usize_of(k, "attention.key_length")?),
            _ => None,
        };

        // The embedding matrix is the truth for vocab_size (it may be padded past the token list).
        let n_tokens = match self.metadata.get("tokenizer.ggml.tokens") {
            Some(MetaValue::Array(v)) => Some(v.len()),
            _ => None,
        };
        let vocab_size = match self.tensor("token_embd.weight") {
            Some(t) if t.dims.len() == 2 => usize_of(t.dims[1], "token_embd.weight")?,
            Some(t) => return Err(self.error(format!("tensor `token_embd.weight` has dims {:?}, expected two", t.dims))),
            None => match (self.get_u64(&key("vocab_size"))?, n_tokens) {
                (Some(v), _) => usize_of(v, "vocab_size")?,
                (None, Some(n)) => n,
                (None, None) => return Err(self.error("cannot tell the vocabulary size: no token_embd.weight, vocab_size or token list")),
            },
        };
        if let Some(n) = n_tokens {
            if n > vocab_size {
                return Err(self.error(format!("the tokenizer has {n} tokens but the embedding has only {vocab_size} rows")));
            }
        }

        let rope_scaling = self.rope_scaling(arch)?;
        let id = |k: &str| -> Result<Option<TokenIds>, ModelError> {
            Ok(match self.get_u64(k)? {
                Some(v) => Some(TokenIds::One(u32::try_from(v).map_err(|_| self.error(format!("metadata `{k}` = {v} is not a token id")))?)),
                None => None,
            })
        };
        // Gemma 3: what llama.cpp reads (the converter writes neither the local RoPE base nor
        // the layer pattern nor query_pre_attn_scalar: 10,000, every sixth layer global, and
        // head_dim — hidden / heads for the 62-layer 27B model — are llama.cpp's rules).
        let (sliding_window, query_pre_attn_scalar, sliding_window_pattern, rope_local_base_freq) = if gemma {
            let window = self.get_u64(&key("attention.sliding_window"))?.ok_or_else(|| self.error(format!("metadata `{}` is missing", key("attention.sliding_window"))))?;
            let qpas = if num_hidden_layers == 62 { hidden_size as f64 / num_attention_heads.max(1) as f64 } else { head_dim.unwrap_or(0) as f64 };
            let pattern = self.get_u64(&key("attention.sliding_window_pattern"))?.map(|p| p as usize);
            (Some(usize_of(window, "attention.sliding_window")?), Some(qpas), pattern, self.get_f64(&key("rope.freq_base_swa"))?)
        } else {
            (None, None, None, None)
        };
        Ok(ModelConfig {
            architectures: vec![hf_class.to_string()],
            model_type: model_type.to_string(),
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: Some(num_key_value_heads),
            head_dim,
            rms_norm_eps,
            rope_theta: Some(rope_theta),
            rope_scaling,
            rope_parameters: None,
            max_position_embeddings,
            tie_word_embeddings: self.tensor("output.weight").is_none(),
            attention_bias: false,
            mlp_bias: false,
            hidden_act: "silu".to_string(),
            hidden_activation: gemma.then(|| "gelu_pytorch_tanh".to_string()),
            query_pre_attn_scalar,
            sliding_window,
            layer_types: None,
            sliding_window_pattern,
            rope_local_base_freq,
            final_logit_softcapping: None,
            attn_logit_softcapping: None,
            bos_token_id: id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: id("tokenizer.ggml.eos_token_id")?,
            pad_token_id: id("tokenizer.ggml.padding_token_id")?,
            rope_freq_factors: None,
        })
    }

    /// RoPE scaling from `{arch}.rope.scaling.*` (linear is used as is; other
    /// types pass through for [`ModelConfig::validate`] to refuse).
    fn rope_scaling(&self, arch: &str) -> Result<Option<RopeScaling>, ModelError> {
        let ty = self.get_str(&format!("{arch}.rope.scaling.type"))?;
        let factor = self.get_f64(&format!("{arch}.rope.scaling.factor"))?;
        let legacy_linear = self.get_f64(&format!("{arch}.rope.scale_linear"))?;
        let original = self.get_u64(&format!("{arch}.rope.scaling.original_context_length"))?.map(|v| v as usize);
        let scaling = |rope_type: &str, factor: Option<f64>| RopeScaling {
            rope_type: Some(rope_type.to_string()),
            rope_theta: None,
            factor,
            low_freq_factor: None,
            high_freq_factor: None,
            original_max_position_embeddings: original,
        };
        Ok(match ty {
            Some("none") => None,
            Some(t) => Some(scaling(t, factor)),
            None => legacy_linear.filter(|&f| f != 1.0).map(|f| scaling("linear", Some(f))),
        })
    }

    /// One paragraph describing the checkpoint, for logs and run records.
    pub fn summary(&self) -> String {
        let s = |k: &str| self.get(k).and_then(MetaValue::as_str).unwrap_or("").to_string();
        let arch = s("general.architecture");
        let name = match s("general.name") {
            n if n.is_empty() => self.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            n => n,
        };
        let mut by_type: BTreeMap<GgmlType, usize> = BTreeMap::new();
        for t in &self.tensors {
            *by_type.entry(t.ggml_type).or_default() += 1;
        }
        let types: Vec<String> = by_type.iter().map(|(t, n)| format!("{n} {t}")).collect();
        let params: u64 = self.tensors.iter().map(TensorInfo::n_elements).sum();
        let num = |k: &str| self.get(&format!("{arch}.{k}")).map(ToString::to_string).unwrap_or_else(|| "?".into());
        let n_tokens = match self.get("tokenizer.ggml.tokens") {
            Some(MetaValue::Array(v)) => v.len().to_string(),
            _ => "no".into(),
        };
        format!(
            "{name} ({}): GGUF v{}, architecture {arch}, {} tensors ({}), {:.1}M parameters, {:.1} MB; {} layers, hidden {}, FFN {}, {}/{} heads, context {}; tokenizer {}/{} with {n_tokens} tokens",
            self.path.display(),
            self.version,
            self.tensors.len(),
            types.join(", "),
            params as f64 / 1e6,
            self.file_len as f64 / 1e6,
            num("block_count"),
            num("embedding_length"),
            num("feed_forward_length"),
            num("attention.head_count"),
            num("attention.head_count_kv"),
            num("context_length"),
            s("tokenizer.ggml.model"),
            s("tokenizer.ggml.pre"),
        )
    }
}

/// Bytes a tensor occupies, checking that its rows are whole blocks and the size fits in u64.
fn tensor_bytes(name: &str, dims: &[u64], ty: GgmlType) -> Result<Option<u64>, String> {
    let n = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("corrupt: tensor `{name}` has dims {dims:?}, whose product overflows"))?;
    let Some((block, block_bytes)) = ty.layout() else { return Ok(None) };
    if dims[0] % block != 0 {
        return Err(format!("corrupt: tensor `{name}` is {ty} with rows of {} values, not a multiple of its block size {block}", dims[0]));
    }
    (n / block).checked_mul(block_bytes).map(Some).ok_or_else(|| format!("corrupt: tensor `{name}` is too large"))
}

/// A bounds-checked little-endian cursor over the file.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn error(&self, message: impl Into<String>) -> ModelError {
        ModelError::file(self.path, message)
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], ModelError> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(self.error(format!("truncated: reading {what} at byte {} needs {n} bytes, but the file ends at byte {}", self.pos, self.bytes.len())));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ModelError> {
        let b = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let len = self.u64(what)?;
        let b = self.take(len, what)?;
        // Keys and token strings should be UTF-8; a stray byte should not make the file unreadable.
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<MetaValue, ModelError> {
        let what = format!("the value of `{key}`");
        Ok(match ty {
            0 => MetaValue::U8(u8::from_le_bytes(self.array(&what)?)),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(&what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match u8::from_le_bytes(self.array(&what)?) {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(self.error(format!("corrupt: `{key}` is a bool stored as byte {b}"))),
            },
            8 => MetaValue::Str(self.string(&what)?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(self.error(format!("corrupt: `{key}` nests arrays more than {MAX_NESTING} deep")));
                }
                let item_ty = self.u32(&format!("the item type of `{key}`"))?;
                let n = self.u64(&format!("the length of `{key}`"))?;
                // Every item takes at least one byte (strings 8, arrays 12): refuse counts the file cannot hold.
                let min_item = match item_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => return Err(self.error(format!("corrupt: `{key}` is an array of unknown value type {other}"))),
                };
                let left = (self.bytes.len() - self.pos) as u64;
                if n.saturating_mul(min_item) > left {
                    return Err(self.error(format!("truncated: {what} is an array of {n} items, more than the {left} bytes left in the file can hold")));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(item_ty, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(&what)?)),
            other => return Err(self.error(format!("corrupt: metadata `{key}` has unknown value type {other}"))),
        })
    }
}

// ---------------------------------------------------------------------------
// Tensor data

/// A GGUF file mapped into memory: its directory plus access to tensor data.
pub struct MappedGguf {
    file: GgufFile,
    mmap: Mmap,
}

impl MappedGguf {
    pub fn open(path: &Path) -> Result<MappedGguf, ModelError> {
        let f = std::fs::File::open(path).map_err(|e| ModelError::file(path, format!("cannot open: {e}")))?;
        // SAFETY: the map is read-only; the file is not expected to change while the
        // checkpoint is being read (as for any model file being loaded).
        let mmap = unsafe { Mmap::map(&f) }.map_err(|e| ModelError::file(path, format!("cannot map into memory: {e}")))?;
        let file = GgufFile::parse(path, &mmap)?;
        Ok(MappedGguf { file, mmap })
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The config the file describes, with `rope_freqs.weight`'s factors when it carries them
    /// (one positive, finite factor per RoPE frequency).
    pub fn model_config(&self) -> Result<ModelConfig, ModelError> {
        let mut config = self.file.config_from_metadata()?;
        if self.file.tensor(ROPE_FREQS).is_some() {
            let factors = self.dequantize(ROPE_FREQS)?;
            let want = config.head_dim() / 2;
            if factors.len() != want {
                return Err(self.file.error(format!("{ROPE_FREQS} has {} values; a head of {} dimensions has {want} RoPE frequencies", factors.len(), config.head_dim())));
            }
            if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
                return Err(self.file.error(format!("{ROPE_FREQS} holds {bad}; RoPE frequency factors must be positive and finite")));
            }
            config.rope_freq_factors = Some(factors);
        }
        Ok(config)
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, ModelError> {
        self.file.tensor(name).ok_or_else(|| self.file.error(format!("no tensor named `{name}`")))
    }

    /// The tensor's bytes as stored (quantised blocks for quantised types).
    pub fn raw(&self, name: &str) -> Result<&[u8], ModelError> {
        let t = self.info(name)?;
        let n = t.n_bytes.ok_or_else(|| self.file.error(format!("tensor `{name}` has type {}, whose layout icdbench does not know", t.ggml_type)))?;
        // parse() checked the extent against the file length.
        let start = (self.file.data_offset + t.offset) as usize;
        Ok(&self.mmap[start..start + n as usize])
    }

    /// The tensor's values as f32, in file order (row-major over the torch shape).
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let t = self.info(name)?;
        let raw = self.raw(name)?;
        dequantize(t.ggml_type, raw, t.n_elements()).map_err(|m| self.file.error(format!("tensor `{name}`: {m}")))
    }

    /// The tensor as stored (no name mapping, no row permutation), torch shape, as `kind` on `device`.
    pub fn tensor(&self, name: &str, kind: Kind, device: Device) -> Result<Tensor, ModelError> {
        let t = self.info(name)?;
        let raw = self.raw(name)?;
        let cpu = dequantize_tensor(t.ggml_type, raw, &t.shape()).map_err(|m| self.file.error(format!("tensor `{name}`: {m}")))?;
        Ok(cpu.f_to_kind(kind)?.f_to_device(device)?)
    }

    /// Every tensor under its Hugging Face name and layout: llama q/k rows put
    /// back in Hugging Face order; names this module does not know are kept as
    /// they are so the model builder's leftover check reports them.
    pub fn hf_weights(&self, config: &ModelConfig, kind: Kind, device: Device) -> Result<WeightMap, ModelError> {
        let arch = self.file.architecture()?;
        let mut weights = WeightMap::new(self.file.path.display().to_string());
        for t in &self.file.tensors {
            let hf = match hf_name_for(arch, &t.name) {
                NameMap::Skip => continue,
                NameMap::Unknown => t.name.clone(),
                NameMap::Hf(n) => n,
            };
            if !t.ggml_type.can_dequantize() {
                return Err(self
                    .file
                    .error(format!("tensor `{}` is {}, which icdbench cannot dequantise (it reads {})", t.name, t.ggml_type, SUPPORTED_TYPES)));
            }
            let mut tensor = self.tensor(&t.name, Kind::Float, Device::Cpu)?;
            // llama.cpp's converter stores Gemma's zero-centred norm weights as 1 + w.
            if arch == "gemma3" && t.name.ends_with("norm.weight") {
                tensor = tensor.f_sub_scalar(1.0)?;
            }
            if arch == "llama" {
                let heads = if t.name.contains(".attn_q.") {
                    Some(config.num_attention_heads)
                } else if t.name.contains(".attn_k.") {
                    Some(config.kv_heads())
                } else {
                    None
                };
                if let Some(h) = heads {
                    tensor = unpermute_qk(&tensor, h as i64).map_err(|m| self.file.error(format!("tensor `{}`: {m}", t.name)))?;
                }
            }
            weights.insert(hf, tensor.f_to_kind(kind)?.f_to_device(device)?);
        }
        Ok(weights)
    }
}

/// What [`hf_name`] makes of a GGUF tensor name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMap {
    Hf(String),
    /// Not a weight the model reads (derived data such as `rope_freqs.weight`).
    Skip,
    Unknown,
}

/// The Hugging Face name of a llama.cpp tensor name in a file of architecture `arch`:
/// gemma3 names its four layer norms differently, and its `ffn_norm` is the norm before
/// the MLP, where Llama's is the one after attention.
pub fn hf_name_for(arch: &str, gguf: &str) -> NameMap {
    if arch == "gemma3" {
        let gemma = [("ffn_norm.weight", "pre_feedforward_layernorm.weight"), ("post_attention_norm.weight", "post_attention_layernorm.weight"), ("post_ffw_norm.weight", "post_feedforward_layernorm.weight")];
        if let Some(rest) = gguf.strip_prefix("blk.") {
            if let Some((layer, part)) = rest.split_once('.') {
                if let Some((_, hf)) = gemma.iter().find(|(g, _)| *g == part) {
                    if !layer.is_empty() && layer.bytes().all(|b| b.is_ascii_digit()) {
                        return NameMap::Hf(format!("model.layers.{layer}.{hf}"));
                    }
                }
            }
        }
    }
    hf_name(gguf)
}

/// The Hugging Face name of a llama.cpp tensor name (llama / qwen2 / qwen3 layouts).
pub fn hf_name(gguf: &str) -> NameMap {
    match gguf {
        "token_embd.weight" => return NameMap::Hf("model.embed_tokens.weight".into()),
        "output_norm.weight" => return NameMap::Hf("model.norm.weight".into()),
        "output.weight" => return NameMap::Hf("lm_head.weight".into()),
        ROPE_FREQS => return NameMap::Skip,
        _ => {}
    }
    let Some(rest) = gguf.strip_prefix("blk.") else { return NameMap::Unknown };
    let Some((layer, rest)) = rest.split_once('.') else { return NameMap::Unknown };
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return NameMap::Unknown;
    }
    let Some((part, suffix)) = rest.rsplit_once('.') else { return NameMap::Unknown };
    if suffix != "weight" && suffix != "bias" {
        return NameMap::Unknown;
    }
    let hf = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_rot_embd" => return NameMap::Skip,
        _ => return NameMap::Unknown,
    };
    NameMap::Hf(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// llama.cpp's conversion stores each head's q/k rows with the two rotary
/// halves interleaved (HF row `s * half + i` of a head becomes row `2 * i + s`),
/// because its RoPE rotates adjacent pairs where Hugging Face rotates halves.
/// This puts them back: view `[heads, half, 2, ...]`, swap the middle axes.
pub fn unpermute_qk(t: &Tensor, n_head: i64) -> Result<Tensor, String> {
    regroup_rows(t, n_head, false)
}

/// The permutation llama.cpp's converter applies (the inverse of [`unpermute_qk`]),
/// for tests and for writing GGUF files.
pub fn permute_qk(t: &Tensor, n_head: i64) -> Result<Tensor, String> {
    regroup_rows(t, n_head, true)
}

fn regroup_rows(t: &Tensor, n_head: i64, to_gguf: bool) -> Result<Tensor, String> {
    let shape = t.size();
    let rows = *shape.first().ok_or("a q/k weight must have at least one dimension")?;
    if n_head <= 0 || rows % (2 * n_head) != 0 {
        return Err(format!("{rows} rows cannot be split into {n_head} heads of two rotary halves"));
    }
    let half = rows / n_head / 2;
    let mut grouped = vec![n_head, if to_gguf { 2 } else { half }, if to_gguf { half } else { 2 }];
    grouped.extend_from_slice(&shape[1..]);
    let out = t.f_reshape(grouped.as_slice()).and_then(|g| g.f_transpose(1, 2)).and_then(|g| g.f_contiguous()).and_then(|g| g.f_reshape(shape.as_slice()));
    out.map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Dequantisation

const SUPPORTED_TYPES: &str = "F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";

/// Decodes `n` values of type `ty` from `raw` (which must be exactly their size).
pub fn dequantize(ty: GgmlType, raw: &[u8], n: u64) -> Result<Vec<f32>, String> {
    let n = usize::try_from(n).map_err(|_| "too many values for this machine".to_string())?;
    let mut out = vec![0f32; n];
    dequantize_into(ty, raw, &mut out)?;
    Ok(out)
}

/// Decodes `raw` into a new CPU float tensor of `shape` (no intermediate copy:
/// for a 135M-parameter model that halves the load time of a debug build).
pub fn dequantize_tensor(ty: GgmlType, raw: &[u8], shape: &[i64]) -> Result<Tensor, String> {
    let t = Tensor::f_empty(shape, (Kind::Float, Device::Cpu)).map_err(|e| e.to_string())?;
    let n = t.numel();
    if n > 0 {
        // SAFETY: `t` was just allocated as a contiguous CPU f32 tensor of `n`
        // elements; nothing else refers to its storage while `out` lives.
        let out = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n) };
        dequantize_into(ty, raw, out)?;
    }
    Ok(t)
}

/// Decodes `raw` into `out`, whose length is the number of values.
pub fn dequantize_into(ty: GgmlType, raw: &[u8], out: &mut [f32]) -> Result<(), String> {
    let (block, block_bytes) = ty.layout().ok_or_else(|| format!("icdbench cannot dequantise {ty} (it reads {SUPPORTED_TYPES})"))?;
    let n = out.len() as u64;
    if n % block != 0 || (n / block).checked_mul(block_bytes) != Some(raw.len() as u64) {
        return Err(format!("{n} values of {ty} need {} bytes, found {}", (n / block).saturating_mul(block_bytes), raw.len()));
    }
    let (block, block_bytes) = (block as usize, block_bytes as usize);
    let f: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::F32 => block_f32,
        GgmlType::F16 => block_f16,
        GgmlType::BF16 => block_bf16,
        GgmlType::F64 => block_f64,
        GgmlType::Q4_0 => block_q4_0,
        GgmlType::Q4_1 => block_q4_1,
        GgmlType::Q5_0 => block_q5_0,
        GgmlType::Q5_1 => block_q5_1,
        GgmlType::Q8_0 => block_q8_0,
        GgmlType::Q2_K => block_q2_k,
        GgmlType::Q3_K => block_q3_k,
        GgmlType::Q4_K => block_q4_k,
        GgmlType::Q5_K => block_q5_k,
        GgmlType::Q6_K => block_q6_k,
        _ => return Err(format!("icdbench cannot dequantise {ty} (it reads {SUPPORTED_TYPES})")),
    };
    // Hand each rayon task a few thousand values (per-task overhead matters in debug builds).
    let per_task = 4096 / block;
    out.par_chunks_mut(block * per_task).zip(raw.par_chunks(block_bytes * per_task)).for_each(|(o, r)| {
        for (ob, rb) in o.chunks_exact_mut(block).zip(r.chunks_exact(block_bytes)) {
            f(rb, ob);
        }
    });
    Ok(())
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn block_f32(b: &[u8], out: &mut [f32]) {
    out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
}

fn block_f16(b: &[u8], out: &mut [f32]) {
    out[0] = f16_at(b, 0);
}

fn block_bf16(b: &[u8], out: &mut [f32]) {
    out[0] = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
}

fn block_f64(b: &[u8], out: &mut [f32]) {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    out[0] = f64::from_le_bytes(a) as f32;
}

/// Q4_0: scale d (f16), 16 bytes of 4-bit values; low nibbles are values 0..16, high nibbles 16..32; x = (q - 8) * d.
fn block_q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        out[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
        out[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: scale d and minimum m (f16), 4-bit values laid out as Q4_0; x = q * d + m.
fn block_q4_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        out[j] = (qs[j] & 0x0f) as f32 * d + m;
        out[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// The fifth bits of Q5_0 / Q5_1: bit j of the 32-bit word belongs to value j.
fn fifth_bit(qh: u32, j: usize) -> u8 {
    (((qh >> j) & 1) << 4) as u8
}

/// Q5_0: d (f16), 32 high bits, 16 bytes of low nibbles (as Q4_0); x = (q - 16) * d.
fn block_q5_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let lo = (qs[j] & 0x0f) | fifth_bit(qh, j);
        let hi = (qs[j] >> 4) | fifth_bit(qh, j + 16);
        out[j] = (lo as i32 - 16) as f32 * d;
        out[j + 16] = (hi as i32 - 16) as f32 * d;
    }
}

/// Q5_1: d and m (f16), 32 high bits, low nibbles; x = q * d + m.
fn block_q5_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let lo = (qs[j] & 0x0f) | fifth_bit(qh, j);
        let hi = (qs[j] >> 4) | fifth_bit(qh, j + 16);
        out[j] = lo as f32 * d + m;
        out[j + 16] = hi as f32 * d + m;
    }
}

/// Q8_0: d (f16), 32 signed bytes; x = q * d.
fn block_q8_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..34]) {
        *o = (q as i8) as f32 * d;
    }
}

/// Q2_K super-block (256 values): 16 bytes of 4-bit scale/min pairs, 64 bytes of
/// 2-bit values, d and dmin (f16). Each 16-value group: x = d*scale*q - dmin*min.
fn block_q2_k(b: &[u8], out: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    let mut y = 0;
    let mut is = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0u32, 2, 4, 6] {
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0f) as f32;
                let ml = dmin * (sc >> 4) as f32;
                for l in 0..16 {
                    out[y] = dl * ((q[part * 16 + l] >> shift) & 3) as f32 - ml;
                    y += 1;
                }
            }
        }
    }
}

/// Q3_K super-block: 32 bytes of high bits, 64 bytes of 2-bit low parts, 12 bytes
/// packing sixteen 6-bit scales, d (f16). x = d * (scale - 32) * (q - 4 if the high bit is clear).
fn block_q3_k(b: &[u8], out: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let packed = &b[96..108];
    let d = f16_at(b, 108);
    // Scale i: low 4 bits from byte i % 8 (low nibble for i < 8, high for i >= 8),
    // top 2 bits from byte 8 + i % 4, at bit position 2 * (i / 4).
    let mut scales = [0i32; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        let low = if i < 8 { packed[i] & 0x0f } else { packed[i - 8] >> 4 };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        *s = (low | (high << 4)) as i32 - 32;
    }
    let mut y = 0;
    let mut is = 0;
    let mut bit = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0u32, 2, 4, 6] {
            let m = 1u8 << bit;
            for part in 0..2 {
                let dl = d * scales[is] as f32;
                is += 1;
                for l in 0..16 {
                    let k = part * 16 + l;
                    let low = ((q[k] >> shift) & 3) as i32;
                    let v = if hmask[k] & m != 0 { low } else { low - 4 };
                    out[y] = dl * v as f32;
                    y += 1;
                }
            }
            bit += 1;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (of 8) in Q4_K / Q5_K's 12 packed bytes:
/// sub-blocks 0..4 keep theirs in the low 6 bits of bytes j and j+4; 4..8 split
/// theirs between byte j+4's nibbles and the top 2 bits of bytes j-4 and j.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Q4_K super-block: d, dmin (f16), 12 bytes of scales/mins, 128 bytes of nibbles;
/// each 64 values share 32 bytes (low nibbles first). x = d*scale*q - dmin*min.
fn block_q4_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        let (s1, m1) = scale_min_k4(2 * chunk, scales);
        let (s2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, min1) = (d * s1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * s2 as f32, dmin * m2 as f32);
        let y = &mut out[chunk * 64..chunk * 64 + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0f) as f32 - min1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - min2;
        }
    }
}

/// Q5_K super-block: as Q4_K plus 32 bytes of fifth bits (bit 2c of byte l for
/// the low-nibble value of chunk c, bit 2c+1 for the high-nibble value).
fn block_q5_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        let (s1, m1) = scale_min_k4(2 * chunk, scales);
        let (s2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, min1) = (d * s1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * s2 as f32, dmin * m2 as f32);
        let (u1, u2) = (1u8 << (2 * chunk), 1u8 << (2 * chunk + 1));
        let y = &mut out[chunk * 64..chunk * 64 + 64];
        for l in 0..32 {
            let lo = (q[l] & 0x0f) + if qh[l] & u1 != 0 { 16 } else { 0 };
            let hi = (q[l] >> 4) + if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * lo as f32 - min1;
            y[l + 32] = d2 * hi as f32 - min2;
        }
    }
}

/// Q6_K super-block: 128 bytes of low nibbles, 64 bytes of 2-bit high parts,
/// sixteen signed 8-bit scales, d (f16). x = d * scale * (q - 32).
fn block_q6_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let y = &mut out[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| (sc[k] as i8) as f32;
            y[l] = d * s(is) * q1 as f32;
            y[l + 32] = d * s(is + 2) * q2 as f32;
            y[l + 64] = d * s(is + 4) * q3 as f32;
            y[l + 96] = d * s(is + 6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid header: magic, version, counts, then `kv` and `tensors` bytes.
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend(version.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b
    }

    fn gguf_string(s: &str) -> Vec<u8> {
        let mut b = (s.len() as u64).to_le_bytes().to_vec();
        b.extend(s.as_bytes());
        b
    }

    fn parse(bytes: &[u8]) -> Result<GgufFile, String> {
        GgufFile::parse(Path::new("x.gguf"), bytes).map_err(|e| e.to_string())
    }

    #[test]
    fn refuses_what_is_not_gguf_v2_or_v3() {
        assert!(parse(b"GG").unwrap_err().contains("only 2 bytes"));
        assert!(parse(b"PK\x03\x04rest").unwrap_err().contains("not a GGUF file"));
        assert!(parse(&header(1, 0, 0)).unwrap_err().contains("version 1"));
        assert!(parse(&header(3u32.swap_bytes(), 0, 0)).unwrap_err().contains("big-endian"));
        assert!(parse(&header(9, 0, 0)).unwrap_err().contains("unknown GGUF version 9"));
        let ok = parse(&header(2, 0, 0)).unwrap();
        assert_eq!((ok.version, ok.alignment, ok.data_offset), (2, DEFAULT_ALIGNMENT, 32));
    }

    #[test]
    fn huge_counts_are_truncation_not_allocation() {
        let e = parse(&header(3, u64::MAX, 0)).unwrap_err();
        assert!(e.starts_with("x.gguf: truncated"), "{e}");
        let mut b = header(3, 0, 1);
        b.extend(gguf_string("k"));
        b.extend(9u32.to_le_bytes()); // array
        b.extend(8u32.to_le_bytes()); // of strings
        b.extend(u64::MAX.to_le_bytes());
        let e = parse(&b).unwrap_err();
        assert!(e.contains("truncated") && e.contains("`k`"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut b = header(3, 0, 1);
        b.extend(gguf_string("deep"));
        b.extend(9u32.to_le_bytes());
        for _ in 0..40 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        b.extend(vec![0u8; 64]);
        assert!(parse(&b).unwrap_err().contains("nests arrays"));
    }

    #[test]
    fn bad_alignment_and_bad_bool_are_errors() {
        let mut b = header(3, 0, 1);
        b.extend(gguf_string("general.alignment"));
        b.extend(4u32.to_le_bytes());
        b.extend(48u32.to_le_bytes());
        assert!(parse(&b).unwrap_err().contains("power of two"));
        let mut b = header(3, 0, 1);
        b.extend(gguf_string("flag"));
        b.extend(7u32.to_le_bytes());
        b.push(2);
        assert!(parse(&b).unwrap_err().contains("bool stored as byte 2"));
    }

    #[test]
    fn tensor_directory_checks_rank_blocks_and_extent() {
        let entry = |dims: &[u64], ty: u32, offset: u64| {
            let mut b = gguf_string("w");
            b.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(ty.to_le_bytes());
            b.extend(offset.to_le_bytes());
            b
        };
        let file = |e: Vec<u8>, data: usize| {
            let mut b = header(3, 1, 0);
            b.extend(e);
            b.resize(b.len().div_ceil(32) * 32 + data, 0);
            b
        };
        // 64 Q4_0 values = 2 blocks of 18 bytes.
        let ok = parse(&file(entry(&[64], 2, 0), 36)).unwrap();
        assert_eq!(ok.tensors[0].n_bytes, Some(36));
        assert_eq!(ok.tensors[0].shape(), vec![64]);
        assert!(parse(&file(entry(&[64], 2, 0), 35)).unwrap_err().contains("runs past the end"));
        assert!(parse(&file(entry(&[48], 2, 0), 64)).unwrap_err().contains("not a multiple of its block size 32"));
        assert!(parse(&file(entry(&[1, 1, 1, 1, 1], 0, 0), 64)).unwrap_err().contains("5 dimensions"));
        assert!(parse(&file(entry(&[1 << 40, 1 << 40], 0, 0), 64)).unwrap_err().contains("overflows"));
        assert!(parse(&file(entry(&[u64::MAX, 4], 0, 0), 64)).unwrap_err().contains("corrupt: dimension 0"));
        assert!(parse(&file(entry(&[4], 0, 8), 64)).unwrap_err().contains("not a multiple of the alignment"));
        // An unknown type is listed (its data cannot be checked or read).
        let other = parse(&file(entry(&[256], 16, 0), 0)).unwrap();
        assert_eq!(other.tensors[0].ggml_type.name(), "IQ2_XXS");
    }

    #[test]
    fn metadata_numbers_convert_as_config_json_would_say() {
        assert_eq!(MetaValue::F32(1e-5).as_f64(), Some(1e-5));
        assert_eq!(MetaValue::F32(100000.0).as_f64(), Some(1e5));
        assert_eq!(MetaValue::I32(-1).as_u64(), None);
        assert_eq!(MetaValue::U64(u64::MAX).as_i64(), None);
        assert_eq!(MetaValue::U8(7).as_f64(), Some(7.0));
        assert_eq!(MetaValue::Str("x".into()).as_u64(), None);
    }

    /// A directory-only file with `meta` and one embedding of `vocab` x `hidden`.
    fn meta_file(arch: &str, meta: &[(&str, MetaValue)], vocab: u64) -> GgufFile {
        let mut metadata: BTreeMap<String, MetaValue> = [
            ("general.architecture".to_string(), MetaValue::Str(arch.into())),
            (format!("{arch}.embedding_length"), MetaValue::U32(64)),
            (format!("{arch}.block_count"), MetaValue::U32(2)),
            (format!("{arch}.feed_forward_length"), MetaValue::U32(128)),
            (format!("{arch}.attention.head_count"), MetaValue::U32(4)),
            (format!("{arch}.attention.head_count_kv"), MetaValue::U32(2)),
            (format!("{arch}.attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-6)),
            (format!("{arch}.rope.freq_base"), MetaValue::F32(1_000_000.0)),
            (format!("{arch}.context_length"), MetaValue::U32(32768)),
        ]
        .into_iter()
        .collect();
        for (k, v) in meta {
            metadata.insert(k.to_string(), v.clone());
        }
        let embd = TensorInfo { name: "token_embd.weight".into(), dims: vec![64, vocab], ggml_type: GgmlType::F16, offset: 0, n_bytes: Some(64 * vocab * 2) };
        GgufFile { path: "m.gguf".into(), version: 3, alignment: 32, data_offset: 0, file_len: 0, metadata, tensors: vec![embd] }
    }

    #[test]
    fn config_from_metadata_per_architecture() {
        let q2 = meta_file("qwen2", &[], 151936).model_config().unwrap();
        assert_eq!((q2.model_type.as_str(), q2.architectures[0].as_str()), ("qwen2", "Qwen2ForCausalLM"));
        assert_eq!((q2.vocab_size, q2.hidden_size, q2.num_hidden_layers, q2.kv_heads(), q2.head_dim()), (151936, 64, 2, 2, 16));
        assert_eq!((q2.rms_norm_eps, q2.rope().rope_theta, q2.max_position_embeddings), (1e-6, Some(1e6), 32768));
        assert!(q2.tie_word_embeddings && q2.rope_scaling.is_none());
        // Qwen3's head_dim is not hidden / heads.
        let q3 = meta_file("qwen3", &[("qwen3.attention.key_length", MetaValue::U32(128))], 1000).model_config().unwrap();
        assert_eq!((q3.head_dim, q3.head_dim()), (Some(128), 128));
        let same = meta_file("llama", &[("llama.attention.key_length", MetaValue::U32(16))], 1000).model_config().unwrap();
        assert_eq!(same.head_dim, None);
        // Linear RoPE scaling, both spellings.
        let lin = meta_file("llama", &[("llama.rope.scaling.type", MetaValue::Str("linear".into())), ("llama.rope.scaling.factor", MetaValue::F32(4.0))], 10);
        let r = lin.model_config().unwrap().rope();
        assert_eq!((r.rope_type.as_deref(), r.factor), (Some("linear"), Some(4.0)));
        let legacy = meta_file("llama", &[("llama.rope.scale_linear", MetaValue::F32(2.0))], 10).model_config().unwrap();
        assert_eq!(legacy.rope().factor, Some(2.0));
        // A token list longer than the embedding, a missing key, a wrong type, another architecture.
        let tokens = MetaValue::Array(vec![MetaValue::Str("a".into()); 11]);
        assert!(meta_file("llama", &[("tokenizer.ggml.tokens", tokens)], 10).model_config().unwrap_err().to_string().contains("11 tokens"));
        let mut f = meta_file("llama", &[], 10);
        f.metadata.remove("llama.block_count");
        assert_eq!(f.model_config().unwrap_err().to_string(), "m.gguf: metadata `llama.block_count` is missing");
        let f = meta_file("llama", &[("llama.block_count", MetaValue::Str("2".into()))], 10);
        assert!(f.model_config().unwrap_err().to_string().contains("expected a non-negative integer"));
        let e = meta_file("gemma2", &[], 10).model_config().unwrap_err().to_string();
        assert!(e.contains("architecture `gemma2` is not supported"), "{e}");
        let mut f = meta_file("llama", &[], 10);
        f.tensors.push(TensorInfo { name: "rope_freqs.weight".into(), dims: vec![32], ggml_type: GgmlType::F32, offset: 0, n_bytes: Some(128) });
        assert!(f.model_config().unwrap_err().to_string().contains("rope_freqs.weight"));
    }

    #[test]
    fn names_map_to_hugging_face() {
        let hf = |n: &str| hf_name(n);
        assert_eq!(hf("token_embd.weight"), NameMap::Hf("model.embed_tokens.weight".into()));
        assert_eq!(hf("output.weight"), NameMap::Hf("lm_head.weight".into()));
        assert_eq!(hf("output_norm.weight"), NameMap::Hf("model.norm.weight".into()));
        assert_eq!(hf("blk.12.attn_q.weight"), NameMap::Hf("model.layers.12.self_attn.q_proj.weight".into()));
        assert_eq!(hf("blk.0.attn_k.bias"), NameMap::Hf("model.layers.0.self_attn.k_proj.bias".into()));
        assert_eq!(hf("blk.3.attn_v.weight"), NameMap::Hf("model.layers.3.self_attn.v_proj.weight".into()));
        assert_eq!(hf("blk.3.attn_output.weight"), NameMap::Hf("model.layers.3.self_attn.o_proj.weight".into()));
        assert_eq!(hf("blk.3.ffn_gate.weight"), NameMap::Hf("model.layers.3.mlp.gate_proj.weight".into()));
        assert_eq!(hf("blk.3.ffn_up.weight"), NameMap::Hf("model.layers.3.mlp.up_proj.weight".into()));
        assert_eq!(hf("blk.3.ffn_down.weight"), NameMap::Hf("model.layers.3.mlp.down_proj.weight".into()));
        assert_eq!(hf("blk.3.attn_norm.weight"), NameMap::Hf("model.layers.3.input_layernorm.weight".into()));
        assert_eq!(hf("blk.3.ffn_norm.weight"), NameMap::Hf("model.layers.3.post_attention_layernorm.weight".into()));
        assert_eq!(hf("blk.3.attn_q_norm.weight"), NameMap::Hf("model.layers.3.self_attn.q_norm.weight".into()));
        assert_eq!(hf("rope_freqs.weight"), NameMap::Skip);
        assert_eq!(hf("blk.x.attn_q.weight"), NameMap::Unknown);
        assert_eq!(hf("blk.1.ffn_gate_exps.weight"), NameMap::Unknown);
        assert_eq!(hf("blk.1.attn_q.scale"), NameMap::Unknown);
    }

    #[test]
    fn qk_permutation_round_trips_and_interleaves_halves() {
        // 2 heads of dim 8 (halves of 4), 3 input columns; value = row index.
        let rows = Tensor::arange(16, (Kind::Float, Device::Cpu)).unsqueeze(1).repeat([1, 3]);
        let gguf = permute_qk(&rows, 2).unwrap();
        let order: Vec<f32> = Vec::try_from(gguf.select(1, 0)).unwrap();
        // Head 0: HF rows 0..4 are the first half, 4..8 the second; llama.cpp interleaves them.
        assert_eq!(order, vec![0., 4., 1., 5., 2., 6., 3., 7., 8., 12., 9., 13., 10., 14., 11., 15.]);
        let back = unpermute_qk(&gguf, 2).unwrap();
        assert!(back.equal(&rows));
        // Random matrices, several head counts, and a 1-D bias.
        for heads in [1i64, 3, 9] {
            let w = Tensor::randn([heads * 64, 10], (Kind::Float, Device::Cpu));
            assert!(unpermute_qk(&permute_qk(&w, heads).unwrap(), heads).unwrap().equal(&w));
            assert!(permute_qk(&unpermute_qk(&w, heads).unwrap(), heads).unwrap().equal(&w));
            let b = Tensor::randn([heads * 64], (Kind::Float, Device::Cpu));
            assert!(unpermute_qk(&permute_qk(&b, heads).unwrap(), heads).unwrap().equal(&b));
        }
        assert!(unpermute_qk(&Tensor::zeros([6, 2], (Kind::Float, Device::Cpu)), 2).is_err());
    }

    #[test]
    fn dequantize_checks_sizes_and_decodes_simple_blocks() {
        // Q8_0: d = 0.5, values -2..30.
        let mut b = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        b.extend((0..32).map(|i| (i as i8 - 2) as u8));
        let v = dequantize(GgmlType::Q8_0, &b, 32).unwrap();
        assert_eq!(v[0], -1.0);
        assert_eq!(v[31], 14.5);
        // Q4_0: d = 2, byte j = (hi << 4) | lo with lo = 9, hi = 7 -> (9-8)*2, (7-8)*2.
        let mut b = half::f16::from_f32(2.0).to_le_bytes().to_vec();
        b.extend([0x79u8; 16]);
        let v = dequantize(GgmlType::Q4_0, &b, 32).unwrap();
        assert_eq!((v[0], v[15], v[16], v[31]), (2.0, 2.0, -2.0, -2.0));
        assert!(dequantize(GgmlType::Q4_0, &b[..17], 32).unwrap_err().contains("need 18 bytes"));
        assert!(dequantize(GgmlType::Other(16), &[], 0).is_err());
        assert_eq!(dequantize(GgmlType::BF16, &[0x80, 0x3f], 1).unwrap(), vec![1.0]);
    }
}
