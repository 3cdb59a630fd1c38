//! The model layer end to end on tiny random models (CPU, seconds): cached
//! decoding and padding agree with a plain forward, training lowers the loss,
//! LoRA trains only adapters and survives save/load/merge, checkpoints load
//! (and fail with the file named), and Llama 3.1 RoPE scaling matches its formula.

use icdbench::model::config::{ModelConfig, RopeScaling};
use icdbench::model::llama::{positions_from_mask, rope_inv_freq, tiny_config, CausalLM, KvCache};
use icdbench::model::lora::LoraConfig;
use icdbench::model::weights::{load_safetensors, read_config, save_safetensors};
use std::path::Path;
use std::sync::Mutex;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

const VOCAB: usize = 20;

/// The families of `icdbench::model::family::FAMILIES`, each with a tiny config of its own below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
}

/// libtorch's generator is process-wide: tests that draw from it take turns.
static TORCH: Mutex<()> = Mutex::new(());

fn seeded(seed: u64) -> std::sync::MutexGuard<'static, ()> {
    let guard = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed as i64);
    // Tiny tensors: one thread avoids OpenMP barrier waits when the CPU is shared.
    tch::set_num_threads(1);
    guard
}

fn config(family: Family) -> ModelConfig {
    let mut c = tiny_config(VOCAB);
    match family {
        Family::Llama => {}
        Family::Qwen2 => {
            c.model_type = "qwen2".into();
            c.architectures = vec!["Qwen2ForCausalLM".into()];
            c.tie_word_embeddings = true;
        }
        Family::Qwen3 => {
            c.model_type = "qwen3".into();
            c.architectures = vec!["Qwen3ForCausalLM".into()];
            c.head_dim = Some(32); // heads × head_dim = 128 ≠ hidden 64, as in real Qwen3 models
        }
        Family::Gemma3 => {
            // A window of 4 that the tests' sequences cross; a local and a global layer, each with
            // its own RoPE (the global one scaled); a scale that is not head_dim^-0.5.
            c.model_type = "gemma3_text".into();
            c.architectures = vec!["Gemma3ForCausalLM".into()];
            c.head_dim = Some(32);
            c.hidden_activation = Some("gelu_pytorch_tanh".into());
            c.query_pre_attn_scalar = Some(24.0);
            c.sliding_window = Some(4);
            c.layer_types = Some(vec!["sliding_attention".into(), "full_attention".into()]);
            c.tie_word_embeddings = true;
            c.rope_parameters = serde_json::from_value(serde_json::json!({
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6},
                "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}
            }))
            .unwrap();
        }
    }
    c
}

/// Spreads the weights so attention is far from uniform and every switch matters
/// (the 0.02 init makes a tiny model almost linear, which hides bugs).
fn randomize(vs: &nn::VarStore) {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0)); // HashMap order differs per process; the draws must not
    tch::no_grad(|| {
        for (name, mut v) in vars {
            let r = Tensor::randn(v.size(), (Kind::Float, Device::Cpu));
            let new = if v.dim() == 2 {
                r * (1.5 / (v.size()[1] as f64).sqrt())
            } else if name.ends_with("norm.weight") {
                r * 0.2 + 1.0
            } else {
                r * 0.2
            };
            v.copy_(&new);
        }
    });
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn ids(rows: &[&[i64]]) -> Tensor {
    let t = rows[0].len() as i64;
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, t])
}

fn arange_positions(b: i64, start: i64, t: i64) -> Tensor {
    Tensor::arange_start(start, start + t, (Kind::Int64, Device::Cpu)).unsqueeze(0).repeat([b, 1])
}

fn random_model(family: Family) -> (nn::VarStore, CausalLM) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = CausalLM::new(&vs.root(), &config(family)).unwrap();
    assert_eq!(model.family.name, format!("{family:?}"), "the config names its family");
    randomize(&vs);
    if family == Family::Gemma3 {
        // Gemma's norms scale by 1 + w: zero-centred weights give the same spread as the others'.
        tch::no_grad(|| {
            for (name, mut v) in vs.variables() {
                if name.ends_with("norm.weight") {
                    let shifted = &v - 1.0;
                    v.copy_(&shifted);
                }
            }
        });
    }
    (vs, model)
}

#[test]
fn parameter_names_mirror_hugging_face() {
    let _g = seeded(0);
    let names = |family| {
        let (vs, _) = random_model(family);
        let mut n: Vec<String> = vs.variables().into_keys().filter(|n| !n.contains("layers.1.")).collect();
        n.sort();
        n
    };
    let attn = |s: &str| format!("model.layers.0.self_attn.{s}");
    let llama = names(Family::Llama);
    assert_eq!(llama.len(), 9 + 3); // 9 per layer (4 attn, 3 mlp, 2 norms) + embed, norm, lm_head
    for n in ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.mlp.gate_proj.weight"] {
        assert!(llama.contains(&n.to_string()), "{n} missing from {llama:?}");
    }
    let qwen2 = names(Family::Qwen2);
    assert!(qwen2.contains(&attn("q_proj.bias")) && qwen2.contains(&attn("v_proj.bias")) && !qwen2.contains(&attn("o_proj.bias")));
    assert!(!qwen2.contains(&"lm_head.weight".to_string()), "qwen2 config is tied");
    let qwen3 = names(Family::Qwen3);
    assert!(qwen3.contains(&attn("q_norm.weight")) && qwen3.contains(&attn("k_norm.weight")));
    let (vs, _) = random_model(Family::Qwen3);
    assert_eq!(vs.variables()[&attn("q_proj.weight")].size(), [128, 64]);
    assert_eq!(vs.variables()[&attn("o_proj.weight")].size(), [64, 128]);
}

#[test]
fn forward_shapes_and_kind() {
    let _g = seeded(1);
    let (_vs, model) = random_model(Family::Llama);
    let x = ids(&[&[1, 5, 7, 9, 3], &[1, 4, 4, 4, 2]]);
    let logits = tch::no_grad(|| model.forward(&x, &arange_positions(2, 0, 5), None, None, false));
    assert_eq!(logits.size(), [2, 5, VOCAB as i64]);
    assert_eq!(logits.kind(), Kind::Float);
    assert_eq!(model.device(), Device::Cpu);
}

/// Prefill, single-token steps and a multi-token chunk through the cache give
/// the logits of one full forward.
#[test]
fn cached_decoding_matches_full_forward() {
    let _g = seeded(2);
    for family in [Family::Llama, Family::Qwen2, Family::Qwen3, Family::Gemma3] {
        let (_vs, model) = random_model(family);
        let seq: Vec<i64> = (0..12).map(|i| (i * 7 + 3) % VOCAB as i64).collect();
        let x = ids(&[&seq]);
        tch::no_grad(|| {
            let full = model.forward(&x, &arange_positions(1, 0, 12), None, None, false);
            let mut cache = KvCache::new(model.config.num_hidden_layers);
            assert!(cache.is_empty());
            let mut parts = Vec::new();
            let mut start = 0;
            for len in [7, 1, 1, 1, 2] {
                let chunk = x.narrow(1, start, len);
                parts.push(model.forward(&chunk, &arange_positions(1, start, len), None, Some(&mut cache), false));
                start += len;
                assert_eq!(cache.len(), start);
            }
            let cached = Tensor::cat(&parts, 1);
            let d = max_diff(&full, &cached);
            assert!(d < 1e-5, "{family:?}: cached vs full max |diff| = {d}");
            assert!(full.std(true).double_value(&[]) > 0.5, "{family:?}: logits too flat for the test to mean anything");
        });
    }
}

/// A left-padded batch gives each row's real tokens the logits they get alone,
/// also while decoding through the cache, and no NaN anywhere.
#[test]
fn left_padding_matches_unpadded_sequences() {
    let _g = seeded(3);
    for family in [Family::Llama, Family::Qwen3, Family::Gemma3] {
        let (_vs, model) = random_model(family);
        let short: &[i64] = &[1, 5, 9, 13, 2];
        let long: &[i64] = &[1, 4, 8, 12, 16, 3, 7, 11];
        let pad = (long.len() - short.len()) as i64;
        let mut padded_short = vec![0i64; pad as usize];
        padded_short.extend_from_slice(short);
        let x = ids(&[&padded_short, long]);
        let mut mask_rows = vec![0i64; pad as usize];
        mask_rows.extend(std::iter::repeat_n(1i64, short.len() + long.len()));
        let mut mask = Tensor::from_slice(&mask_rows).view([2, long.len() as i64]);
        let positions = positions_from_mask(&mask);
        tch::no_grad(|| {
            let mut cache = KvCache::new(2);
            let batch = model.forward(&x, &positions, Some(&mask), Some(&mut cache), false);
            assert_eq!(batch.isnan().sum(Kind::Int64).int64_value(&[]), 0, "{family:?}: NaN in padded batch");
            let alone_short = model.forward(&ids(&[short]), &arange_positions(1, 0, short.len() as i64), None, None, false);
            let alone_long = model.forward(&ids(&[long]), &arange_positions(1, 0, long.len() as i64), None, None, false);
            let d1 = max_diff(&batch.get(0).narrow(0, pad, short.len() as i64), &alone_short.get(0));
            let d2 = max_diff(&batch.get(1), &alone_long.get(0));
            assert!(d1 < 1e-5 && d2 < 1e-5, "{family:?}: padded vs alone {d1} / {d2}");

            // Three decoding steps for both rows, each compared with the row decoded alone.
            let mut alone = [(short.to_vec(), KvCache::new(2)), (long.to_vec(), KvCache::new(2))];
            for (seq, c) in alone.iter_mut() {
                let n = seq.len() as i64;
                let _ = model.forward(&ids(&[seq]), &arange_positions(1, 0, n), None, Some(c), false);
            }
            let mut next_pos = [short.len() as i64, long.len() as i64];
            for step in 0..3 {
                let toks = [(step * 5 + 2) % VOCAB as i64, (step * 3 + 6) % VOCAB as i64];
                mask = Tensor::cat(&[&mask, &Tensor::ones([2, 1], (Kind::Int64, Device::Cpu))], 1);
                let pos = Tensor::from_slice(&next_pos).view([2, 1]);
                let out = model.forward(&ids(&[&[toks[0]], &[toks[1]]]), &pos, Some(&mask), Some(&mut cache), false);
                for row in 0..2 {
                    let (_, c) = &mut alone[row];
                    let p = arange_positions(1, next_pos[row], 1);
                    let want = model.forward(&ids(&[&[toks[row]]]), &p, None, Some(c), false);
                    let d = max_diff(&out.get(row as i64), &want.get(0));
                    assert!(d < 1e-5, "{family:?}: step {step} row {row}: {d}");
                }
                next_pos = [next_pos[0] + 1, next_pos[1] + 1];
            }
        });
    }
}

/// Training through a left-padded batch keeps every gradient finite.
#[test]
fn padded_batch_backward_is_finite() {
    let _g = seeded(4);
    let (vs, model) = random_model(Family::Llama);
    let x = ids(&[&[0, 0, 0, 1, 5, 9], &[1, 4, 8, 12, 16, 3]]);
    let mask = ids(&[&[0, 0, 0, 1, 1, 1], &[1, 1, 1, 1, 1, 1]]);
    let logits = model.forward(&x, &positions_from_mask(&mask), Some(&mask), None, true);
    let targets = x.shift_left();
    let loss = logits.view([-1, VOCAB as i64]).cross_entropy_loss::<Tensor>(&targets.view([-1]), None, tch::Reduction::Mean, -100, 0.0);
    loss.backward();
    for (name, v) in vs.variables() {
        let g = v.grad();
        assert!(g.defined(), "{name}: no gradient");
        assert_eq!(g.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]), 0, "{name}: non-finite gradient");
    }
}

trait ShiftLeft {
    fn shift_left(&self) -> Tensor;
}
impl ShiftLeft for Tensor {
    /// Next-token targets: each position predicts the following token; the last and padding predict nothing.
    fn shift_left(&self) -> Tensor {
        let t = self.size()[1];
        let next = self.narrow(1, 1, t - 1);
        let next = next.masked_fill(&next.eq(0), -100);
        Tensor::cat(&[next, Tensor::full([self.size()[0], 1], -100, (Kind::Int64, Device::Cpu))], 1)
    }
}

/// Copy task: `BOS s1..s5 SEP s1..s5`; loss on the copied half only.
fn copy_batch(batch: i64) -> (Tensor, Tensor) {
    let n = 5;
    let body = Tensor::randint_low(3, VOCAB as i64, [batch, n], (Kind::Int64, Device::Cpu));
    let bos = Tensor::full([batch, 1], 1, (Kind::Int64, Device::Cpu));
    let sep = Tensor::full([batch, 1], 2, (Kind::Int64, Device::Cpu));
    let seq = Tensor::cat(&[&bos, &body, &sep, &body], 1); // [b, 12]
    let input = seq.narrow(1, 0, 2 * n + 1);
    let target = seq.narrow(1, 1, 2 * n + 1);
    let ignore = Tensor::arange(2 * n + 1, (Kind::Int64, Device::Cpu)).lt(n + 1).unsqueeze(0);
    (input, target.masked_fill(&ignore, -100))
}

fn lm_loss(model: &CausalLM, input: &Tensor, target: &Tensor, train: bool) -> Tensor {
    let (b, t) = input.size2().unwrap();
    let logits = model.forward(input, &arange_positions(b, 0, t), None, None, train);
    logits.view([-1, VOCAB as i64]).cross_entropy_loss::<Tensor>(&target.view([-1]), None, tch::Reduction::Mean, -100, 0.0)
}

#[test]
fn training_from_scratch_learns_to_copy() {
    let _g = seeded(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = CausalLM::new(&vs.root(), &tiny_config(VOCAB)).unwrap();
    let mut opt = nn::AdamW::default().build(&vs, 3e-3).unwrap();
    let (eval_in, eval_target) = copy_batch(256);
    let eval = |m: &CausalLM| tch::no_grad(|| lm_loss(m, &eval_in, &eval_target, false).double_value(&[]));
    let initial = eval(&model);
    for _ in 0..100 {
        let (input, target) = copy_batch(32);
        opt.backward_step(&lm_loss(&model, &input, &target, true));
    }
    let trained = eval(&model);
    eprintln!("copy task loss: {initial:.3} -> {trained:.3}");
    assert!(initial > 2.5, "initial loss {initial} should be near ln(20) = 3.0");
    assert!(trained < 0.5 * initial, "loss {initial:.3} -> {trained:.3}");
}

#[test]
fn lora_trains_only_adapters_and_survives_save_load_merge() {
    let _g = seeded(6);
    let (vs, mut model) = random_model(Family::Qwen2);
    let mut vs = vs;
    vs.freeze();
    let before: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let lora_vs = nn::VarStore::new(Device::Cpu);
    let cfg = LoraConfig { rank: 8, alpha: 16.0, dropout: 0.05, targets: ["q", "k", "v", "o", "gate", "up", "down"].map(String::from).to_vec() };
    let (input, target) = copy_batch(16);
    let untouched = tch::no_grad(|| lm_loss(&model, &input, &target, false));
    model.attach_lora(&lora_vs.root(), &cfg).unwrap();
    assert_eq!(lora_vs.variables().len(), 2 * 7 * 2, "A and B on 7 projections in 2 layers");
    let initial = tch::no_grad(|| lm_loss(&model, &input, &target, false));
    assert!(initial.equal(&untouched), "B = 0: adapters start as the identity");

    let mut opt = nn::AdamW::default().build(&lora_vs, 1e-2).unwrap();
    for _ in 0..40 {
        opt.backward_step(&lm_loss(&model, &input, &target, true));
    }
    let trained = tch::no_grad(|| lm_loss(&model, &input, &target, false));
    let (l0, l1) = (initial.double_value(&[]), trained.double_value(&[]));
    eprintln!("LoRA loss on a fixed batch: {l0:.3} -> {l1:.3}");
    assert!(l1 < 0.7 * l0, "LoRA loss {l0:.3} -> {l1:.3}");
    let after = vs.variables();
    for (name, t) in &before {
        assert!(after[name].equal(t), "base weight {name} changed");
    }

    // Save, reload into a fresh copy of the base: identical logits.
    let dir = tempfile::tempdir().unwrap();
    let adapters = dir.path().join("adapter");
    model.save_adapters(&adapters).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(adapters.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(json["r"], 8);
    assert_eq!(json["lora_alpha"], 16);
    assert_eq!(json["peft_type"], "LORA");
    let saved = load_safetensors(&adapters.join("adapter_model.safetensors"), Kind::Float, Device::Cpu).unwrap();
    assert_eq!(saved.shape("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight").unwrap(), [8, 128]);
    assert_eq!(saved.shape("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight").unwrap(), [32, 8], "B is [kv_heads × head_dim, r]");

    let mut vs2 = nn::VarStore::new(Device::Cpu);
    let mut fresh = CausalLM::new(&vs2.root(), &model.config).unwrap();
    vs2.copy(&vs).unwrap();
    let mut lora_vs2 = nn::VarStore::new(Device::Cpu);
    let loaded_cfg = fresh.load_adapters(&lora_vs2.root(), &adapters).unwrap();
    assert_eq!(loaded_cfg.rank, 8);
    let x = input.narrow(0, 0, 4);
    let pos = arange_positions(4, 0, x.size()[1]);
    let (a, b) = tch::no_grad(|| (model.forward(&x, &pos, None, None, false), fresh.forward(&x, &pos, None, None, false)));
    assert_eq!(max_diff(&a, &b), 0.0, "reloaded adapters give other logits");

    // Merged weights compute what base + adapters computed. Checked in f64: at
    // |logit| ~ 10 f32 rounding alone is ~1e-6 per operation.
    vs2.double();
    lora_vs2.double();
    let adapted = tch::no_grad(|| fresh.forward(&x, &pos, None, None, false));
    assert!(max_diff(&a, &adapted) < 1e-4, "f64 copy of the model computes the same");
    fresh.merge_lora().unwrap();
    assert!(fresh.lora_config().is_none());
    let merged = tch::no_grad(|| fresh.forward(&x, &pos, None, None, false));
    let d = max_diff(&adapted, &merged);
    eprintln!("merged vs adapted: {d:e}, max |logit| {:.2}", a.abs().max().double_value(&[]));
    assert!(d < 1e-5, "merged vs adapted: {d}");
}

// ---- checkpoints on disk ----

fn write_checkpoint(dir: &Path, config: &ModelConfig, tensors: &[(String, Tensor)]) {
    std::fs::write(dir.join("config.json"), serde_json::to_string(config).unwrap()).unwrap();
    save_safetensors(&dir.join("model.safetensors"), tensors).unwrap();
}

fn tensors_of(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.detach())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn load_err(dir: &Path) -> String {
    match CausalLM::from_pretrained(dir, Device::Cpu, Kind::Float) {
        Ok(_) => panic!("{} loaded, but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn checkpoint_round_trip_single_sharded_and_half() {
    let _g = seeded(7);
    for family in [Family::Llama, Family::Qwen2, Family::Qwen3, Family::Gemma3] {
        let (vs, model) = random_model(family);
        let x = ids(&[&[1, 5, 9, 13, 2, 7]]);
        let pos = arange_positions(1, 0, 6);
        let want = tch::no_grad(|| model.forward(&x, &pos, None, None, false));
        let tensors = tensors_of(&vs);

        let dir = tempfile::tempdir().unwrap();
        write_checkpoint(dir.path(), &model.config, &tensors);
        let (_vs1, single) = CausalLM::from_pretrained(dir.path(), Device::Cpu, Kind::Float).unwrap();
        assert_eq!(max_diff(&want, &tch::no_grad(|| single.forward(&x, &pos, None, None, false))), 0.0);

        // Two shards and an index, as transformers writes large checkpoints.
        let sharded = tempfile::tempdir().unwrap();
        std::fs::write(sharded.path().join("config.json"), serde_json::to_string(&model.config).unwrap()).unwrap();
        let (first, second) = tensors.split_at(tensors.len() / 2);
        let mut index = serde_json::Map::new();
        for (file, part) in [("model-00001-of-00002.safetensors", first), ("model-00002-of-00002.safetensors", second)] {
            save_safetensors(&sharded.path().join(file), part).unwrap();
            for (n, _) in part {
                index.insert(n.clone(), file.into());
            }
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": index});
        std::fs::write(sharded.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
        let (_vs2, shard_model) = CausalLM::from_pretrained(sharded.path(), Device::Cpu, Kind::Float).unwrap();
        assert_eq!(max_diff(&want, &tch::no_grad(|| shard_model.forward(&x, &pos, None, None, false))), 0.0);

        // An f16 / bf16 file converts on load.
        for (kind, tol) in [(Kind::Half, 0.05), (Kind::BFloat16, 0.3)] {
            let half: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.to_kind(kind))).collect();
            let hdir = tempfile::tempdir().unwrap();
            write_checkpoint(hdir.path(), &model.config, &half);
            let (hvs, hmodel) = CausalLM::from_pretrained(hdir.path(), Device::Cpu, Kind::Float).unwrap();
            assert!(hvs.variables().values().all(|t| t.kind() == Kind::Float));
            let d = max_diff(&want, &tch::no_grad(|| hmodel.forward(&x, &pos, None, None, false)));
            assert!(d > 0.0 && d < tol, "{kind:?} checkpoint: {d}");
        }
    }
}

#[test]
fn tied_checkpoint_may_carry_lm_head() {
    let _g = seeded(8);
    let (vs, model) = random_model(Family::Qwen2); // tied
    let mut tensors = tensors_of(&vs);
    let embed = tensors.iter().find(|(n, _)| n == "model.embed_tokens.weight").unwrap().1.copy();
    tensors.push(("lm_head.weight".into(), embed));
    tensors.push(("model.layers.0.self_attn.rotary_emb.inv_freq".into(), Tensor::ones([16], (Kind::Float, Device::Cpu))));
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &model.config, &tensors);
    assert!(CausalLM::from_pretrained(dir.path(), Device::Cpu, Kind::Float).is_ok());
}

#[test]
fn loading_errors_name_the_file() {
    let _g = seeded(9);
    let (vs, model) = random_model(Family::Llama);
    let tensors = tensors_of(&vs);

    // Missing weight.
    let dir = tempfile::tempdir().unwrap();
    let without: Vec<_> = tensors.iter().filter(|(n, _)| n != "model.layers.1.mlp.up_proj.weight").map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    write_checkpoint(dir.path(), &model.config, &without);
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors") && e.contains("model.layers.1.mlp.up_proj.weight") && e.contains("missing"), "{e}");

    // Wrong shape.
    let dir = tempfile::tempdir().unwrap();
    let reshaped: Vec<_> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), if n == "model.norm.weight" { Tensor::ones([32], (Kind::Float, Device::Cpu)) } else { t.shallow_clone() }))
        .collect();
    write_checkpoint(dir.path(), &model.config, &reshaped);
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors") && e.contains("model.norm.weight") && e.contains("[32]") && e.contains("[64]"), "{e}");

    // A weight the architecture does not have.
    let dir = tempfile::tempdir().unwrap();
    let mut extra: Vec<_> = tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    extra.push(("model.layers.2.mlp.up_proj.weight".into(), Tensor::ones([2, 2], (Kind::Float, Device::Cpu))));
    write_checkpoint(dir.path(), &model.config, &extra);
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors") && e.contains("model.layers.2.mlp.up_proj.weight"), "{e}");

    // Truncated file.
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &model.config, &tensors);
    let file = dir.path().join("model.safetensors");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len - 1000).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors") && e.contains("truncated"), "{e}");
    std::fs::write(&file, b"garbage").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors"), "{e}");

    // No weights at all.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), serde_json::to_string(&model.config).unwrap()).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors.index.json"), "{e}");

    // Missing config.json.
    let dir = tempfile::tempdir().unwrap();
    let e = read_config(dir.path()).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");
    assert!(load_err(dir.path()).contains("config.json"));

    // Unsupported architecture: a real GPT-2 config.
    let gpt2 = r#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257, "activation_function": "gelu_new"}"#;
    std::fs::write(dir.path().join("config.json"), gpt2).unwrap();
    let e = read_config(dir.path()).unwrap_err().to_string();
    assert!(e.contains("config.json") && e.contains("gpt2"), "{e}");
    // ... and one that parses but names another model type.
    let mut other = model.config.clone();
    other.model_type = "gpt2".into();
    other.architectures = vec!["GPT2LMHeadModel".into()];
    std::fs::write(dir.path().join("config.json"), serde_json::to_string(&other).unwrap()).unwrap();
    let e = read_config(dir.path()).unwrap_err().to_string();
    assert!(e.contains("config.json") && e.contains("gpt2"), "{e}");
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    assert!(read_config(dir.path()).unwrap_err().to_string().contains("config.json"));
}

#[test]
fn adapter_errors_name_the_file() {
    let _g = seeded(10);
    let (_vs, mut model) = random_model(Family::Llama);
    let lora_vs = nn::VarStore::new(Device::Cpu);
    let dir = tempfile::tempdir().unwrap();
    let e = model.load_adapters(&lora_vs.root(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("adapter_config.json"), "{e}");
    std::fs::write(dir.path().join("adapter_config.json"), r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "use_dora": true}"#).unwrap();
    let e = model.load_adapters(&lora_vs.root(), dir.path()).unwrap_err().to_string();
    assert!(e.contains("adapter_config.json") && e.contains("use_dora"), "{e}");
    let bad = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, targets: vec!["lm_head".into()] };
    assert!(model.attach_lora(&lora_vs.root(), &bad).is_err());
}

/// The tiny config with Llama 3.1's RoPE: theta 5e5, llama3 scaling by 8 over an original
/// 8,192-token context, frequency factors 1 and 4.
fn llama3_config() -> ModelConfig {
    let mut c = tiny_config(VOCAB);
    c.rope_theta = Some(500_000.0);
    c.rope_scaling = Some(RopeScaling {
        rope_type: Some("llama3".into()),
        rope_theta: None,
        factor: Some(8.0),
        low_freq_factor: Some(1.0),
        high_freq_factor: Some(4.0),
        original_max_position_embeddings: Some(8192),
    });
    c
}

/// Llama 3.1 scaling (factor 8, low 1, high 4, original context 8192, theta 5e5),
/// derived here in f64 from the published rule:
///   inv_freq_i = theta^(-2i/d), wavelength λ_i = 2π / inv_freq_i;
///   λ < 8192/4 = 2048        -> unchanged (high frequencies);
///   λ > 8192/1 = 8192        -> inv_freq / 8 (low frequencies);
///   otherwise s = (8192/λ - 1) / (4 - 1) and inv_freq ((1 - s)/8 + s) (smooth blend).
/// With d = 16, i = 0..3 are high (λ up to 2π·5e5^(3/8) ≈ 873), i = 4 is in the blend
/// (λ ≈ 4443, s ≈ 0.281), i = 5..7 are low (λ ≈ 2.3e4 and up): all three bands are exercised.
#[test]
fn llama3_rope_scaling_matches_formula() {
    let mut c = llama3_config(); // head_dim 64 / 4 = 16
    let got: Vec<f32> = Vec::try_from(rope_inv_freq(&c, Device::Cpu).unwrap()).unwrap();
    let d = 16.0;
    let mut bands = [0; 3];
    for (i, g) in got.iter().enumerate() {
        let f = 500_000f64.powf(-(2.0 * i as f64) / d);
        let wavelen = 2.0 * std::f64::consts::PI / f;
        let want = if wavelen < 2048.0 {
            bands[0] += 1;
            f
        } else if wavelen > 8192.0 {
            bands[2] += 1;
            f / 8.0
        } else {
            bands[1] += 1;
            let s = (8192.0 / wavelen - 1.0) / 3.0;
            (1.0 - s) * f / 8.0 + s * f
        };
        assert!((*g as f64 - want).abs() <= want * 2e-6, "inv_freq[{i}] = {g}, formula gives {want}");
    }
    assert_eq!(bands, [4, 1, 3]);
    // Blend value written out: λ4 = 2π·5e5^0.5, s = (8192/λ4 - 1)/3, inv = (1-s)/8·f + s·f.
    let f4 = 500_000f64.powf(-0.5);
    let s = (8192.0 * f4 / (2.0 * std::f64::consts::PI) - 1.0) / 3.0;
    assert!((s - 0.2812).abs() < 1e-3, "s = {s}");

    // Linear scaling divides every frequency by the factor.
    c.rope_scaling = Some(RopeScaling { rope_type: Some("linear".into()), rope_theta: None, factor: Some(4.0), low_freq_factor: None, high_freq_factor: None, original_max_position_embeddings: None });
    let lin: Vec<f32> = Vec::try_from(rope_inv_freq(&c, Device::Cpu).unwrap()).unwrap();
    for (i, g) in lin.iter().enumerate() {
        let want = 500_000f64.powf(-(2.0 * i as f64) / d) / 4.0;
        assert!((*g as f64 - want).abs() <= want * 2e-6);
    }
}

/// llama.cpp stores Llama 3.1's scaling as `rope_freqs.weight`: per frequency a divisor, 1 for
/// high frequencies, the factor for low ones and `1 / ((1 - s)/factor + s)` in the blend (its
/// converter's rule, written out here in f64). Dividing the default frequencies by them gives
/// the llama3 rule's frequencies; a wrong count of factors is refused.
#[test]
fn rope_freq_factors_reproduce_llama3_scaling() {
    let llama3 = llama3_config();
    let want: Vec<f32> = Vec::try_from(rope_inv_freq(&llama3, Device::Cpu).unwrap()).unwrap();
    let d = 16.0;
    let factors: Vec<f32> = (0..8)
        .map(|i| {
            let wavelen = 2.0 * std::f64::consts::PI / 500_000f64.powf(-(2.0 * i as f64) / d);
            if wavelen < 2048.0 {
                1.0
            } else if wavelen > 8192.0 {
                8.0
            } else {
                let s = (8192.0 / wavelen - 1.0) / 3.0;
                (1.0 / ((1.0 - s) / 8.0 + s)) as f32
            }
        })
        .collect();
    let mut gguf = tiny_config(VOCAB);
    gguf.rope_theta = Some(500_000.0);
    gguf.rope_freq_factors = Some(factors.clone());
    let got: Vec<f32> = Vec::try_from(rope_inv_freq(&gguf, Device::Cpu).unwrap()).unwrap();
    assert_eq!(got.len(), 8);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= w * 2e-6, "inv_freq[{i}]: factors give {g}, llama3 gives {w}");
    }
    assert!(factors.contains(&1.0) && factors.contains(&8.0) && factors.iter().any(|&f| f > 1.0 && f < 8.0), "{factors:?}");
    // A llama3 rope type beside the factors is what they encode: it is not applied twice.
    gguf.rope_scaling = llama3.rope_scaling.clone();
    let both: Vec<f32> = Vec::try_from(rope_inv_freq(&gguf, Device::Cpu).unwrap()).unwrap();
    assert_eq!(both, got);
    gguf.rope_freq_factors = Some(factors[..7].to_vec());
    assert!(rope_inv_freq(&gguf, Device::Cpu).unwrap_err().to_string().contains("7 RoPE frequency factors"));
}

#[test]
fn kv_cache_select_rows() {
    let _g = seeded(11);
    let (_vs, model) = random_model(Family::Llama);
    let x = ids(&[&[1, 5, 9], &[1, 4, 8], &[1, 3, 3]]);
    tch::no_grad(|| {
        let mut cache = KvCache::new(2);
        let _ = model.forward(&x, &arange_positions(3, 0, 3), None, Some(&mut cache), false);
        cache.select_rows(&Tensor::from_slice(&[2i64, 0]));
        let next = ids(&[&[7], &[7]]);
        let out = model.forward(&next, &arange_positions(2, 3, 1), None, Some(&mut cache), false);
        let full = model.forward(&ids(&[&[1, 3, 3, 7], &[1, 5, 9, 7]]), &arange_positions(2, 0, 4), None, None, false);
        assert!(max_diff(&out.squeeze_dim(1), &full.select(1, 3)) < 1e-5);
    });
}


// ---- CUDA (on a GPU machine, alone in their process: cargo test --test model -- --ignored cuda --nocapture) ----

/// cuda:0, when there is one. Must run before any other libtorch call in the
/// process (libtorch settles its CUDA hooks on first use), hence before `seeded`.
fn cuda() -> Option<Device> {
    if let Err(reason) = icdbench::device::cuda_backend() {
        eprintln!("no CUDA here ({reason}): skipped");
        return None;
    }
    if !tch::Cuda::is_available() {
        eprintln!("libtorch_cuda loaded but no CUDA device: skipped");
        return None;
    }
    Some(Device::Cuda(0))
}

/// A copy of `vs`'s model on `device` in `kind`, through `CausalLM::load` (which converts).
fn copy_to(vs: &nn::VarStore, config: &ModelConfig, device: Device, kind: Kind) -> (nn::VarStore, CausalLM) {
    let mut weights = icdbench::model::weights::WeightMap::new("cpu copy");
    for (n, t) in vs.variables() {
        weights.insert(n, t.detach().copy());
    }
    let mut dvs = nn::VarStore::new(device);
    dvs.set_kind(kind);
    let model = CausalLM::load(&mut dvs, config, &mut weights).unwrap();
    assert!(dvs.variables().values().all(|t| t.kind() == kind && t.device() == device));
    (dvs, model)
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    max_diff(&a.to_device(Device::Cpu), &b.to_device(Device::Cpu)) / b.abs().max().double_value(&[]).max(1.0)
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_f32_and_bf16_match_cpu() {
    let Some(dev) = cuda() else { return };
    let _g = seeded(20);
    for family in [Family::Llama, Family::Qwen2, Family::Qwen3, Family::Gemma3] {
        let (vs, cpu) = random_model(family);
        let x = ids(&[&[0, 0, 0, 1, 5, 9, 13, 2], &[1, 4, 8, 12, 16, 3, 7, 11]]);
        let mask = ids(&[&[0, 0, 0, 1, 1, 1, 1, 1], &[1, 1, 1, 1, 1, 1, 1, 1]]);
        let pos = positions_from_mask(&mask);
        let want = tch::no_grad(|| cpu.forward(&x, &pos, Some(&mask), None, false));
        let real = mask.to_kind(Kind::Bool).unsqueeze(-1).expand_as(&want);
        for (kind, tol) in [(Kind::Float, 1e-4), (Kind::BFloat16, 0.05)] {
            let (_dvs, gpu) = copy_to(&vs, &cpu.config, dev, kind);
            tch::no_grad(|| {
                let got = gpu.forward(&x.to_device(dev), &pos.to_device(dev), Some(&mask.to_device(dev)), None, false);
                assert_eq!(got.kind(), Kind::Float);
                assert_eq!(got.isnan().sum(Kind::Int64).int64_value(&[]), 0, "{family:?} {kind:?}: NaN");
                let d = rel(&got.to_device(Device::Cpu).masked_select(&real), &want.masked_select(&real));
                // Cached decoding on the GPU agrees with its own full forward.
                let seq = x.get(1).unsqueeze(0).to_device(dev);
                let full = gpu.forward(&seq, &arange_positions(1, 0, 8).to_device(dev), None, None, false);
                let mut cache = KvCache::new(2);
                let mut parts = vec![gpu.forward(&seq.narrow(1, 0, 5), &arange_positions(1, 0, 5).to_device(dev), None, Some(&mut cache), false)];
                for t in 5..8 {
                    parts.push(gpu.forward(&seq.narrow(1, t, 1), &arange_positions(1, t, 1).to_device(dev), None, Some(&mut cache), false));
                }
                let dc = rel(&Tensor::cat(&parts, 1), &full);
                eprintln!("cuda {family:?} {kind:?}: padded batch vs CPU f32 rel {d:.2e}; cached vs full rel {dc:.2e}");
                assert!(d < tol && dc < tol, "{family:?} {kind:?}: {d} / {dc}");
            });
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_bf16_lora_trains_with_f32_adapters() {
    let Some(dev) = cuda() else { return };
    let _g = seeded(21);
    let (vs, cpu) = random_model(Family::Llama);
    let (mut dvs, mut model) = copy_to(&vs, &cpu.config, dev, Kind::BFloat16);
    dvs.freeze();
    let before: Vec<(String, Tensor)> = dvs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let lora_vs = nn::VarStore::new(dev); // f32 adapters on a bf16 base, as PEFT does with autocast off
    model.attach_lora(&lora_vs.root(), &LoraConfig { rank: 8, alpha: 16.0, dropout: 0.05, ..LoraConfig::default() }).unwrap();
    let mut opt = nn::AdamW::default().build(&lora_vs, 1e-2).unwrap();
    let (input, target) = copy_batch(16);
    let (input, target) = (input.to_device(dev), target.to_device(dev));
    let loss = |m: &CausalLM, train| {
        let (b, t) = input.size2().unwrap();
        let logits = m.forward(&input, &arange_positions(b, 0, t).to_device(dev), None, None, train);
        logits.view([-1, VOCAB as i64]).cross_entropy_loss::<Tensor>(&target.view([-1]), None, tch::Reduction::Mean, -100, 0.0)
    };
    let l0 = tch::no_grad(|| loss(&model, false)).double_value(&[]);
    for _ in 0..40 {
        opt.backward_step(&loss(&model, true));
    }
    let l1 = tch::no_grad(|| loss(&model, false)).double_value(&[]);
    eprintln!("cuda bf16 base + f32 LoRA: loss {l0:.3} -> {l1:.3}");
    assert!(l1.is_finite() && l1 < 0.7 * l0);
    let after = dvs.variables();
    assert!(before.iter().all(|(n, t)| after[n].equal(t)), "a base weight changed");
    assert!(lora_vs.variables().values().all(|t| t.kind() == Kind::Float));
}

/// Speed on the GPU at the SmolLM2-135M shape, bf16 (numbers for the report).
#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_smollm2_shaped_timing() {
    let Some(dev) = cuda() else { return };
    let _g = seeded(22);
    tch::set_num_threads(4);
    let mut c = tiny_config(49_152);
    (c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) = (576, 1536, 30, 9, Some(3));
    c.tie_word_embeddings = true;
    for kind in [Kind::BFloat16, Kind::Float] {
        let mut vs = nn::VarStore::new(dev);
        vs.set_kind(kind);
        let mut model = CausalLM::new(&vs.root(), &c).unwrap();
        vs.freeze();
        let lora_vs = nn::VarStore::new(dev);
        model.attach_lora(&lora_vs.root(), &LoraConfig { rank: 16, alpha: 32.0, dropout: 0.05, ..LoraConfig::default() }).unwrap();
        let mut opt = nn::AdamW::default().build(&lora_vs, 1e-4).unwrap();
        let tokens = Tensor::randint(49_152, [8, 129], (Kind::Int64, dev));
        let (input, target) = (tokens.narrow(1, 0, 128), tokens.narrow(1, 1, 128).reshape([-1]));
        let pos = arange_positions(8, 0, 128).to_device(dev);
        let mut step = || {
            let logits = model.forward(&input, &pos, None, None, true);
            let l = logits.view([-1, 49_152]).cross_entropy_for_logits(&target);
            opt.backward_step(&l);
            l.double_value(&[])
        };
        for _ in 0..3 {
            step();
        }
        tch::Cuda::synchronize(0);
        let t0 = std::time::Instant::now();
        let n = 20;
        for _ in 0..n {
            step();
        }
        tch::Cuda::synchronize(0);
        let per_step = t0.elapsed().as_secs_f64() / n as f64;

        model.merge_lora().unwrap();
        let prompt = Tensor::randint(49_152, [1, 256], (Kind::Int64, dev));
        let decode = || {
            tch::no_grad(|| {
                let mut cache = KvCache::new(30);
                let mut logits = model.forward(&prompt, &arange_positions(1, 0, 256).to_device(dev), None, Some(&mut cache), false);
                for i in 0..32 {
                    let next = logits.select(1, -1).argmax(-1, false);
                    let _ = next.int64_value(&[0]);
                    if i == 31 {
                        break;
                    }
                    logits = model.forward(&next.view([1, 1]), &arange_positions(1, 256 + i, 1).to_device(dev), None, Some(&mut cache), false);
                }
            })
        };
        decode();
        let t0 = std::time::Instant::now();
        for _ in 0..3 {
            decode();
        }
        let per_decode = t0.elapsed().as_secs_f64() / 3.0;
        eprintln!(
            "cuda {kind:?} SmolLM2-135M-shaped: LoRA r16 step b8x128 {:.1} ms ({:.0} tokens/s); greedy 32 after 256 {:.0} ms ({:.0} tokens/s)",
            per_step * 1e3,
            1024.0 / per_step,
            per_decode * 1e3,
            32.0 / per_decode
        );
    }
}

// ---- memory-saving training paths: the same numbers as the plain ones ----

/// Labels as the trainer builds them: [b, t - 1], the token at j + 1 or -100 (the first half of each row).
fn half_labels(input: &Tensor) -> Tensor {
    let (b, t) = input.size2().unwrap();
    let next = input.narrow(1, 1, t - 1);
    let prompt = Tensor::arange(t - 1, (Kind::Int64, Device::Cpu)).lt(t / 2).unsqueeze(0).expand([b, t - 1], false);
    next.masked_fill(&prompt, -100)
}

fn grads(vars: &[(String, Tensor)]) -> Vec<Tensor> {
    vars.iter().map(|(_, t)| t.grad().copy()).collect()
}

fn zero_grads(vars: &[(String, Tensor)]) {
    for (_, t) in vars {
        let mut g = t.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

fn sorted(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn checkpointing_gives_the_same_loss_and_gradients() {
    let _g = seeded(21);
    let input = Tensor::randint(VOCAB as i64, [3, 12], (Kind::Int64, Device::Cpu));
    let labels = half_labels(&input);
    let pos = arange_positions(3, 0, 12);
    // LoRA with dropout on (the masks must be redrawn identically), then full training.
    let (mut vs, mut model) = random_model(Family::Llama);
    vs.freeze();
    let lora_vs = nn::VarStore::new(Device::Cpu);
    let cfg = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.3, targets: ["q", "k", "v", "o", "gate", "up", "down"].map(String::from).to_vec() };
    model.attach_lora(&lora_vs.root(), &cfg).unwrap();
    let adapters = sorted(&lora_vs);
    tch::no_grad(|| adapters.iter().filter(|(n, _)| n.contains("lora_B")).for_each(|(_, t)| t.shallow_clone().copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.3))));
    let run = |ckpt: bool| {
        zero_grads(&adapters);
        let loss = model.forward_backward(&input, &pos, &labels, 0.1, 77, ckpt).unwrap();
        (loss, grads(&adapters))
    };
    let (plain_loss, plain) = run(false);
    let (ckpt_loss, ckpt) = run(true);
    assert!((plain_loss - ckpt_loss).abs() <= 1e-5 * plain_loss.abs(), "{plain_loss} vs {ckpt_loss}");
    for ((name, _), (a, b)) in adapters.iter().zip(plain.iter().zip(&ckpt)) {
        assert!(a.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name} got no gradient");
        assert!(max_diff(a, b) <= 1e-5, "{name}: {}", max_diff(a, b));
    }
    // Another seed draws other dropout masks: the check above is not vacuous.
    zero_grads(&adapters);
    let other = model.forward_backward(&input, &pos, &labels, 0.1, 78, false).unwrap();
    assert!((other - plain_loss).abs() > 1e-4, "dropout masks should depend on the seed");

    let vs2 = nn::VarStore::new(Device::Cpu);
    let full = CausalLM::new(&vs2.root(), &config(Family::Qwen2)).unwrap(); // tied embeddings: two gradient paths
    randomize(&vs2);
    let params = sorted(&vs2);
    let run = |ckpt: bool| {
        zero_grads(&params);
        let loss = full.forward_backward(&input, &pos, &labels, 1.0, 5, ckpt).unwrap();
        (loss, grads(&params))
    };
    let ((l0, g0), (l1, g1)) = (run(false), run(true));
    assert!((l0 - l1).abs() <= 1e-5 * l0.abs(), "{l0} vs {l1}");
    for ((name, _), (a, b)) in params.iter().zip(g0.iter().zip(&g1)) {
        assert!(max_diff(a, b) <= 1e-5, "{name}: {}", max_diff(a, b));
    }
}

#[test]
fn labelled_position_loss_equals_the_full_loss() {
    let _g = seeded(22);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = CausalLM::new(&vs.root(), &tiny_config(VOCAB)).unwrap();
    randomize(&vs);
    let params = sorted(&vs);
    let input = Tensor::randint(VOCAB as i64, [2, 10], (Kind::Int64, Device::Cpu));
    let labels = half_labels(&input);
    let pos = arange_positions(2, 0, 10);
    // Reference: logits at every position, cross-entropy over the labelled ones.
    zero_grads(&params);
    let logits = model.forward(&input, &pos, None, None, false);
    let full = logits.narrow(1, 0, 9).reshape([-1, VOCAB as i64]).cross_entropy_loss::<Tensor>(&labels.reshape([-1]), None, tch::Reduction::Sum, -100, 0.0);
    full.backward();
    let want = grads(&params);
    let (sum, n) = model.labelled_loss(&input, &pos, &labels).unwrap();
    assert_eq!(n, 2 * 4, "positions 5..8 of each row are labelled");
    assert!((sum - full.double_value(&[])).abs() < 1e-4, "{sum} vs {}", full.double_value(&[]));
    zero_grads(&params);
    let got = model.forward_backward(&input, &pos, &labels, 1.0, 0, false).unwrap(); // no adapters: no dropout
    assert!((got - sum).abs() < 1e-4);
    for ((name, _), (a, b)) in params.iter().zip(want.iter().zip(&grads(&params))) {
        assert!(max_diff(a, b) <= 1e-5, "{name}: {}", max_diff(a, b));
    }
    // Nothing labelled: no loss, no gradient, no error.
    let none = Tensor::full([2, 9], -100, (Kind::Int64, Device::Cpu));
    assert_eq!(model.labelled_loss(&input, &pos, &none).unwrap(), (0.0, 0));
}

/// Greedy tokens and last-step logits with the in-place cache.
fn greedy(model: &CausalLM, prompt: &Tensor, n: i64, capacity: usize) -> (Vec<i64>, Tensor) {
    tch::no_grad(|| {
        let (b, len) = prompt.size2().unwrap();
        let mut cache = KvCache::with_capacity(model.config.num_hidden_layers, capacity);
        let mut last = model.forward_last(prompt, &arange_positions(b, 0, len), None, Some(&mut cache));
        let mut out = Vec::new();
        for i in 0..n {
            let next = last.argmax(-1, false).unsqueeze(1);
            out.extend(Vec::<i64>::try_from(next.view([-1])).unwrap());
            last = model.forward_last(&next, &arange_positions(b, len + i, 1), None, Some(&mut cache));
        }
        (out, last)
    })
}

#[test]
fn preallocated_cache_decoding_equals_the_full_forward() {
    let _g = seeded(23);
    let (_vs, model) = random_model(Family::Qwen3);
    let prompt = Tensor::randint(VOCAB as i64, [2, 5], (Kind::Int64, Device::Cpu));
    // Capacity 0 makes every write grow the buffers; 64 holds everything from the start.
    let (tokens, last) = greedy(&model, &prompt, 6, 64);
    let (grown, last_grown) = greedy(&model, &prompt, 6, 0);
    assert_eq!(tokens, grown);
    assert!(max_diff(&last, &last_grown) < 1e-5);
    // The whole sequence in one plain forward: the same logits at the last position.
    let gen = Tensor::from_slice(&tokens).view([6, 2]).transpose(0, 1);
    let seq = Tensor::cat(&[&prompt, &gen], 1);
    let full = tch::no_grad(|| model.forward(&seq, &arange_positions(2, 0, 11), None, None, false)).select(1, -1);
    assert!(max_diff(&full, &last) < 1e-4, "{}", max_diff(&full, &last));
}

#[test]
fn merged_weights_decode_as_the_adapters_do() {
    let _g = seeded(24);
    let (mut vs, mut model) = random_model(Family::Llama);
    vs.freeze();
    let lora_vs = nn::VarStore::new(Device::Cpu);
    model.attach_lora(&lora_vs.root(), &LoraConfig { rank: 4, alpha: 8.0, dropout: 0.1, ..LoraConfig::default() }).unwrap();
    tch::no_grad(|| sorted(&lora_vs).iter().filter(|(n, _)| n.contains("lora_B")).for_each(|(_, t)| t.shallow_clone().copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.5))));
    let prompt = Tensor::randint(VOCAB as i64, [3, 4], (Kind::Int64, Device::Cpu));
    let (plain_tokens, _) = greedy(&{
        // The base alone decodes differently: the adapters matter here.
        let vs0 = nn::VarStore::new(Device::Cpu);
        let m = CausalLM::new(&vs0.root(), &model.config).unwrap();
        let mut vs0 = vs0;
        vs0.copy(&vs).unwrap();
        m
    }, &prompt, 8, 16);
    let (adapted, last_adapted) = greedy(&model, &prompt, 8, 16);
    model.merge_lora().unwrap();
    let (merged, last_merged) = greedy(&model, &prompt, 8, 16);
    assert_eq!(adapted, merged);
    assert!(max_diff(&last_adapted, &last_merged) < 1e-4, "{}", max_diff(&last_adapted, &last_merged));
    assert_ne!(plain_tokens, adapted, "adapters with B ≠ 0 should change what is decoded");
}

/// The PyTorch reference environment's python, when it is set up (scripts/parity/regenerate.sh).
fn parity_python() -> Option<std::path::PathBuf> {
    let cache = std::env::var_os("ICDBENCH_CACHE").map(std::path::PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/icdbench")))?;
    let python = cache.join("venv-parity/bin/python");
    python.is_file().then_some(python)
}

#[test]
fn exported_adapters_load_into_peft_with_the_same_logits() {
    let Some(python) = parity_python() else {
        eprintln!("skipped: no PyTorch reference environment (bash scripts/parity/regenerate.sh sets it up); the tch reload is checked in lora_trains_only_adapters_and_survives_save_load_merge");
        return;
    };
    let _g = seeded(25);
    let (mut vs, mut model) = random_model(Family::Llama);
    vs.freeze();
    let lora_vs = nn::VarStore::new(Device::Cpu);
    model.attach_lora(&lora_vs.root(), &LoraConfig { rank: 4, alpha: 8.0, dropout: 0.05, targets: vec!["q".into(), "v".into(), "down".into()] }).unwrap();
    tch::no_grad(|| sorted(&lora_vs).iter().filter(|(n, _)| n.contains("lora_B")).for_each(|(_, t)| t.shallow_clone().copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.5))));
    let dir = tempfile::tempdir().unwrap();
    let (base, adapter) = (dir.path().join("base"), dir.path().join("adapter"));
    std::fs::create_dir_all(&base).unwrap();
    // transformers reads absent keys as defaults; our nulls would override them.
    let mut config = serde_json::to_value(&model.config).unwrap();
    config.as_object_mut().unwrap().retain(|_, v| !v.is_null());
    std::fs::write(base.join("config.json"), config.to_string()).unwrap();
    save_safetensors(&base.join("model.safetensors"), &tensors_of(&vs)).unwrap();
    model.save_adapters(&adapter).unwrap();
    let input = Tensor::randint(VOCAB as i64, [2, 7], (Kind::Int64, Device::Cpu));
    let logits = tch::no_grad(|| model.forward(&input, &arange_positions(2, 0, 7), None, None, false));
    let case = dir.path().join("case.safetensors");
    save_safetensors(&case, &[("input_ids".into(), input), ("logits".into(), logits)]).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/parity/peft_reload.py");
    let out = std::process::Command::new(python).arg(script).arg(&base).arg(&adapter).arg(&case).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "PEFT gave other logits: {text}");
}
