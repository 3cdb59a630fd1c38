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

pub use config::{BackboneGate, CheckConfig, Gate, Tolerance};
pub use gate::{compare, judge, Outcome, Row, Status};
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
    /// The run's sweep settings (`backbone.name` → `gemma3-270m`), for the backbone gate's pairing.
    pub sweep: Vec<(String, String)>,
    /// The baseline's name (`prior`) when the run is a baseline's, not a model's.
    pub baseline: Option<String>,
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
            sweep: run.spec.sweep.clone(),
            baseline: match &run.spec.system {
                plan::SystemSpec::Baseline(b) => Some(b.name()),
                plan::SystemSpec::Model(_) => None,
            },
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
    let reference_file = match (&config.reference, &config.backbone_gate) {
        (Some(f), _) => f.clone(),
        (None, Some(gate)) => {
            if update {
                return Err(CheckError::Input(format!(
                    "{}: a backbone gate compares the runs of one invocation; it has no reference file to update",
                    config.path.display()
                )));
            }
            return check_backbones(&config, gate, results, progress).map(|o| (o, None));
        }
        (None, None) => return Err(CheckError::Input(format!("{}: no reference to compare with", config.path.display()))),
    };
    let reference = if update {
        // An old reference, when readable, still shows what the update changes.
        Reference::load(&reference_file).ok()
    } else {
        Some(Reference::load(&reference_file)?)
    };
    let current = run_all(&config, results, progress, say_done)?;
    let rows = compare(&reference.unwrap_or_default(), &current, &config.gates);
    let outcome = Outcome { config: config.path.clone(), reference: reference_file.display().to_string(), rows, runs: current.len() };
    if !update {
        return Ok((outcome, None));
    }
    if current.iter().any(|r| r.failed.is_some()) {
        // Never record a reference with a failed run in it.
        return Ok((outcome, None));
    }
    let new = reference_from(&current, &config);
    runner::write_json(&reference_file, &new)?;
    Ok((outcome, Some(reference_file)))
}

fn say_done(r: &CurrentRun) {
    let how = match (&r.failed, r.reused) {
        (Some(_), _) => "FAILED",
        (None, true) => "reused",
        (None, false) => "computed",
    };
    eprintln!("  {} {} {how}", r.fingerprint.get(..12).unwrap_or(&r.fingerprint), r.name);
}

/// The backbone gate: every run whose backbone (`gate.key`) is not the reference one (and is
/// among `gate.judge`, when given) is judged against the reference backbone's run with the same experiment and other settings.
fn check_backbones(config: &CheckConfig, gate: &BackboneGate, results: &Path, progress: bool) -> Result<Outcome, CheckError> {
    let current = run_all(config, results, progress, say_done)?;
    let (reference, candidates) = backbone_reference(&current, gate)?;
    let mut rows = compare(&reference, &candidates, &config.gates);
    rows.extend(floor_rows(&current, gate, &config.gates)?);
    Ok(Outcome { config: config.path.clone(), reference: format!("the {} = {} runs", gate.key, gate.reference), rows, runs: current.len() })
}

/// The backbone a run was swept with (`gate.key`'s value), unquoted.
fn backbone_of(r: &CurrentRun, gate: &BackboneGate) -> Option<String> {
    r.sweep.iter().find(|(k, _)| *k == gate.key).map(|(_, v)| v.trim_matches('"').to_string())
}

/// Whether the gate judges `backbone` against the reference (every one, without `judge`).
fn is_judged(backbone: &str, gate: &BackboneGate) -> bool {
    gate.judge.as_ref().is_none_or(|j| j.iter().any(|v| v == backbone))
}

/// A run's sweep settings other than the backbone: what pairs runs across backbones (and a
/// backbone's run with the baselines, which the backbone does not change).
fn other_settings(r: &CurrentRun, gate: &BackboneGate) -> Vec<(String, String)> {
    r.sweep.iter().filter(|(k, _)| *k != gate.key).cloned().collect()
}

/// Splits `runs` into the reference backbone's and the candidates', and writes the reference
/// values each candidate is judged against under the candidate's own name. A candidate with
/// no reference run of the same other settings gets none (its rows read "new"). Baseline runs
/// set no backbone and are neither: they are shown, and the floor is one of them.
pub fn backbone_reference(runs: &[CurrentRun], gate: &BackboneGate) -> Result<(Reference, Vec<CurrentRun>), CheckError> {
    let setting = |r: &CurrentRun| backbone_of(r, gate);
    let others = |r: &CurrentRun| other_settings(r, gate);
    let runs: Vec<&CurrentRun> = runs.iter().filter(|r| r.baseline.is_none()).collect();
    if let Some(r) = runs.iter().find(|r| setting(r).is_none()) {
        return Err(CheckError::Input(format!("run {:?} does not set {}: a backbone gate needs experiments that sweep it", r.name, gate.key)));
    }
    for value in std::iter::once(&gate.reference).chain(gate.judge.iter().flatten()) {
        if !runs.iter().any(|r| setting(r).as_deref() == Some(value.as_str())) {
            return Err(CheckError::Input(format!("no run has {} = {value:?}: the reference backbone and those judged must be swept values", gate.key)));
        }
    }
    let judged = |r: &&CurrentRun| setting(r).is_some_and(|v| is_judged(&v, gate));
    let (refs, candidates): (Vec<&CurrentRun>, Vec<&CurrentRun>) = runs.iter().partition(|r| setting(r).as_deref() == Some(gate.reference.as_str()));
    let candidates: Vec<&CurrentRun> = candidates.into_iter().filter(judged).collect();
    let mut reference = Reference { written_by: format!("the {} = {} runs of this invocation", gate.key, gate.reference), ..Reference::default() };
    for c in &candidates {
        let Some(r) = refs.iter().find(|r| r.experiment == c.experiment && others(r) == others(c)) else { continue };
        if let Some(why) = &r.failed {
            return Err(CheckError::Input(format!("the reference backbone's run {:?} failed ({why}); nothing to judge {:?} against", r.name, c.name)));
        }
        reference.runs.insert(c.name.clone(), ReferenceRun { experiment: r.experiment.clone(), label: r.label.clone(), fingerprint: r.fingerprint.clone(), metrics: r.values.clone() });
    }
    Ok((reference, candidates.into_iter().cloned().collect()))
}

/// The floor: the reference backbone's runs and every judged one must score above the floor
/// baseline's run of the same experiment and other settings, on each gated score (higher is
/// better), whatever the tolerances. One row per run and gate; a gated backbone run with no
/// floor run beside it is bad input (the experiment lacks the baseline).
pub fn floor_rows(runs: &[CurrentRun], gate: &BackboneGate, gates: &[Gate]) -> Result<Vec<Row>, CheckError> {
    let Some(floor) = &gate.floor else { return Ok(Vec::new()) };
    let gated = |r: &CurrentRun| backbone_of(r, gate).is_some_and(|b| b == gate.reference || is_judged(&b, gate));
    let mut rows = Vec::new();
    for run in runs.iter().filter(|r| r.baseline.is_none() && r.failed.is_none() && gated(r)) {
        let Some(base) = runs.iter().find(|b| b.baseline.as_ref() == Some(floor) && b.experiment == run.experiment && other_settings(b, gate) == other_settings(run, gate)) else {
            return Err(CheckError::Input(format!(
                "the backbone gate's floor is the baseline {floor:?}, but experiment {:?} has no such run beside {:?}: add [[baselines]] kind = \"{floor}\" to it",
                run.experiment, run.name
            )));
        };
        if let Some(why) = &base.failed {
            return Err(CheckError::Input(format!("the floor's run {:?} failed ({why}); nothing to hold {:?} to", base.name, run.name)));
        }
        for g in gates.iter().filter(|g| g.metric.is_score() && g.metric.direction() == Direction::Higher) {
            let (Some(floor_value), Some(now)) = (base.values.get(&g.name).copied(), run.values.get(&g.name).copied()) else { continue };
            let status = if now > floor_value + gate::EPS { Status::Ok } else { Status::BelowFloor };
            rows.push(Row {
                run: run.name.clone(),
                metric: format!("{} (floor: {floor})", g.name),
                reference: Some(floor_value),
                now: Some(now),
                tolerance: None,
                is_score: true,
                status,
                note: (status == Status::BelowFloor).then(|| format!("not above {}: a backbone must beat the {floor} baseline", base.name)),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(backbone: &str, seed: &str, micro: f64) -> CurrentRun {
        CurrentRun {
            name: format!("e / {backbone} seed {seed}"),
            experiment: "e".into(),
            label: format!("{backbone} seed {seed}"),
            fingerprint: "0".repeat(64),
            reused: true,
            sweep: vec![("backbone.name".into(), format!("\"{backbone}\"")), ("experiment.seed".into(), seed.into())],
            baseline: None,
            values: BTreeMap::from([("test.overall.micro_f1".to_string(), micro)]),
            failed: None,
        }
    }

    /// A candidate is judged against the reference backbone's run of the same seed: within the
    /// tolerance it passes, worse beyond it regresses; the reference runs are not rows.
    #[test]
    fn the_backbone_gate_pairs_runs_by_their_other_settings() {
        let gate = BackboneGate { key: "backbone.name".into(), reference: "smollm2-135m".into(), judge: None, floor: None };
        let gates = vec![Gate { name: "test.overall.micro_f1".into(), metric: Metric::parse("test.overall.micro_f1").unwrap(), tolerance: Tolerance::Points(1.0) }];
        let runs = vec![run("smollm2-135m", "1", 0.40), run("smollm2-135m", "2", 0.30), run("gemma3-270m", "1", 0.395), run("gemma3-270m", "2", 0.25)];
        let (reference, candidates) = backbone_reference(&runs, &gate).unwrap();
        assert_eq!(candidates.len(), 2);
        let rows = compare(&reference, &candidates, &gates);
        let status: Vec<(String, Status)> = rows.iter().map(|r| (r.run.clone(), r.status)).collect();
        assert_eq!(status, vec![("e / gemma3-270m seed 1".to_string(), Status::Ok), ("e / gemma3-270m seed 2".to_string(), Status::Regressed)]);
        assert_eq!(rows[1].reference, Some(0.30));

        let unswept = vec![CurrentRun { sweep: vec![], ..run("tiny", "1", 0.1) }];
        assert!(backbone_reference(&unswept, &gate).unwrap_err().to_string().contains("does not set backbone.name"));
        let no_ref = vec![run("gemma3-270m", "1", 0.4)];
        assert!(backbone_reference(&no_ref, &gate).unwrap_err().to_string().contains("must be swept values"));

        // `judge` narrows the candidates: a floor (tiny) runs beside them and is not judged.
        let with_floor = [runs.clone(), vec![run("tiny", "1", 0.0)]].concat();
        assert_eq!(backbone_reference(&with_floor, &gate).unwrap().1.len(), 3);
        let judge_gemma = BackboneGate { judge: Some(vec!["gemma3-270m".into()]), ..gate.clone() };
        let (_, candidates) = backbone_reference(&with_floor, &judge_gemma).unwrap();
        assert!(candidates.iter().all(|c| c.label.starts_with("gemma3-270m")) && candidates.len() == 2);
        let judge_missing = BackboneGate { judge: Some(vec!["qwen3-0.6b".into()]), ..gate };
        assert!(backbone_reference(&with_floor, &judge_missing).unwrap_err().to_string().contains("no run has backbone.name = \"qwen3-0.6b\""));
    }

    fn prior(seed: &str, micro: f64) -> CurrentRun {
        CurrentRun { name: format!("e / prior seed {seed}"), label: "prior".into(), sweep: vec![("experiment.seed".into(), seed.into())], baseline: Some("prior".into()), ..run("", seed, micro) }
    }

    /// With a floor, the reference backbone and the judged ones must beat the named baseline of
    /// the same seed on every gated score, whatever the tolerance; unjudged backbones are not held to it.
    #[test]
    fn the_floor_holds_every_gated_backbone_to_the_baseline_of_its_seed() {
        let gate = BackboneGate { key: "backbone.name".into(), reference: "smollm2-135m".into(), judge: Some(vec!["gemma3-270m".into()]), floor: Some("prior".into()) };
        let gates = vec![Gate { name: "test.overall.micro_f1".into(), metric: Metric::parse("test.overall.micro_f1").unwrap(), tolerance: Tolerance::Points(50.0) }];
        let runs = vec![
            run("smollm2-135m", "1", 0.40),
            run("gemma3-270m", "1", 0.279),
            run("tiny", "1", 0.05),
            prior("1", 0.279),
            run("smollm2-135m", "2", 0.50),
            run("gemma3-270m", "2", 0.45),
            prior("2", 0.30),
        ];
        // Baselines set no backbone and are not an error for the pairing.
        let (reference, candidates) = backbone_reference(&runs, &gate).unwrap();
        assert_eq!(candidates.len(), 2);
        // Within the (wide) tolerance of SmolLM2, Gemma's seed 1 passes the pairing ...
        assert!(compare(&reference, &candidates, &gates).iter().all(|r| r.status == Status::Ok));
        // ... but a tie with the prior of its seed is not above it.
        let rows = floor_rows(&runs, &gate, &gates).unwrap();
        let status: Vec<(&str, Status, Option<f64>)> = rows.iter().map(|r| (r.run.as_str(), r.status, r.reference)).collect();
        assert_eq!(
            status,
            vec![
                ("e / smollm2-135m seed 1", Status::Ok, Some(0.279)),
                ("e / gemma3-270m seed 1", Status::BelowFloor, Some(0.279)),
                ("e / smollm2-135m seed 2", Status::Ok, Some(0.30)),
                ("e / gemma3-270m seed 2", Status::Ok, Some(0.30)),
            ]
        );
        assert_eq!(rows[1].metric, "test.overall.micro_f1 (floor: prior)");
        assert!(Status::BelowFloor.fails());
        let outcome = Outcome { config: "c.toml".into(), reference: "r".into(), rows, runs: runs.len() };
        assert!(!outcome.passed());
        assert!(outcome.text().contains("BELOW FLOOR e / gemma3-270m seed 1 test.overall.micro_f1 (floor: prior): 27.90 -> 27.90"), "{}", outcome.text());
        // No floor run beside a gated backbone's: bad input naming the baseline to add.
        let no_prior: Vec<CurrentRun> = runs.iter().filter(|r| r.baseline.is_none()).cloned().collect();
        assert!(floor_rows(&no_prior, &gate, &gates).unwrap_err().to_string().contains("add [[baselines]] kind = \"prior\""));
        // Without a floor, no rows.
        assert!(floor_rows(&runs, &BackboneGate { floor: None, ..gate }, &gates).unwrap().is_empty());
    }
}
