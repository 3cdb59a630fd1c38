//! LoRA on a whole model: attaching adapters to a [`CausalLM`]'s projections,
//! merging them into the base weights, and saving them in PEFT's format.

use super::config::ConfigError;
use super::llama::CausalLM;
use super::lora::*;
use super::weights::{load_safetensors, save_safetensors};
use super::ModelError;
use std::path::Path;
use tch::{nn, Tensor};

fn lora_config_error(origin: &str, source: ConfigError) -> ModelError {
    ModelError::Config { origin: origin.to_string(), source }
}

impl CausalLM {
    /// Attaches fresh adapters (A random, B zero) to the projections `cfg` targets,
    /// creating them in `lora_vs` under the checkpoint's module names.
    pub fn attach_lora(&mut self, lora_vs: &nn::Path, cfg: &LoraConfig) -> Result<(), ModelError> {
        cfg.validate().map_err(|e| lora_config_error("LoRA config", e))?;
        if self.lora.is_some() {
            return Err(lora_config_error("LoRA config", ConfigError::Inconsistent("adapters are already attached; merge them or start from a fresh model".into())));
        }
        let targets = cfg.target_modules().map_err(|e| lora_config_error("LoRA config", e))?;
        for p in self.projections_mut() {
            if targets.contains(&p.kind_name()) {
                p.attach(lora_vs, cfg)?;
            }
        }
        self.lora = Some(cfg.clone());
        Ok(())
    }

    /// Folds every adapter into its base weight (W += alpha/r · B A) for inference;
    /// afterwards the model has no adapters and no longer reads `lora_vs`.
    pub fn merge_lora(&mut self) -> Result<(), ModelError> {
        for p in self.projections_mut() {
            p.merge()?;
        }
        self.lora = None;
        Ok(())
    }

    /// Adapter tensors under PEFT's names.
    pub fn adapter_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for p in self.projections() {
            if let Some(ad) = &p.adapter {
                out.push((format!("{PEFT_PREFIX}{}.lora_A.weight", p.module), ad.a.detach()));
                out.push((format!("{PEFT_PREFIX}{}.lora_B.weight", p.module), ad.b.detach()));
            }
        }
        out
    }

    /// Writes `adapter_model.safetensors` and `adapter_config.json` into `dir` (created if needed).
    pub fn save_adapters(&self, dir: &Path) -> Result<(), ModelError> {
        let cfg = self.lora.as_ref().ok_or_else(|| ModelError::file(dir, "no LoRA adapters are attached to save"))?;
        std::fs::create_dir_all(dir).map_err(|e| ModelError::file(dir, format!("cannot create: {e}")))?;
        save_safetensors(&dir.join(ADAPTER_WEIGHTS), &self.adapter_tensors())?;
        let config_path = dir.join(ADAPTER_CONFIG);
        let json = cfg.to_peft_json().map_err(|e| lora_config_error(&config_path.display().to_string(), e))?;
        let text = serde_json::to_string_pretty(&json).map_err(|e| ModelError::file(&config_path, e.to_string()))?;
        std::fs::write(&config_path, text + "\n").map_err(|e| ModelError::file(&config_path, format!("cannot write: {e}")))
    }

    /// Reads a PEFT adapter folder: attaches adapters as its `adapter_config.json`
    /// says (in `lora_vs`) and fills them from `adapter_model.safetensors`. Every
    /// adapter weight must be present with its shape, and nothing else.
    pub fn load_adapters(&mut self, lora_vs: &nn::Path, dir: &Path) -> Result<LoraConfig, ModelError> {
        let config_path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::file(&config_path, format!("cannot read: {e}")))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::file(&config_path, format!("not valid JSON: {e}")))?;
        let cfg = LoraConfig::from_peft_json(&json).map_err(|e| ModelError::file(&config_path, e))?;
        let mut weights = load_safetensors(&dir.join(ADAPTER_WEIGHTS), lora_vs.kind(), lora_vs.device())?;
        self.attach_lora(lora_vs, &cfg)?;
        for p in self.projections_mut() {
            if let Some(ad) = &mut p.adapter {
                for (part, t) in [("lora_A", &mut ad.a), ("lora_B", &mut ad.b)] {
                    let w = weights.take_shaped(&format!("{PEFT_PREFIX}{}.{part}.weight", p.module), &t.size())?;
                    tch::no_grad(|| t.f_copy_(&w))?;
                }
            }
        }
        if !weights.is_empty() {
            let left = weights.remaining();
            return Err(ModelError::file(
                weights.origin(),
                format!("{} adapter weights match no adapted projection (first: {}); does adapter_config.json match the file?", left.len(), left[0]),
            ));
        }
        Ok(cfg)
    }
}
