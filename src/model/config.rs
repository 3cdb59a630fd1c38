//! A decoder-only model's configuration, read from Hugging Face `config.json`
//! as it is (unknown keys ignored: checkpoints carry many), and built from
//! GGUF metadata for GGUF checkpoints.

use super::family::{self, Family, LayerKind};
use serde::{Deserialize, Serialize};

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
    /// ... transformers >= 5 writes them in rope_parameters (per layer type for Gemma 3).
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
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
    /// Gemma's name for the MLP activation (`gelu_pytorch_tanh`).
    #[serde(default)]
    pub hidden_activation: Option<String>,
    /// Gemma 3: attention scores are scaled by `query_pre_attn_scalar^-0.5`.
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 3: keys a sliding-window layer's query sees (itself and the `sliding_window - 1` before it).
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Gemma 3: `sliding_attention` or `full_attention` per layer ...
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// ... else every `sliding_window_pattern`-th layer is global (default 6).
    #[serde(default, alias = "_sliding_window_pattern")]
    pub sliding_window_pattern: Option<usize>,
    /// Gemma 3 (transformers < 5): the sliding layers' RoPE base (default 10,000).
    #[serde(default)]
    pub rope_local_base_freq: Option<f64>,
    /// `tanh(logits / c) · c` on the output (Gemma 2 style); Gemma 3 has none.
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
    /// Divisors of the default RoPE inverse frequencies, one per frequency (`head_dim / 2`),
    /// from a GGUF's `rope_freqs.weight`: how llama.cpp stores Llama 3.1's RoPE scaling.
    /// Never in config.json.
    #[serde(skip)]
    pub rope_freq_factors: Option<Vec<f32>>,
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

impl RopeScaling {
    /// Unscaled RoPE with the base left to the config.
    pub fn default_type() -> RopeScaling {
        RopeScaling { rope_type: None, rope_theta: None, factor: None, low_freq_factor: None, high_freq_factor: None, original_max_position_embeddings: None }
    }
}

impl TokenIds {
    pub fn ids(&self) -> Vec<u32> {
        match self {
            TokenIds::One(i) => vec![*i],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

/// `rope_parameters` as transformers >= 5 writes it: one set, or one per layer type
/// (`full_attention`, `sliding_attention`: Gemma 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RopeParameters {
    PerLayerType(std::collections::BTreeMap<String, RopeScaling>),
    Single(RopeScaling),
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
    #[error("unsupported architecture {0:?}: icdbench implements {names}", names = family::model_type_names())]
    Architecture(String),
    #[error("unsupported rope_type {0:?}: icdbench implements default, linear and llama3")]
    Rope(String),
    #[error("unsupported activation {found:?}: icdbench implements {allowed} for {family}")]
    Activation { found: String, family: &'static str, allowed: String },
    #[error("inconsistent config: {0}")]
    Inconsistent(String),
}

impl ModelConfig {
    /// The family this config belongs to, from `model_type` (or `architectures`).
    pub fn family(&self) -> Result<&'static Family, ConfigError> {
        let arch = self.architectures.first().map(String::as_str).unwrap_or("");
        if let Some(f) = family::by_config(&self.model_type, arch) {
            return Ok(f);
        }
        if let Some((_, why)) = family::REFUSED.iter().find(|(t, _)| *t == self.model_type) {
            return Err(ConfigError::Inconsistent((*why).into()));
        }
        Err(ConfigError::Architecture(if self.model_type.is_empty() { arch.to_string() } else { self.model_type.clone() }))
    }

    /// Whether this config's family stacks Gemma 3's layer.
    fn gemma3(&self) -> bool {
        self.family().is_ok_and(|f| f.layer == LayerKind::Gemma3)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The RoPE parameters in force (of the global layers, for Gemma 3), wherever the config keeps them.
    pub fn rope(&self) -> RopeScaling {
        let given = match &self.rope_parameters {
            Some(RopeParameters::Single(r)) => Some(r.clone()),
            Some(RopeParameters::PerLayerType(m)) => m.get("full_attention").cloned(),
            None => None,
        };
        let mut r = given.or_else(|| self.rope_scaling.clone()).unwrap_or_else(RopeScaling::default_type);
        if r.rope_theta.is_none() {
            let fallback = self.family().map_or(10_000.0, |f| f.rope_theta);
            r.rope_theta = self.rope_theta.or(Some(fallback));
        }
        r
    }

    /// Gemma 3's sliding-window layers' RoPE: unscaled, base `rope_local_base_freq` (10,000).
    pub fn rope_local(&self) -> RopeScaling {
        let given = match &self.rope_parameters {
            Some(RopeParameters::PerLayerType(m)) => m.get("sliding_attention").cloned(),
            _ => None,
        };
        let mut r = given.unwrap_or_else(RopeScaling::default_type);
        if r.rope_theta.is_none() {
            r.rope_theta = Some(self.rope_local_base_freq.unwrap_or(10_000.0));
        }
        r
    }

    /// The MLP activation (`hidden_activation` where a Gemma config names it).
    pub fn activation(&self) -> &str {
        self.hidden_activation.as_deref().unwrap_or(&self.hidden_act)
    }

    /// Whether layer `i` attends within a sliding window (Gemma 3): `layer_types`, else every
    /// `sliding_window_pattern`-th layer (default 6) is global.
    pub fn layer_is_sliding(&self, i: usize) -> bool {
        if !self.gemma3() {
            return false;
        }
        match &self.layer_types {
            Some(types) => types.get(i).is_some_and(|t| t == "sliding_attention"),
            None => !(i + 1).is_multiple_of(self.sliding_window_pattern.unwrap_or(6).max(1)),
        }
    }

    /// The attention scale when it is not `head_dim^-0.5` (Gemma 3: `query_pre_attn_scalar^-0.5`).
    pub fn attention_scale(&self) -> Option<f64> {
        self.gemma3().then(|| self.query_pre_attn_scalar.unwrap_or(self.head_dim() as f64).powf(-0.5))
    }

    /// Checks everything the model code relies on.
    pub fn validate(&self) -> Result<&'static Family, ConfigError> {
        let family = self.family()?;
        if !family.activations.contains(&self.activation()) {
            return Err(ConfigError::Activation { found: self.activation().to_string(), family: family.name, allowed: family.activations.join(" / ") });
        }
        match self.rope().rope_type.as_deref() {
            None | Some("default") | Some("linear") | Some("llama3") => {}
            Some(other) => return Err(ConfigError::Rope(other.to_string())),
        }
        if family.layer == LayerKind::Gemma3 {
            if self.sliding_window.unwrap_or(0) == 0 {
                return Err(ConfigError::Inconsistent("a Gemma 3 config needs sliding_window > 0".into()));
            }
            if let Some(types) = &self.layer_types {
                if types.len() != self.num_hidden_layers || types.iter().any(|t| t != "sliding_attention" && t != "full_attention") {
                    return Err(ConfigError::Inconsistent(format!(
                        "layer_types must name sliding_attention or full_attention for each of the {} layers",
                        self.num_hidden_layers
                    )));
                }
            }
            if self.attn_logit_softcapping.is_some() {
                return Err(ConfigError::Inconsistent("attn_logit_softcapping is not implemented (Gemma 3 has none)".into()));
            }
            match self.rope_local().rope_type.as_deref() {
                None | Some("default") => {}
                Some(other) => return Err(ConfigError::Rope(format!("{other} (sliding_attention layers)"))),
            }
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
