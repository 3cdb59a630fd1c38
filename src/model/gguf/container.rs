//! The GGUF container: header, metadata and tensor directory, read with bounds checks.
//!
//! Layout (little-endian throughout): `GGUF` magic, version (2 or 3), tensor
//! count, metadata count, the metadata key/value pairs, one directory entry per
//! tensor (name, dims innermost-first, ggml type, offset), padding to the
//! alignment (`general.alignment`, default 32), then the tensor data, each
//! tensor's offset counted from the start of that data section.

use crate::model::ModelError;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// llama.cpp's Llama 3.1 RoPE scaling: per-frequency divisors of the default inverse frequencies.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

pub(crate) const MAGIC: &[u8; 4] = b"GGUF";
/// Data alignment when the file does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: usize = 4;
/// Arrays of arrays deeper than this are corrupt (and would exhaust the stack).
const MAX_NESTING: usize = 16;

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

    pub(crate) fn error(&self, message: impl Into<String>) -> ModelError {
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

    pub(super) fn require_u64(&self, key: &str) -> Result<u64, ModelError> {
        self.get_u64(key)?.ok_or_else(|| self.error(format!("metadata `{key}` is missing")))
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
    pub(crate) fn error(&self, message: impl Into<String>) -> ModelError {
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
