//! The training loop and its cost accounting.
//!
//! Input: tokenised examples ([`encode_pairs`]) and the order to feed them in
//! (the mix module's schedule). Output: trained tensors (in place) and a
//! [`TrainReport`] of what it cost. One optimizer step reads
//! `batch_size × grad_accum` schedule entries as `grad_accum` micro-batches
//! (the last step of a run by epochs may read fewer); the loss is the mean over
//! answer tokens of the whole step, so accumulation gives the update of one big batch.
//!
//! Exactness: all randomness derives from the seed and the micro-batch's index
//! (libtorch is reseeded before each micro-batch; the length-grouped order is a
//! function of the seed and the chunk), AdamW is ours with its moments in the
//! checkpoint, so a run resumed from a checkpoint ends bit-identical on CPU to
//! one never interrupted.
//!
//! Padding is on the right and the model gets no attention mask: under the
//! causal mask a real token never sees the padding after it, so its logits are
//! those of the unpadded row, and the mask-free path is the fast one.

mod adamw;
mod batch;
mod checkpoint;
mod cost;
mod encode;
pub mod reading;
pub mod speed;
mod stop;

pub use adamw::lr_at;
pub use batch::IGNORE;
pub use checkpoint::{Progress, PROGRESS_JSON, STATE_JSON, STATE_TENSORS};
pub(crate) use adamw::AdamW;
pub(crate) use cost::GpuMemory;
pub use cost::{flops_per_token, peak_rss_bytes};
pub use encode::{encode_pairs, EncodeStats, ExampleKind, TrainExample};

use crate::config::Train;
use crate::model::llama::CausalLM;
use crate::model::ModelError;
use batch::{collate, micro_batch_seed, supervised_tokens, Feed};
use checkpoint::{RunIdentity, RunState};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;
use tch::{nn, TchError, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training input: {0}")]
    Input(String),
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("training diverged at step {step}: the loss is {loss}; lower train.lr or raise train.warmup_steps (the last checkpoint is kept)")]
    Diverged { step: usize, loss: f64 },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("libtorch: {0}")]
    Torch(#[from] TchError),
}

/// The tensors training updates, by name, in a fixed order.
pub struct Trainable {
    pub named: Vec<(String, Tensor)>,
    /// Parameters the forward pass uses but training leaves alone (the base
    /// model under LoRA); 0 when the whole model trains. Only costs read it.
    pub frozen_parameters: u64,
}

fn sorted_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

impl Trainable {
    /// Every variable of `vs` (a model trained from scratch).
    pub fn full(vs: &nn::VarStore) -> Trainable {
        Trainable { named: sorted_variables(vs), frozen_parameters: 0 }
    }

    /// The adapters in `lora_vs`; freezes `base_vs`, so backward computes no
    /// gradients for the base weights.
    pub fn lora(lora_vs: &nn::VarStore, base_vs: &mut nn::VarStore) -> Trainable {
        base_vs.freeze();
        let frozen = base_vs.variables().values().map(|t| t.numel() as u64).sum();
        Trainable { named: sorted_variables(lora_vs), frozen_parameters: frozen }
    }

    pub fn parameters(&self) -> u64 {
        self.named.iter().map(|(_, t)| t.numel() as u64).sum()
    }
}

/// Knobs of the loop that `[train]` in the experiment does not carry.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    pub seed: u64,
    /// Where checkpoints go and are resumed from; None = no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Optimizer steps between checkpoints (0 = only at the end).
    pub checkpoint_every: usize,
    /// Optimizer steps between validations (0 = none); the last step is always validated.
    pub validate_every: usize,
    /// Stop once this many steps are done, without a checkpoint there (simulates a kill).
    pub stop_after: Option<usize>,
    pub progress: bool,
    pub pad_id: u32,
    /// Micro-batches per length-grouping chunk; 1 = feed in schedule order.
    pub length_group: usize,
    pub adam_betas: (f64, f64),
    pub adam_eps: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            seed: 0,
            checkpoint_dir: None,
            checkpoint_every: 100,
            validate_every: 0,
            stop_after: None,
            progress: false,
            pad_id: 0,
            length_group: 64,
            adam_betas: (0.9, 0.999),
            adam_eps: 1e-8,
        }
    }
}

/// A count split by example kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub span: u64,
    pub document: u64,
}

impl KindCounts {
    pub fn total(&self) -> u64 {
        self.span + self.document
    }

    fn merge(&mut self, other: KindCounts) {
        self.span += other.span;
        self.document += other.document;
    }
}

/// Running totals over every micro-batch fed (kept in checkpoints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub micro_batches: u64,
    pub examples: KindCounts,
    /// Real tokens read (prompt + target, no padding).
    pub input_tokens: KindCounts,
    pub target_tokens: KindCounts,
    /// Positions computed (b × t per micro-batch): real tokens plus padding.
    pub padded_tokens: u64,
}

/// One optimizer step: the mean answer-token loss it was computed on (before
/// the update), the rate it used and the gradient norm before clipping.
/// f32 throughout: serde_json reads an f64 back to within an ulp only, an f32
/// exactly, so a curve read back from a checkpoint is the one written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub step: usize,
    pub loss: f32,
    pub lr: f32,
    pub grad_norm: f32,
}

/// Mean answer-token loss on the validation examples after `step` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    pub step: usize,
    pub loss: f32,
    pub target_tokens: u64,
}

/// What a training run did and cost. Counts and times cover the whole run,
/// resumed sessions included (work after the last checkpoint of a killed
/// session is not counted: it is redone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub total_steps: usize,
    pub optimizer_steps: usize,
    /// False when `stop_after` ended the run early.
    pub finished: bool,
    pub resumed_from_step: Option<usize>,
    pub micro_batches: u64,
    pub examples_seen: KindCounts,
    pub input_tokens: KindCounts,
    pub target_tokens: KindCounts,
    /// Positions computed, padding included (≥ input tokens).
    pub padded_tokens: u64,
    /// Time in the loop (validation and checkpoint writing included).
    pub wall_seconds: f64,
    pub examples_per_second: f64,
    /// Real input tokens per second.
    pub tokens_per_second: f64,
    pub trainable_parameters: u64,
    pub frozen_parameters: u64,
    pub flops_per_token: f64,
    /// `flops_per_token × padded_tokens`: what the hardware computed.
    pub estimated_flops: f64,
    pub flops_formula: String,
    /// This process's peak resident memory (VmHWM), whatever else it holds included.
    pub peak_rss_bytes: Option<u64>,
    /// On CUDA, this session's peak device memory in use (how: `gpu_memory_note`); None on CPU.
    pub peak_gpu_memory_bytes: Option<u64>,
    pub gpu_memory_note: Option<String>,
    pub loss_curve: Vec<LossPoint>,
    pub validation: Vec<ValidationPoint>,
}

/// Schedule entries a run feeds: `steps × batch_size × grad_accum` (wrapping round the
/// schedule as often as needed), or when `steps` is 0, exactly `ceil(epochs × schedule_len)`.
pub fn fed_entries(cfg: &Train, schedule_len: usize) -> usize {
    let per_step = cfg.batch_size.max(1) * cfg.grad_accum.max(1);
    if cfg.steps > 0 {
        return cfg.steps * per_step;
    }
    // A product within rounding error of a whole number is that number (1.0 × n is n).
    let x = (cfg.epochs * schedule_len as f64).max(0.0);
    let n = if (x - x.round()).abs() <= 1e-9 * x.max(1.0) { x.round() } else { x.ceil() };
    (n as usize).max(1)
}

/// Optimizer steps of a run: `cfg.steps`, or when that is 0,
/// `ceil(ceil(epochs × schedule_len) / (batch_size × grad_accum))`, the last step short.
pub fn total_steps(cfg: &Train, schedule_len: usize) -> usize {
    if cfg.steps > 0 {
        return cfg.steps;
    }
    fed_entries(cfg, schedule_len).div_ceil(cfg.batch_size.max(1) * cfg.grad_accum.max(1))
}

fn check_examples(what: &str, examples: &[TrainExample], vocab: usize, max_length: usize) -> Result<(), TrainError> {
    for (i, ex) in examples.iter().enumerate() {
        if ex.prompt_ids.is_empty() || ex.target_ids.is_empty() {
            return Err(TrainError::Input(format!("{what} example {i} has an empty prompt or target; encode_pairs drops such pairs")));
        }
        if ex.len() > max_length {
            return Err(TrainError::Input(format!(
                "{what} example {i} has {} tokens, more than train.max_length = {max_length}; fit examples with encode_pairs",
                ex.len()
            )));
        }
        if let Some(&id) = ex.prompt_ids.iter().chain(&ex.target_ids).find(|&&id| id as usize >= vocab) {
            return Err(TrainError::Input(format!(
                "{what} example {i} has token id {id}, outside the model's vocabulary of {vocab}; was it encoded with another tokenizer?"
            )));
        }
    }
    Ok(())
}

fn check_inputs(
    model: &CausalLM,
    trainable: &Trainable,
    examples: &[TrainExample],
    schedule: &[usize],
    val: &[TrainExample],
    cfg: &Train,
    opts: &TrainOptions,
) -> Result<(), TrainError> {
    let bad = |m: String| Err(TrainError::Input(m));
    if cfg.batch_size == 0 || cfg.grad_accum == 0 {
        return bad(format!("train.batch_size ({}) and train.grad_accum ({}) must be at least 1", cfg.batch_size, cfg.grad_accum));
    }
    let non_negative = |x: f64| x.is_finite() && x >= 0.0;
    if ![cfg.lr, cfg.weight_decay, cfg.max_grad_norm].into_iter().all(non_negative) {
        return bad(format!("train.lr ({}), weight_decay ({}) and max_grad_norm ({}) must be finite and ≥ 0", cfg.lr, cfg.weight_decay, cfg.max_grad_norm));
    }
    if cfg.steps == 0 && !(cfg.epochs.is_finite() && cfg.epochs > 0.0) {
        return bad(format!("train.steps is 0, so train.epochs must be > 0 (it is {})", cfg.epochs));
    }
    let (b1, b2) = opts.adam_betas;
    if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) && opts.adam_eps > 0.0) {
        return bad(format!("AdamW betas {:?} must lie in [0, 1) and eps ({}) be > 0", opts.adam_betas, opts.adam_eps));
    }
    if schedule.is_empty() {
        return bad("the schedule is empty: nothing to train on".into());
    }
    if let Some(&i) = schedule.iter().find(|&&i| i >= examples.len()) {
        return bad(format!("the schedule names example {i}, but there are {} examples", examples.len()));
    }
    let vocab = model.config.vocab_size;
    if opts.pad_id as usize >= vocab {
        return bad(format!("pad_id {} is outside the model's vocabulary of {vocab}", opts.pad_id));
    }
    check_examples("training", examples, vocab, cfg.max_length)?;
    check_examples("validation", val, vocab, cfg.max_length)?;
    if trainable.named.is_empty() {
        return bad("no trainable tensors".into());
    }
    let mut names = HashSet::new();
    for (name, t) in &trainable.named {
        if !names.insert(name.as_str()) {
            return bad(format!("trainable tensor `{name}` is listed twice"));
        }
        if !t.requires_grad() {
            return bad(format!("trainable tensor `{name}` does not require gradients; is its VarStore frozen?"));
        }
    }
    Ok(())
}

/// sha256 over the examples (kinds and ids) and the schedule: a checkpoint from other data is refused.
fn data_fingerprint(examples: &[TrainExample], schedule: &[usize]) -> String {
    let mut h = Sha256::new();
    h.update((examples.len() as u64).to_le_bytes());
    for ex in examples {
        let kind: u8 = match ex.kind {
            ExampleKind::Span => 0,
            ExampleKind::Document => 1,
        };
        h.update([kind]);
        for ids in [&ex.prompt_ids, &ex.target_ids] {
            h.update((ids.len() as u64).to_le_bytes());
            let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
            h.update(&bytes);
        }
    }
    h.update((schedule.len() as u64).to_le_bytes());
    let bytes: Vec<u8> = schedule.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect();
    h.update(&bytes);
    hex::encode(h.finalize())
}

/// Mean answer-token loss over `val` (no gradients, no dropout), in
/// length-sorted batches of `batch_size`; returns (loss, target tokens).
pub fn validation_loss(model: &CausalLM, val: &[TrainExample], batch_size: usize, pad_id: u32) -> Result<(f64, u64), TrainError> {
    let mut order: Vec<usize> = (0..val.len()).collect();
    order.sort_by_key(|&i| val[i].len());
    let (mut sum, mut count) = (0.0f64, 0u64);
    tch::no_grad(|| -> Result<(), TrainError> {
        for chunk in order.chunks(batch_size.max(1)) {
            let rows: Vec<&TrainExample> = chunk.iter().map(|&i| &val[i]).collect();
            let mb = collate(&rows, pad_id, model.device());
            sum += model.labelled_loss(&mb.input_ids, &mb.positions, &mb.labels)?.0;
            count += rows.iter().map(|e| supervised_tokens(e) as u64).sum::<u64>();
        }
        Ok(())
    })?;
    Ok((if count > 0 { sum / count as f64 } else { 0.0 }, count))
}

fn zero_grads(params: &[(String, Tensor)]) -> Result<(), TchError> {
    for (_, p) in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.f_zero_()?;
        }
    }
    Ok(())
}

/// How often `progress.json` is rewritten while training.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

fn progress_bar(show: bool, total: usize, done: usize) -> ProgressBar {
    let bar = crate::progress::bar(show, total as u64, "steps", "train");
    bar.set_position(done as u64);
    bar
}

/// Trains `trainable` (in place) on `examples` fed in `schedule` order.
///
/// Steps: `cfg.steps`, feeding `steps × batch_size × grad_accum` entries (a run that
/// needs more than the schedule holds wraps round to its start); or when `steps` is 0,
/// exactly `ceil(epochs × schedule.len())` entries, the last step short when they do not
/// fill it (the runner feeds its mix's schedule once this way, so the mix alone decides
/// what a run reads). With
/// `opts.checkpoint_dir`, a checkpoint there is resumed from (after checking it
/// belongs to this run), and one is written every `checkpoint_every` steps and
/// at the end.
pub fn train(
    model: &CausalLM,
    trainable: &Trainable,
    examples: &[TrainExample],
    schedule: &[usize],
    val: &[TrainExample],
    cfg: &Train,
    opts: &TrainOptions,
) -> Result<TrainReport, TrainError> {
    check_inputs(model, trainable, examples, schedule, val, cfg, opts)?;
    let total = total_steps(cfg, schedule.len());
    let fed = fed_entries(cfg, schedule.len());
    let params = &trainable.named;
    let identity = RunIdentity {
        seed: opts.seed,
        total_steps: total,
        fed_entries: fed,
        batch_size: cfg.batch_size,
        grad_accum: cfg.grad_accum,
        length_group: opts.length_group.max(1),
        lr: cfg.lr,
        schedule: cfg.schedule,
        warmup_steps: cfg.warmup_steps,
        weight_decay: cfg.weight_decay,
        max_grad_norm: cfg.max_grad_norm,
        adam_betas: opts.adam_betas,
        adam_eps: opts.adam_eps,
        trainable_parameters: trainable.parameters(),
        data: data_fingerprint(examples, schedule),
    };
    let mut adam = AdamW::new(params, opts.adam_betas, opts.adam_eps, cfg.weight_decay)?;
    let mut state = RunState::fresh(identity.clone());
    let mut resumed_from_step = None;
    if let Some(dir) = &opts.checkpoint_dir {
        if let Some(path) = checkpoint::latest(dir)? {
            state = checkpoint::load(&path, params, &mut adam, &identity)?;
            resumed_from_step = Some(state.step);
        }
    }

    let ga = cfg.grad_accum;
    let lengths = examples.iter().map(TrainExample::len).collect();
    let mut feed = Feed::new(schedule, lengths, cfg.batch_size, identity.length_group, opts.seed, fed);
    let bar = progress_bar(opts.progress, total, state.step);
    let started = Instant::now();
    let wall_before = state.wall_seconds;
    let mut session_tokens = 0u64;
    let mut gpu = cost::GpuMemory::new(model.device());
    zero_grads(params)?;
    // From here a SIGTERM or SIGINT checkpoints and stops at the end of the step under way.
    let watch = stop::Watch::start();
    let mut last_beat: Option<Instant> = None;
    let mut checkpoint_step = resumed_from_step;

    while state.step < total && opts.stop_after.is_none_or(|s| state.step < s) {
        let step = state.step;
        let lr = lr_at(cfg, step, total);
        // The last step of a run by epochs may hold fewer micro-batches, the last one short.
        let batches: Vec<Vec<usize>> = (0..ga).map(|k| feed.micro_batch(step * ga + k)).filter(|b| !b.is_empty()).collect();
        // The step's loss is a mean over all its answer tokens: each micro-batch's sum is divided by the step's count.
        let scored: usize = batches.iter().flatten().map(|&i| supervised_tokens(&examples[i])).sum();
        let mut loss_sum = 0.0f64;
        for (k, indices) in batches.iter().enumerate() {
            let seed = micro_batch_seed(opts.seed, (step * ga + k) as u64);
            let rows: Vec<&TrainExample> = indices.iter().map(|&i| &examples[i]).collect();
            let mb = collate(&rows, opts.pad_id, model.device());
            loss_sum += model.forward_backward(&mb.input_ids, &mb.positions, &mb.labels, 1.0 / scored.max(1) as f64, seed, cfg.checkpointing)?;
            let c = &mut state.counters;
            c.micro_batches += 1;
            c.examples.merge(mb.examples);
            c.input_tokens.merge(mb.input_tokens);
            c.target_tokens.merge(mb.target_tokens);
            c.padded_tokens += mb.padded_tokens;
            session_tokens += mb.input_tokens.total();
        }
        let loss = loss_sum / scored.max(1) as f64;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { step: step + 1, loss });
        }
        let grad_norm = adam.step(params, step + 1, lr, cfg.max_grad_norm)?;
        zero_grads(params)?;
        gpu.sample();
        state.step = step + 1;
        state.loss_curve.push(LossPoint { step: state.step, loss: loss as f32, lr: lr as f32, grad_norm: grad_norm as f32 });

        if !val.is_empty() && opts.validate_every > 0 && (state.step % opts.validate_every == 0 || state.step == total) {
            let (vloss, tokens) = validation_loss(model, val, cfg.batch_size, opts.pad_id)?;
            state.validation.push(ValidationPoint { step: state.step, loss: vloss as f32, target_tokens: tokens });
        }
        let stop = watch.take_request();
        if let Some(dir) = &opts.checkpoint_dir {
            if stop.is_some() || state.step == total || (opts.checkpoint_every > 0 && state.step % opts.checkpoint_every == 0) {
                state.wall_seconds = wall_before + started.elapsed().as_secs_f64();
                checkpoint::save(dir, params, &adam, &state)?;
                checkpoint_step = Some(state.step);
            }
            if stop.is_some() || state.step == total || last_beat.is_none_or(|t| t.elapsed() >= HEARTBEAT) {
                checkpoint::Progress { step: state.step, total, loss: loss as f32, checkpoint_step, updated: crate::store::unix_now() }.write(dir)?;
                last_beat = Some(Instant::now());
            }
        }
        if let Some(signal) = stop {
            bar.finish_and_clear();
            let saved = if opts.checkpoint_dir.is_some() { "checkpoint written" } else { "no checkpoint folder" };
            eprintln!("{signal} received: training stopped after step {} of {total} ({saved})", state.step);
            break;
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("loss {loss:.4} · lr {lr:.2e} · {:.0} tok/s", session_tokens as f64 / secs));
        bar.set_position(state.step as u64);
    }
    bar.finish_and_clear();
    state.wall_seconds = wall_before + started.elapsed().as_secs_f64();
    Ok(report(&state, total, resumed_from_step, trainable, &gpu))
}

fn report(state: &RunState, total: usize, resumed_from_step: Option<usize>, trainable: &Trainable, gpu: &cost::GpuMemory) -> TrainReport {
    let c = &state.counters;
    let wall = state.wall_seconds;
    let per_second = |n: u64| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    let (flops_per_token, flops_formula) = cost::flops_per_token(trainable.parameters(), trainable.frozen_parameters);
    TrainReport {
        total_steps: total,
        optimizer_steps: state.step,
        finished: state.step >= total,
        resumed_from_step,
        micro_batches: c.micro_batches,
        examples_seen: c.examples,
        input_tokens: c.input_tokens,
        target_tokens: c.target_tokens,
        padded_tokens: c.padded_tokens,
        wall_seconds: wall,
        examples_per_second: per_second(c.examples.total()),
        tokens_per_second: per_second(c.input_tokens.total()),
        trainable_parameters: trainable.parameters(),
        frozen_parameters: trainable.frozen_parameters,
        flops_per_token,
        estimated_flops: flops_per_token * c.padded_tokens as f64,
        flops_formula,
        peak_rss_bytes: cost::peak_rss_bytes(),
        peak_gpu_memory_bytes: gpu.peak,
        gpu_memory_note: gpu.note(),
        loss_curve: state.loss_curve.clone(),
        validation: state.validation.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_from_epochs_round_up() {
        let cfg = Train { steps: 0, epochs: 1.5, batch_size: 4, grad_accum: 2, ..Train::default() };
        assert_eq!((total_steps(&cfg, 10), fed_entries(&cfg, 10)), (2, 15)); // 15 / 8 -> 2, the second short
        assert_eq!((total_steps(&Train { steps: 7, ..cfg.clone() }, 10), fed_entries(&Train { steps: 7, ..cfg.clone() }, 10)), (7, 56));
        assert_eq!((total_steps(&Train { epochs: 0.01, ..cfg.clone() }, 10), fed_entries(&Train { epochs: 0.01, ..cfg.clone() }, 10)), (1, 1));
        assert_eq!(fed_entries(&Train { epochs: 0.1, ..cfg }, 30), 3);
    }

    #[test]
    fn fingerprint_sees_ids_kinds_and_order() {
        let ex = |k| TrainExample { prompt_ids: vec![1, 2], target_ids: vec![3], kind: k, pair: 0 };
        let a = data_fingerprint(&[ex(ExampleKind::Span), ex(ExampleKind::Document)], &[0, 1]);
        assert_eq!(a, data_fingerprint(&[ex(ExampleKind::Span), ex(ExampleKind::Document)], &[0, 1]));
        assert_ne!(a, data_fingerprint(&[ex(ExampleKind::Span), ex(ExampleKind::Document)], &[1, 0]));
        assert_ne!(a, data_fingerprint(&[ex(ExampleKind::Document), ex(ExampleKind::Document)], &[0, 1]));
    }
}
