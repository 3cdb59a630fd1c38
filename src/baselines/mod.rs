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
pub mod kind;
pub mod prior;
pub mod registry;
pub mod tfidf;

pub use dictionary::DictionaryCoder;
pub use fuzzy::FuzzyCoder;
pub use laat::LaatCoder;
pub use prior::PriorCoder;
pub use kind::{BaselineError, BaselineKind, CodeScore, CodeScorer, DocumentCoder, Fit, FitData, Fitted, Scores, TrainingCost};
pub use tfidf::TfidfCoder;

use crate::data::jsonl::Prediction;
use crate::data::{slice_chars, Document, EvidenceSpan};
use crate::icd::Code;
use crate::metrics::{self, ScoredDocs, ThresholdChoice};
use serde::Serialize;
use std::collections::BTreeMap;

/// The decision threshold a scorer uses, and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub threshold: f64,
    /// The tuning on validation (micro-F1 curve included); `None` when there was no validation split.
    pub tuned: Option<ThresholdChoice>,
}

fn metrics_error(e: metrics::MetricsError) -> BaselineError {
    BaselineError::Metrics(e.to_string())
}

/// Tunes one global threshold for micro-F1 on `val` (`metrics::tune_threshold`), or 0.5 without validation documents.
pub fn decide(scorer: &dyn CodeScorer, val: &[&Document]) -> Result<Decision, BaselineError> {
    if val.is_empty() {
        return Ok(Decision { threshold: 0.5, tuned: None });
    }
    let codes = scorer.codes();
    let gold: Vec<Vec<&str>> = val.iter().map(|d| d.codes.iter().map(|c| c.as_ref()).collect()).collect();
    let scored = match scorer.score(val)? {
        Scores::Dense(rows) => ScoredDocs::dense(codes, &gold, &rows).map_err(metrics_error)?,
        Scores::Sparse(rows) => {
            let rows: Vec<Vec<(&str, f64)>> = rows.iter().map(|r| r.iter().map(|s| (codes[s.code as usize].as_str(), s.score)).collect()).collect();
            ScoredDocs::sparse(codes, &gold, &rows).map_err(metrics_error)?
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

