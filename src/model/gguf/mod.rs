//! GGUF checkpoints (llama.cpp's single-file format) read into the same
//! [`WeightMap`] and [`ModelConfig`] as a safetensors checkpoint, in four rooms:
//! [`container`] (header, metadata, tensor directory), `metadata` (the config the metadata
//! describes), [`tensors`] (tensor data and
//! the walk from llama.cpp's tensor names and row order to Hugging Face's) and
//! [`dequant`] (ggml's block formats to f32).
//!
//! Every read is bounds-checked against the file: a truncated or corrupt file
//! is a [`ModelError::File`] naming the path and what is wrong, never a panic.

pub mod container;
pub mod dequant;
mod metadata;
pub mod tensors;

pub use container::*;
pub use dequant::*;
pub use tensors::*;

use super::config::ModelConfig;
use super::tokenizer::TextTokenizer;
use super::weights::WeightMap;
use super::ModelError;
use std::path::Path;
use tch::{Device, Kind};

/// A checkpoint read from one GGUF file: everything a model needs to run.
pub struct GgufCheckpoint {
    pub config: ModelConfig,
    /// Hugging Face names and layouts (`model.layers.0.self_attn.q_proj.weight`, `[out, in]`).
    pub weights: WeightMap,
    pub tokenizer: TextTokenizer,
    /// One paragraph for logs and run records: name, architecture, tensor types, sizes.
    pub metadata_summary: String,
}

/// Reads a GGUF checkpoint: config from its metadata, tokenizer from its
/// vocabulary, weights dequantised to `kind` on `device` under Hugging Face names.
pub fn load_gguf(path: &Path, kind: Kind, device: Device) -> Result<GgufCheckpoint, ModelError> {
    let mapped = MappedGguf::open(path)?;
    let file = mapped.file();
    let config = mapped.model_config()?;
    config.validate().map_err(|source| ModelError::Config { origin: path.display().to_string(), source })?;
    let tokenizer = TextTokenizer::from_gguf(file)?;
    let weights = mapped.hf_weights(&config, kind, device)?;
    let metadata_summary = file.summary();
    Ok(GgufCheckpoint { config, weights, tokenizer, metadata_summary })
}

/// Reads the header, metadata and tensor directory (no tensor data).
pub fn read_metadata(path: &Path) -> Result<GgufFile, ModelError> {
    Ok(MappedGguf::open(path)?.file)
}

#[cfg(test)]
mod tests {
    use super::container::MAGIC;
    use super::*;
    use std::collections::BTreeMap;
    use tch::Tensor;

    /// A minimal valid header: magic, version, counts, then `kv` and `tensors` bytes.
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend(version.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b
    }

    fn gguf_string(s: &str) -> Vec<u8> {
        let mut b = (s.len() as u64).to_le_bytes().to_vec();
        b.extend(s.as_bytes());
        b
    }

    fn parse(bytes: &[u8]) -> Result<GgufFile, String> {
        GgufFile::parse(Path::new("x.gguf"), bytes).map_err(|e| e.to_string())
    }

    #[test]
    fn refuses_what_is_not_gguf_v2_or_v3() {
        assert!(parse(b"GG").unwrap_err().contains("only 2 bytes"));
        assert!(parse(b"PK\x03\x04rest").unwrap_err().contains("not a GGUF file"));
        assert!(parse(&header(1, 0, 0)).unwrap_err().contains("version 1"));
        assert!(parse(&header(3u32.swap_bytes(), 0, 0)).unwrap_err().contains("big-endian"));
        assert!(parse(&header(9, 0, 0)).unwrap_err().contains("unknown GGUF version 9"));
        let ok = parse(&header(2, 0, 0)).unwrap();
        assert_eq!((ok.version, ok.alignment, ok.data_offset), (2, DEFAULT_ALIGNMENT, 32));
    }

    #[test]
    fn huge_counts_are_truncation_not_allocation() {
        let e = parse(&header(3, u64::MAX, 0)).unwrap_err();
        assert!(e.starts_with("x.gguf: truncated"), "{e}");
        let mut b = header(3, 0, 1);
        b.extend(gguf_string("k"));
        b.extend(9u32.to_le_bytes()); // array
        b.extend(8u32.to_le_bytes()); // of strings
        b.extend(u64::MAX.to_le_bytes());
        let e = parse(&b).unwrap_err();
        assert!(e.contains("truncated") && e.contains("`k`"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut b = header(3, 0, 1);
        b.extend(gguf_string("deep"));
        b.extend(9u32.to_le_bytes());
        for _ in 0..40 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        b.extend(vec![0u8; 64]);
        assert!(parse(&b).unwrap_err().contains("nests arrays"));
    }

    #[test]
    fn bad_alignment_and_bad_bool_are_errors() {
        let mut b = header(3, 0, 1);
        b.extend(gguf_string("general.alignment"));
        b.extend(4u32.to_le_bytes());
        b.extend(48u32.to_le_bytes());
        assert!(parse(&b).unwrap_err().contains("power of two"));
        let mut b = header(3, 0, 1);
        b.extend(gguf_string("flag"));
        b.extend(7u32.to_le_bytes());
        b.push(2);
        assert!(parse(&b).unwrap_err().contains("bool stored as byte 2"));
    }

    #[test]
    fn tensor_directory_checks_rank_blocks_and_extent() {
        let entry = |dims: &[u64], ty: u32, offset: u64| {
            let mut b = gguf_string("w");
            b.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(ty.to_le_bytes());
            b.extend(offset.to_le_bytes());
            b
        };
        let file = |e: Vec<u8>, data: usize| {
            let mut b = header(3, 1, 0);
            b.extend(e);
            b.resize(b.len().div_ceil(32) * 32 + data, 0);
            b
        };
        // 64 Q4_0 values = 2 blocks of 18 bytes.
        let ok = parse(&file(entry(&[64], 2, 0), 36)).unwrap();
        assert_eq!(ok.tensors[0].n_bytes, Some(36));
        assert_eq!(ok.tensors[0].shape(), vec![64]);
        assert!(parse(&file(entry(&[64], 2, 0), 35)).unwrap_err().contains("runs past the end"));
        assert!(parse(&file(entry(&[48], 2, 0), 64)).unwrap_err().contains("not a multiple of its block size 32"));
        assert!(parse(&file(entry(&[1, 1, 1, 1, 1], 0, 0), 64)).unwrap_err().contains("5 dimensions"));
        assert!(parse(&file(entry(&[1 << 40, 1 << 40], 0, 0), 64)).unwrap_err().contains("overflows"));
        assert!(parse(&file(entry(&[u64::MAX, 4], 0, 0), 64)).unwrap_err().contains("corrupt: dimension 0"));
        assert!(parse(&file(entry(&[4], 0, 8), 64)).unwrap_err().contains("not a multiple of the alignment"));
        // An unknown type is listed (its data cannot be checked or read).
        let other = parse(&file(entry(&[256], 16, 0), 0)).unwrap();
        assert_eq!(other.tensors[0].ggml_type.name(), "IQ2_XXS");
    }

    #[test]
    fn metadata_numbers_convert_as_config_json_would_say() {
        assert_eq!(MetaValue::F32(1e-5).as_f64(), Some(1e-5));
        assert_eq!(MetaValue::F32(100000.0).as_f64(), Some(1e5));
        assert_eq!(MetaValue::I32(-1).as_u64(), None);
        assert_eq!(MetaValue::U64(u64::MAX).as_i64(), None);
        assert_eq!(MetaValue::U8(7).as_f64(), Some(7.0));
        assert_eq!(MetaValue::Str("x".into()).as_u64(), None);
    }

    /// A directory-only file with `meta` and one embedding of `vocab` x `hidden`.
    fn meta_file(arch: &str, meta: &[(&str, MetaValue)], vocab: u64) -> GgufFile {
        let mut metadata: BTreeMap<String, MetaValue> = [
            ("general.architecture".to_string(), MetaValue::Str(arch.into())),
            (format!("{arch}.embedding_length"), MetaValue::U32(64)),
            (format!("{arch}.block_count"), MetaValue::U32(2)),
            (format!("{arch}.feed_forward_length"), MetaValue::U32(128)),
            (format!("{arch}.attention.head_count"), MetaValue::U32(4)),
            (format!("{arch}.attention.head_count_kv"), MetaValue::U32(2)),
            (format!("{arch}.attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-6)),
            (format!("{arch}.rope.freq_base"), MetaValue::F32(1_000_000.0)),
            (format!("{arch}.context_length"), MetaValue::U32(32768)),
        ]
        .into_iter()
        .collect();
        for (k, v) in meta {
            metadata.insert(k.to_string(), v.clone());
        }
        let embd = TensorInfo { name: "token_embd.weight".into(), dims: vec![64, vocab], ggml_type: GgmlType::F16, offset: 0, n_bytes: Some(64 * vocab * 2) };
        GgufFile { path: "m.gguf".into(), version: 3, alignment: 32, data_offset: 0, file_len: 0, metadata, tensors: vec![embd] }
    }

    #[test]
    fn config_from_metadata_per_architecture() {
        let q2 = meta_file("qwen2", &[], 151936).model_config().unwrap();
        assert_eq!((q2.model_type.as_str(), q2.architectures[0].as_str()), ("qwen2", "Qwen2ForCausalLM"));
        assert_eq!((q2.vocab_size, q2.hidden_size, q2.num_hidden_layers, q2.kv_heads(), q2.head_dim()), (151936, 64, 2, 2, 16));
        assert_eq!((q2.rms_norm_eps, q2.rope().rope_theta, q2.max_position_embeddings), (1e-6, Some(1e6), 32768));
        assert!(q2.tie_word_embeddings && q2.rope_scaling.is_none());
        // Qwen3's head_dim is not hidden / heads.
        let q3 = meta_file("qwen3", &[("qwen3.attention.key_length", MetaValue::U32(128))], 1000).model_config().unwrap();
        assert_eq!((q3.head_dim, q3.head_dim()), (Some(128), 128));
        let same = meta_file("llama", &[("llama.attention.key_length", MetaValue::U32(16))], 1000).model_config().unwrap();
        assert_eq!(same.head_dim, None);
        // Linear RoPE scaling, both spellings.
        let lin = meta_file("llama", &[("llama.rope.scaling.type", MetaValue::Str("linear".into())), ("llama.rope.scaling.factor", MetaValue::F32(4.0))], 10);
        let r = lin.model_config().unwrap().rope();
        assert_eq!((r.rope_type.as_deref(), r.factor), (Some("linear"), Some(4.0)));
        let legacy = meta_file("llama", &[("llama.rope.scale_linear", MetaValue::F32(2.0))], 10).model_config().unwrap();
        assert_eq!(legacy.rope().factor, Some(2.0));
        // A token list longer than the embedding, a missing key, a wrong type, another architecture.
        let tokens = MetaValue::Array(vec![MetaValue::Str("a".into()); 11]);
        assert!(meta_file("llama", &[("tokenizer.ggml.tokens", tokens)], 10).model_config().unwrap_err().to_string().contains("11 tokens"));
        let mut f = meta_file("llama", &[], 10);
        f.metadata.remove("llama.block_count");
        assert_eq!(f.model_config().unwrap_err().to_string(), "m.gguf: metadata `llama.block_count` is missing");
        let f = meta_file("llama", &[("llama.block_count", MetaValue::Str("2".into()))], 10);
        assert!(f.model_config().unwrap_err().to_string().contains("expected a non-negative integer"));
        let e = meta_file("gemma2", &[], 10).model_config().unwrap_err().to_string();
        assert!(e.contains("architecture `gemma2` is not supported"), "{e}");
        let mut f = meta_file("llama", &[], 10);
        f.tensors.push(TensorInfo { name: "rope_freqs.weight".into(), dims: vec![32], ggml_type: GgmlType::F32, offset: 0, n_bytes: Some(128) });
        assert!(f.model_config().unwrap_err().to_string().contains("rope_freqs.weight"));
    }

    #[test]
    fn names_map_to_hugging_face() {
        let hf = |n: &str| hf_name(n);
        assert_eq!(hf("token_embd.weight"), NameMap::Hf("model.embed_tokens.weight".into()));
        assert_eq!(hf("output.weight"), NameMap::Hf("lm_head.weight".into()));
        assert_eq!(hf("output_norm.weight"), NameMap::Hf("model.norm.weight".into()));
        assert_eq!(hf("blk.12.attn_q.weight"), NameMap::Hf("model.layers.12.self_attn.q_proj.weight".into()));
        assert_eq!(hf("blk.0.attn_k.bias"), NameMap::Hf("model.layers.0.self_attn.k_proj.bias".into()));
        assert_eq!(hf("blk.3.attn_v.weight"), NameMap::Hf("model.layers.3.self_attn.v_proj.weight".into()));
        assert_eq!(hf("blk.3.attn_output.weight"), NameMap::Hf("model.layers.3.self_attn.o_proj.weight".into()));
        assert_eq!(hf("blk.3.ffn_gate.weight"), NameMap::Hf("model.layers.3.mlp.gate_proj.weight".into()));
        assert_eq!(hf("blk.3.ffn_up.weight"), NameMap::Hf("model.layers.3.mlp.up_proj.weight".into()));
        assert_eq!(hf("blk.3.ffn_down.weight"), NameMap::Hf("model.layers.3.mlp.down_proj.weight".into()));
        assert_eq!(hf("blk.3.attn_norm.weight"), NameMap::Hf("model.layers.3.input_layernorm.weight".into()));
        assert_eq!(hf("blk.3.ffn_norm.weight"), NameMap::Hf("model.layers.3.post_attention_layernorm.weight".into()));
        assert_eq!(hf("blk.3.attn_q_norm.weight"), NameMap::Hf("model.layers.3.self_attn.q_norm.weight".into()));
        assert_eq!(hf("rope_freqs.weight"), NameMap::Skip);
        assert_eq!(hf("blk.x.attn_q.weight"), NameMap::Unknown);
        assert_eq!(hf("blk.1.ffn_gate_exps.weight"), NameMap::Unknown);
        assert_eq!(hf("blk.1.attn_q.scale"), NameMap::Unknown);
    }

    #[test]
    fn qk_permutation_round_trips_and_interleaves_halves() {
        // 2 heads of dim 8 (halves of 4), 3 input columns; value = row index.
        let rows = Tensor::arange(16, (Kind::Float, Device::Cpu)).unsqueeze(1).repeat([1, 3]);
        let gguf = permute_qk(&rows, 2).unwrap();
        let order: Vec<f32> = Vec::try_from(gguf.select(1, 0)).unwrap();
        // Head 0: HF rows 0..4 are the first half, 4..8 the second; llama.cpp interleaves them.
        assert_eq!(order, vec![0., 4., 1., 5., 2., 6., 3., 7., 8., 12., 9., 13., 10., 14., 11., 15.]);
        let back = unpermute_qk(&gguf, 2).unwrap();
        assert!(back.equal(&rows));
        // Random matrices, several head counts, and a 1-D bias.
        for heads in [1i64, 3, 9] {
            let w = Tensor::randn([heads * 64, 10], (Kind::Float, Device::Cpu));
            assert!(unpermute_qk(&permute_qk(&w, heads).unwrap(), heads).unwrap().equal(&w));
            assert!(permute_qk(&unpermute_qk(&w, heads).unwrap(), heads).unwrap().equal(&w));
            let b = Tensor::randn([heads * 64], (Kind::Float, Device::Cpu));
            assert!(unpermute_qk(&permute_qk(&b, heads).unwrap(), heads).unwrap().equal(&b));
        }
        assert!(unpermute_qk(&Tensor::zeros([6, 2], (Kind::Float, Device::Cpu)), 2).is_err());
    }

    #[test]
    fn dequantize_checks_sizes_and_decodes_simple_blocks() {
        // Q8_0: d = 0.5, values -2..30.
        let mut b = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        b.extend((0..32).map(|i| (i as i8 - 2) as u8));
        let v = dequantize(GgmlType::Q8_0, &b, 32).unwrap();
        assert_eq!(v[0], -1.0);
        assert_eq!(v[31], 14.5);
        // Q4_0: d = 2, byte j = (hi << 4) | lo with lo = 9, hi = 7 -> (9-8)*2, (7-8)*2.
        let mut b = half::f16::from_f32(2.0).to_le_bytes().to_vec();
        b.extend([0x79u8; 16]);
        let v = dequantize(GgmlType::Q4_0, &b, 32).unwrap();
        assert_eq!((v[0], v[15], v[16], v[31]), (2.0, 2.0, -2.0, -2.0));
        assert!(dequantize(GgmlType::Q4_0, &b[..17], 32).unwrap_err().contains("need 18 bytes"));
        assert!(dequantize(GgmlType::Other(16), &[], 0).is_err());
        assert_eq!(dequantize(GgmlType::BF16, &[0x80, 0x3f], 1).unwrap(), vec![1.0]);
    }
}
