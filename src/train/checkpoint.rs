//! Resumable training state on disk.
//!
//! `ckpt_dir/step-00000010/` holds `state.safetensors` (trainable tensors as
//! `param.<name>`, AdamW moments as `exp_avg.<name>` / `exp_avg_sq.<name>`) and
//! `state.json` (step, the run's identity, counters, curves). A checkpoint is
//! written to `.step-00000010.partial/` and renamed into place, so a kill leaves
//! either the old checkpoint or the new one; older ones are then removed.

use super::adamw::AdamW;
use super::{Counters, LossPoint, TrainError, ValidationPoint};
use crate::model::weights::{load_safetensors, save_safetensors};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

pub const STATE_TENSORS: &str = "state.safetensors";
pub const STATE_JSON: &str = "state.json";
const FORMAT: u32 = 1;

/// What must match for a checkpoint to continue this run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunIdentity {
    pub seed: u64,
    pub total_steps: usize,
    /// Schedule entries the run feeds (a run by epochs ends with a short step).
    pub fed_entries: usize,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub length_group: usize,
    pub lr: f64,
    pub schedule: crate::config::LrSchedule,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub adam_betas: (f64, f64),
    pub adam_eps: f64,
    pub trainable_parameters: u64,
    /// sha256 over the examples' ids and kinds and the schedule.
    pub data: String,
}

/// Everything but the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunState {
    pub format: u32,
    /// Optimizer steps completed.
    pub step: usize,
    pub identity: RunIdentity,
    pub counters: Counters,
    /// Training time of the sessions up to this checkpoint.
    pub wall_seconds: f64,
    pub loss_curve: Vec<LossPoint>,
    pub validation: Vec<ValidationPoint>,
}

impl RunState {
    pub(crate) fn fresh(identity: RunIdentity) -> RunState {
        RunState { format: FORMAT, step: 0, identity, counters: Counters::default(), wall_seconds: 0.0, loss_curve: Vec::new(), validation: Vec::new() }
    }
}

fn err(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Checkpoint { path: path.to_path_buf(), message: message.into() }
}

fn step_dir_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// The newest complete checkpoint in `dir` (None when there is none or no `dir`).
pub(crate) fn latest(dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(dir, format!("cannot list the checkpoint folder: {e}"))),
    };
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(|e| err(dir, format!("cannot list the checkpoint folder: {e}")))?;
        let name = entry.file_name();
        let Some(step) = name.to_str().and_then(|n| n.strip_prefix("step-")).and_then(|n| n.parse::<usize>().ok()) else { continue };
        if best.as_ref().is_none_or(|(b, _)| step > *b) {
            best = Some((step, entry.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

fn tensor_names(name: &str) -> [String; 3] {
    [format!("param.{name}"), format!("exp_avg.{name}"), format!("exp_avg_sq.{name}")]
}

/// Writes `state` with the parameters and moments; returns the checkpoint's folder.
pub(crate) fn save(dir: &Path, params: &[(String, Tensor)], adam: &AdamW, state: &RunState) -> Result<PathBuf, TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create the checkpoint folder: {e}")))?;
    let name = step_dir_name(state.step);
    let tmp = dir.join(format!(".{name}.partial"));
    let dest = dir.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| err(&tmp, format!("cannot remove a stale partial checkpoint: {e}")))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| err(&tmp, format!("cannot create: {e}")))?;
    let mut tensors = Vec::with_capacity(params.len() * 3);
    for (((n, p), m), v) in params.iter().zip(&adam.m).zip(&adam.v) {
        let [pn, mn, vn] = tensor_names(n);
        tensors.push((pn, p.detach()));
        tensors.push((mn, m.shallow_clone()));
        tensors.push((vn, v.shallow_clone()));
    }
    save_safetensors(&tmp.join(STATE_TENSORS), &tensors)?;
    let json_path = tmp.join(STATE_JSON);
    let text = serde_json::to_string_pretty(state).map_err(|e| err(&json_path, format!("cannot serialise: {e}")))?;
    std::fs::write(&json_path, text + "\n").map_err(|e| err(&json_path, format!("cannot write: {e}")))?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| err(&dest, format!("cannot replace: {e}")))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| err(&dest, format!("cannot move the new checkpoint into place: {e}")))?;
    // Older checkpoints are superseded; failing to remove one only wastes disk.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let n = entry.file_name();
            if n.to_str().is_some_and(|s| s.starts_with("step-") && s != name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(dest)
}

/// Loads the checkpoint folder `path` into `params` and `adam`, after checking
/// it belongs to a run with `identity`; every error names the file at fault.
pub(crate) fn load(path: &Path, params: &[(String, Tensor)], adam: &mut AdamW, identity: &RunIdentity) -> Result<RunState, TrainError> {
    let json_path = path.join(STATE_JSON);
    let text = std::fs::read_to_string(&json_path).map_err(|e| err(&json_path, format!("cannot read: {e}; delete the folder to start afresh")))?;
    let found: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| err(&json_path, format!("not valid JSON ({e}); the checkpoint is corrupt: delete its folder to start afresh")))?;
    let state: RunState = serde_json::from_value(found.clone())
        .map_err(|e| err(&json_path, format!("not a training checkpoint of this version ({e}); delete its folder to start afresh")))?;
    if state.format != FORMAT {
        return Err(err(&json_path, format!("checkpoint format {} is not {FORMAT}; delete its folder to start afresh", state.format)));
    }
    // Compare as JSON written by the same code, so float formatting cannot differ.
    let ours = serde_json::to_string(identity).and_then(|s| serde_json::from_str::<serde_json::Value>(&s)).map_err(|e| err(&json_path, e.to_string()))?;
    let theirs = found.get("identity").cloned().unwrap_or_default();
    if ours != theirs {
        let differing: Vec<String> = match (ours.as_object(), theirs.as_object()) {
            (Some(a), Some(b)) => a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k}: {} here, {} in the checkpoint", v, b.get(k).unwrap_or(&serde_json::Value::Null)))
                .collect(),
            _ => vec!["identity".into()],
        };
        return Err(err(
            &json_path,
            format!("was written by a different run ({}); resume with the same settings and data, or use another checkpoint folder", differing.join("; ")),
        ));
    }
    if state.step > identity.total_steps || state.loss_curve.len() != state.step {
        return Err(err(
            &json_path,
            format!(
                "step {} and a loss curve of {} points do not fit a run of {} steps; the checkpoint is corrupt",
                state.step,
                state.loss_curve.len(),
                identity.total_steps
            ),
        ));
    }
    let tensor_path = path.join(STATE_TENSORS);
    if !tensor_path.is_file() {
        return Err(err(&tensor_path, "missing; the checkpoint is incomplete: delete its folder to start afresh"));
    }
    let mut weights = load_safetensors(&tensor_path, Kind::Float, tch::Device::Cpu)?;
    tch::no_grad(|| -> Result<(), TrainError> {
        for (((n, p), m), v) in params.iter().zip(&mut adam.m).zip(&mut adam.v) {
            let [pn, mn, vn] = tensor_names(n);
            let shape = p.size();
            let pw = weights.take_shaped(&pn, &shape)?;
            let mw = weights.take_shaped(&mn, &shape)?;
            let vw = weights.take_shaped(&vn, &shape)?;
            p.shallow_clone().f_copy_(&pw)?;
            m.f_copy_(&mw)?;
            v.f_copy_(&vw)?;
        }
        Ok(())
    })?;
    if !weights.is_empty() {
        let left = weights.remaining();
        return Err(err(
            &tensor_path,
            format!("{} tensors belong to no trainable parameter (first: {}); was it written for another model?", left.len(), left[0]),
        ));
    }
    Ok(state)
}

/// `ckpt_dir/progress.json`: where a training run is, for `icdbench status` to show
/// while it runs (written every few seconds; not read back by training).
pub const PROGRESS_JSON: &str = "progress.json";

/// What [`PROGRESS_JSON`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Optimizer steps done, of `total`.
    pub step: usize,
    pub total: usize,
    /// The last step's loss.
    pub loss: f32,
    /// The newest checkpoint's step (a restart resumes there).
    pub checkpoint_step: Option<usize>,
    /// Seconds since the Unix epoch.
    pub updated: u64,
}

impl Progress {
    /// The progress recorded in `ckpt_dir` (None when there is none or it does not parse).
    pub fn read(ckpt_dir: &Path) -> Option<Progress> {
        serde_json::from_str(&std::fs::read_to_string(ckpt_dir.join(PROGRESS_JSON)).ok()?).ok()
    }

    pub(crate) fn write(&self, ckpt_dir: &Path) -> Result<(), TrainError> {
        let path = ckpt_dir.join(PROGRESS_JSON);
        crate::store::write_json(&path, self).map_err(|e| err(&path, e.to_string()))
    }
}
