//! Finding finished runs: folders holding a DONE marker under results folders,
//! or the runs an experiment file plans that have finished.

use super::ReportError;
use crate::fingerprint::{Fingerprint, Manifest};
use crate::plan::{self, PlannedRun, RunSpec, SystemSpec};
use crate::results::{RunMetrics, RunRecord};
use crate::store::{record, DONE_MARKER};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The code identity of runs whose manifest predates `key.versions.code`.
pub use crate::fingerprint::LEGACY_CODE;

/// The pseudo-setting that labels a run with its code identity when a report holds runs of
/// several (`dictionary [code=1a2b3c4d]`), so every table, plot and seed average keeps them apart.
pub const CODE_LABEL_KEY: &str = "code";

/// A finished run as read back from its folder.
#[derive(Debug, Clone)]
pub struct FinishedRun {
    pub record: RunRecord,
    /// (optimizer step, training loss) from training.json; empty for runs without training.
    pub loss_curve: Vec<(usize, f64)>,
    /// The hex sha256 of the source code that computed the run (manifest `key.versions.code`),
    /// or [`LEGACY_CODE`].
    pub code: String,
    /// When the run finished: the modification time of its DONE marker.
    pub finished: SystemTime,
}

impl FinishedRun {
    pub fn fingerprint(&self) -> &str {
        self.record.run.fingerprint.as_str()
    }

    pub fn short(&self) -> &str {
        self.record.run.fingerprint.short()
    }

    /// The code identity as labels show it: its first 8 hex digits, or `legacy`.
    pub fn code_short(&self) -> &str {
        self.code.get(..8).unwrap_or(&self.code)
    }
}

fn not_current(path: &Path, e: &dyn std::fmt::Display) -> ReportError {
    ReportError::Input(format!("{}: not a results file of this icdbench version ({e}); rerun its experiment", path.display()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::Input(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| not_current(path, &e))
}

/// spec.json as written: a baseline's system object carries two `kind` keys (the system's and
/// the baseline's), which a strict reader rejects, so the system is read on its own.
fn read_spec(path: &Path) -> Result<RunSpec, ReportError> {
    #[derive(serde::Deserialize)]
    struct Loose {
        experiment: String,
        sweep: Vec<(String, String)>,
        seed: u64,
        system: serde_json::Value,
        data: crate::plan::DataSpec,
        eval: crate::config::Eval,
    }
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::Input(format!("{}: cannot read: {e}", path.display())))?;
    if let Ok(spec) = serde_json::from_str::<RunSpec>(&text) {
        return Ok(spec);
    }
    let bad = |e: &dyn std::fmt::Display| not_current(path, e);
    let loose: Loose = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    // Results written before the system tag was `system` carry two `kind` keys; the last
    // (for a baseline, the baseline's own kind) wins.
    let system = match serde_json::from_value::<SystemSpec>(loose.system.clone()) {
        Ok(system) => system,
        Err(_) if loose.system.get("kind").and_then(|k| k.as_str()) == Some("model") => {
            let mut model = loose.system;
            if let Some(o) = model.as_object_mut() {
                o.remove("kind");
                o.insert("system".into(), "model".into());
            }
            serde_json::from_value::<SystemSpec>(model).map_err(|e| bad(&e))?
        }
        Err(_) => SystemSpec::Baseline(serde_json::from_value::<crate::config::Baseline>(loose.system).map_err(|e| bad(&e))?),
    };
    Ok(RunSpec { experiment: loose.experiment, sweep: loose.sweep, seed: loose.seed, system, data: loose.data, eval: loose.eval })
}

/// Reads a finished run's folder (spec.json, manifest.json, metrics.json, DONE, training.json if any).
pub fn read_run(dir: &Path) -> Result<FinishedRun, ReportError> {
    let done_path = dir.join(DONE_MARKER);
    let done = std::fs::read_to_string(&done_path)
        .map_err(|_| ReportError::Input(format!("{}: not a finished run (no {DONE_MARKER} file); run its experiment with `icdbench run` first", dir.display())))?;
    let fingerprint: Fingerprint = serde_json::from_value(serde_json::Value::String(done.trim().to_string()))
        .map_err(|e| ReportError::Input(format!("{}: unreadable fingerprint ({e})", done_path.display())))?;
    let finished = std::fs::metadata(&done_path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    let spec = read_spec(&dir.join(record::SPEC))?;
    let manifest_path = dir.join(record::MANIFEST);
    let manifest = Manifest::from_value(read_json(&manifest_path)?).map_err(|e| not_current(&manifest_path, &e))?;
    // Manifests written before runs carried a code identity read as `legacy`.
    let code = manifest.key.versions.code.clone();
    let metrics: RunMetrics = read_json(&dir.join(record::METRICS))?;
    if metrics.fingerprint != fingerprint.as_str() {
        return Err(ReportError::Input(format!("{}: metrics.json belongs to another fingerprint than {DONE_MARKER}; rerun with --force to recompute it", dir.display())));
    }
    let loss_curve = read_loss_curve(&dir.join(record::TRAINING));
    let stages = plan::StageKeys::recorded(&manifest);
    let run = PlannedRun { spec, manifest, fingerprint, stages, dir: dir.to_path_buf() };
    Ok(FinishedRun { record: RunRecord { run, reused: true, metrics }, loss_curve, code, finished })
}

/// The loss curve of training.json, read loosely: a run without one (or an older format) has none.
fn read_loss_curve(path: &Path) -> Vec<(usize, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else { return Vec::new() };
    let points = value.pointer("/training/loss_curve").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    points
        .iter()
        .filter_map(|p| Some((p.get("step")?.as_u64()? as usize, p.get("loss")?.as_f64()?)))
        .filter(|(_, l)| l.is_finite())
        .collect()
}

/// Run folders (those with a DONE marker) at or below `dir`, skipping `.partial` folders and reports.
fn run_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    if dir.join(DONE_MARKER).is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    if depth == 0 {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| ReportError::Input(format!("{}: cannot list: {e}", dir.display())))?;
    let mut subdirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.') && n != "report" && n != "checkpoint"))
        .collect();
    subdirs.sort();
    for d in subdirs {
        run_dirs(&d, depth - 1, out)?;
    }
    Ok(())
}

/// Every finished run named by `inputs` (results folders, run folders or experiment files),
/// each once, ordered by experiment and label; plus warnings about what was left out.
/// Without `all_versions`, a spec's runs computed by older code are left out (see [`by_code_identity`]).
pub fn gather(inputs: &[PathBuf], results_root: &Path, all_versions: bool) -> Result<(Vec<FinishedRun>, Vec<String>), ReportError> {
    let mut runs: Vec<FinishedRun> = Vec::new();
    let mut warnings = Vec::new();
    for input in inputs {
        if input.is_file() {
            let planned = plan::plan_file(input, results_root).map_err(|e| ReportError::Input(e.to_string()))?;
            let mut unfinished = 0;
            for p in &planned {
                if p.dir.join(DONE_MARKER).is_file() {
                    runs.push(read_run(&p.dir)?);
                } else {
                    unfinished += 1;
                }
            }
            if unfinished > 0 {
                warnings.push(format!("{}: {unfinished} of {} runs have not finished and are left out; `icdbench run {}` computes them", input.display(), planned.len(), input.display()));
            }
        } else if input.is_dir() {
            let mut dirs = Vec::new();
            run_dirs(input, 4, &mut dirs)?;
            if dirs.is_empty() {
                warnings.push(format!("{}: no finished runs (folders with a {DONE_MARKER} file) below it", input.display()));
            }
            for d in dirs {
                match read_run(&d) {
                    Ok(r) => runs.push(r),
                    Err(e) => warnings.push(format!("left out: {e}")),
                }
            }
        } else {
            return Err(ReportError::Input(format!("{}: no such results folder or experiment file", input.display())));
        }
    }
    let mut seen = std::collections::HashSet::new();
    runs.retain(|r| seen.insert(r.fingerprint().to_string()));
    let (mut runs, left_out) = by_code_identity(runs, all_versions);
    warnings.extend(left_out);
    runs.sort_by(|a, b| {
        let key = |r: &FinishedRun| (r.record.run.spec.experiment.clone(), r.record.run.label(), r.record.run.spec.seed);
        key(a).cmp(&key(b))
    });
    Ok((runs, warnings))
}

/// A run's spec with its seed left out, as canonical JSON: equal for the repeats of one run
/// over seeds, and for one run computed again (by other code, on another device).
pub(super) fn spec_key(spec: &RunSpec) -> String {
    let mut spec = spec.clone();
    spec.seed = 0;
    spec.sweep.retain(|(k, _)| k != super::SEED_KEY);
    crate::fingerprint::canonical_json(&serde_json::to_value(&spec).unwrap_or_default())
}

/// Numbers computed by different code do not compare like with like. Runs are grouped by spec
/// (seed aside, so one spec's seeds come from one code); each group keeps only the runs of its
/// newest code identity, the one whose latest run finished last, unless `all_versions` keeps
/// them all. When the runs kept come from more than one code identity, each is labelled with
/// its own ([`CODE_LABEL_KEY`]). Returns the runs kept and a warning naming what was left out.
pub fn by_code_identity(runs: Vec<FinishedRun>, all_versions: bool) -> (Vec<FinishedRun>, Vec<String>) {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        groups.entry(spec_key(&r.record.run.spec)).or_default().push(i);
    }
    let mut keep = vec![true; runs.len()];
    if !all_versions {
        for members in groups.values() {
            let newest = members.iter().map(|&i| &runs[i]).max_by(|a, b| (a.finished, a.fingerprint()).cmp(&(b.finished, b.fingerprint())));
            let Some(newest) = newest.map(|r| r.code.clone()) else { continue };
            for &i in members {
                keep[i] = runs[i].code == newest;
            }
        }
    }
    let mut left_out: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept = Vec::new();
    for (r, keep) in runs.into_iter().zip(keep) {
        if keep {
            kept.push(r);
        } else {
            *left_out.entry(r.code_short().to_string()).or_default() += 1;
        }
    }
    let mut warnings = Vec::new();
    if !left_out.is_empty() {
        let n: usize = left_out.values().sum();
        let which: Vec<String> = left_out.iter().map(|(code, k)| format!("{code}: {k}")).collect();
        warnings.push(format!(
            "{n} runs computed by older code are left out ({}): newer code has computed the same specs, and numbers from different code do not compare like with like; `icdbench report --all-versions` keeps them, labelled by code identity",
            which.join(", ")
        ));
    }
    let codes: BTreeSet<&str> = kept.iter().map(|r| r.code.as_str()).collect();
    if codes.len() > 1 {
        for r in &mut kept {
            let short = r.code_short().to_string();
            r.record.run.spec.sweep.push((CODE_LABEL_KEY.to_string(), short));
        }
    }
    (kept, warnings)
}

/// A run folder named by `arg`: a folder with a DONE marker, or a fingerprint prefix
/// (at least 4 hex digits) of exactly one finished run under `results_root`.
pub fn find_run(arg: &str, results_root: &Path) -> Result<PathBuf, ReportError> {
    let path = Path::new(arg);
    if path.join(DONE_MARKER).is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_dir() {
        return Err(ReportError::Input(format!("{arg}: not a finished run (no {DONE_MARKER} file); give a run folder such as results/<experiment>/<fingerprint>")));
    }
    let prefix = arg.to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ReportError::Input(format!("{arg}: neither a run folder nor a fingerprint prefix (4 or more hex digits)")));
    }
    let mut dirs = Vec::new();
    if results_root.is_dir() {
        run_dirs(results_root, 4, &mut dirs)?;
    }
    let matches: Vec<PathBuf> = dirs
        .into_iter()
        .filter(|d| std::fs::read_to_string(d.join(DONE_MARKER)).is_ok_and(|f| f.trim().starts_with(&prefix)))
        .collect();
    match matches.len() {
        1 => Ok(matches[0].clone()),
        0 => Err(ReportError::Input(format!("{arg}: no finished run under {} has a fingerprint starting with it; `icdbench plan` lists fingerprints", results_root.display()))),
        n => Err(ReportError::Input(format!(
            "{arg}: {n} finished runs under {} match ({}); give more digits",
            results_root.display(),
            matches.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_without_a_code_identity_is_legacy() {
        let old = serde_json::json!({"spec": {}, "inputs": [], "versions": {"icdbench": "0.1.0", "git_revision": "abc-dirty", "libtorch": "2.11.0", "device": "cpu"}});
        let m = Manifest::from_value(old).unwrap();
        assert_eq!(m.key.versions.code, LEGACY_CODE);
        assert!(m.provenance.git_dirty && m.provenance.git_revision == "abc");
    }
}
