//! `icdbench compare A B`: whether two finished runs differ by more than the
//! choice of documents explains (paired bootstrap, [`crate::metrics::paired`]).

use super::gather::{find_run, read_run, FinishedRun};
use crate::plan::SystemSpec;
use crate::results::RunRecord;
use super::{markdown_table, ReportError};
use crate::config::ComparePair;
use crate::data::{self, Split};
use crate::metrics::paired::{paired_bootstrap, PairedReport};
use crate::metrics::Bootstrap;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Both runs, the split, and the test's outcome.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub a: Side,
    pub b: Side,
    pub split: String,
    pub report: PairedReport,
}

#[derive(Debug, Serialize)]
pub struct Side {
    pub run: String,
    pub fingerprint: String,
    pub dir: String,
}

impl Side {
    fn of(r: &FinishedRun) -> Side {
        Side { run: r.record.run.label(), fingerprint: r.fingerprint().to_string(), dir: r.record.run.dir.display().to_string() }
    }
}

/// Predicted code lists by document id, in file order.
fn read_predictions(path: &Path) -> Result<Vec<(String, Vec<String>)>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::Input(format!("{}: cannot read ({e}); does the run evaluate this split? see its spec.json `eval.splits`", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |why: &str| ReportError::Input(format!("{}:{}: {why}; the file is not a prediction file of icdbench (rerun the run with --force)", path.display(), i + 1));
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let id = v.get("id").and_then(|x| x.as_str()).ok_or_else(|| bad("no string `id`"))?;
        let codes = v.get("codes").and_then(|x| x.as_array()).ok_or_else(|| bad("no `codes` list"))?;
        // Predicted strings outside the code set are false positives here as in the runs' scores.
        let invalid = v.get("invalid").and_then(|x| x.as_array()).into_iter().flatten();
        out.push((id.to_string(), codes.iter().chain(invalid).filter_map(|c| c.as_str().map(str::to_string)).collect()));
    }
    Ok(out)
}

/// Loads both runs and their shared gold documents, then runs the paired bootstrap.
pub fn compare(a: &str, b: &str, results_root: &Path, split: &str, samples: usize, seed: u64) -> Result<Comparison, ReportError> {
    let split_v = Split::parse_scored(split).ok_or_else(|| ReportError::Input(format!("--split {split:?}: use train, val, test or evidence")))?;
    let run_a = read_run(&find_run(a, results_root)?)?;
    let run_b = read_run(&find_run(b, results_root)?)?;
    let (da, db) = (&run_a.record.run.dir, &run_b.record.run.dir);
    let data_a = serde_json::to_value(&run_a.record.run.spec.data).unwrap_or_default();
    let data_b = serde_json::to_value(&run_b.record.run.spec.data).unwrap_or_default();
    if data_a != data_b {
        return Err(ReportError::Input(format!(
            "{} and {} were scored on different data (their spec.json `data` differ), so their predictions are not on the same documents; compare runs of the same data",
            da.display(),
            db.display()
        )));
    }
    let pa = read_predictions(&da.join(crate::store::record::predictions_file(split)))?;
    let pb = read_predictions(&db.join(crate::store::record::predictions_file(split)))?;
    let ids = |p: &[(String, Vec<String>)]| p.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    if ids(&pa) != ids(&pb) {
        return Err(ReportError::Input(format!(
            "{} and {}: predictions-{split}.jsonl are not on the same documents ({} vs {} predictions, or ids in another order); compare runs of the same data",
            da.display(),
            db.display(),
            pa.len(),
            pb.len()
        )));
    }
    // Gold documents as the runner loaded them: its data stage in the store, else loaded
    // again (relative data paths then resolve against the experiment's folder when known,
    // else the current folder).
    let dataset = match stored_dataset(&run_a)? {
        Some(d) => d,
        None => {
            let spec = &run_a.record.run.spec.data;
            let base = if spec.base_dir.as_os_str().is_empty() { Path::new(".") } else { spec.base_dir.as_path() };
            let fail = |e: data::DataError| ReportError::Input(format!("{}: cannot load the run's data: {e}", da.join(crate::store::record::SPEC).display()));
            let table = data::code_table(&spec.config, base).map_err(fail)?;
            data::load(&spec.config, base, &table).map_err(fail)?.0
        }
    };
    let docs: Vec<&data::Document> = dataset.split(split_v).collect();
    let by_id: HashMap<&str, &Vec<String>> = pa.iter().map(|(id, c)| (id.as_str(), c)).collect();
    let by_id_b: HashMap<&str, &Vec<String>> = pb.iter().map(|(id, c)| (id.as_str(), c)).collect();
    if docs.len() != pa.len() || docs.iter().any(|d| !by_id.contains_key(d.id.as_str())) {
        return Err(ReportError::Input(format!(
            "{}: predictions-{split}.jsonl has {} predictions but the run's data has {} {split} documents with other ids; the data changed since the run (rerun it)",
            da.display(),
            pa.len(),
            docs.len()
        )));
    }
    let gold: Vec<Vec<String>> = docs.iter().map(|d| d.codes.iter().map(|c| c.to_string()).collect()).collect();
    let pred_a: Vec<Vec<String>> = docs.iter().map(|d| by_id[d.id.as_str()].clone()).collect();
    let pred_b: Vec<Vec<String>> = docs.iter().map(|d| by_id_b.get(d.id.as_str()).map(|c| (*c).clone()).unwrap_or_default()).collect();
    let seen: HashSet<String> = dataset.seen_codes().iter().map(|c| c.to_string()).collect();
    let seen = (!seen.is_empty()).then_some(seen);
    let report = paired_bootstrap(&gold, &pred_a, &pred_b, seen.as_ref(), &Bootstrap::new(samples, seed)).map_err(|e| ReportError::Input(format!("--samples: {e}")))?;
    Ok(Comparison { a: Side::of(&run_a), b: Side::of(&run_b), split: split.to_string(), report })
}

/// The documents a finished run's data stage stored, where the store still has them.
fn stored_dataset(run: &FinishedRun) -> Result<Option<data::Dataset>, ReportError> {
    let r = &run.record.run;
    if r.stages.data.as_str().is_empty() {
        return Ok(None);
    }
    let paths = crate::store::RunPaths::new(&r.dir, r.stages.data.as_str(), r.stages.train.as_str(), []);
    let stored: Option<(data::Dataset, serde_json::Value)> = paths.read_data().map_err(|e| ReportError::Input(e.to_string()))?;
    Ok(stored.map(|(d, _)| d))
}

/// The runs an experiment's `[[compare]]` pairs: each run on side A with the run on
/// side B that shares every other sweep setting (so seed 2 meets seed 2).
pub fn experiment_pairs<'r>(pair: &ComparePair, records: &'r [RunRecord]) -> Vec<(&'r RunRecord, &'r RunRecord)> {
    let baseline = |r: &RunRecord| match &r.run.spec.system {
        SystemSpec::Baseline(b) => Some(b.name()),
        SystemSpec::Model(_) => None,
    };
    let on = |side: &str| -> Vec<&'r RunRecord> {
        match ComparePair::baseline(side) {
            Some(name) => records.iter().filter(|r| baseline(r).as_deref() == Some(name)).collect(),
            None => records.iter().filter(|r| baseline(r).is_none() && ComparePair::selects(side, &r.run.spec.sweep)).collect(),
        }
    };
    // A baseline's label names only the settings it depends on: it pairs with every run
    // whose other settings include its own.
    let agree = |a: &RunRecord, b: &RunRecord| {
        let (ra, rb) = (pair.rest(&a.run.spec.sweep), pair.rest(&b.run.spec.sweep));
        match (baseline(a).is_some(), baseline(b).is_some()) {
            (true, false) => ra.iter().all(|s| rb.contains(s)),
            (false, true) => rb.iter().all(|s| ra.contains(s)),
            _ => ra == rb,
        }
    };
    let bs = on(&pair.b);
    on(&pair.a).into_iter().flat_map(|a| bs.iter().filter(move |b| agree(a, b)).map(move |b| (a, *b))).collect::<Vec<_>>()
}

/// The comparison as a terminal/Markdown table with its conventions.
pub fn table(c: &Comparison) -> String {
    let rows: Vec<Vec<String>> = c
        .report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.metric.clone(),
                r.part.clone(),
                format!("{:.2}", 100.0 * r.a),
                format!("{:.2}", 100.0 * r.b),
                format!("{:+.2}", 100.0 * r.difference),
                format!("[{:+.2}, {:+.2}]", 100.0 * r.ci.lower, 100.0 * r.ci.upper),
                format!("{:.4}", r.p_value),
            ]
        })
        .collect();
    format!(
        "A: {} ({}) {}\nB: {} ({}) {}\n{} documents ({} split), {} paired bootstrap samples, seed {}\n\n{}\n\
         Percent. B − A with its 95% percentile interval; p: two-sided, paired bootstrap over documents. micro-F1 = TP/(TP+(FP+FN)/2); \
         macro-F1 over the codes in the (resampled) gold labels (Edin et al. 2023); seen = codes in training documents.\n",
        c.a.run,
        &c.a.fingerprint[..12.min(c.a.fingerprint.len())],
        c.a.dir,
        c.b.run,
        &c.b.fingerprint[..12.min(c.b.fingerprint.len())],
        c.b.dir,
        c.report.n_docs,
        c.split,
        c.report.samples,
        c.report.seed,
        markdown_table(&["metric", "codes", "A", "B", "B − A", "95% CI of B − A", "p-value"], &rows)
    )
}
