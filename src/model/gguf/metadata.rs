//! From GGUF metadata to the Hugging Face config it describes: architecture, shapes, norms,
//! RoPE (and its scaling), special token ids, per architecture (llama, qwen2, qwen3, gemma3).

use super::container::{GgufFile, MetaValue, ROPE_FREQS};
use crate::model::config::{ModelConfig, RopeScaling, TokenIds};
use crate::model::family::{self, LayerKind};
use crate::model::ModelError;

impl GgufFile {
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
    pub(crate) fn config_from_metadata(&self) -> Result<ModelConfig, ModelError> {
        let arch = self.architecture()?;
        let family = family::by_gguf(arch)
            .ok_or_else(|| self.error(format!("GGUF architecture `{arch}` is not supported; icdbench loads {} GGUF files", family::gguf_names())))?;
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
        let gemma = family.layer == LayerKind::Gemma3;
        let rope_theta = self.get_f64(&key("rope.freq_base"))?.unwrap_or(family.rope_theta);
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
            architectures: vec![family.architectures[0].to_string()],
            model_type: family.model_types[0].to_string(),
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
            hidden_activation: gemma.then(|| family.activations[0].to_string()),
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
}
