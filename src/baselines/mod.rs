//! Baseline coders scored beside the models, one file each.
//!
//! The dictionary emits code sets with evidence. The discriminative baselines
//! (TF-IDF, LAAT) give every code of the label space a probability; one global
//! threshold, tuned on validation, turns those into code sets, and the scores are
//! written with the predictions so ranking metrics (P@k, AUC) apply.

pub mod dictionary;
pub mod laat;
pub mod tfidf;

pub use dictionary::DictionaryCoder;
pub use laat::LaatCoder;
pub use tfidf::TfidfCoder;

use crate::data::jsonl::Prediction;
use crate::data::Document;
use crate::icd::Code;
use crate::metrics::{self, ScoredDocs, ThresholdChoice};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("the training split has no documents with codes: a trained baseline has nothing to learn from")]
    NoTrainingData,
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{0}")]
    Device(#[from] crate::device::DeviceError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("scoring: {0}")]
    Metrics(#[from] metrics::MetricsError),
}

/// A trained baseline that gives every code of its label space a probability.
pub trait CodeScorer {
    /// The label space, in the order of each score row.
    fn codes(&self) -> &[Code];
    /// One row of probabilities per document, aligned with [`codes`](Self::codes).
    fn score(&self, docs: &[&Document]) -> Result<Vec<Vec<f64>>, BaselineError>;
}

/// The decision threshold a scorer uses, and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub threshold: f64,
    /// The tuning on validation (micro-F1 curve included); `None` when there was no validation split.
    pub tuned: Option<ThresholdChoice>,
}

/// Tunes one global threshold for micro-F1 on `val` (`metrics::tune_threshold`), or 0.5 without validation documents.
pub fn decide(scorer: &dyn CodeScorer, val: &[&Document]) -> Result<Decision, BaselineError> {
    if val.is_empty() {
        return Ok(Decision { threshold: 0.5, tuned: None });
    }
    let scores = scorer.score(val)?;
    let gold: Vec<Vec<&str>> = val.iter().map(|d| d.codes.iter().map(|c| c.as_ref()).collect()).collect();
    let scored = ScoredDocs::dense(scorer.codes(), &gold, &scores)?;
    let choice = metrics::tune_threshold(&scored);
    Ok(Decision { threshold: choice.threshold, tuned: Some(choice) })
}

/// Predictions with every code's score; a code is predicted when its score is above `threshold` (`metrics::THRESHOLD_RULE`).
pub fn predict(scorer: &dyn CodeScorer, docs: &[&Document], threshold: f64) -> Result<Vec<Prediction>, BaselineError> {
    let rows = scorer.score(docs)?;
    let codes = scorer.codes();
    Ok(docs
        .iter()
        .zip(rows)
        .map(|(d, row)| {
            let mut predicted: Vec<Code> = codes.iter().zip(&row).filter(|(_, &s)| s > threshold).map(|(c, _)| c.clone()).collect();
            predicted.sort();
            let scores: BTreeMap<String, f64> = codes.iter().zip(&row).map(|(c, &s)| (c.to_string(), s)).collect();
            Prediction { id: d.id.clone(), codes: predicted, invalid: Vec::new(), evidence: Vec::new(), scores, raw: None }
        })
        .collect())
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
