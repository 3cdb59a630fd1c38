//! The model layer at the two sizes the project runs (see `icdbench::train::speed`):
//! a LoRA training step (r=16 on all seven projections, batch 8 x 128, AdamW), plain
//! and with activation checkpointing, and greedy decoding of 32 tokens after a
//! 256-token prompt, for a tiny 2-layer Llama and a random SmolLM2-135M-shaped Llama.
//! f32 on the CPU.
//!
//! `cargo test --bench model` runs each case once; the SmolLM2-shaped cases take
//! long in a debug build, so there they run only with ICDBENCH_BENCH_LARGE=1.
//! For a side-by-side with PyTorch + transformers + PEFT: scripts/bench/compare.sh.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use icdbench::train::speed::{Decode, LoraStep, Shape, Workload};
use std::hint::black_box;
use tch::{Device, Kind};

/// The shapes to run: under `cargo test` (no `--bench` argument) the large one only on request.
fn shapes() -> Vec<Shape> {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let large = benchmarking || std::env::var("ICDBENCH_BENCH_LARGE").is_ok_and(|v| v == "1");
    if !large {
        eprintln!("model bench: SmolLM2-135M-shaped cases skipped in test mode (set ICDBENCH_BENCH_LARGE=1)");
        return vec![Shape::Tiny];
    }
    vec![Shape::Tiny, Shape::Smollm2]
}

/// Batch 8 × 128 for training, 32 tokens after 256 for decoding, LoRA dropout 0.05.
fn workload(shape: Shape, checkpointing: bool) -> Workload {
    Workload { shape, batch: 8, seq: 128, prompt: 256, new_tokens: 32, checkpointing, lora_dropout: 0.05 }
}

fn lora_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("lora_step_b8x128_r16_all");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for shape in shapes() {
        for checkpointing in [false, true] {
            let w = workload(shape, checkpointing);
            let mut step = LoraStep::new(&w, Device::Cpu, Kind::Float).expect("bench shapes are valid");
            g.throughput(Throughput::Elements((w.batch * w.seq) as u64));
            let id = format!("{}{}", shape.name(), if checkpointing { "+ckpt" } else { "" });
            g.bench_function(BenchmarkId::from_parameter(id), |b| b.iter(|| black_box(step.step().expect("a bench step runs"))));
        }
    }
    g.finish();
}

fn greedy_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("greedy_decode_32_after_256");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for shape in shapes() {
        let w = workload(shape, false);
        g.throughput(Throughput::Elements(w.new_tokens as u64));
        let decode = Decode::new(&w, Device::Cpu, Kind::Float).expect("bench shapes are valid");
        g.bench_function(BenchmarkId::from_parameter(shape.name()), |b| b.iter(|| black_box(decode.run(w.new_tokens))));
    }
    g.finish();
}

criterion_group!(benches, lora_step, greedy_decode);
criterion_main!(benches);
