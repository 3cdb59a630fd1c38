//! Baseline coders scored beside the models, one file each.
//!
//! The dictionary emits code sets with evidence. The scoring baselines give codes
//! a score: the discriminative ones (TF-IDF, LAAT) every code of the label space a
//! probability, the fuzzy matcher the codes whose terms resemble a stretch of the
//! note a cosine similarity. One global threshold, tuned on validation, turns
//! scores into code sets, and the scores are written with the predictions so
//! ranking metrics (P@k, AUC) apply. The frequency prior reads no note: it is the
//! floor every trained system must clear.

pub mod dictionary;
pub mod fuzzy;
pub mod laat;
pub mod negation;
pub mod prior;
pub mod tfidf;

pub use dictionary::DictionaryCoder;
pub use fuzzy::FuzzyCoder;
pub use laat::LaatCoder;
pub use prior::PriorCoder;
pub use tfidf::TfidfCoder;

use crate::data::jsonl::Prediction;
use crate::data::{slice_chars, Document, EvidenceSpan};
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

/// A baseline that scores codes per document; [`decide`] tunes its threshold, [`predict`] applies it.
pub trait CodeScorer {
    /// The label space: what the indices of [`Scores`] refer to.
    fn codes(&self) -> &[Code];
    /// The scores of each document, in the order of `docs`.
    fn score(&self, docs: &[&Document]) -> Result<Scores, BaselineError>;
}

/// What a scorer gives each document.
#[derive(Debug, Clone, PartialEq)]
pub enum Scores {
    /// Every code's score, aligned with [`CodeScorer::codes`].
    Dense(Vec<Vec<f64>>),
    /// Only the codes the scorer keeps, each once, in any order; a code left out is unscored:
    /// never predicted, ranked below every scored code.
    Sparse(Vec<Vec<CodeScore>>),
}

/// One code's score in one document, with the text that earned it when the scorer can point at it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeScore {
    /// Index into [`CodeScorer::codes`].
    pub code: u32,
    pub score: f64,
    /// Character offsets (start, end) of the evidence in the document's text.
    pub span: Option<(usize, usize)>,
}

impl Scores {
    /// Each document's scores as [`CodeScore`]s, a row at a time (a dense row gives every code, without spans).
    fn into_rows(self) -> Box<dyn Iterator<Item = Vec<CodeScore>>> {
        match self {
            Scores::Sparse(rows) => Box::new(rows.into_iter()),
            Scores::Dense(rows) => Box::new(
                rows.into_iter().map(|row| row.into_iter().enumerate().map(|(j, score)| CodeScore { code: j as u32, score, span: None }).collect()),
            ),
        }
    }
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
    let codes = scorer.codes();
    let gold: Vec<Vec<&str>> = val.iter().map(|d| d.codes.iter().map(|c| c.as_ref()).collect()).collect();
    let scored = match scorer.score(val)? {
        Scores::Dense(rows) => ScoredDocs::dense(codes, &gold, &rows)?,
        Scores::Sparse(rows) => {
            let rows: Vec<Vec<(&str, f64)>> = rows.iter().map(|r| r.iter().map(|s| (codes[s.code as usize].as_str(), s.score)).collect()).collect();
            ScoredDocs::sparse(codes, &gold, &rows)?
        }
    };
    let choice = metrics::tune_threshold(&scored);
    Ok(Decision { threshold: choice.threshold, tuned: Some(choice) })
}

/// Predictions with the scorer's scores; a code is predicted when its score is above `threshold`
/// (`metrics::THRESHOLD_RULE`), with its evidence span when the scorer gave one.
pub fn predict(scorer: &dyn CodeScorer, docs: &[&Document], threshold: f64) -> Result<Vec<Prediction>, BaselineError> {
    let rows = scorer.score(docs)?.into_rows();
    let codes = scorer.codes();
    Ok(docs
        .iter()
        .zip(rows)
        .map(|(d, row)| {
            let above: Vec<&CodeScore> = row.iter().filter(|s| s.score > threshold).collect();
            let mut predicted: Vec<Code> = above.iter().map(|s| codes[s.code as usize].clone()).collect();
            predicted.sort();
            let mut evidence: Vec<EvidenceSpan> = above
                .iter()
                .filter_map(|s| {
                    let (start, end) = s.span?;
                    let text = slice_chars(&d.text, start, end)?.to_string();
                    Some(EvidenceSpan::new(codes[s.code as usize].clone(), start, end, text))
                })
                .collect();
            evidence.sort();
            let scores: BTreeMap<String, f64> = row.iter().map(|s| (codes[s.code as usize].to_string(), s.score)).collect();
            Prediction { id: d.id.clone(), codes: predicted, invalid: Vec::new(), evidence, scores, raw: None }
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
