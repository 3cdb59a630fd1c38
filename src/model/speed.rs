//! The model layer's speed on fixed workloads, measured the same way as
//! `scripts/bench/pytorch_reference.py` measures PyTorch + transformers + PEFT,
//! so the two can be compared side by side (`scripts/bench/compare.sh`).
//!
//! Workloads, on a tiny Llama and a SmolLM2-135M-shaped Llama (random weights):
//! - `lora_step`: forward + backward + AdamW on LoRA adapters (r=16, alpha=32, all
//!   seven projections), batch 8 × 128 tokens;
//! - `generate`: greedy decoding of 32 new tokens after a 256-token prompt, batch 1,
//!   KV cache (prefill included).

use super::config::ModelConfig;
use super::llama::{tiny_config, CausalLM, KvCache};
use super::lora::LoraConfig;
use super::ModelError;
use serde::Serialize;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

pub const BATCH: i64 = 8;
pub const SEQ: i64 = 128;
pub const PROMPT: i64 = 256;
pub const NEW_TOKENS: i64 = 32;

/// The two model shapes the project runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Tiny,
    Smollm2,
}

impl Shape {
    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "tiny" => Some(Shape::Tiny),
            "smollm2" | "smollm2-135m" => Some(Shape::Smollm2),
            _ => None,
        }
    }

    /// The name the PyTorch reference script prints.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Tiny => "tiny",
            Shape::Smollm2 => "smollm2-135m",
        }
    }

    /// Same shapes as the reference script: tiny (2 layers, hidden 64, vocab 1000) and SmolLM2-135M.
    pub fn config(self) -> ModelConfig {
        match self {
            Shape::Tiny => tiny_config(1000),
            Shape::Smollm2 => {
                let mut c = tiny_config(49_152);
                c.hidden_size = 576;
                c.intermediate_size = 1536;
                c.num_hidden_layers = 30;
                c.num_attention_heads = 9;
                c.num_key_value_heads = Some(3);
                c.rope_theta = Some(100_000.0);
                c.rms_norm_eps = 1e-5;
                c.tie_word_embeddings = true;
                c.max_position_embeddings = 8192;
                c
            }
        }
    }
}

/// One LoRA training step, ready to repeat.
pub struct LoraStep {
    model: CausalLM,
    _base: nn::VarStore,
    _adapters: nn::VarStore,
    opt: nn::Optimizer,
    input: Tensor,
    target: Tensor,
    positions: Tensor,
    vocab: i64,
}

impl LoraStep {
    pub fn new(shape: Shape, device: Device, kind: Kind) -> Result<LoraStep, ModelError> {
        tch::manual_seed(0);
        let config = shape.config();
        let mut base = nn::VarStore::new(device);
        base.set_kind(kind);
        let mut model = CausalLM::new(&base.root(), &config)?;
        base.freeze();
        let adapters = nn::VarStore::new(device);
        let lora = LoraConfig { rank: 16, alpha: 32.0, dropout: 0.05, ..LoraConfig::default() };
        model.attach_lora(&adapters.root(), &lora)?;
        let opt = nn::AdamW::default().build(&adapters, 1e-4)?;
        let vocab = config.vocab_size as i64;
        let tokens = Tensor::randint(vocab, [BATCH, SEQ + 1], (Kind::Int64, device));
        let positions = Tensor::arange(SEQ, (Kind::Int64, device)).unsqueeze(0).repeat([BATCH, 1]);
        Ok(LoraStep {
            input: tokens.narrow(1, 0, SEQ),
            target: tokens.narrow(1, 1, SEQ).reshape([-1]),
            positions,
            model,
            _base: base,
            _adapters: adapters,
            opt,
            vocab,
        })
    }

    /// One step; returns the loss.
    pub fn step(&mut self) -> f64 {
        let logits = self.model.forward(&self.input, &self.positions, None, None, true);
        let loss = logits.view([-1, self.vocab]).cross_entropy_for_logits(&self.target);
        self.opt.backward_step(&loss);
        loss.double_value(&[])
    }

    pub fn tokens(&self) -> i64 {
        BATCH * SEQ
    }
}

/// Greedy decoding with the KV cache after a fixed random prompt.
pub struct Decode {
    model: CausalLM,
    _vs: nn::VarStore,
    prompt: Tensor,
}

impl Decode {
    pub fn new(shape: Shape, device: Device, kind: Kind) -> Result<Decode, ModelError> {
        tch::manual_seed(0);
        let config = shape.config();
        let mut vs = nn::VarStore::new(device);
        vs.set_kind(kind);
        let model = CausalLM::new(&vs.root(), &config)?;
        let prompt = Tensor::randint(config.vocab_size as i64, [1, PROMPT], (Kind::Int64, device));
        Ok(Decode { model, _vs: vs, prompt })
    }

    /// Generates `n` tokens greedily; returns them.
    pub fn run(&self, n: i64) -> Vec<i64> {
        tch::no_grad(|| {
            let device = self.model.device();
            let len = self.prompt.size()[1];
            let mut cache = KvCache::new(self.model.config.num_hidden_layers);
            let positions = Tensor::arange(len, (Kind::Int64, device)).unsqueeze(0);
            let mut logits = self.model.forward(&self.prompt, &positions, None, Some(&mut cache), false);
            let mut out = Vec::with_capacity(n as usize);
            for i in 0..n {
                let next = logits.select(1, -1).argmax(-1, false);
                out.push(next.int64_value(&[0]));
                if i + 1 == n {
                    break;
                }
                let pos = Tensor::from_slice(&[len + i]).view([1, 1]).to_device(device);
                logits = self.model.forward(&next.view([1, 1]), &pos, None, Some(&mut cache), false);
            }
            out
        })
    }
}

/// A timing line in the reference script's format.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub case: String,
    pub device: String,
    pub framework: String,
    pub threads: i32,
    pub seconds_median: f64,
    pub seconds: Vec<f64>,
    pub tokens_per_second: f64,
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

/// Runs `f` `warmup` times, then `repeats` timed times.
pub fn time(case: &str, device: Device, tokens: i64, warmup: usize, repeats: usize, mut f: impl FnMut()) -> Timing {
    for _ in 0..warmup {
        f();
    }
    sync(device);
    let mut seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        f();
        sync(device);
        seconds.push(t.elapsed().as_secs_f64());
    }
    let m = median(&seconds);
    Timing {
        case: case.to_string(),
        device: super::super::device::name(device),
        framework: "icdbench/tch".into(),
        threads: tch::get_num_threads(),
        seconds_median: m,
        seconds,
        tokens_per_second: tokens as f64 / m.max(1e-12),
    }
}

/// Both workloads for one shape.
pub fn measure(shape: Shape, device: Device, kind: Kind, repeats: usize, cases: &[&str]) -> Result<Vec<Timing>, ModelError> {
    let mut out = Vec::new();
    if cases.contains(&"lora_step") {
        let mut step = LoraStep::new(shape, device, kind)?;
        let tokens = step.tokens();
        out.push(time(&format!("lora_step/{}", shape.name()), device, tokens, 1, repeats, || {
            step.step();
        }));
    }
    if cases.contains(&"generate") {
        let decode = Decode::new(shape, device, kind)?;
        out.push(time(&format!("generate/{}", shape.name()), device, NEW_TOKENS, 1, repeats, || {
            decode.run(NEW_TOKENS);
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_workloads_run() {
        let mut step = LoraStep::new(Shape::Tiny, Device::Cpu, Kind::Float).unwrap();
        // Random tokens over a 1000-word vocabulary: the loss starts near ln(1000) = 6.9.
        let loss = step.step();
        assert!((loss - 1000f64.ln()).abs() < 1.0, "loss {loss}");
        assert_eq!(Decode::new(Shape::Tiny, Device::Cpu, Kind::Float).unwrap().run(5).len(), 5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
