//! The tiny backbone's reading pretraining (see [`crate::train::reading`]),
//! done once and cached: every run that names the same tiny backbone over the
//! same training notes (both training arms, every fine-tuning seed) starts
//! from the same weights, as runs of a pretrained LLM start from one checkpoint.

use super::stage::{RunError, RunLog, RunOptions};
use crate::config::{Backbone, LrSchedule, Train};
use crate::fingerprint::{canonical_json, sha256_hex};
use crate::model::llama::CausalLM;
use crate::model::tokenizer::TextTokenizer;
use crate::train::reading::{reading_pairs, READING_VERSION};
use crate::train::{self, encode_pairs, ExampleKind, TrainOptions, Trainable};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Examples per pretraining step.
const BATCH: usize = 8;

/// Held-out reading examples for the validation loss.
const VAL_EXAMPLES: usize = 32;

/// What the pretraining was, for the run's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainRecord {
    /// sha256 over everything the weights depend on.
    pub key: String,
    pub weights: PathBuf,
    pub steps: usize,
    /// Found in the cache rather than computed by this run.
    pub reused: bool,
    /// Validation loss per target token after pretraining (None when reused).
    pub val_loss: Option<f64>,
    pub input_tokens: Option<u64>,
    pub seconds: Option<f64>,
}

/// Pretrains `vs` (the tiny model's freshly initialised weights) on the reading
/// task over `notes`, or loads the result of an earlier run with the same key.
/// `corpus` is the tokenizer's training text: with the tiny config it fixes
/// the tokenizer and the initial weights. An interrupted pretraining resumes
/// from its checkpoint.
#[allow(clippy::too_many_arguments)]
pub(super) fn pretrain_reading(
    model: &CausalLM,
    vs: &mut tch::nn::VarStore,
    tok: &TextTokenizer,
    notes: &[&str],
    val_notes: &[&str],
    corpus: &[String],
    spec: &Backbone,
    max_length: usize,
    cache_root: &Path,
    opts: &RunOptions,
    log: &mut RunLog,
) -> Result<PretrainRecord, RunError> {
    let tiny = &spec.tiny;
    let identity = serde_json::json!({
        "reading_version": READING_VERSION,
        "code": crate::fingerprint::stage_identity(crate::fingerprint::Stage::Train),
        "tiny": tiny,
        "corpus_sha256": sha256_hex(corpus.join("\n\u{0}").as_bytes()),
        "notes_sha256": sha256_hex(notes.join("\n\u{0}").as_bytes()),
        "val_notes_sha256": sha256_hex(val_notes.join("\n\u{0}").as_bytes()),
        "batch_size": BATCH,
        "max_length": max_length,
    });
    let key = sha256_hex(canonical_json(&identity).as_bytes());
    let dir = cache_root.join("backbones").join(format!("tiny-{}", &key[..16]));
    let weights = dir.join("weights.safetensors");
    // Runs in other processes may want the same weights: one computes them, the others wait and reuse.
    let _lock = crate::store::Lock::acquire(&crate::store::lock_path(&dir), |holder| {
        let who = holder.map_or("another process".to_string(), |h| h.describe());
        eprintln!("  tiny backbone pretraining {} is running in {who}; waiting", &key[..16]);
    })?;
    let mut record = PretrainRecord { key: key.clone(), weights: weights.clone(), steps: tiny.pretrain_steps, reused: false, val_loss: None, input_tokens: None, seconds: None };
    if weights.is_file() {
        vs.load(&weights).map_err(|e| RunError::Store(crate::store::StoreError::CorruptCache { path: weights.clone(), reason: e.to_string() }))?;
        log.line(format!("backbone: reading-pretrained tiny weights reused from {}", weights.display()));
        record.reused = true;
        return Ok(record);
    }
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Io { path: dir.clone(), source })?;

    let to_examples = |pairs: Vec<crate::prompt::TrainingPair>| {
        let pairs: Vec<_> = pairs.into_iter().map(|p| (p, ExampleKind::Document)).collect();
        encode_pairs(&pairs, tok, max_length).map(|(examples, _)| examples).map_err(|e| RunError::Model(e.to_string()))
    };
    let examples = to_examples(reading_pairs(notes, tiny.pretrain_steps * BATCH, tiny.seed))?;
    let val = to_examples(reading_pairs(val_notes, VAL_EXAMPLES, tiny.seed ^ 0x5eed))?;
    if examples.is_empty() {
        return Err(RunError::Model("the reading pretraining found no sentence to ask for in the training notes: set backbone.tiny.pretrain_steps = 0".into()));
    }
    let schedule: Vec<usize> = (0..examples.len()).collect();
    let cfg = Train {
        lr: tiny.pretrain_lr,
        schedule: LrSchedule::Cosine,
        warmup_steps: (tiny.pretrain_steps / 20).max(1),
        steps: schedule.len().div_ceil(BATCH),
        epochs: 1.0,
        batch_size: BATCH,
        grad_accum: 1,
        max_length,
        ..Train::default()
    };
    let topts = TrainOptions {
        seed: tiny.seed,
        checkpoint_dir: Some(dir.join("checkpoint")),
        checkpoint_every: 200,
        validate_every: cfg.steps,
        stop_after: opts.stop_after_steps,
        progress: opts.progress,
        pad_id: tok.pad_id(),
        ..TrainOptions::default()
    };
    let report = train::train(model, &Trainable::full(vs), &examples, &schedule, &val, &cfg, &topts).map_err(|e| RunError::Model(e.to_string()))?;
    if !report.finished {
        return Err(RunError::Interrupted { path: dir, step: report.optimizer_steps });
    }
    let tmp = dir.join("weights.partial.safetensors");
    vs.save(&tmp).map_err(|e| RunError::Model(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &weights).map_err(|source| RunError::Io { path: weights.clone(), source })?;
    // The weights are what later runs need; the resumable state has served its purpose.
    let _ = std::fs::remove_dir_all(dir.join("checkpoint"));
    let val_loss = report.validation.last().map(|v| f64::from(v.loss));
    log.line(format!(
        "backbone: tiny pretrained on the reading task, {} steps, {} input tokens, {:.1} s, validation loss {}",
        report.optimizer_steps,
        report.input_tokens.total(),
        report.wall_seconds,
        val_loss.map_or("–".into(), |l| format!("{l:.3}"))
    ));
    record.val_loss = val_loss;
    record.input_tokens = Some(report.input_tokens.total());
    record.seconds = Some(report.wall_seconds);
    Ok(record)
}
