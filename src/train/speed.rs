//! The model's training and decoding speed and memory on fixed workloads, measured the way
//! `scripts/bench/pytorch_reference.py` measures PyTorch + transformers + PEFT, so
//! the two can be compared side by side (`scripts/bench/compare.sh`, and on a GPU
//! `scripts/gpu-bench.sh`). Weights are random: only the shapes matter.
//!
//! Workloads:
//! - `lora_step`: forward + backward + AdamW on LoRA adapters (r = 16, alpha = 32,
//!   all seven projections), `batch` rows of `seq` tokens, every next token
//!   labelled, optionally with activation checkpointing;
//! - `generate`: greedy decoding of `new_tokens` after `prompt` random tokens,
//!   `batch` rows, KV cache (prefill included), no early stop.
//!
//! Each case reports the median time, tokens per second, peak memory (CPU: the
//! process's peak resident set while the case runs; CUDA: device memory in use
//! after each repeat), and for `lora_step` the model FLOPs per token and MFU.

use super::{AdamW, GpuMemory};
use crate::model::config::{ModelConfig, RopeScaling};
use crate::model::llama::{tiny_config, CausalLM, KvCache};
use crate::model::lora::LoraConfig;
use crate::model::ModelError;
use serde::Serialize;
use std::time::Instant;
use tch::nn;
use tch::{Device, Kind, Tensor};

/// LoRA rank and alpha of the `lora_step` workload.
pub const LORA_RANK: usize = 16;
pub const LORA_ALPHA: f64 = 32.0;
/// The optimizer's learning rate in `lora_step` (its value does not change the time).
const LR: f64 = 1e-4;

/// The model shapes the bench knows (random weights in each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Tiny,
    Smollm2,
    Llama32_1b,
    Llama31_8b,
    Qwen25_7b,
}

pub const SHAPE_NAMES: [&str; 5] = ["tiny", "smollm2-135m", "llama-3.2-1b", "llama-3.1-8b", "qwen2.5-7b"];

impl Shape {
    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "tiny" => Some(Shape::Tiny),
            "smollm2" | "smollm2-135m" => Some(Shape::Smollm2),
            "llama-3.2-1b" => Some(Shape::Llama32_1b),
            "llama-3.1-8b" => Some(Shape::Llama31_8b),
            "qwen2.5-7b" => Some(Shape::Qwen25_7b),
            _ => None,
        }
    }

    /// The name the PyTorch reference script prints.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Tiny => SHAPE_NAMES[0],
            Shape::Smollm2 => SHAPE_NAMES[1],
            Shape::Llama32_1b => SHAPE_NAMES[2],
            Shape::Llama31_8b => SHAPE_NAMES[3],
            Shape::Qwen25_7b => SHAPE_NAMES[4],
        }
    }

    /// The published configurations' shapes (the reference script builds the same).
    pub fn config(self) -> ModelConfig {
        let llama3_rope = |factor: f64| RopeScaling {
            rope_type: Some("llama3".into()),
            rope_theta: Some(500_000.0),
            factor: Some(factor),
            low_freq_factor: Some(1.0),
            high_freq_factor: Some(4.0),
            original_max_position_embeddings: Some(8192),
        };
        let mut c = tiny_config(1000);
        match self {
            Shape::Tiny => return c,
            Shape::Smollm2 => {
                (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers) = (49_152, 576, 1536, 30);
                (c.num_attention_heads, c.num_key_value_heads) = (9, Some(3));
                (c.rope_theta, c.rms_norm_eps, c.tie_word_embeddings, c.max_position_embeddings) = (Some(100_000.0), 1e-5, true, 8192);
            }
            Shape::Llama32_1b => {
                (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers) = (128_256, 2048, 8192, 16);
                (c.num_attention_heads, c.num_key_value_heads) = (32, Some(8));
                (c.rope_theta, c.rms_norm_eps, c.tie_word_embeddings, c.max_position_embeddings) = (Some(500_000.0), 1e-5, true, 131_072);
                c.rope_scaling = Some(llama3_rope(32.0));
            }
            Shape::Llama31_8b => {
                (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers) = (128_256, 4096, 14_336, 32);
                (c.num_attention_heads, c.num_key_value_heads) = (32, Some(8));
                (c.rope_theta, c.rms_norm_eps, c.tie_word_embeddings, c.max_position_embeddings) = (Some(500_000.0), 1e-5, false, 131_072);
                c.rope_scaling = Some(llama3_rope(8.0));
            }
            Shape::Qwen25_7b => {
                c.architectures = vec!["Qwen2ForCausalLM".into()];
                c.model_type = "qwen2".into();
                (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers) = (152_064, 3584, 18_944, 28);
                (c.num_attention_heads, c.num_key_value_heads) = (28, Some(4));
                (c.rope_theta, c.rms_norm_eps, c.tie_word_embeddings, c.max_position_embeddings) = (Some(1_000_000.0), 1e-6, false, 32_768);
            }
        }
        c
    }
}

/// What one case runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub shape: Shape,
    /// Rows per step (training) or sequences decoded together.
    pub batch: i64,
    /// Tokens per training row.
    pub seq: i64,
    /// Prompt tokens before decoding.
    pub prompt: i64,
    pub new_tokens: i64,
    pub checkpointing: bool,
    pub lora_dropout: f64,
}

impl Workload {
    /// `lora_step/<shape>/b<batch>xs<seq>[+ckpt]`, as the reference script names it.
    pub fn train_case(&self) -> String {
        format!("lora_step/{}/b{}xs{}{}", self.shape.name(), self.batch, self.seq, if self.checkpointing { "+ckpt" } else { "" })
    }

    /// `generate/<shape>/b<batch>/p<prompt>+n<new>`.
    pub fn generate_case(&self) -> String {
        format!("generate/{}/b{}/p{}+n{}", self.shape.name(), self.batch, self.prompt, self.new_tokens)
    }
}

/// Sizes the FLOP counts read from a configuration.
struct Dims {
    layers: f64,
    hidden: f64,
    ffn: f64,
    /// heads × head_dim and kv_heads × head_dim.
    q: f64,
    kv: f64,
    vocab: f64,
}

fn dims(c: &ModelConfig) -> Dims {
    let hd = c.head_dim() as f64;
    Dims {
        layers: c.num_hidden_layers as f64,
        hidden: c.hidden_size as f64,
        ffn: c.intermediate_size as f64,
        q: c.num_attention_heads as f64 * hd,
        kv: c.kv_heads() as f64 * hd,
        vocab: c.vocab_size as f64,
    }
}

/// Parameters in matrix products per token: every projection plus the output
/// head (the embedding lookup is not a product).
fn matmul_params(d: &Dims) -> f64 {
    d.layers * (d.hidden * d.q + 2.0 * d.hidden * d.kv + d.q * d.hidden + 3.0 * d.hidden * d.ffn) + d.vocab * d.hidden
}

/// Model FLOPs per trained token of a LoRA step on `seq`-token rows:
/// `4·N_mm + 6·N_lora + 12·L·seq·(heads·head_dim)`. The frozen base costs its forward
/// and the gradients of its activations (no weight gradients), the adapters the full
/// 6·N; attention's QKᵀ and AV cost 4·L·seq·d forward and twice that backward.
/// Recomputation under checkpointing is not counted (model FLOPs, not hardware FLOPs).
pub fn lora_step_flops_per_token(c: &ModelConfig, rank: usize, seq: i64) -> f64 {
    let d = dims(c);
    let r = rank as f64;
    let lora = d.layers * r * ((d.hidden + d.q) + 2.0 * (d.hidden + d.kv) + (d.q + d.hidden) + 2.0 * (d.hidden + d.ffn) + (d.ffn + d.hidden));
    4.0 * matmul_params(&d) + 6.0 * lora + 12.0 * d.layers * seq as f64 * d.q
}

/// FLOPs per generated token: `2·N_mm + 4·L·(prompt + new/2)·(heads·head_dim)`.
pub fn generate_flops_per_token(c: &ModelConfig, prompt: i64, new_tokens: i64) -> f64 {
    let d = dims(c);
    2.0 * matmul_params(&d) + 4.0 * d.layers * (prompt as f64 + new_tokens as f64 / 2.0) * d.q
}

/// One LoRA training step, ready to repeat.
pub struct LoraStep {
    model: CausalLM,
    _base: nn::VarStore,
    _adapters: nn::VarStore,
    params: Vec<(String, Tensor)>,
    adam: AdamW,
    input: Tensor,
    labels: Tensor,
    positions: Tensor,
    checkpointing: bool,
    steps: usize,
}

impl LoraStep {
    pub fn new(w: &Workload, device: Device, kind: Kind) -> Result<LoraStep, ModelError> {
        tch::manual_seed(0);
        let config = w.shape.config();
        let mut base = nn::VarStore::new(device);
        base.set_kind(kind);
        let mut model = CausalLM::new(&base.root(), &config)?;
        base.freeze();
        let adapters = nn::VarStore::new(device);
        let lora = LoraConfig { rank: LORA_RANK, alpha: LORA_ALPHA, dropout: w.lora_dropout, ..LoraConfig::default() };
        model.attach_lora(&adapters.root(), &lora)?;
        let mut params: Vec<(String, Tensor)> = adapters.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let adam = AdamW::new(&params, (0.9, 0.999), 1e-8, 0.0)?;
        let tokens = Tensor::randint(config.vocab_size as i64, [w.batch, w.seq], (Kind::Int64, device));
        let positions = Tensor::arange(w.seq, (Kind::Int64, device)).unsqueeze(0).repeat([w.batch, 1]);
        Ok(LoraStep {
            labels: tokens.narrow(1, 1, w.seq - 1),
            input: tokens,
            positions,
            model,
            _base: base,
            _adapters: adapters,
            params,
            adam,
            checkpointing: w.checkpointing,
            steps: 0,
        })
    }

    /// One step; returns the mean loss.
    pub fn step(&mut self) -> Result<f64, ModelError> {
        self.steps += 1;
        let n = self.labels.numel() as f64;
        let sum = self.model.forward_backward(&self.input, &self.positions, &self.labels, 1.0 / n, self.steps as i64, self.checkpointing)?;
        self.adam.step(&self.params, self.steps, LR, 0.0)?;
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.f_zero_()?;
            }
        }
        Ok(sum / n)
    }

    pub fn trainable_parameters(&self) -> u64 {
        self.params.iter().map(|(_, p)| p.numel() as u64).sum()
    }
}

/// Greedy decoding with a preallocated KV cache after a fixed random prompt.
pub struct Decode {
    model: CausalLM,
    _vs: nn::VarStore,
    prompt: Tensor,
}

impl Decode {
    pub fn new(w: &Workload, device: Device, kind: Kind) -> Result<Decode, ModelError> {
        tch::manual_seed(0);
        let config = w.shape.config();
        let mut vs = nn::VarStore::new(device);
        vs.set_kind(kind);
        let model = CausalLM::new(&vs.root(), &config)?;
        let prompt = Tensor::randint(config.vocab_size as i64, [w.batch, w.prompt], (Kind::Int64, device));
        Ok(Decode { model, _vs: vs, prompt })
    }

    /// Generates `n` tokens per row greedily; returns them, [batch, n].
    pub fn run(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let device = self.model.device();
            let (b, len) = (self.prompt.size()[0], self.prompt.size()[1]);
            let mut cache = KvCache::with_capacity(self.model.config.num_hidden_layers, (len + n) as usize);
            let positions = Tensor::arange(len, (Kind::Int64, device)).unsqueeze(0).repeat([b, 1]);
            let mut last = self.model.forward_last(&self.prompt, &positions, None, Some(&mut cache));
            let mut out = Vec::with_capacity(n as usize);
            for i in 0..n {
                let next = last.argmax(-1, false).unsqueeze(1);
                out.push(next.shallow_clone());
                if i + 1 == n {
                    break;
                }
                let pos = Tensor::full([b, 1], len + i, (Kind::Int64, device));
                last = self.model.forward_last(&next, &pos, None, Some(&mut cache));
            }
            Tensor::cat(&out, 1)
        })
    }
}

/// One case's result, in the reference script's format.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub case: String,
    pub workload: String,
    pub shape: String,
    pub batch: i64,
    /// Training: tokens per row; generation: prompt tokens.
    pub seq: i64,
    pub new_tokens: Option<i64>,
    pub checkpointing: bool,
    pub lora_dropout: f64,
    pub framework: String,
    pub versions: serde_json::Value,
    pub device: String,
    pub device_name: String,
    pub dtype: String,
    pub threads: i32,
    pub seconds_median: f64,
    pub seconds: Vec<f64>,
    /// Training: trained tokens (batch × seq); generation: new tokens (batch × new).
    pub tokens_per_second: f64,
    pub peak_memory_bytes: Option<u64>,
    pub memory_measure: String,
    pub cuda_max_allocated_bytes: Option<u64>,
    pub params: u64,
    pub trainable_params: Option<u64>,
    pub flops_per_token: f64,
    pub mfu: Option<f64>,
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Peak memory of a case: on CPU the process's resident-set high-water mark, reset
/// when the case starts; on CUDA the device memory in use sampled after each repeat.
struct MemoryProbe {
    gpu: GpuMemory,
    device: Device,
}

impl MemoryProbe {
    fn start(device: Device) -> MemoryProbe {
        if device == Device::Cpu {
            // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
            let _ = std::fs::write("/proc/self/clear_refs", "5");
        }
        MemoryProbe { gpu: GpuMemory::new(device), device }
    }

    fn sample(&mut self) {
        self.gpu.sample();
    }

    fn finish(&self) -> (Option<u64>, String) {
        match self.device {
            Device::Cpu => (super::peak_rss_bytes(), "peak_rss (VmHWM, process)".into()),
            _ => (self.gpu.peak, "cuda_used (total−free after each repeat)".into()),
        }
    }
}

/// Times `f` `warmup` times untimed, then `repeats` times.
fn time(device: Device, warmup: usize, repeats: usize, probe: &mut MemoryProbe, mut f: impl FnMut() -> Result<(), ModelError>) -> Result<Vec<f64>, ModelError> {
    for _ in 0..warmup {
        f()?;
    }
    sync(device);
    probe.sample();
    let mut seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        f()?;
        sync(device);
        seconds.push(t.elapsed().as_secs_f64());
        probe.sample();
    }
    Ok(seconds)
}

/// How to run the cases.
#[derive(Debug, Clone)]
pub struct Options {
    pub device: Device,
    pub kind: Kind,
    pub warmup: usize,
    pub repeats: usize,
    /// The device's peak dense FLOP/s in this kind, in TFLOP/s, for MFU (None: not reported).
    pub peak_tflops: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
fn timing(w: &Workload, workload: &str, case: String, opts: &Options, seconds: Vec<f64>, tokens: i64, memory: (Option<u64>, String), params: u64, flops_per_token: f64) -> Timing {
    let m = median(&seconds);
    let tokens_per_second = tokens as f64 / m.max(1e-12);
    Timing {
        case,
        workload: workload.into(),
        shape: w.shape.name().into(),
        batch: w.batch,
        seq: if workload == "generate" { w.prompt } else { w.seq },
        new_tokens: (workload == "generate").then_some(w.new_tokens),
        checkpointing: w.checkpointing && workload == "lora_step",
        lora_dropout: w.lora_dropout,
        framework: "icdbench/tch".into(),
        versions: serde_json::json!({ "icdbench": env!("CARGO_PKG_VERSION"), "libtorch": crate::device::libtorch_version() }),
        device: crate::device::name(opts.device).split(':').next().unwrap_or("cpu").to_string(),
        device_name: crate::device::fingerprint_name(opts.device),
        dtype: if opts.kind == Kind::BFloat16 { "bf16".into() } else { "f32".into() },
        threads: tch::get_num_threads(),
        seconds_median: m,
        seconds,
        tokens_per_second,
        peak_memory_bytes: memory.0,
        memory_measure: memory.1,
        cuda_max_allocated_bytes: None,
        params,
        trainable_params: None,
        flops_per_token,
        mfu: None,
    }
}

/// The base model's parameters (norms and biases included, adapters not), as PyTorch counts them.
fn base_parameters(vs: &nn::VarStore) -> u64 {
    vs.variables().values().map(|t| t.numel() as u64).sum()
}

/// Runs the LoRA step case.
pub fn measure_lora_step(w: &Workload, opts: &Options) -> Result<Timing, ModelError> {
    let mut probe = MemoryProbe::start(opts.device);
    let mut step = LoraStep::new(w, opts.device, opts.kind)?;
    let seconds = time(opts.device, opts.warmup, opts.repeats, &mut probe, || step.step().map(|_| ()))?;
    let flops = lora_step_flops_per_token(&w.shape.config(), LORA_RANK, w.seq);
    let params = base_parameters(&step._base);
    let mut t = timing(w, "lora_step", w.train_case(), opts, seconds, w.batch * w.seq, probe.finish(), params, flops);
    t.trainable_params = Some(step.trainable_parameters());
    t.mfu = opts.peak_tflops.map(|p| t.tokens_per_second * flops / (p * 1e12));
    Ok(t)
}

/// Runs the greedy decoding case.
pub fn measure_generate(w: &Workload, opts: &Options) -> Result<Timing, ModelError> {
    let mut probe = MemoryProbe::start(opts.device);
    let decode = Decode::new(w, opts.device, opts.kind)?;
    let seconds = time(opts.device, opts.warmup, opts.repeats, &mut probe, || {
        let _ = decode.run(w.new_tokens);
        Ok(())
    })?;
    let flops = generate_flops_per_token(&w.shape.config(), w.prompt, w.new_tokens);
    Ok(timing(w, "generate", w.generate_case(), opts, seconds, w.batch * w.new_tokens, probe.finish(), base_parameters(&decode._vs), flops))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(checkpointing: bool) -> Workload {
        Workload { shape: Shape::Tiny, batch: 2, seq: 16, prompt: 8, new_tokens: 4, checkpointing, lora_dropout: 0.05 }
    }

    #[test]
    fn tiny_workloads_run() {
        let _rng = crate::torch_rng_lock();
        let mut step = LoraStep::new(&tiny(false), Device::Cpu, Kind::Float).unwrap();
        // Random tokens over a 1000-word vocabulary: the loss starts near ln(1000) = 6.9.
        let loss = step.step().unwrap();
        assert!((loss - 1000f64.ln()).abs() < 1.0, "loss {loss}");
        assert_eq!(Decode::new(&tiny(false), Device::Cpu, Kind::Float).unwrap().run(5).size(), [2, 5]);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(tiny(true).train_case(), "lora_step/tiny/b2xs16+ckpt");
        assert_eq!(tiny(true).generate_case(), "generate/tiny/b2/p8+n4");
    }

    #[test]
    fn checkpointed_steps_train_alike() {
        let _rng = crate::torch_rng_lock();
        let mut plain = LoraStep::new(&tiny(false), Device::Cpu, Kind::Float).unwrap();
        let mut ckpt = LoraStep::new(&tiny(true), Device::Cpu, Kind::Float).unwrap();
        for _ in 0..3 {
            let (a, b) = (plain.step().unwrap(), ckpt.step().unwrap());
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn flop_counts_by_hand() {
        // Tiny: 2 layers, hidden 64, 4 heads × 16 (q 64), 2 KV heads (kv 32), FFN 128, vocab 1000.
        let c = Shape::Tiny.config();
        let n_mm = 2.0 * (64.0 * 64.0 + 2.0 * 64.0 * 32.0 + 64.0 * 64.0 + 3.0 * 64.0 * 128.0) + 1000.0 * 64.0;
        let lora = 2.0 * 16.0 * ((64.0 + 64.0) + 2.0 * (64.0 + 32.0) + (64.0 + 64.0) + 2.0 * (64.0 + 128.0) + (128.0 + 64.0));
        assert_eq!(lora_step_flops_per_token(&c, 16, 10), 4.0 * n_mm + 6.0 * lora + 12.0 * 2.0 * 10.0 * 64.0);
        assert_eq!(generate_flops_per_token(&c, 8, 4), 2.0 * n_mm + 4.0 * 2.0 * 10.0 * 64.0);
        // The 8B shape has the published parameter count (8.03 B).
        let p8 = {
            let d = dims(&Shape::Llama31_8b.config());
            matmul_params(&d) + d.vocab * d.hidden
        };
        assert!((p8 / 1e9 - 8.03).abs() < 0.01, "{p8}");
    }
}
