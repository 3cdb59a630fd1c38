//! What a baseline is: the [`BaselineKind`] every kind implements for its parameters
//! (`config::*Params`), what fitting gives (a coder or a scorer), and the error it fails
//! with. The kinds themselves are listed in [`super::registry`].

use crate::data::jsonl::Prediction;
use crate::data::{Dataset, Document, Split};
use crate::icd::{Code, CodeSet};
use serde::Serialize;

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
    Metrics(String),
    #[error("cannot record the fit: {0}")]
    Record(String),
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
    pub(crate) fn into_rows(self) -> Box<dyn Iterator<Item = Vec<CodeScore>>> {
        match self {
            Scores::Sparse(rows) => Box::new(rows.into_iter()),
            Scores::Dense(rows) => Box::new(
                rows.into_iter().map(|row| row.into_iter().enumerate().map(|(j, score)| CodeScore { code: j as u32, score, span: None }).collect()),
            ),
        }
    }
}

/// What a kind of baseline does: fit on the data, into a coder or a scorer.
pub trait BaselineKind {
    /// Builds or trains the baseline from the data's training (and validation) documents.
    fn fit(&self, data: &FitData<'_>) -> Result<Fit, BaselineError>;
}

/// What a baseline is fitted on.
pub struct FitData<'a> {
    pub codes: &'a CodeSet,
    pub dataset: &'a Dataset,
    /// The experiment's seed.
    pub seed: u64,
    /// Show a progress bar while training.
    pub progress: bool,
    /// The run's label, for the progress bar.
    pub label: &'a str,
}

/// A fitted baseline.
pub struct Fit {
    pub fitted: Fitted,
    /// One line for the run log: what was built or trained.
    pub summary: String,
    /// What the run's `baseline.json` records of the fit, under the given key (`training`,
    /// `prior`); none for a baseline with nothing to record.
    pub record: Option<(&'static str, serde_json::Value)>,
    /// What training cost, for a trained baseline.
    pub training: Option<TrainingCost>,
}

/// How a fitted baseline codes documents.
pub enum Fitted {
    /// Writes each document's codes directly (dictionary, prior).
    Coder(Box<dyn DocumentCoder>),
    /// Scores codes; one threshold, tuned on validation, turns scores into codes (fuzzy,
    /// TF-IDF, LAAT).
    Scorer(Box<dyn CodeScorer>),
}

/// A baseline that codes one document at a time.
pub trait DocumentCoder: Sync {
    fn predict(&self, doc: &Document) -> Prediction;
}

/// A trained baseline's cost, in the terms the runner counts a model's in (its examples are documents).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingCost {
    pub optimizer_steps: usize,
    pub examples: u64,
    pub tokens: u64,
    pub padded_tokens: u64,
    pub estimated_flops: f64,
    pub seconds: f64,
}

/// The codes the matching baselines (dictionary, fuzzy) look for: the data's pool when asked
/// (it holds the test labels: names carry the leak label), else the data's code space
/// (synthetic data), else every billable code of the code set (`None`).
pub(crate) fn matching_scope(restrict_to_pool: bool, dataset: &Dataset) -> Option<&[Code]> {
    if restrict_to_pool && !dataset.pool.is_empty() {
        Some(&dataset.pool)
    } else if !dataset.code_space.is_empty() {
        Some(&dataset.code_space)
    } else {
        None
    }
}

/// Training documents, and the label space a trained baseline scores: the data's pool, or the codes training documents carry.
pub(crate) fn training_data(dataset: &Dataset) -> (Vec<&Document>, Vec<Code>) {
    let space = if dataset.pool.is_empty() { dataset.seen_codes().into_iter().collect() } else { dataset.pool.clone() };
    (dataset.split(Split::Train).collect(), space)
}

/// A report as the record of a fit; a report that cannot be written as JSON is an error.
pub(crate) fn record_of(key: &'static str, report: &impl Serialize) -> Result<Option<(&'static str, serde_json::Value)>, BaselineError> {
    let value = serde_json::to_value(report).map_err(|e| BaselineError::Record(e.to_string()))?;
    Ok(Some((key, value)))
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
