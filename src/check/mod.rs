//! `icdbench check`: the CI gate. Runs (or reuses) the experiments a small CI
//! config names, reads each run's gated metrics, and compares them with a
//! checked-in reference under stated tolerances. Runs are matched by a stable
//! name (experiment / run label), never by fingerprint: a fingerprint changes
//! with every commit, and the point of the gate is to compare across commits.
//!
//! ```toml
//! experiments = ["../baselines/dictionary.toml"]        # relative to this file
//! reference = "../baselines/reference/quickstart-dictionary.json"
//!
//! [[gate]]
//! metric = "test.overall.micro_f1"
//! points = 0.5              # may drop by at most 0.5 F1 points
//!
//! [[gate]]
//! metric = "cost.train_seconds"
//! relative = 0.5            # may grow by at most 50%
//! ```

mod config;
mod gate;
mod metric;
mod reference;
mod render;

pub use config::CheckConfig;
pub use gate::{compare, judge, Gate, Outcome, Row, Status, Tolerance};
pub use metric::{Direction, Metric, Part, SetMeasure};
pub use reference::{reference_from, Reference, ReferenceRun};

use crate::plan::{self, PlanError, PlannedRun};
use crate::runner::{self, RunError, RunOptions};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The CI config or the reference file is missing or invalid (exit 2).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// One current run: its stable name and the values of the gated metrics it has.
#[derive(Debug, Clone)]
pub struct CurrentRun {
    pub name: String,
    pub experiment: String,
    pub label: String,
    pub fingerprint: String,
    pub reused: bool,
    pub values: BTreeMap<String, f64>,
    /// Why the run failed, if it did.
    pub failed: Option<String>,
}

/// The name a run is matched by across commits.
pub fn run_name(run: &PlannedRun) -> String {
    format!("{} / {}", run.spec.experiment, run.label())
}

/// Plans every experiment of the config (all before running any: a bad file fails first),
/// then runs or reuses each run. A failed run is recorded and the others still run.
pub fn run_all(config: &CheckConfig, results: &Path, progress: bool, mut on_done: impl FnMut(&CurrentRun)) -> Result<Vec<CurrentRun>, CheckError> {
    let mut planned: Vec<PlannedRun> = Vec::new();
    let mut names = HashSet::new();
    for f in &config.experiments {
        for run in plan::plan_file(f, results)? {
            let name = run_name(&run);
            if !names.insert(name.clone()) {
                return Err(CheckError::Input(format!(
                    "{}: two runs are named {name:?}; give the experiments or baselines distinct names (the gate matches runs by name)",
                    f.display()
                )));
            }
            planned.push(run);
        }
    }
    let opts = RunOptions { force: false, progress, stop_after_steps: None, leave_busy: false };
    let mut out = Vec::new();
    for run in &planned {
        let mut current = CurrentRun {
            name: run_name(run),
            experiment: run.spec.experiment.clone(),
            label: run.label(),
            fingerprint: run.fingerprint.to_string(),
            reused: false,
            values: BTreeMap::new(),
            failed: None,
        };
        match runner::execute(std::slice::from_ref(run), &opts, |_| {}) {
            Ok(records) => {
                if let Some(r) = records.first() {
                    current.reused = r.reused;
                    for g in &config.gates {
                        if let Some(v) = g.metric.value(&r.metrics) {
                            current.values.insert(g.name.clone(), v);
                        }
                    }
                }
            }
            // Input the user must fix (bad data, a corrupt results folder) stops the gate with exit 2.
            Err(e) if e.is_user_input() => return Err(CheckError::Run(e)),
            Err(e) => current.failed = Some(e.to_string()),
        }
        on_done(&current);
        out.push(current);
    }
    Ok(out)
}

/// `icdbench check`: load the config (and the reference unless updating), run or reuse every run,
/// compare; with `update`, write the current values as the new reference (atomically) instead of failing.
pub fn check(config_path: &Path, results: &Path, update: bool, progress: bool) -> Result<(Outcome, Option<PathBuf>), CheckError> {
    let config = CheckConfig::load(config_path)?;
    let reference = if update {
        // An old reference, when readable, still shows what the update changes.
        Reference::load(&config.reference).ok()
    } else {
        Some(Reference::load(&config.reference)?)
    };
    let current = run_all(&config, results, progress, |r| {
        let how = match (&r.failed, r.reused) {
            (Some(_), _) => "FAILED",
            (None, true) => "reused",
            (None, false) => "computed",
        };
        eprintln!("  {} {} {how}", r.fingerprint.get(..12).unwrap_or(&r.fingerprint), r.name);
    })?;
    let rows = compare(&reference.unwrap_or_default(), &current, &config.gates);
    let outcome = Outcome { config: config.path.clone(), reference: config.reference.clone(), rows, runs: current.len() };
    if !update {
        return Ok((outcome, None));
    }
    if current.iter().any(|r| r.failed.is_some()) {
        // Never record a reference with a failed run in it.
        return Ok((outcome, None));
    }
    let new = reference_from(&current, &config);
    runner::write_json(&config.reference, &new)?;
    Ok((outcome, Some(config.reference.clone())))
}
