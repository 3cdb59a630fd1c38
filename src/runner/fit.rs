//! The fit stage of a baseline run: fit the baseline on the training split (its kind says
//! how), tune a scorer's threshold on validation, and predict every evaluated split.

use super::stage::{RunError, RunLog, RunOptions};
use crate::results::Cost;
use crate::baselines::{self, registry, CodeScorer, DocumentCoder, FitData, Fitted, TrainingCost};
use crate::config::Baseline;
use crate::data::jsonl::Prediction;
use crate::data::{self, CodeTable, Dataset, Split};
use crate::plan::PlannedRun;
use rayon::prelude::*;

impl From<baselines::BaselineError> for RunError {
    fn from(e: baselines::BaselineError) -> RunError {
        RunError::Baseline(e.to_string())
    }
}

/// What a baseline run produced: predictions, and for a baseline with a record its record (and training cost).
pub(super) struct BaselineOutcome {
    pub predictions: Vec<(Split, Vec<Prediction>)>,
    pub fitted: Option<FittedBaseline>,
}

pub(super) struct FittedBaseline {
    /// What training on the training split cost; `None` for a baseline that learns nothing from it.
    pub cost: Option<Cost>,
    /// Written as `baseline.json`: the training (or index) report and the tuned threshold.
    pub record: serde_json::Value,
}

/// Predictions of a baseline on every evaluated split.
pub(super) fn baseline_predictions(
    baseline: &Baseline,
    state_dir: &std::path::Path,
    run: &PlannedRun,
    table: &CodeTable,
    dataset: &Dataset,
    opts: &RunOptions,
    log: &mut RunLog,
) -> Result<BaselineOutcome, RunError> {
    let label = run.label();
    let data = FitData { codes: table, dataset, seed: run.spec.seed, progress: opts.progress, label: &label };
    let fit = registry::kind(baseline).fit(&data)?;
    log.line(fit.summary);
    let cost = fit.training.map(trained_cost);
    match fit.fitted {
        Fitted::Scorer(scorer) => {
            // What training learned is kept, so another split later predicts without training again.
            std::fs::create_dir_all(state_dir).map_err(super::stage::io_err(state_dir))?;
            if scorer.save(state_dir)? {
                log.line(format!("fitted state saved in {}", state_dir.display()));
            }
            scored_predictions(scorer.as_ref(), fit.record, cost, run, dataset, log)
        }
        Fitted::Coder(coder) => {
            let predictions = coded_predictions(coder.as_ref(), run, dataset, opts);
            let fitted = fit.record.map(|(key, value)| {
                let mut record = serde_json::json!({ "baseline": run.spec.system_name() });
                record[key] = value;
                FittedBaseline { cost, record }
            });
            Ok(BaselineOutcome { predictions, fitted })
        }
    }
}

/// Every evaluated split coded document by document, in parallel.
fn coded_predictions(coder: &dyn DocumentCoder, run: &PlannedRun, dataset: &Dataset, opts: &RunOptions) -> Vec<(Split, Vec<Prediction>)> {
    let mut out = Vec::new();
    for split_name in &run.spec.eval.splits {
        let Some(split) = Split::parse_scored(split_name) else { continue };
        let docs: Vec<&data::Document> = dataset.split(split).collect();
        let bar = crate::progress::bar(opts.progress, docs.len() as u64, "docs", &format!("{} · {split}", run.label()));
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
    out
}

/// A trained baseline's cost in the model runs' terms: its examples are documents.
fn trained_cost(t: TrainingCost) -> Cost {
    Cost {
        optimizer_steps: t.optimizer_steps,
        examples: t.examples,
        span_examples: 0,
        document_examples: t.examples,
        input_tokens: t.tokens,
        span_tokens: 0,
        document_tokens: t.tokens,
        padded_tokens: t.padded_tokens,
        estimated_flops: t.estimated_flops,
        train_seconds: t.seconds,
        tokens_per_second: if t.seconds > 0.0 { t.tokens as f64 / t.seconds } else { 0.0 },
        peak_rss_bytes: None,
        peak_gpu_memory_bytes: None,
    }
}

/// Tunes a scoring baseline's threshold on validation and predicts every evaluated split, scores included.
fn scored_predictions(
    scorer: &dyn CodeScorer,
    training: Option<(&'static str, serde_json::Value)>,
    cost: Option<Cost>,
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
        let Some(split) = Split::parse_scored(split_name) else { continue };
        let docs: Vec<&data::Document> = dataset.split(split).collect();
        out.push((split, baselines::predict(scorer, &docs, decision.threshold)?));
    }
    let training = training.map_or(serde_json::Value::Null, |(_, value)| value);
    let record = serde_json::json!({ "baseline": run.spec.system_name(), "training": training, "threshold": decision });
    Ok(BaselineOutcome { predictions: out, fitted: Some(FittedBaseline { cost, record }) })
}

/// Predicts `todo` with a fitted state read back from the train stage and the threshold its
/// record holds; `None` when the kind keeps no state (it is fitted again).
pub(super) fn reloaded_predictions(baseline: &Baseline, state_dir: &std::path::Path, record: &serde_json::Value, todo: &[Split], dataset: &Dataset) -> Result<Option<Vec<(Split, Vec<Prediction>)>>, RunError> {
    let Some(threshold) = record.pointer("/baseline/threshold/threshold").and_then(serde_json::Value::as_f64) else { return Ok(None) };
    if !state_dir.is_dir() {
        return Ok(None);
    }
    let Some(scorer) = registry::kind(baseline).load(state_dir)? else { return Ok(None) };
    let mut out = Vec::new();
    for &split in todo {
        let docs: Vec<&data::Document> = dataset.split(split).collect();
        out.push((split, baselines::predict(scorer.as_ref(), &docs, threshold)?));
    }
    Ok(Some(out))
}
