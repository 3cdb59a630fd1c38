//! The `synthesize` strategy's writer backed by an LLM backbone: asks it, in its
//! chat format, for new phrasings of a code and reads one phrasing per line.

use super::synthesize::SpanWriter;
use super::ExpandError;
use crate::icd::CodeEntry;
use crate::model::generate::{generate, GenerationConfig};
use crate::model::llama::CausalLM;
use crate::model::tokenizer::TextTokenizer;

pub struct LlmWriter<'a> {
    pub model: &'a CausalLM,
    pub tokenizer: &'a TextTokenizer,
    /// Names the model and its weights (e.g. the backbone name and the sha256 of its file).
    pub identity: String,
    pub temperature: f64,
    pub max_new_tokens: usize,
}

impl SpanWriter for LlmWriter<'_> {
    fn identity(&self) -> String {
        format!("{} temperature={} max_new_tokens={}", self.identity, self.temperature, self.max_new_tokens)
    }

    fn write(&mut self, code: &CodeEntry, prompt: &str, n: usize, seed: u64) -> Result<Vec<String>, ExpandError> {
        let fail = |message: String| ExpandError::Writer { generator: self.identity.clone(), code: code.code.clone(), message };
        let text = self.tokenizer.chat_prompt(None, prompt);
        let ids = self.tokenizer.encode(&text, self.tokenizer.add_bos_default()).map_err(|e| fail(e.to_string()))?;
        let cfg = GenerationConfig { max_new_tokens: self.max_new_tokens, temperature: self.temperature, seed, ..Default::default() };
        let out = generate(self.model, self.tokenizer, &[ids], &cfg, None).map_err(|e| fail(e.to_string()))?;
        // The strategy strips list markers, quotes and filters; here only split lines.
        Ok(out.texts.first().map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).take(n).map(String::from).collect()).unwrap_or_default())
    }
}
