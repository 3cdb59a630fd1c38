//! A decoder-only model's configuration, read from Hugging Face `config.json`
//! as it is (unknown keys ignored: checkpoints carry many), and built from
//! GGUF metadata for GGUF checkpoints.

use serde::{Deserialize, Serialize};

/// The families the model code implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Llama 2/3.x, SmolLM, Mistral (no sliding window): RMSNorm, RoPE, GQA, SwiGLU.
    Llama,
    /// Qwen2 / Qwen2.5: as Llama, with biases on the q/k/v projections.
    Qwen2,
    /// Qwen3: as Llama, with RMSNorm on each head's queries and keys.
    Qwen3,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head dimension when it is not hidden_size / num_attention_heads (Qwen3).
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// transformers < 5 writes rope_theta / rope_scaling at the top level ...
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// ... transformers >= 5 writes them in rope_parameters.
    #[serde(default)]
    pub rope_parameters: Option<RopeScaling>,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v/o (Llama-style `attention_bias`); Qwen2 always has q/k/v biases.
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}

/// One token id or several (Llama 3.1 lists several end-of-sequence ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn ids(&self) -> Vec<u32> {
        match self {
            TokenIds::One(i) => vec![*i],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

/// RoPE parameters: `rope_type` default/linear/llama3 (others are refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(default, alias = "type")]
    pub rope_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

/// Why a config cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("unsupported architecture {0:?}: icdbench implements llama (Llama, SmolLM, Mistral without sliding window), qwen2 and qwen3")]
    Architecture(String),
    #[error("unsupported rope_type {0:?}: icdbench implements default, linear and llama3")]
    Rope(String),
    #[error("unsupported activation {0:?}: icdbench implements silu")]
    Activation(String),
    #[error("inconsistent config: {0}")]
    Inconsistent(String),
}

impl ModelConfig {
    /// The family this config belongs to, from `model_type` (or `architectures`).
    pub fn family(&self) -> Result<Family, ConfigError> {
        let arch = self.architectures.first().map(String::as_str).unwrap_or("");
        match (self.model_type.as_str(), arch) {
            ("llama" | "mistral", _) | (_, "LlamaForCausalLM" | "MistralForCausalLM") => Ok(Family::Llama),
            ("qwen2", _) | (_, "Qwen2ForCausalLM") => Ok(Family::Qwen2),
            ("qwen3", _) | (_, "Qwen3ForCausalLM") => Ok(Family::Qwen3),
            (t, a) => Err(ConfigError::Architecture(if t.is_empty() { a.to_string() } else { t.to_string() })),
        }
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The RoPE parameters in force, wherever the config keeps them.
    pub fn rope(&self) -> RopeScaling {
        let mut r = self.rope_parameters.clone().or_else(|| self.rope_scaling.clone()).unwrap_or(RopeScaling {
            rope_type: None,
            rope_theta: None,
            factor: None,
            low_freq_factor: None,
            high_freq_factor: None,
            original_max_position_embeddings: None,
        });
        if r.rope_theta.is_none() {
            r.rope_theta = self.rope_theta.or(Some(10_000.0));
        }
        r
    }

    /// Checks everything the model code relies on.
    pub fn validate(&self) -> Result<Family, ConfigError> {
        let family = self.family()?;
        if self.hidden_act != "silu" {
            return Err(ConfigError::Activation(self.hidden_act.clone()));
        }
        match self.rope().rope_type.as_deref() {
            None | Some("default") | Some("linear") | Some("llama3") => {}
            Some(other) => return Err(ConfigError::Rope(other.to_string())),
        }
        let heads = self.num_attention_heads;
        if heads == 0 || self.kv_heads() == 0 || heads % self.kv_heads() != 0 {
            return Err(ConfigError::Inconsistent(format!("num_attention_heads {heads} is not a multiple of num_key_value_heads {}", self.kv_heads())));
        }
        if self.head_dim.is_none() && self.hidden_size % heads != 0 {
            return Err(ConfigError::Inconsistent(format!("hidden_size {} is not divisible by num_attention_heads {heads}", self.hidden_size)));
        }
        if self.head_dim() % 2 != 0 {
            return Err(ConfigError::Inconsistent(format!("head_dim {} must be even for rotary embeddings", self.head_dim())));
        }
        Ok(family)
    }
}
