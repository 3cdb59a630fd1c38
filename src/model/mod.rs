//! The model layer: decoder-only LLM backbones on libtorch, their weights
//! (Hugging Face safetensors, GGUF), tokenizers, LoRA adapters and generation.

pub mod adapters;
pub mod backbone;
pub mod config;
pub mod family;
pub mod gemma3;
pub mod generate;
pub mod gguf;
pub mod layers;
pub mod llama;
pub mod lora;
pub mod tokenizer;
pub mod weights;

use std::path::PathBuf;

/// A failure to load or run a model, naming the file where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{origin}: {source}")]
    Config { origin: String, source: config::ConfigError },
    #[error("{origin}: weight `{name}` is missing")]
    MissingWeight { origin: String, name: String },
    #[error("{origin}: weight `{name}` has shape {found:?}, expected {expected:?}")]
    Shape { origin: String, name: String, found: Vec<i64>, expected: Vec<i64> },
    #[error("{origin}: tokenizer: {message}")]
    Tokenizer { origin: String, message: String },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl ModelError {
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> ModelError {
        ModelError::File { path: path.into(), message: message.into() }
    }
}
