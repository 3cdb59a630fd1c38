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
pub use crate::results::{Cost, RunMetrics, RunRecord};
pub use stage::{RunError, RunOptions};
pub(crate) use stage::{io_err, RunLog};
pub use train::ModelRecord;
use predict::PredictRecord;
pub use pretrain::PretrainRecord;
pub use crate::metrics::split::{score_split, SplitMetrics, RANKING_KS};

use crate::data::jsonl::{write_predictions, LoadReport};
use crate::data::{self, CodeTable, Dataset, Split};
use crate::metrics;
use crate::metrics::split::{AnswersCut, Reading, FEW_UNSEEN_CODES};
use crate::plan::{DataSpec, PlannedRun, SystemSpec};
use crate::store::{self, record, Lock, RunPaths, StoreError, TryLock};
use serde::Serialize;
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


/// Documents generated or read once per data stage and shared by the runs that use them:
/// kept in memory for this process, and written to the data stage for the next one.
#[derive(Default)]
struct DataCache {
    tables: HashMap<String, Arc<CodeTable>>,
    datasets: HashMap<PathBuf, Arc<(Dataset, LoadReport)>>,
}

impl DataCache {
    fn get(&mut self, spec: &DataSpec, paths: &RunPaths, log: &mut RunLog) -> Result<(Arc<CodeTable>, Arc<(Dataset, LoadReport)>), RunError> {
        let table_key = format!("{}|{}", spec.base_dir.display(), spec.config.code_table);
        let table = match self.tables.get(&table_key) {
            Some(t) => t.clone(),
            None => {
                let t = Arc::new(data::code_table(&spec.config, &spec.base_dir)?);
                self.tables.insert(table_key.clone(), t.clone());
                t
            }
        };
        let stage = paths.data_dir().to_path_buf();
        if let Some(d) = self.datasets.get(&stage) {
            return Ok((table, d.clone()));
        }
        // Runs that share the documents take turns; the later one reads what the earlier stored.
        let _lock = Lock::acquire(&store::lock_path(&stage), |_| eprintln!("  data stage {} is being written by another process; waiting", stage.display()))?;
        let loaded = match paths.read_data()? {
            Some(stored) => {
                log.line(format!("data: read from the data stage {}", stage.display()));
                stored
            }
            None => {
                let (dataset, report) = data::load(&spec.config, &spec.base_dir, &table)?;
                std::fs::create_dir_all(&stage).map_err(io_err(&stage))?;
                paths.write_data(&dataset, &report)?;
                (dataset, report)
            }
        };
        let d = Arc::new(loaded);
        self.datasets.insert(stage, d.clone());
        Ok((table, d))
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

fn compute(run: &PlannedRun, opts: &RunOptions, cache: &mut DataCache) -> Result<RunMetrics, RunError> {
    let started = Instant::now();
    let paths = run.paths();
    // Whatever an interrupted attempt left here is redone: training resumes from its stage's checkpoint.
    let partial = paths.partial();
    store::remove_any(&partial)?;
    std::fs::create_dir_all(&partial).map_err(io_err(&partial))?;
    let mut log = RunLog::new();
    log.line(format!("run {} fingerprint {}", run.label(), run.fingerprint));

    let (table, data) = cache.get(&run.spec.data, &paths, &mut log)?;
    let (dataset, load_report) = (&data.0, &data.1);
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
    if let Some(l) = &load_report.leakage {
        log.line(format!("leakage: {}", l.describe()));
    }
    let splits: Vec<(Split, String)> = run.spec.eval.splits.iter().filter_map(|s| Split::parse_scored(s).map(|p| (p, s.clone()))).collect();
    data::registry::require_splits(&run.spec.data.config, dataset, &splits.iter().map(|(s, _)| *s).collect::<Vec<_>>())?;

    // The train stage's lock also covers the predictions made from it: runs that share
    // trained weights take turns, and the later one finds what the earlier one stored.
    let _train_lock = Lock::acquire(&store::lock_path(paths.train_dir()), |holder| {
        let who = holder.map_or("another process".to_string(), |h| h.describe());
        eprintln!("  {} {}: its trained stage is busy in {who}; waiting", run.fingerprint.short(), run.label());
    })?;
    if opts.force {
        // --force recomputes the run's own stages too (not a shared pretrained backbone).
        store::remove_any(paths.train_dir())?;
        for (_, name) in &splits {
            store::remove_any(&paths.predict_dir(name))?;
        }
    }
    let todo: Vec<Split> = splits.iter().filter(|(_, name)| !paths.predictions(name).is_file()).map(|(s, _)| *s).collect();
    let have_record = paths.train_record().is_file();
    log.line(format!(
        "stages: train {} ({}), predict {} of {} splits cached",
        run.stages.train.short(),
        if have_record { "cached" } else { "to compute" },
        splits.len() - todo.len(),
        splits.len()
    ));
    let fresh = !(todo.is_empty() && have_record);
    let (cost, record) = match &run.spec.system {
        SystemSpec::Baseline(b) => fit_baseline(b, run, &paths, &table, dataset, &todo, fresh, have_record, opts, &mut log)?,
        SystemSpec::Model(spec) => train_model(spec, run, &paths, &table, dataset, &todo, fresh, have_record, opts, &mut log)?,
    };
    let splits_out = score_splits(run, &paths, &splits, &table, dataset, &partial, &mut log)?;
    if let Some(record) = &record {
        let name = if matches!(run.spec.system, SystemSpec::Baseline(_)) { record::BASELINE } else { record::TRAINING };
        store::write_json(&partial.join(name), record)?;
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
    store::write_json(&partial.join(record::SPEC), &run.spec)?;
    store::write_json(&partial.join(record::MANIFEST), &run.manifest)?;
    store::write_json(&partial.join(record::METRICS), &metrics)?;
    store::write_atomic(&partial.join(record::LOG), |w| w.write_all(log.text.as_bytes()))?;
    store::write_atomic(&partial.join(DONE_MARKER), |w| writeln!(w, "{}", run.fingerprint))?;
    store::publish(&partial, &run.dir)?;
    Ok(metrics)
}

/// A baseline's fit stage: unless all is cached, the missing splits predicted from the fitted
/// state a trained scorer kept in its train stage, or else the baseline fitted and every
/// split predicted again (cheap for the kinds that keep no state); its cost and record.
#[allow(clippy::too_many_arguments)]
fn fit_baseline(b: &crate::config::Baseline, run: &PlannedRun, paths: &RunPaths, table: &CodeTable, dataset: &Dataset, todo: &[Split], fresh: bool, have_record: bool, opts: &RunOptions, log: &mut RunLog) -> Result<(Option<Cost>, Option<serde_json::Value>), RunError> {
    let state_dir = paths.train_dir().join("fitted");
    let mut record: Option<serde_json::Value> = if have_record { Some(store::read_json(&paths.train_record())?) } else { None };
    let reloaded = match (fresh, &record) {
        (true, Some(stored)) => fit::reloaded_predictions(b, &state_dir, stored, todo, dataset)?,
        _ => None,
    };
    if let Some(predictions) = reloaded {
        log.line(format!("baseline: fitted state read back from {}; {} split(s) predicted", state_dir.display(), predictions.len()));
        for (split, preds) in &predictions {
            paths.write_predictions(split.as_str(), &PredictRecord::default(), |w| write_predictions(w, preds))?;
        }
    } else if fresh {
        let out = fit::baseline_predictions(b, &state_dir, run, table, dataset, opts, log)?;
        for (split, preds) in &out.predictions {
            paths.write_predictions(split.as_str(), &PredictRecord::default(), |w| write_predictions(w, preds))?;
        }
        let fitted = match out.fitted {
            Some(fit::FittedBaseline { record, cost: Some(cost) }) => serde_json::json!({"baseline": record, "cost": cost}),
            Some(fit::FittedBaseline { record, cost: None }) => serde_json::json!({"baseline": record}),
            None => serde_json::json!({}),
        };
        store::write_json(&paths.train_record(), &fitted)?;
        record = Some(fitted);
    } else {
        log.line("baseline: predictions reused from the cache".into());
    }
    let record = match record {
        Some(r) => r,
        None => store::read_json(&paths.train_record())?,
    };
    let cost = record.get("cost").and_then(|c| serde_json::from_value::<Cost>(c.clone()).ok());
    Ok((cost, record.get("baseline").cloned()))
}

/// A model's train stage and the predict stages it feeds: trained and the missing splits
/// predicted unless all is cached; its cost and record, with every split's decoding counts.
#[allow(clippy::too_many_arguments)]
fn train_model(
    spec: &crate::plan::ModelSpec,
    run: &PlannedRun,
    paths: &RunPaths,
    table: &CodeTable,
    dataset: &Dataset,
    todo: &[Split],
    fresh: bool,
    have_record: bool,
    opts: &RunOptions,
    log: &mut RunLog,
) -> Result<(Option<Cost>, Option<serde_json::Value>), RunError> {
    if fresh {
        let trained = train::train(run, spec, table, dataset, paths.train_dir(), opts, log)?;
        if !have_record {
            store::write_json(&paths.train_record(), &trained.record)?;
        }
        for (split, preds, predicted) in &predict::predict(run, spec, &trained, table, dataset, todo, opts, log)? {
            paths.write_predictions(split.as_str(), predicted, |w| write_predictions(w, preds))?;
        }
    } else {
        log.line("model: trained weights and every split's predictions reused from the cache".into());
    }
    let mut record: ModelRecord = store::read_json(&paths.train_record())?;
    for split in &run.spec.eval.splits {
        let p: PredictRecord = store::read_json(&paths.predict_record(split))?;
        record.inference.add(&p.inference);
        record.predict_stats.add(&p.stats);
    }
    let cost = record.training.as_ref().map(cost_of);
    let json = serde_json::to_value(&record).map_err(|e| RunError::Spec(format!("cannot serialise the training record: {e}")))?;
    Ok((cost, Some(json)))
}

/// Scores every evaluated split from what its predict stage stored, fresh or reused alike,
/// read as `icdbench score` reads predictions; the predictions are linked into the run.
fn score_splits(run: &PlannedRun, paths: &RunPaths, splits: &[(Split, String)], table: &CodeTable, dataset: &Dataset, partial: &Path, log: &mut RunLog) -> Result<BTreeMap<String, SplitMetrics>, RunError> {
    let seen: HashSet<String> = dataset.seen_codes().iter().map(|c| c.to_string()).collect();
    let label_space: Option<Vec<String>> = (!dataset.pool.is_empty()).then(|| dataset.pool.iter().map(|c| c.to_string()).collect());
    let mut out = BTreeMap::new();
    for (split, name) in splits {
        let docs: Vec<&data::Document> = dataset.split(*split).collect();
        let cached = paths.predictions(name);
        let path = partial.join(record::predictions_file(name));
        store::link_or_copy(&cached, &path)?;
        let corrupt = |reason: String| RunError::Store(StoreError::CorruptCache { path: cached.clone(), reason });
        let preds = data::jsonl::read_predictions(&path, table).map_err(|e| corrupt(e.to_string()))?;
        if preds.len() != docs.len() {
            return Err(corrupt(format!("{} predictions for {} documents", preds.len(), docs.len())));
        }
        let mut scored = score_split(&docs, &preds, run.spec.eval.bootstrap_samples, run.spec.seed, Some(seen.clone()), label_space.clone())?;
        let stats = paths.predict_record(name);
        if stats.is_file() {
            let p = store::read_json::<PredictRecord>(&stats)?;
            if let Some(budget) = &p.max_new_tokens {
                scored.answers_cut = Some(AnswersCut { windows: p.stats.windows, cut: p.stats.cut_by_limit, max_new_tokens: budget.tokens });
                let st = &p.stats;
                scored.reading = Some(Reading {
                    policy: serde_json::to_value(run.spec.eval.read).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                    note_tokens: st.note_tokens,
                    unread_tokens: st.unread_tokens,
                    unread_share: st.unread_tokens as f64 / st.note_tokens.max(1) as f64,
                    notes_cut: st.notes_cut,
                });
            }
            scored.probe = p.probe;
        }
        log.line(format!(
            "{split}: {} documents, micro-F1 {:.4}, macro-F1 {:.4} ({} codes)",
            docs.len(),
            scored.sets.overall.micro.f1,
            scored.sets.overall.macro_gold.f1,
            scored.sets.overall.macro_gold.n_codes
        ));
        if let Some(u) = scored.unseen_gold.as_ref().filter(|u| u.codes > 0) {
            let few = if u.few() { format!(" (fewer than {FEW_UNSEEN_CODES}: the unseen columns move by points with one code)") } else { String::new() };
            log.line(format!("{split}: unseen codes {}{few}, on {} notes, {} labels, {} evidence mentions", u.codes, u.notes, u.labels, u.mentions));
        }
        out.insert(split.to_string(), scored);
    }
    Ok(out)
}

/// Writes through a uniquely named temporary file and renames it into place.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>) -> Result<(), RunError> {
    Ok(store::write_atomic(path, fill)?)
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RunError> {
    Ok(store::write_json(path, value)?)
}

