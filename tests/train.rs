//! The training loop on a tiny model (CPU, seconds): it learns a toy task, scores
//! only answer tokens, accumulates gradients exactly, resumes bit-identically,
//! leaves LoRA's base alone, refuses corrupt checkpoints by name, and counts costs.

use icdbench::config::{LrSchedule, Train};
use icdbench::model::llama::{tiny_config, CausalLM};
use icdbench::model::lora::LoraConfig;
use icdbench::train::{train, validation_loss, ExampleKind, TrainError, TrainExample, TrainOptions, TrainReport, Trainable};
use std::path::Path;
use std::sync::Mutex;
use tch::{nn, Device, Kind, Tensor};

const VOCAB: usize = 32;
const BOS: u32 = 1;
const EOS: u32 = 2;
const SEP: u32 = 3;
const PAD: u32 = 0;

/// libtorch's generator is process-wide: tests that draw from it take turns.
static TORCH: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    // CUDA registers with libtorch only if loaded before its first op (see device.rs).
    if Path::new("/dev/nvidiactl").exists() {
        let _ = icdbench::device::cuda_backend();
    }
    let guard = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    guard
}

fn model(seed: i64) -> (nn::VarStore, CausalLM) {
    model_on(seed, Device::Cpu, Kind::Float)
}

fn model_on(seed: i64, device: Device, kind: Kind) -> (nn::VarStore, CausalLM) {
    tch::manual_seed(seed);
    let mut vs = nn::VarStore::new(device);
    vs.set_kind(kind);
    let m = CausalLM::new(&vs.root(), &tiny_config(VOCAB)).unwrap();
    (vs, m)
}

fn lora(model: &mut CausalLM, dropout: f64) -> nn::VarStore {
    let lora_vs = nn::VarStore::new(model.device());
    let cfg = LoraConfig { rank: 4, alpha: 8.0, dropout, targets: vec!["q".into(), "v".into(), "up".into(), "down".into()] };
    model.attach_lora(&lora_vs.root(), &cfg).unwrap();
    lora_vs
}

/// Copy task: `BOS a b c SEP` -> `a b c EOS`, letters from 8 tokens; every 4th is a "span".
fn copy_task(n: usize, offset: usize) -> Vec<TrainExample> {
    (offset..offset + n)
        .map(|i| {
            let l = |k: usize| 4 + ((i * 7 + k * (i / 8 + 3)) % 8) as u32;
            let (a, b, c) = (l(0), l(1), l(2));
            let kind = if i % 4 == 0 { ExampleKind::Span } else { ExampleKind::Document };
            TrainExample { prompt_ids: vec![BOS, a, b, c, SEP], target_ids: vec![a, b, c, EOS], kind, pair: 0 }
        })
        .collect()
}

fn cfg(steps: usize, batch_size: usize, grad_accum: usize, lr: f64) -> Train {
    Train {
        lr,
        schedule: LrSchedule::Cosine,
        warmup_steps: 5,
        steps,
        batch_size,
        grad_accum,
        max_grad_norm: 1.0,
        weight_decay: 0.01,
        max_length: 64,
        ..Train::default()
    }
}

fn opts(seed: u64) -> TrainOptions {
    TrainOptions { seed, pad_id: PAD, ..TrainOptions::default() }
}

fn snapshot(named: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    named.iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect()
}

fn max_diff(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

fn bit_identical(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((na, ta), (nb, tb))| na == nb && ta.equal(tb))
}

/// Sum of the fed examples' tokens: the first `steps × per_step` entries of the schedule, wrapped.
fn fed_tokens(examples: &[TrainExample], schedule: &[usize], fed: usize) -> (u64, u64, u64) {
    let (mut span, mut doc, mut target) = (0, 0, 0);
    for p in 0..fed {
        let ex = &examples[schedule[p % schedule.len()]];
        match ex.kind {
            ExampleKind::Span => span += ex.len() as u64,
            ExampleKind::Document => doc += ex.len() as u64,
        }
        target += ex.target_ids.len() as u64;
    }
    (span, doc, target)
}

#[test]
fn toy_task_is_learnt_and_costs_add_up() {
    let _g = lock();
    let (vs, m) = model(1);
    let examples = copy_task(200, 0);
    let val = copy_task(32, 1000);
    let schedule: Vec<usize> = (0..examples.len()).rev().collect();
    const STEPS: usize = 60;
    let cfg = cfg(STEPS, 16, 1, 1e-2);
    let trainable = Trainable::full(&vs);
    let o = TrainOptions { validate_every: 20, ..opts(5) };
    let r = train(&m, &trainable, &examples, &schedule, &val, &cfg, &o).unwrap();

    let first = r.loss_curve[0].loss;
    let last: f32 = r.loss_curve[STEPS - 10..].iter().map(|p| p.loss).sum::<f32>() / 10.0;
    eprintln!("toy task: loss {first:.3} -> {last:.3}; validation {:?}", r.validation);
    assert!(first > 2.5, "starts near ln(32) = 3.47: {first}");
    assert!(last < 0.05, "the copy task is learnt: final loss {last}");
    assert_eq!(r.validation.iter().map(|v| v.step).collect::<Vec<_>>(), [20, 40, 60]);
    assert!(r.validation[2].loss < r.validation[0].loss);
    assert_eq!(r.validation[0].target_tokens, 32 * 4);

    // Costs: 60 steps × 16 examples, wrapping round the 200-entry schedule.
    assert_eq!((r.optimizer_steps, r.total_steps, r.finished, r.resumed_from_step), (STEPS, STEPS, true, None));
    assert_eq!(r.micro_batches, STEPS as u64);
    let fed = STEPS * 16;
    let (span, doc, target) = fed_tokens(&examples, &schedule, fed);
    assert_eq!(r.examples_seen.total(), fed as u64);
    assert_eq!((r.input_tokens.span, r.input_tokens.document), (span, doc));
    assert_eq!(r.target_tokens.total(), target);
    assert!(r.padded_tokens >= r.input_tokens.total());
    assert_eq!(r.padded_tokens, r.input_tokens.total(), "equal lengths need no padding");
    let n = trainable.parameters();
    assert_eq!(r.trainable_parameters, n);
    assert_eq!(r.flops_per_token, 6.0 * n as f64);
    assert_eq!(r.estimated_flops, 6.0 * n as f64 * r.padded_tokens as f64);
    assert!(r.estimated_flops > 0.0 && r.wall_seconds > 0.0 && r.tokens_per_second > 0.0);
    assert!(r.peak_rss_bytes.is_some_and(|b| b > 1 << 20));
    assert_eq!(r.peak_gpu_memory_bytes, None);
    eprintln!(
        "costs: {} examples ({} span / {} document), {} input tokens, {} padded, {:.3e} FLOPs, {:.2} s, {:.0} tok/s, peak RSS {} MiB",
        r.examples_seen.total(),
        r.examples_seen.span,
        r.examples_seen.document,
        r.input_tokens.total(),
        r.padded_tokens,
        r.estimated_flops,
        r.wall_seconds,
        r.tokens_per_second,
        r.peak_rss_bytes.unwrap_or(0) >> 20
    );
    // The report is a record: it survives JSON.
    let back: TrainReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.loss_curve, r.loss_curve);
}

#[test]
fn loss_is_the_mean_over_answer_tokens_only() {
    let _g = lock();
    let (_vs, m) = model(2);
    // Different prompt and target lengths, so padding is exercised too.
    let a = TrainExample { prompt_ids: vec![BOS, 5, 6, 7, 8, SEP], target_ids: vec![9, EOS], kind: ExampleKind::Span, pair: 0 };
    let b = TrainExample { prompt_ids: vec![BOS, 10], target_ids: vec![11, 12, 13, EOS], kind: ExampleKind::Document, pair: 1 };
    // By hand: log-softmax of the unpadded row, scored at the target positions only.
    let by_hand = |e: &TrainExample| -> (f64, u64) {
        let ids: Vec<i64> = e.prompt_ids.iter().chain(&e.target_ids).map(|&t| t as i64).collect();
        let n = ids.len() as i64;
        let input = Tensor::from_slice(&ids).view([1, n]);
        let pos = Tensor::arange(n, (Kind::Int64, Device::Cpu)).view([1, n]);
        let logp = m.forward(&input, &pos, None, None, false).log_softmax(-1, Kind::Float);
        let p = e.prompt_ids.len();
        let mut sum = 0.0;
        for (k, &t) in e.target_ids.iter().enumerate() {
            sum -= logp.double_value(&[0, (p + k - 1) as i64, t as i64]);
        }
        (sum, e.target_ids.len() as u64)
    };
    let (sa, na) = by_hand(&a);
    let (sb, nb) = by_hand(&b);
    let (loss, count) = validation_loss(&m, &[a.clone(), b.clone()], 2, PAD).unwrap();
    assert_eq!(count, na + nb);
    assert!((loss - (sa + sb) / (na + nb) as f64).abs() < 1e-5, "{loss} vs {}", (sa + sb) / (na + nb) as f64);

    // A prompt token is context, not a label: the loss moves with the target.
    let mut a2 = a.clone();
    a2.target_ids[0] = 14;
    let (changed, _) = validation_loss(&m, &[a2], 1, PAD).unwrap();
    let (alone, _) = validation_loss(&m, std::slice::from_ref(&a), 1, PAD).unwrap();
    assert!((alone - sa / na as f64).abs() < 1e-5);
    assert!((changed - alone).abs() > 1e-4);
    // Padding never counts: a batch of padded rows gives the single rows' token-weighted mean.
    let (padded, _) = validation_loss(&m, &[b.clone(), a.clone(), b], 3, 7).unwrap();
    assert!((padded - (sa + 2.0 * sb) / (na + 2 * nb) as f64).abs() < 1e-5);
}

#[test]
fn accumulation_2x4_matches_one_batch_of_8() {
    let _g = lock();
    let examples = copy_task(64, 0);
    let schedule: Vec<usize> = (0..64).collect();
    let o = TrainOptions { length_group: 1, ..opts(3) };
    let run = |bs: usize, ga: usize| {
        let (vs, m) = model(4);
        let t = Trainable::full(&vs);
        // Adam divides by √v, so float noise in tiny gradients grows with lr: 1e-3 keeps it under 1e-6.
        let r = train(&m, &t, &examples, &schedule, &[], &cfg(4, bs, ga, 1e-3), &o).unwrap();
        (snapshot(&t.named), r)
    };
    let (p1, r1) = run(8, 1);
    let (p2, r2) = run(4, 2);
    let d = max_diff(&p1, &p2);
    eprintln!(
        "accumulation: max |Δparam| {d:.2e}; losses {:?} vs {:?}",
        r1.loss_curve.iter().map(|p| p.loss).collect::<Vec<_>>(),
        r2.loss_curve.iter().map(|p| p.loss).collect::<Vec<_>>()
    );
    assert!(d < 1e-6, "{d}");
    assert_eq!((r1.micro_batches, r2.micro_batches), (4, 8));
    for (a, b) in r1.loss_curve.iter().zip(&r2.loss_curve) {
        assert!((a.loss - b.loss).abs() < 1e-5);
    }
    let (before, _) = model(4);
    assert!(max_diff(&Trainable::full(&before).named, &p1) > 1e-4, "training moved the weights");
}

/// By epochs (`steps = 0`) a run feeds exactly `ceil(epochs × schedule)` entries, once each
/// for one epoch, the last step short: nothing wraps round to the schedule's start.
#[test]
fn a_run_by_epochs_feeds_the_schedule_exactly_once_with_a_short_last_step() {
    let _g = lock();
    let examples = copy_task(30, 0);
    // 21 of the 30 examples, in a shuffled order.
    let schedule: Vec<usize> = (0..21).map(|i| (i * 13) % 30).collect();
    let (vs, m) = model(6);
    let c = Train { epochs: 1.0, ..cfg(0, 4, 2, 1e-3) };
    let r = train(&m, &Trainable::full(&vs), &examples, &schedule, &[], &c, &TrainOptions { length_group: 1, ..opts(2) }).unwrap();
    // 21 entries at 8 per step: steps of 8, 8 and 5 (micro-batches 4+4, 4+4, 4+1).
    assert_eq!((r.total_steps, r.optimizer_steps, r.micro_batches, r.loss_curve.len()), (3, 3, 6, 3));
    assert_eq!(r.examples_seen.total(), 21);
    let (span, doc, target) = fed_tokens(&examples, &schedule, 21);
    assert_eq!((r.input_tokens.span, r.input_tokens.document, r.target_tokens.total()), (span, doc, target));
    assert!(r.loss_curve.iter().all(|p| p.loss.is_finite()));
}

fn resume_case(use_lora: bool) {
    let examples = copy_task(48, 0);
    let schedule: Vec<usize> = (0..48).map(|i| (i * 5) % 48).collect();
    let c = Train { lora_dropout: 0.1, ..cfg(20, 4, 2, 5e-3) };
    let tmp = tempfile::tempdir().unwrap();
    let val = copy_task(8, 500);
    let run = |dir: &Path, stop_after: Option<usize>| -> (Vec<(String, Tensor)>, TrainReport) {
        let (mut vs, mut m) = model(6);
        let lora_vs = if use_lora { Some(lora(&mut m, 0.1)) } else { None };
        let t = match &lora_vs {
            Some(l) => Trainable::lora(l, &mut vs),
            None => Trainable::full(&vs),
        };
        let o = TrainOptions { checkpoint_dir: Some(dir.to_path_buf()), checkpoint_every: 5, validate_every: 4, stop_after, length_group: 2, ..opts(11) };
        let r = train(&m, &t, &examples, &schedule, &val, &c, &o).unwrap();
        (snapshot(&t.named), r)
    };
    let (whole, rw) = run(&tmp.path().join("whole"), None);
    let killed = tmp.path().join("killed");
    let (_, rk) = run(&killed, Some(12));
    assert_eq!((rk.optimizer_steps, rk.finished), (12, false));
    assert!(killed.join("step-00000010").is_dir(), "the last checkpoint is kept");
    assert!(!killed.join("step-00000012").exists(), "a kill writes nothing");
    let (resumed, rr) = run(&killed, None);
    assert_eq!(rr.resumed_from_step, Some(10));
    assert!(rr.finished);
    assert!(bit_identical(&whole, &resumed), "lora={use_lora}: max |Δ| {:.3e}", max_diff(&whole, &resumed));
    assert_eq!(rw.loss_curve, rr.loss_curve);
    assert_eq!(rw.validation, rr.validation);
    assert_eq!(
        (rw.micro_batches, rw.examples_seen, rw.input_tokens, rw.padded_tokens),
        (rr.micro_batches, rr.examples_seen, rr.input_tokens, rr.padded_tokens)
    );
    // Finished: running again is a no-op that reports the same run.
    let (again, ra) = run(&killed, None);
    assert_eq!(ra.resumed_from_step, Some(20));
    assert!(bit_identical(&whole, &again));
    eprintln!("resume (lora={use_lora}): 20 steps, killed after 12, resumed from 10: bit-identical, final loss {}", rr.loss_curve[19].loss);
}

#[test]
fn resumed_full_run_is_bit_identical() {
    let _g = lock();
    resume_case(false);
}

#[test]
fn resumed_lora_run_with_dropout_is_bit_identical() {
    let _g = lock();
    resume_case(true);
}

#[test]
fn lora_trains_adapters_and_leaves_the_base_alone() {
    let _g = lock();
    let (mut vs, mut m) = model(7);
    let lora_vs = lora(&mut m, 0.05);
    let base = snapshot(&Trainable::full(&vs).named);
    let t = Trainable::lora(&lora_vs, &mut vs);
    let adapters = snapshot(&t.named);
    let examples = copy_task(64, 0);
    let schedule: Vec<usize> = (0..64).collect();
    let r = train(&m, &t, &examples, &schedule, &[], &cfg(30, 8, 1, 1e-2), &opts(2)).unwrap();
    assert!(bit_identical(&base, &snapshot(&Trainable::full(&vs).named)), "base weights changed");
    assert!(max_diff(&adapters, &t.named) > 1e-3, "adapters did not train");
    assert!(r.loss_curve[29].loss < r.loss_curve[0].loss);
    assert_eq!(r.frozen_parameters, base.iter().map(|(_, t)| t.numel() as u64).sum::<u64>());
    assert_eq!(r.flops_per_token, 4.0 * r.frozen_parameters as f64 + 6.0 * r.trainable_parameters as f64);
    assert!(r.flops_formula.contains("LoRA"));
    eprintln!(
        "lora: {} adapter / {} frozen parameters, loss {:.3} -> {:.3}",
        r.trainable_parameters, r.frozen_parameters, r.loss_curve[0].loss, r.loss_curve[29].loss
    );
}

#[test]
fn corrupt_or_foreign_checkpoints_are_refused_by_name() {
    let _g = lock();
    let examples = copy_task(16, 0);
    let schedule: Vec<usize> = (0..16).collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let o = TrainOptions { checkpoint_dir: Some(dir.clone()), checkpoint_every: 2, ..opts(1) };
    let c = cfg(4, 4, 1, 1e-3);
    let attempt = |c: &Train| -> Result<TrainReport, TrainError> {
        let (vs, m) = model(8);
        train(&m, &Trainable::full(&vs), &examples, &schedule, &[], c, &o)
    };
    attempt(&c).unwrap();
    let ckpt = dir.join("step-00000004");
    let mut only: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    only.sort();
    assert_eq!(only, ["progress.json", "step-00000004"], "older checkpoints are removed, no partial left; progress is recorded beside");
    let progress = icdbench::train::Progress::read(&dir).expect("progress.json parses");
    assert_eq!((progress.step, progress.total, progress.checkpoint_step), (4, 4, Some(4)));

    // Another run's settings.
    let e = attempt(&cfg(4, 4, 1, 2e-3)).unwrap_err().to_string();
    assert!(e.contains("state.json") && e.contains("lr") && e.contains("different run"), "{e}");
    // Truncated tensors.
    let tensors = ckpt.join("state.safetensors");
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() / 2]).unwrap();
    let e = attempt(&c).unwrap_err().to_string();
    assert!(e.contains("state.safetensors"), "{e}");
    // A tensor of the wrong shape (another model).
    let (vs, _) = model(8);
    let named: Vec<(String, Tensor)> = Trainable::full(&vs).named.into_iter().map(|(n, t)| (format!("param.{n}"), t.detach().narrow(0, 0, 1).copy())).collect();
    icdbench::model::weights::save_safetensors(&tensors, &named).unwrap();
    let e = attempt(&c).unwrap_err().to_string();
    assert!(e.contains("state.safetensors") && e.contains("shape"), "{e}");
    // Garbage JSON.
    std::fs::write(ckpt.join("state.json"), "{\"step\": 4, ").unwrap();
    let e = attempt(&c).unwrap_err().to_string();
    assert!(e.contains("state.json") && e.contains("corrupt"), "{e}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let _g = lock();
    let (vs, m) = model(9);
    let t = Trainable::full(&vs);
    let ex = copy_task(4, 0);
    let c = cfg(2, 2, 1, 1e-3);
    let err = |examples: &[TrainExample], schedule: &[usize], c: &Train| train(&m, &t, examples, schedule, &[], c, &opts(0)).unwrap_err().to_string();
    assert!(err(&ex, &[0, 9], &c).contains("example 9"));
    assert!(err(&ex, &[], &c).contains("schedule is empty"));
    assert!(err(&ex, &[0], &Train { batch_size: 0, ..c.clone() }).contains("batch_size"));
    let mut big = ex.clone();
    big[1].target_ids.push(VOCAB as u32);
    assert!(err(&big, &[0], &c).contains("vocabulary"));
    let mut empty = ex.clone();
    empty[2].target_ids.clear();
    assert!(err(&empty, &[0], &c).contains("empty"));
    assert!(err(&ex, &[0], &Train { max_length: 5, ..c }).contains("max_length"));
}

#[test]
fn length_grouping_cuts_padding_and_feeds_the_same_tokens() {
    let _g = lock();
    // Lengths 3..=42, shuffled by the schedule.
    let examples: Vec<TrainExample> = (0..160)
        .map(|i| {
            let p = 2 + (i * 37) % 40;
            TrainExample { prompt_ids: vec![5; p], target_ids: vec![6, EOS], kind: if i % 2 == 0 { ExampleKind::Span } else { ExampleKind::Document }, pair: i }
        })
        .collect();
    let schedule: Vec<usize> = (0..160).map(|i| (i * 61) % 160).collect();
    let run = |group: usize| {
        let (vs, m) = model(10);
        let o = TrainOptions { length_group: group, ..opts(4) };
        train(&m, &Trainable::full(&vs), &examples, &schedule, &[], &cfg(20, 8, 1, 0.0), &o).unwrap()
    };
    let plain = run(1);
    let grouped = run(64);
    eprintln!(
        "padding: {} real tokens; {} positions without grouping, {} with ({:.0}% less)",
        plain.input_tokens.total(),
        plain.padded_tokens,
        grouped.padded_tokens,
        100.0 * (1.0 - grouped.padded_tokens as f64 / plain.padded_tokens as f64)
    );
    assert_eq!(plain.input_tokens, grouped.input_tokens);
    assert_eq!(plain.examples_seen, grouped.examples_seen);
    assert!(grouped.padded_tokens >= grouped.input_tokens.total());
    assert!((grouped.padded_tokens as f64) < 0.8 * plain.padded_tokens as f64);
}

/// On a machine with an NVIDIA GPU and a CUDA libtorch: a bf16 base with f32
/// adapters trains on cuda:0, a killed run resumes, and GPU memory is reported.
/// Skipped (passes) elsewhere.
#[test]
fn lora_on_cuda_trains_resumes_and_reports_memory() {
    if !Path::new("/dev/nvidiactl").exists() {
        eprintln!("no NVIDIA GPU here: skipped");
        return;
    }
    let device = match icdbench::device::resolve("cuda") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let _g = lock();
    let examples = copy_task(64, 0);
    let schedule: Vec<usize> = (0..64).collect();
    let c = cfg(20, 8, 2, 2e-2);
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &Path, stop_after: Option<usize>| -> (Vec<(String, Tensor)>, TrainReport) {
        let (mut vs, mut m) = model_on(12, device, Kind::BFloat16);
        let lora_vs = lora(&mut m, 0.1);
        let t = Trainable::lora(&lora_vs, &mut vs);
        let o = TrainOptions { checkpoint_dir: Some(dir.to_path_buf()), checkpoint_every: 5, validate_every: 10, stop_after, ..opts(3) };
        let r = train(&m, &t, &examples, &schedule, &copy_task(16, 300), &c, &o).unwrap();
        (snapshot(&t.named), r)
    };
    let (whole, rw) = run(&tmp.path().join("whole"), None);
    let killed = tmp.path().join("killed");
    run(&killed, Some(12));
    let (resumed, rr) = run(&killed, None);
    let d = max_diff(&whole, &resumed);
    eprintln!(
        "cuda: {:?}, loss {:.3} -> {:.3}, validation {:?}, {:.0} tok/s, peak GPU memory {:?} B ({:?}), resumed from {:?}: bit-identical {}, max |Δ| {d:.2e}",
        device,
        rw.loss_curve[0].loss,
        rw.loss_curve[19].loss,
        rw.validation.iter().map(|v| v.loss).collect::<Vec<_>>(),
        rw.tokens_per_second,
        rw.peak_gpu_memory_bytes,
        rw.gpu_memory_note,
        rr.resumed_from_step,
        bit_identical(&whole, &resumed)
    );
    assert!(rw.loss_curve[19].loss < rw.loss_curve[0].loss);
    assert_eq!(rr.resumed_from_step, Some(10));
    assert!(d < 1e-4, "{d}");
    assert!(rw.peak_gpu_memory_bytes.is_some_and(|b| b > 0), "{:?}", rw.gpu_memory_note);
}
