//! The model layer at the two sizes the project runs: a tiny 2-layer Llama and a
//! random model shaped like SmolLM2-135M (30 layers, hidden 576, FFN 1536,
//! 9 heads / 3 KV heads, vocab 49,152, tied embeddings). For each: one LoRA
//! training step (r = 16 on all seven projections, batch 8 × 128 tokens,
//! forward + backward + AdamW on the adapters), and greedy decoding of 32 tokens
//! after a 256-token prompt through the KV cache (throughput = generated tokens/s,
//! prefill included). f32 on the CPU, libtorch's default thread count.
//!
//! `cargo test --bench model` runs each case once; the SmolLM2-shaped cases take
//! long in a debug build, so there they run only with ICDBENCH_BENCH_LARGE=1.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use icdbench::model::config::ModelConfig;
use icdbench::model::llama::{tiny_config, CausalLM, KvCache};
use icdbench::model::lora::LoraConfig;
use std::hint::black_box;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 8;
const SEQ: i64 = 128;
const PROMPT: i64 = 256;
const GENERATE: i64 = 32;

fn tiny() -> ModelConfig {
    tiny_config(1024)
}

fn smollm2_135m_shaped() -> ModelConfig {
    let mut c = tiny_config(49_152);
    c.hidden_size = 576;
    c.intermediate_size = 1536;
    c.num_hidden_layers = 30;
    c.num_attention_heads = 9;
    c.num_key_value_heads = Some(3);
    c.rope_theta = Some(100_000.0);
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = true;
    c
}

/// The cases to run: under `cargo test` (no `--bench` argument) the large one only on request.
fn cases() -> Vec<(&'static str, ModelConfig)> {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let large = benchmarking || std::env::var("ICDBENCH_BENCH_LARGE").is_ok_and(|v| v == "1");
    let mut out = vec![("tiny_2layer", tiny())];
    if large {
        out.push(("smollm2_135m_shaped", smollm2_135m_shaped()));
    } else {
        eprintln!("model bench: SmolLM2-135M-shaped cases skipped in test mode (set ICDBENCH_BENCH_LARGE=1)");
    }
    out
}

fn params(vs: &nn::VarStore) -> i64 {
    vs.variables().values().map(|t| t.numel() as i64).sum()
}

fn lora_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("lora_step_b8x128_r16_all");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (name, config) in cases() {
        tch::manual_seed(0);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let mut model = CausalLM::new(&vs.root(), &config).expect("bench config is valid");
        vs.freeze();
        let lora_vs = nn::VarStore::new(Device::Cpu);
        let lora = LoraConfig { rank: 16, alpha: 32.0, dropout: 0.05, ..LoraConfig::default() };
        model.attach_lora(&lora_vs.root(), &lora).expect("bench LoRA config is valid");
        eprintln!("{name}: {} base parameters, {} adapter parameters", params(&vs), params(&lora_vs));
        let mut opt = nn::AdamW::default().build(&lora_vs, 1e-4).expect("optimizer");
        let vocab = config.vocab_size as i64;
        let tokens = Tensor::randint(vocab, [BATCH, SEQ + 1], (Kind::Int64, Device::Cpu));
        let input = tokens.narrow(1, 0, SEQ);
        let target = tokens.narrow(1, 1, SEQ).reshape([-1]);
        let positions = Tensor::arange(SEQ, (Kind::Int64, Device::Cpu)).unsqueeze(0).repeat([BATCH, 1]);
        g.throughput(Throughput::Elements((BATCH * SEQ) as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let logits = model.forward(&input, &positions, None, None, true);
                let loss = logits.view([-1, vocab]).cross_entropy_for_logits(&target);
                opt.backward_step(&loss);
                black_box(loss.double_value(&[]))
            })
        });
    }
    g.finish();
}

/// Greedy decoding: prefill the prompt into the cache, then one token at a time.
fn greedy(model: &CausalLM, prompt: &Tensor, n: i64) -> Vec<i64> {
    tch::no_grad(|| {
        let len = prompt.size()[1];
        let mut cache = KvCache::new(model.config.num_hidden_layers);
        let positions = Tensor::arange(len, (Kind::Int64, Device::Cpu)).unsqueeze(0);
        let mut logits = model.forward(prompt, &positions, None, Some(&mut cache), false);
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let next = logits.select(1, -1).argmax(-1, false);
            out.push(next.int64_value(&[0]));
            if i + 1 == n {
                break;
            }
            let pos = Tensor::from_slice(&[len + i]).view([1, 1]);
            logits = model.forward(&next.view([1, 1]), &pos, None, Some(&mut cache), false);
        }
        out
    })
}

fn greedy_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("greedy_decode_32_after_256");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(GENERATE as u64));
    for (name, config) in cases() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = CausalLM::new(&vs.root(), &config).expect("bench config is valid");
        let prompt = Tensor::randint(config.vocab_size as i64, [1, PROMPT], (Kind::Int64, Device::Cpu));
        g.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| black_box(greedy(&model, &prompt, GENERATE))));
    }
    g.finish();
}

criterion_group!(benches, lora_step, greedy_decode);
criterion_main!(benches);
