//! The only place that knows the whole chain: planned run -> data -> system ->
//! predictions -> scores -> results folder. Finished runs are found by their
//! fingerprint and reused; a run is written to a `.partial` folder and renamed
//! into place only when complete, so a killed run never looks finished (and a
//! model run resumes from the training checkpoint kept there).

mod model;
mod pretrain;

pub use model::ModelRecord;
pub use pretrain::PretrainRecord;
pub use crate::metrics::split::{score_split, SplitMetrics, RANKING_KS};

use crate::baselines::{self, CodeScorer, DictionaryCoder, LaatCoder, TfidfCoder};
use crate::config::Baseline;
use crate::data::jsonl::{write_predictions, LoadReport, Prediction};
use crate::data::{self, CodeTable, Dataset, Split};
use crate::fingerprint::canonical_json;
use crate::metrics;
use crate::plan::{DataSpec, PlannedRun, SystemSpec};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The file written last into a finished run's folder; it holds the fingerprint.
pub const DONE_MARKER: &str = "DONE";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("scoring failed: {0}")]
    Metrics(#[from] metrics::MetricsError),
    #[error("{path}: results folder is corrupt ({reason}); rerun with --force to recompute it")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: cached file is unreadable ({reason}); delete it and run again to recompute it")]
    CorruptCache { path: PathBuf, reason: String },
    #[error("model run failed: {0}")]
    Model(String),
    #[error("baseline failed: {0}")]
    Baseline(#[from] baselines::BaselineError),
    #[error("{path}: training stopped after {step} optimizer steps; run again to resume from the last checkpoint")]
    Interrupted { path: PathBuf, step: usize },
}

impl RunError {
    /// Whether the user can fix this by changing their input (exit code 2) rather than a failed run (1).
    pub fn is_user_input(&self) -> bool {
        matches!(self, RunError::Data(_) | RunError::Corrupt { .. } | RunError::CorruptCache { .. })
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Recompute even when a finished result with the same fingerprint exists.
    pub force: bool,
    /// Show progress bars (they also hide themselves when stderr is not a terminal).
    pub progress: bool,
    /// Stop training after this many optimizer steps, as if killed (to test resuming).
    pub stop_after_steps: Option<usize>,
}

/// `metrics.json` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub fingerprint: String,
    pub system: String,
    pub splits: BTreeMap<String, SplitMetrics>,
    /// Unknown codes and mismatched evidence found while loading the data.
    pub data_report: LoadReport,
    /// Training cost of a model run or a trained baseline (None for the dictionary and zero-shot runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    pub seconds: f64,
}

/// What training cost: read off any run's metrics.json to compare supervision schemes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub optimizer_steps: usize,
    pub examples: u64,
    pub span_examples: u64,
    pub document_examples: u64,
    pub input_tokens: u64,
    pub span_tokens: u64,
    pub document_tokens: u64,
    pub padded_tokens: u64,
    pub estimated_flops: f64,
    pub train_seconds: f64,
    pub tokens_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
    pub peak_gpu_memory_bytes: Option<u64>,
}

impl Cost {
    fn from_report(r: &crate::train::TrainReport) -> Cost {
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
        let value = serde_json::to_value(spec).unwrap_or_default();
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

/// Executes planned runs in order, reusing finished ones; `on_done` hears about each as it finishes.
pub fn execute(runs: &[PlannedRun], opts: &RunOptions, mut on_done: impl FnMut(&RunRecord)) -> Result<Vec<RunRecord>, RunError> {
    let mut cache = DataCache::default();
    let mut records = Vec::new();
    for run in runs {
        let record = match (opts.force, finished(run)?) {
            (false, Some(metrics)) => RunRecord { run: run.clone(), reused: true, metrics },
            _ => {
                let metrics = compute(run, opts, &mut cache)?;
                RunRecord { run: run.clone(), reused: false, metrics }
            }
        };
        on_done(&record);
        records.push(record);
    }
    Ok(records)
}

/// The metrics of a finished run with this fingerprint, if there is one.
pub fn finished(run: &PlannedRun) -> Result<Option<RunMetrics>, RunError> {
    let marker = run.dir.join(DONE_MARKER);
    let Ok(done) = std::fs::read_to_string(&marker) else { return Ok(None) };
    if done.trim() != run.fingerprint.as_str() {
        return Err(RunError::Corrupt { path: run.dir.clone(), reason: "its DONE marker names another fingerprint".into() });
    }
    let path = run.dir.join("metrics.json");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let metrics = serde_json::from_str(&text).map_err(|e| RunError::Corrupt { path: path.clone(), reason: e.to_string() })?;
    Ok(Some(metrics))
}

fn compute(run: &PlannedRun, opts: &RunOptions, cache: &mut DataCache) -> Result<RunMetrics, RunError> {
    let started = Instant::now();
    let partial = partial_dir(&run.dir);
    // Whatever an interrupted attempt left is redone, except a training checkpoint, which resumes.
    if let Ok(entries) = std::fs::read_dir(&partial) {
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "checkpoint" || n == "expansion-cache") {
                continue;
            }
            let removed = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            removed.map_err(io_err(&p))?;
        }
    }
    std::fs::create_dir_all(&partial).map_err(io_err(&partial))?;
    let mut log = RunLog::new();
    log.line(format!("run {} fingerprint {}", run.label(), run.fingerprint));

    let (table, data) = cache.get(&run.spec.data)?;
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

    let seen: HashSet<String> = dataset.seen_codes().iter().map(|c| c.to_string()).collect();
    let label_space: Option<Vec<String>> = (!dataset.pool.is_empty()).then(|| dataset.pool.iter().map(|c| c.to_string()).collect());
    let mut trained: Option<TrainedBaseline> = None;
    let (predictions, record) = match &run.spec.system {
        SystemSpec::Baseline(b) => {
            let out = baseline_predictions(b, run, &table, dataset, opts, &mut log)?;
            trained = out.trained;
            (out.predictions, None)
        }
        SystemSpec::Model(spec) => {
            let out = model::run(run, spec, &table, dataset, &partial, opts, &mut log)?;
            (out.predictions, Some(out.record))
        }
    };
    let mut splits = BTreeMap::new();
    for (split, preds) in &predictions {
        let docs: Vec<&data::Document> = dataset.split(*split).collect();
        let path = partial.join(format!("predictions-{split}.jsonl"));
        write_atomic(&path, |w| write_predictions(w, preds))?;
        let scored = score_split(&docs, preds, run.spec.eval.bootstrap_samples, run.spec.seed, Some(seen.clone()), label_space.clone())?;
        log.line(format!(
            "{split}: {} documents, micro-F1 {:.4}, macro-F1 {:.4} ({} codes)",
            docs.len(),
            scored.sets.overall.micro.f1,
            scored.sets.overall.macro_gold.f1,
            scored.sets.overall.macro_gold.n_codes
        ));
        splits.insert(split.to_string(), scored);
    }
    let mut cost = record.as_ref().and_then(|r| r.training.as_ref()).map(Cost::from_report);
    if let Some(t) = trained {
        write_json(&partial.join("baseline.json"), &t.record)?;
        cost = Some(t.cost);
    }
    if let Some(r) = &record {
        write_json(&partial.join("training.json"), r)?;
    }
    let metrics = RunMetrics {
        fingerprint: run.fingerprint.to_string(),
        system: run.spec.system.name(),
        splits,
        data_report: load_report.clone(),
        cost,
        seconds: started.elapsed().as_secs_f64(),
    };
    log.line(format!("finished in {:.2} s", metrics.seconds));
    write_json(&partial.join("spec.json"), &run.spec)?;
    write_json(&partial.join("manifest.json"), &run.manifest)?;
    write_json(&partial.join("metrics.json"), &metrics)?;
    write_atomic(&partial.join("run.log"), |w| w.write_all(log.text.as_bytes()))?;
    write_atomic(&partial.join(DONE_MARKER), |w| writeln!(w, "{}", run.fingerprint))?;
    if run.dir.exists() {
        std::fs::remove_dir_all(&run.dir).map_err(io_err(&run.dir))?;
    }
    std::fs::rename(&partial, &run.dir).map_err(io_err(&run.dir))?;
    Ok(metrics)
}

/// What a baseline run produced: predictions, and for a trained baseline its cost and training record.
struct BaselineOutcome {
    predictions: Vec<(Split, Vec<Prediction>)>,
    trained: Option<TrainedBaseline>,
}

struct TrainedBaseline {
    cost: Cost,
    /// Written as `baseline.json`: the training report and the tuned threshold.
    record: serde_json::Value,
}

/// Predictions of a baseline on every evaluated split.
fn baseline_predictions(
    baseline: &Baseline,
    run: &PlannedRun,
    table: &CodeTable,
    dataset: &Dataset,
    opts: &RunOptions,
    log: &mut RunLog,
) -> Result<BaselineOutcome, RunError> {
    let coder = match baseline {
        Baseline::Dictionary(params) => {
            let scope = (params.restrict_to_pool && !dataset.pool.is_empty()).then_some(dataset.pool.as_slice());
            let coder = DictionaryCoder::build(table, scope, params);
            log.line(format!("dictionary: {} terms, {} shared by several codes (first code kept)", coder.terms, coder.ambiguous_terms));
            coder
        }
        Baseline::Tfidf(params) => {
            let (train, space) = training_data(dataset);
            let coder = TfidfCoder::train(&train, &space, params)?;
            let r = &coder.report;
            log.line(format!(
                "tfidf: {} features, {} non-zeros over {} training documents; {} of {} codes have a classifier ({} parameters); trained in {:.2} s",
                r.features, r.nonzeros, r.train_docs, r.classifiers, r.label_space, r.parameters, r.train_seconds
            ));
            let cost = trained_cost(params.iterations, r.train_docs as u64, r.tokens, 0, r.estimated_flops, r.train_seconds);
            return scored_predictions(&coder, serde_json::to_value(r).unwrap_or_default(), cost, run, dataset, log);
        }
        Baseline::Laat(params) => {
            let (train, space) = training_data(dataset);
            let bar = progress(opts, 0, &format!("{} · train", run.label()));
            bar.set_style(ProgressStyle::with_template("{msg:>30} [{bar:30}] {pos}/{len} steps · {per_sec} · eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
            let coder = LaatCoder::train(&train, &space, params, run.spec.seed, &bar)?;
            bar.finish_and_clear();
            let r = &coder.report;
            let losses: Vec<String> = r.epoch_loss.iter().map(|l| format!("{l:.4}")).collect();
            log.line(format!(
                "laat: {} parameters, {} labels of {} codes, vocabulary {}, {} epochs / {} steps on {}; loss per epoch {}; trained in {:.2} s",
                r.parameters, r.labels, r.label_space, r.vocab_size, r.epochs, r.optimizer_steps, r.device, losses.join(" "), r.train_seconds
            ));
            let examples = (r.epochs * r.train_docs) as u64;
            let cost = trained_cost(r.optimizer_steps, examples, r.tokens, r.padded_tokens, r.estimated_flops, r.train_seconds);
            return scored_predictions(&coder, serde_json::to_value(r).unwrap_or_default(), cost, run, dataset, log);
        }
    };
    let mut out = Vec::new();
    for split_name in &run.spec.eval.splits {
        let Some(split) = Split::parse(split_name) else { continue };
        let docs: Vec<&data::Document> = dataset.split(split).collect();
        let bar = progress(opts, docs.len() as u64, &format!("{} · {split}", run.label()));
        let preds: Vec<Prediction> = docs
            .par_iter()
            .map(|d| {
                let p = coder.predict(d);
                bar.inc(1);
                p
            })
            .collect();
        bar.finish_and_clear();
        out.push((split, preds));
    }
    Ok(BaselineOutcome { predictions: out, trained: None })
}

/// Training documents, and the label space a trained baseline scores: the data's pool, or the codes training documents carry.
fn training_data(dataset: &Dataset) -> (Vec<&data::Document>, Vec<crate::icd::Code>) {
    let space = if dataset.pool.is_empty() { dataset.seen_codes().into_iter().collect() } else { dataset.pool.clone() };
    (dataset.split(Split::Train).collect(), space)
}

/// A trained baseline's cost in the model runs' terms: its examples are documents.
fn trained_cost(steps: usize, examples: u64, tokens: u64, padded_tokens: u64, flops: f64, seconds: f64) -> Cost {
    Cost {
        optimizer_steps: steps,
        examples,
        span_examples: 0,
        document_examples: examples,
        input_tokens: tokens,
        span_tokens: 0,
        document_tokens: tokens,
        padded_tokens,
        estimated_flops: flops,
        train_seconds: seconds,
        tokens_per_second: if seconds > 0.0 { tokens as f64 / seconds } else { 0.0 },
        peak_rss_bytes: None,
        peak_gpu_memory_bytes: None,
    }
}

/// Tunes a scoring baseline's threshold on validation and predicts every evaluated split, scores included.
fn scored_predictions(
    scorer: &dyn CodeScorer,
    training: serde_json::Value,
    cost: Cost,
    run: &PlannedRun,
    dataset: &Dataset,
    log: &mut RunLog,
) -> Result<BaselineOutcome, RunError> {
    let val: Vec<&data::Document> = dataset.split(Split::Val).collect();
    let decision = baselines::decide(scorer, &val)?;
    match &decision.tuned {
        Some(t) => log.line(format!("threshold {:.2} tuned on {} validation documents (validation micro-F1 {:.4})", t.threshold, val.len(), t.micro_f1)),
        None => log.line("no validation documents: threshold 0.5".into()),
    }
    let mut out = Vec::new();
    for split_name in &run.spec.eval.splits {
        let Some(split) = Split::parse(split_name) else { continue };
        let docs: Vec<&data::Document> = dataset.split(split).collect();
        out.push((split, baselines::predict(scorer, &docs, decision.threshold)?));
    }
    let record = serde_json::json!({ "baseline": run.spec.system.name(), "training": training, "threshold": decision });
    Ok(BaselineOutcome { predictions: out, trained: Some(TrainedBaseline { cost, record }) })
}

fn progress(opts: &RunOptions, len: u64, label: &str) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>30} [{bar:30}] {pos}/{len} docs · {per_sec} · eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}

/// `results/x/abc123` -> `results/x/.abc123.partial`
fn partial_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    dir.with_file_name(format!(".{name}.partial"))
}

/// Writes through a temporary file and renames it into place.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>) -> Result<(), RunError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = path.with_extension(format!("{}.tmp", path.extension().map(|e| e.to_string_lossy().to_string()).unwrap_or_default()));
    let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = std::io::BufWriter::new(file);
    fill(&mut w).map_err(io_err(&tmp))?;
    let file = w.into_inner().map_err(|e| RunError::Io { path: tmp.clone(), source: e.into_error() })?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RunError> {
    write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        w.write_all(b"\n")
    })
}

/// The run's log, kept in memory and written with the results.
pub(crate) struct RunLog {
    started: Instant,
    text: String,
}

impl RunLog {
    fn new() -> RunLog {
        RunLog { started: Instant::now(), text: String::new() }
    }

    pub(crate) fn line(&mut self, s: String) {
        self.text.push_str(&format!("[{:>8.2}s] {s}\n", self.started.elapsed().as_secs_f64()));
    }
}
