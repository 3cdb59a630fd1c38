//! LoRA: low-rank adapters on a model's linear projections.
//!
//! Each adapted projection computes `W x + b + (alpha / r) · B A dropout(x)`, with
//! A [r, in] and B [out, r]. The adapters live in their own VarStore, so an
//! optimizer over that store trains only them while the base store is frozen.
//! B starts at zero, so an adapted model starts out computing exactly the base.
//! Projections that read the same input (q, k, v; gate, up) share one dropout
//! mask, where PEFT draws one per module: the same in expectation, and one cast
//! and one mask per input instead of three.
//!
//! Files follow PEFT's layout, so adapters move between icdbench and
//! transformers/PEFT: `adapter_model.safetensors` with names like
//! `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`, and
//! `adapter_config.json`.

use super::config::ConfigError;
use super::weights::sub_path;
use super::ModelError;
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

/// The projections LoRA may target, by their checkpoint names.
pub const TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// File names inside an adapter folder (PEFT's).
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// Prefix PEFT gives every adapter weight name.
pub(crate) const PEFT_PREFIX: &str = "base_model.model.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Projections to adapt: `q`, `k`, `v`, `o`, `gate`, `up`, `down`, or the same with `_proj`.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    /// r = 16, alpha = 32, dropout 0.05, every projection.
    fn default() -> Self {
        LoraConfig { rank: 16, alpha: 32.0, dropout: 0.05, targets: TARGETS.iter().map(|t| t.to_string()).collect() }
    }
}

impl LoraConfig {
    /// The scale applied to B A x.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Targets as checkpoint module names (`q` -> `q_proj`), checked, deduplicated.
    pub fn target_modules(&self) -> Result<Vec<&'static str>, ConfigError> {
        let mut out: Vec<&'static str> = Vec::new();
        for t in &self.targets {
            let full = TARGETS
                .iter()
                .find(|m| **m == t.as_str() || m.strip_suffix("_proj") == Some(t.as_str()))
                .ok_or_else(|| ConfigError::Inconsistent(format!("LoRA target {t:?} is not one of q, k, v, o, gate, up, down (or q_proj ...)")))?;
            if !out.contains(full) {
                out.push(full);
            }
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rank == 0 {
            return Err(ConfigError::Inconsistent("LoRA rank must be at least 1".into()));
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return Err(ConfigError::Inconsistent(format!("LoRA alpha must be a positive number, not {}", self.alpha)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError::Inconsistent(format!("LoRA dropout must be in [0, 1), not {}", self.dropout)));
        }
        if self.targets.is_empty() {
            return Err(ConfigError::Inconsistent("LoRA needs at least one target projection".into()));
        }
        self.target_modules().map(|_| ())
    }

    /// PEFT's `adapter_config.json`.
    pub fn to_peft_json(&self) -> Result<serde_json::Value, ConfigError> {
        let alpha = if self.alpha.fract() == 0.0 && self.alpha.abs() < 1e15 { serde_json::json!(self.alpha as i64) } else { serde_json::json!(self.alpha) };
        Ok(serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": null,
            "r": self.rank,
            "lora_alpha": alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.target_modules()?,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "use_rslora": false,
            "use_dora": false,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null,
        }))
    }

    /// Reads PEFT's `adapter_config.json`, refusing the features icdbench does not implement.
    pub fn from_peft_json(v: &serde_json::Value) -> Result<LoraConfig, String> {
        let field = |k: &str| v.get(k).filter(|x| !x.is_null());
        if let Some(t) = field("peft_type").and_then(|t| t.as_str()) {
            if t != "LORA" {
                return Err(format!("peft_type {t:?}: only LORA adapters are supported"));
            }
        }
        let rank = field("r").and_then(|r| r.as_u64()).ok_or("`r` must be a positive integer")? as usize;
        let alpha = field("lora_alpha").and_then(|a| a.as_f64()).ok_or("`lora_alpha` must be a number")?;
        let dropout = match field("lora_dropout") {
            None => 0.0,
            Some(d) => d.as_f64().ok_or("`lora_dropout` must be a number")?,
        };
        let targets = match field("target_modules") {
            Some(serde_json::Value::Array(a)) => a.iter().map(|t| t.as_str().map(String::from).ok_or("`target_modules` must list names")).collect::<Result<Vec<_>, _>>()?,
            Some(serde_json::Value::String(s)) if TARGETS.contains(&s.as_str()) => vec![s.clone()],
            _ => return Err("`target_modules` must be a list of projection names (regular expressions are not supported)".into()),
        };
        for (key, off) in [("use_dora", false), ("use_rslora", false), ("fan_in_fan_out", false)] {
            if field(key).and_then(|b| b.as_bool()).is_some_and(|b| b != off) {
                return Err(format!("`{key}: true` is not supported"));
            }
        }
        if field("bias").and_then(|b| b.as_str()).is_some_and(|b| b != "none") {
            return Err("only `bias: \"none\"` is supported".into());
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if field(key).and_then(|p| p.as_object()).is_some_and(|p| !p.is_empty()) {
                return Err(format!("`{key}` is not supported"));
            }
        }
        for key in ["layers_to_transform", "modules_to_save"] {
            if field(key).is_some_and(|x| x.as_array().is_none_or(|a| !a.is_empty())) {
                return Err(format!("`{key}` is not supported"));
            }
        }
        let cfg = LoraConfig { rank, alpha, dropout, targets };
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

/// One adapter: A [r, in], B [out, r].
pub(crate) struct Adapter {
    pub(crate) a: Tensor,
    pub(crate) b: Tensor,
    pub(crate) scale: f64,
    pub(crate) dropout: f64,
}

/// A linear projection (weight [out, in], optional bias) with an optional LoRA adapter.
pub struct Projection {
    /// Checkpoint module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub(crate) module: String,
    pub(crate) weight: Tensor,
    pub(crate) bias: Option<Tensor>,
    pub(crate) adapter: Option<Adapter>,
}

impl Projection {
    pub fn new(module: impl Into<String>, weight: Tensor, bias: Option<Tensor>) -> Projection {
        Projection { module: module.into(), weight, bias, adapter: None }
    }

    pub fn module(&self) -> &str {
        &self.module
    }

    /// The last part of the module name (`q_proj`), which LoRA targets match.
    pub fn kind_name(&self) -> &str {
        self.module.rsplit('.').next().unwrap_or(&self.module)
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn has_adapter(&self) -> bool {
        self.adapter.is_some()
    }

    /// LoRA dropout of this projection's adapter (0 without one).
    pub(crate) fn adapter_dropout(&self) -> f64 {
        self.adapter.as_ref().map_or(0.0, |ad| ad.dropout)
    }

    /// `W x + b`, plus the adapter's `scale · B A dropout(x)` when there is one.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let xa = self.adapter.as_ref().map(|ad| adapter_input(x, ad.dropout, train));
        self.forward_shared(x, xa.as_ref())
    }

    /// As [`Projection::forward`], with the adapter reading `xa`: the input after
    /// dropout, made once and shared by the projections of one input (q, k, v;
    /// gate, up). `xa` is ignored without an adapter.
    ///
    /// The adapter runs in the input's kind: its f32 weights (the master copy the
    /// optimizer updates) are cast to it, so a bf16 model keeps no f32 copy of its
    /// activations. The scale is folded into B (an [out, r] product, not a [b, t, out] one).
    pub(crate) fn forward_shared(&self, x: &Tensor, xa: Option<&Tensor>) -> Tensor {
        let y = x.linear(&self.weight, self.bias.as_ref());
        let (Some(ad), Some(xa)) = (&self.adapter, xa) else { return y };
        let kind = x.kind();
        let b = ad.b.to_kind(kind) * ad.scale;
        y + xa.linear(&ad.a.to_kind(kind), None::<&Tensor>).linear(&b, None::<&Tensor>)
    }

    /// Creates A (uniform ±1/√in, PEFT's kaiming_uniform(a=√5)) and B (zeros) under `lora_vs`.
    pub(crate) fn attach(&mut self, lora_vs: &nn::Path, cfg: &LoraConfig) -> Result<(), ModelError> {
        let (out_dim, in_dim) = (self.weight.size()[0], self.weight.size()[1]);
        let r = cfg.rank as i64;
        let bound = 1.0 / (in_dim as f64).sqrt();
        let a = sub_path(lora_vs, &format!("{}.lora_A", self.module)).f_var("weight", &[r, in_dim], nn::Init::Uniform { lo: -bound, up: bound })?;
        let b = sub_path(lora_vs, &format!("{}.lora_B", self.module)).f_var("weight", &[out_dim, r], nn::Init::Const(0.0))?;
        self.adapter = Some(Adapter { a, b, scale: cfg.scale(), dropout: cfg.dropout });
        Ok(())
    }

    /// W += scale · B A in W's kind; the adapter is dropped.
    pub(crate) fn merge(&mut self) -> Result<(), ModelError> {
        if let Some(ad) = self.adapter.take() {
            tch::no_grad(|| -> Result<(), tch::TchError> {
                let delta = ad.b.f_matmul(&ad.a)? * ad.scale;
                let _ = self.weight.f_add_(&delta.f_to_device_(self.weight.device(), self.weight.kind(), false, false)?)?;
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// What adapters read: `x` after LoRA dropout when training (a fresh mask), else `x`.
pub(crate) fn adapter_input(x: &Tensor, dropout: f64, train: bool) -> Tensor {
    if train && dropout > 0.0 {
        x.dropout(dropout, true)
    } else {
        x.shallow_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_target_names() {
        let cfg = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, targets: vec!["q".into(), "v_proj".into(), "q_proj".into()] };
        assert_eq!(cfg.target_modules().unwrap(), ["q_proj", "v_proj"]);
        assert_eq!(cfg.scale(), 2.0);
        let bad = LoraConfig { targets: vec!["lm_head".into()], ..cfg };
        assert!(bad.validate().unwrap_err().to_string().contains("lm_head"));
    }

    #[test]
    fn peft_json_round_trip() {
        let cfg = LoraConfig { rank: 8, alpha: 16.0, dropout: 0.1, targets: vec!["q".into(), "down".into()] };
        let json = cfg.to_peft_json().unwrap();
        assert_eq!(json["r"], 8);
        assert_eq!(json["lora_alpha"], 16);
        assert_eq!(json["target_modules"], serde_json::json!(["q_proj", "down_proj"]));
        let back = LoraConfig::from_peft_json(&json).unwrap();
        assert_eq!(back.rank, 8);
        assert_eq!(back.alpha, 16.0);
        assert_eq!(back.targets, ["q_proj", "down_proj"]);
    }

    #[test]
    fn peft_json_refuses_unsupported_features() {
        let mut json = LoraConfig::default().to_peft_json().unwrap();
        json["use_dora"] = serde_json::json!(true);
        assert!(LoraConfig::from_peft_json(&json).unwrap_err().contains("use_dora"));
        let mut json = LoraConfig::default().to_peft_json().unwrap();
        json["target_modules"] = serde_json::json!(".*attn.*");
        assert!(LoraConfig::from_peft_json(&json).unwrap_err().contains("regular expressions"));
    }

    #[test]
    fn zero_b_means_base_output_and_merge_matches() {
        let _rng = crate::torch_rng_lock();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = Tensor::randn([5, 3], (tch::Kind::Float, tch::Device::Cpu));
        let mut p = Projection::new("model.layers.0.mlp.up_proj", w, None);
        let x = Tensor::randn([2, 3], (tch::Kind::Float, tch::Device::Cpu));
        let base = p.forward(&x, false);
        let cfg = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, targets: vec!["up".into()] };
        p.attach(&vs.root(), &cfg).unwrap();
        assert!(p.forward(&x, false).equal(&base));
        assert!(vs.variables().contains_key("model.layers.0.mlp.up_proj.lora_A.weight"));
        let _ = tch::no_grad(|| p.adapter.as_mut().unwrap().b.fill_(0.5));
        let adapted = p.forward(&x, false);
        assert!((&adapted - &base).abs().max().double_value(&[]) > 0.1);
        p.merge().unwrap();
        assert!((p.forward(&x, false) - adapted).abs().max().double_value(&[]) < 1e-5);
    }
}
