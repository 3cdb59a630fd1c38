//! The fit stage of a baseline run: build or train the baseline on the training split,
//! tune its threshold on validation, and predict every evaluated split.

use super::stage::{Cost, RunError, RunLog, RunOptions};
use crate::baselines::{self, CodeScorer, DictionaryCoder, FuzzyCoder, LaatCoder, PriorCoder, TfidfCoder};
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

/// What a baseline run produced: predictions, and for a scoring baseline its record (and training cost).
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
    run: &PlannedRun,
    table: &CodeTable,
    dataset: &Dataset,
    opts: &RunOptions,
    log: &mut RunLog,
) -> Result<BaselineOutcome, RunError> {
    let coder = match baseline {
        Baseline::Dictionary(params) => {
            let coder = DictionaryCoder::build(table, matching_scope(params.restrict_to_pool, dataset), params);
            log.line(format!("dictionary: {} terms, {} shared by several codes (first code kept)", coder.terms, coder.ambiguous_terms));
            coder
        }
        Baseline::Fuzzy(params) => {
            let coder = FuzzyCoder::build(table, matching_scope(params.restrict_to_pool, dataset), params);
            let r = &coder.report;
            log.line(format!("fuzzy: {} codes, {} terms, {} character n-grams, {} postings; indexed in {:.2} s", r.codes, r.terms, r.ngrams, r.postings, r.build_seconds));
            return scored_predictions(&coder, serde_json::to_value(r).unwrap_or_default(), None, run, dataset, log);
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
            return scored_predictions(&coder, serde_json::to_value(r).unwrap_or_default(), Some(cost), run, dataset, log);
        }
        Baseline::Prior(params) => {
            let train: Vec<&data::Document> = dataset.split(Split::Train).collect();
            let val: Vec<&data::Document> = dataset.split(Split::Val).collect();
            let prior = PriorCoder::fit(&train, &val, params);
            let top: Vec<String> = prior.ranking.iter().take(prior.k.max(3)).map(|(c, s)| format!("{c} {:.1}%", 100.0 * s)).collect();
            log.line(format!("prior: k = {} ({}); most frequent training codes: {}", prior.k, prior.chosen_by, top.join(", ")));
            let mut out = Vec::new();
            for split_name in &run.spec.eval.splits {
                let Some(split) = Split::parse(split_name) else { continue };
                out.push((split, dataset.split(split).map(|d| prior.predict(d)).collect()));
            }
            let record = serde_json::json!({ "baseline": run.spec.system_name(), "prior": prior });
            return Ok(BaselineOutcome { predictions: out, fitted: Some(FittedBaseline { cost: None, record }) });
        }
        Baseline::Laat(params) => {
            let (train, space) = training_data(dataset);
            let bar = crate::progress::bar(opts.progress, 0, "steps", &format!("{} · train", run.label()));
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
            return scored_predictions(&coder, serde_json::to_value(r).unwrap_or_default(), Some(cost), run, dataset, log);
        }
    };
    let mut out = Vec::new();
    for split_name in &run.spec.eval.splits {
        let Some(split) = Split::parse(split_name) else { continue };
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
    Ok(BaselineOutcome { predictions: out, fitted: None })
}

/// The codes the matching baselines (dictionary, fuzzy) look for: the data's pool when asked
/// (it holds the test labels: names carry the leak label), else the data's code space
/// (synthetic data), else every billable code of the code set (`None`).
fn matching_scope(restrict_to_pool: bool, dataset: &Dataset) -> Option<&[crate::icd::Code]> {
    if restrict_to_pool && !dataset.pool.is_empty() {
        Some(&dataset.pool)
    } else if !dataset.code_space.is_empty() {
        Some(&dataset.code_space)
    } else {
        None
    }
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
        let Some(split) = Split::parse(split_name) else { continue };
        let docs: Vec<&data::Document> = dataset.split(split).collect();
        out.push((split, baselines::predict(scorer, &docs, decision.threshold)?));
    }
    let record = serde_json::json!({ "baseline": run.spec.system_name(), "training": training, "threshold": decision });
    Ok(BaselineOutcome { predictions: out, fitted: Some(FittedBaseline { cost, record }) })
}
