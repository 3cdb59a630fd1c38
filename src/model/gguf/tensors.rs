//! GGUF tensor data: the mapped file, and the walk from llama.cpp's tensor names and
//! row order to Hugging Face's.

use super::container::*;
use super::dequant::*;
use crate::model::config::ModelConfig;
use crate::model::weights::WeightMap;
use crate::model::ModelError;
use memmap2::Mmap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

// ---------------------------------------------------------------------------
// Tensor data

/// A GGUF file mapped into memory: its directory plus access to tensor data.
pub struct MappedGguf {
    pub(crate) file: GgufFile,
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
