//! The only place that knows the whole chain: planned run -> data -> system ->
//! predictions -> scores -> results folder. A finished run is found by its
//! fingerprint and reused; a run being computed holds its lock, reuses the
//! cached stages it shares with other runs (trained weights, a split's
//! predictions; see [`crate::store`]) and is written to a `.partial` folder
//! that is renamed into place only when complete.

mod predict;
mod fit;
mod stage;
mod train;
mod pretrain;

pub use crate::store::DONE_MARKER;
pub use stage::{Cost, RunError, RunOptions};
pub(crate) use stage::{io_err, RunLog};
pub use train::ModelRecord;
use predict::PredictRecord;
pub use pretrain::PretrainRecord;
pub use crate::metrics::split::{score_split, SplitMetrics, RANKING_KS};

use crate::data::jsonl::{write_predictions, LoadReport, Prediction};
use crate::data::{self, CodeTable, Dataset, Split};
use crate::fingerprint::canonical_json;
use crate::metrics;
use crate::plan::{DataSpec, PlannedRun, SystemSpec};
use crate::store::{self, Lock, Stage, TryLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

impl From<metrics::MetricsError> for RunError {
    fn from(e: metrics::MetricsError) -> RunError {
        RunError::Metrics(e.to_string())
    }
}

/// `metrics.json` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub fingerprint: String,
    pub system: String,
    pub splits: BTreeMap<String, SplitMetrics>,
    /// Unknown codes and mismatched evidence found while loading the data.
    pub data_report: LoadReport,
    /// Training cost of a model run or a trained baseline (None for the matching baselines and zero-shot runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    pub seconds: f64,
}

/// A trained model's cost as its training report counts it.
fn cost_of(r: &crate::train::TrainReport) -> Cost {
    Cost {
        optimizer_steps: r.optimizer_steps,
        examples: r.examples_seen.total(),
        span_examples: r.examples_seen.span,
        document_examples: r.examples_seen.document,
        input_tokens: r.input_tokens.total(),
        span_tokens: r.input_tokens.span,
        document_tokens: r.input_tokens.document,
        padded_tokens: r.padded_tokens,
        estimated_flops: r.estimated_flops,
        train_seconds: r.wall_seconds,
        tokens_per_second: r.tokens_per_second,
        peak_rss_bytes: r.peak_rss_bytes,
        peak_gpu_memory_bytes: r.peak_gpu_memory_bytes,
    }
}

/// What happened to one planned run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run: PlannedRun,
    pub reused: bool,
    pub metrics: RunMetrics,
}

/// Documents generated or read once per data spec and shared by the runs that use them.
#[derive(Default)]
struct DataCache {
    tables: HashMap<String, Arc<CodeTable>>,
    datasets: HashMap<String, Arc<(Dataset, LoadReport)>>,
}

impl DataCache {
    fn get(&mut self, spec: &DataSpec) -> Result<(Arc<CodeTable>, Arc<(Dataset, LoadReport)>), RunError> {
        let table_key = format!("{}|{}", spec.base_dir.display(), spec.config.code_table);
        let table = match self.tables.get(&table_key) {
            Some(t) => t.clone(),
            None => {
                let t = Arc::new(data::code_table(&spec.config, &spec.base_dir)?);
                self.tables.insert(table_key.clone(), t.clone());
                t
            }
        };
        let value = serde_json::to_value(spec).map_err(|e| RunError::Spec(e.to_string()))?;
        let data_key = format!("{}|{}", spec.base_dir.display(), canonical_json(&value));
        let dataset = match self.datasets.get(&data_key) {
            Some(d) => d.clone(),
            None => {
                let d = Arc::new(data::load(&spec.config, &spec.base_dir, &table)?);
                self.datasets.insert(data_key, d.clone());
                d
            }
        };
        Ok((table, dataset))
    }
}

/// Executes planned runs, reusing finished ones; `on_done` hears about each as it finishes.
/// A run another process is computing is left for later and then waited for, so several
/// processes on one sweep share the work and each run is computed once. Records come back
/// in planned order.
pub fn execute(runs: &[PlannedRun], opts: &RunOptions, mut on_done: impl FnMut(&RunRecord)) -> Result<Vec<RunRecord>, RunError> {
    let mut cache = DataCache::default();
    let mut records: Vec<Option<RunRecord>> = vec![None; runs.len()];
    let mut busy = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if !opts.force {
            if let Some(metrics) = finished(run)? {
                let record = RunRecord { run: run.clone(), reused: true, metrics };
                on_done(&record);
                records[i] = Some(record);
                continue;
            }
        }
        match Lock::try_acquire(&store::lock_path(&run.dir))? {
            TryLock::Acquired(lock) => {
                let record = locked(run, lock, opts, &mut cache)?;
                on_done(&record);
                records[i] = Some(record);
            }
            TryLock::Busy(holder) if opts.leave_busy => match still_busy(run, holder)? {
                Ok(lock) => {
                    let record = locked(run, lock, opts, &mut cache)?;
                    on_done(&record);
                    records[i] = Some(record);
                }
                Err(who) => eprintln!("  {} {}: running in {who}; left to it", run.fingerprint.short(), run.label()),
            },
            TryLock::Busy(holder) => {
                let who = holder.map_or("another process".to_string(), |h| h.describe());
                eprintln!("  {} {}: running in {who}; coming back to it after the other runs", run.fingerprint.short(), run.label());
                busy.push(i);
            }
        }
    }
    for i in busy {
        let run = &runs[i];
        let lock = Lock::acquire(&store::lock_path(&run.dir), |holder| {
            let who = holder.map_or("another process".to_string(), |h| h.describe());
            eprintln!("  {} {}: waiting for {who}", run.fingerprint.short(), run.label());
        })?;
        let record = locked(run, lock, &RunOptions { force: false, ..opts.clone() }, &mut cache)?;
        on_done(&record);
        records[i] = Some(record);
    }
    Ok(records.into_iter().flatten().collect())
}

/// A run found locked, looked at again: `icdbench status` and `plan` take a free lock for an
/// instant to see that it is free, so a lock that stays taken for a few seconds is a real holder.
/// The lock when it came free, else who holds it.
fn still_busy(run: &PlannedRun, mut holder: Option<store::Holder>) -> Result<Result<Lock, String>, RunError> {
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        match Lock::try_acquire(&store::lock_path(&run.dir))? {
            TryLock::Acquired(lock) => return Ok(Ok(lock)),
            TryLock::Busy(h) => holder = h.or(holder),
        }
    }
    Ok(Err(holder.map_or("another process".to_string(), |h| h.describe())))
}

/// With the run's lock held: reuse what another process finished meanwhile, or compute.
/// A holder that died (its lock released by the kernel) left a checkpoint to resume from.
fn locked(run: &PlannedRun, lock: Lock, opts: &RunOptions, cache: &mut DataCache) -> Result<RunRecord, RunError> {
    if !opts.force {
        if let Some(metrics) = finished(run)? {
            return Ok(RunRecord { run: run.clone(), reused: true, metrics });
        }
    }
    let metrics = compute(run, opts, cache)?;
    drop(lock);
    Ok(RunRecord { run: run.clone(), reused: false, metrics })
}

/// The metrics of a finished run with this fingerprint, if there is one; an error naming
/// the fix (`--force`) when its folder claims to be finished but is not intact.
pub fn finished(run: &PlannedRun) -> Result<Option<RunMetrics>, RunError> {
    Ok(store::read_finished(&run.dir, run.fingerprint.as_str())?)
}

/// Where a split's cached predictions live, and whether they are complete.
fn predict_dir(run: &PlannedRun, split: &str) -> PathBuf {
    store::stage_dir(&run.dir, Stage::Predict, run.stages.predict.get(split).map(|k| k.as_str()).unwrap_or("none"))
}

const PREDICTIONS: &str = "predictions.jsonl";
const PREDICT_STATS: &str = "stats.json";
/// A trained system's record in its train stage; written once training is complete.
const TRAIN_RECORD: &str = "record.json";

/// Stores one split's predictions in its stage (stats first, predictions last: their presence means complete).
fn store_predictions(dir: &Path, preds: &[Prediction], record: &PredictRecord) -> Result<(), RunError> {
    store::write_json(&dir.join(PREDICT_STATS), record)?;
    store::write_atomic(&dir.join(PREDICTIONS), |w| write_predictions(w, preds))?;
    Ok(())
}

fn read_json_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RunError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| RunError::CorruptCache { path: path.to_path_buf(), reason: e.to_string() })
}

fn compute(run: &PlannedRun, opts: &RunOptions, cache: &mut DataCache) -> Result<RunMetrics, RunError> {
    let started = Instant::now();
    // Whatever an interrupted attempt left here is redone: training resumes from its stage's checkpoint.
    let partial = store::sibling(&run.dir, "partial");
    store::remove_any(&partial)?;
    std::fs::create_dir_all(&partial).map_err(io_err(&partial))?;
    let mut log = RunLog::new();
    log.line(format!("run {} fingerprint {}", run.label(), run.fingerprint));

    let (table, data) = cache.get(&run.spec.data)?;
    let (dataset, load_report) = (&data.0, &data.1);
    let scored: Vec<Split> = run.spec.eval.splits.iter().filter_map(|s| Split::parse(s)).collect();
    data::registry::require_splits(&run.spec.data.config, dataset, &scored)?;
    log.line(format!(
        "data {}: {} train / {} val / {} test documents, {} codes in the pool",
        dataset.name,
        dataset.count(Split::Train),
        dataset.count(Split::Val),
        dataset.count(Split::Test),
        dataset.pool.len()
    ));
    if !load_report.is_clean() {
        log.line(format!("data warnings: {}", load_report.summary()));
    }

    // The train stage's lock also covers the predictions made from it: runs that share
    // trained weights take turns, and the later one finds what the earlier one stored.
    let train_dir = store::stage_dir(&run.dir, Stage::Train, run.stages.train.as_str());
    let _train_lock = Lock::acquire(&store::lock_path(&train_dir), |holder| {
        let who = holder.map_or("another process".to_string(), |h| h.describe());
        eprintln!("  {} {}: its trained stage is busy in {who}; waiting", run.fingerprint.short(), run.label());
    })?;
    let splits: Vec<(Split, String)> = run.spec.eval.splits.iter().filter_map(|s| Split::parse(s).map(|p| (p, s.clone()))).collect();
    if opts.force {
        // --force recomputes the run's own stages too (not a shared pretrained backbone).
        store::remove_any(&train_dir)?;
        for (_, name) in &splits {
            store::remove_any(&predict_dir(run, name))?;
        }
    }
    let todo: Vec<Split> = splits.iter().filter(|(_, name)| !predict_dir(run, name).join(PREDICTIONS).is_file()).map(|(s, _)| *s).collect();
    let record_path = train_dir.join(TRAIN_RECORD);
    let have_record = record_path.is_file();
    log.line(format!(
        "stages: train {} ({}), predict {} of {} splits cached",
        run.stages.train.short(),
        if have_record { "cached" } else { "to compute" },
        splits.len() - todo.len(),
        splits.len()
    ));

    let seen: HashSet<String> = dataset.seen_codes().iter().map(|c| c.to_string()).collect();
    let label_space: Option<Vec<String>> = (!dataset.pool.is_empty()).then(|| dataset.pool.iter().map(|c| c.to_string()).collect());
    let cost;
    let mut training_json: Option<serde_json::Value> = None;
    match &run.spec.system {
        SystemSpec::Baseline(b) => {
            if !(todo.is_empty() && have_record) {
                // A baseline is cheap to refit: every split is predicted again.
                let out = fit::baseline_predictions(b, run, &table, dataset, opts, &mut log)?;
                for (split, preds) in &out.predictions {
                    store_predictions(&predict_dir(run, split.as_str()), preds, &PredictRecord::default())?;
                }
                let record = match out.fitted {
                    Some(fit::FittedBaseline { record, cost: Some(cost) }) => serde_json::json!({"baseline": record, "cost": cost}),
                    Some(fit::FittedBaseline { record, cost: None }) => serde_json::json!({"baseline": record}),
                    None => serde_json::json!({}),
                };
                store::write_json(&record_path, &record)?;
            } else {
                log.line("baseline: predictions reused from the cache".into());
            }
            let record: serde_json::Value = read_json_file(&record_path)?;
            if let Some(b) = record.get("baseline") {
                training_json = Some(b.clone());
            }
            cost = record.get("cost").and_then(|c| serde_json::from_value::<Cost>(c.clone()).ok());
        }
        SystemSpec::Model(spec) => {
            if !(todo.is_empty() && have_record) {
                let trained = train::train(run, spec, &table, dataset, &train_dir, opts, &mut log)?;
                if !have_record {
                    store::write_json(&record_path, &trained.record)?;
                }
                for (split, preds, predicted) in &predict::predict(run, spec, &trained, &table, dataset, &todo, opts, &mut log)? {
                    store_predictions(&predict_dir(run, split.as_str()), preds, predicted)?;
                }
            } else {
                log.line("model: trained weights and every split's predictions reused from the cache".into());
            }
            let mut record: ModelRecord = read_json_file(&record_path)?;
            for (_, name) in &splits {
                let p: PredictRecord = read_json_file(&predict_dir(run, name).join(PREDICT_STATS))?;
                record.inference.add(&p.inference);
                record.predict_stats.add(&p.stats);
            }
            cost = record.training.as_ref().map(cost_of);
            training_json = Some(serde_json::to_value(&record).unwrap_or_default());
        }
    }

    let mut splits_out = BTreeMap::new();
    for (split, name) in &splits {
        let docs: Vec<&data::Document> = dataset.split(*split).collect();
        let cached = predict_dir(run, name).join(PREDICTIONS);
        let path = partial.join(format!("predictions-{split}.jsonl"));
        store::link_or_copy(&cached, &path)?;
        // Runs score what they stored, fresh or reused alike, read as `icdbench score` reads predictions.
        let preds = data::jsonl::read_predictions(&path, &table).map_err(|e| RunError::CorruptCache { path: cached.clone(), reason: e.to_string() })?;
        if preds.len() != docs.len() {
            return Err(RunError::CorruptCache { path: cached, reason: format!("{} predictions for {} documents", preds.len(), docs.len()) });
        }
        let mut scored = score_split(&docs, &preds, run.spec.eval.bootstrap_samples, run.spec.seed, Some(seen.clone()), label_space.clone())?;
        let stats = predict_dir(run, name).join(PREDICT_STATS);
        if stats.is_file() {
            scored.probe = read_json_file::<PredictRecord>(&stats)?.probe;
        }
        log.line(format!(
            "{split}: {} documents, micro-F1 {:.4}, macro-F1 {:.4} ({} codes)",
            docs.len(),
            scored.sets.overall.micro.f1,
            scored.sets.overall.macro_gold.f1,
            scored.sets.overall.macro_gold.n_codes
        ));
        splits_out.insert(split.to_string(), scored);
    }
    if let Some(t) = &training_json {
        let name = if matches!(run.spec.system, SystemSpec::Baseline(_)) { "baseline.json" } else { "training.json" };
        store::write_json(&partial.join(name), t)?;
    }
    let metrics = RunMetrics {
        fingerprint: run.fingerprint.to_string(),
        system: run.spec.system_name(),
        splits: splits_out,
        data_report: load_report.clone(),
        cost,
        seconds: started.elapsed().as_secs_f64(),
    };
    log.line(format!("finished in {:.2} s", metrics.seconds));
    store::write_json(&partial.join("spec.json"), &run.spec)?;
    store::write_json(&partial.join("manifest.json"), &run.manifest)?;
    store::write_json(&partial.join("metrics.json"), &metrics)?;
    store::write_atomic(&partial.join("run.log"), |w| w.write_all(log.text.as_bytes()))?;
    store::write_atomic(&partial.join(DONE_MARKER), |w| writeln!(w, "{}", run.fingerprint))?;
    store::publish(&partial, &run.dir)?;
    Ok(metrics)
}

/// Writes through a uniquely named temporary file and renames it into place.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>) -> Result<(), RunError> {
    Ok(store::write_atomic(path, fill)?)
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RunError> {
    Ok(store::write_json(path, value)?)
}

