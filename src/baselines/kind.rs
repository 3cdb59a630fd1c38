//! What a baseline is: the [`BaselineKind`] every kind implements for its parameters
//! (`config::*Params`), what fitting gives (a coder or a scorer), and the error it fails
//! with. The kinds themselves are listed in [`super::registry`].

use crate::data::jsonl::Prediction;
use crate::data::{Dataset, Document, Split};
use crate::icd::{Code, CodeSet};
use serde::Serialize;
use std::path::Path;

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
    /// A saved fitted state that cannot be written or read back: names the file.
    #[error("{}: {message}; delete the baseline's train stage to fit it again", path.display())]
    State { path: std::path::PathBuf, message: String },
}

/// A baseline that scores codes per document; [`decide`] tunes its threshold, [`predict`] applies it.
pub trait CodeScorer {
    /// The label space: what the indices of [`Scores`] refer to.
    fn codes(&self) -> &[Code];
    /// The scores of each document, in the order of `docs`.
    fn score(&self, docs: &[&Document]) -> Result<Scores, BaselineError>;
    /// Writes what fitting learned to `dir`, for [`BaselineKind::load`]; false for a scorer
    /// that keeps nothing worth the space (it is fitted again).
    fn save(&self, _dir: &Path) -> Result<bool, BaselineError> {
        Ok(false)
    }
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

    /// The fitted state a scorer of this kind saved to `dir` ([`CodeScorer::save`]), read back;
    /// `None` for a kind that keeps none (it is cheap to fit again).
    fn load(&self, _dir: &Path) -> Result<Option<Box<dyn CodeScorer>>, BaselineError> {
        Ok(None)
    }
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

/// Writes a fitted state as JSON to `path` (atomically).
pub(crate) fn save_json(path: &Path, value: &impl Serialize) -> Result<(), BaselineError> {
    crate::store::write_json(path, value).map_err(|e| BaselineError::State { path: path.to_path_buf(), message: e.to_string() })
}

/// Reads a fitted state written by [`save_json`].
pub(crate) fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|e| BaselineError::State { path: path.to_path_buf(), message: format!("cannot read: {e}") })?;
    serde_json::from_str(&text).map_err(|e| BaselineError::State { path: path.to_path_buf(), message: format!("does not parse: {e}") })
}

/// Three training notes over two codes and a label space with a third, for the kinds' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::data::{Document, Split};
    use crate::icd::Code;

    pub fn doc(id: &str, text: &str, codes: &[&str]) -> Document {
        Document { id: id.into(), split: Split::Train, text: text.into(), codes: codes.iter().map(|c| Code::parse(c).unwrap()).collect(), evidence: Vec::new() }
    }

    pub fn three_notes() -> (Vec<Document>, Vec<Code>) {
        let train = vec![doc("1", "type 2 diabetes mellitus", &["E11.9"]), doc("2", "essential hypertension noted", &["I10"]), doc("3", "diabetes and hypertension", &["E11.9", "I10"])];
        (train, ["E11.9", "I10", "J45.909"].iter().map(|c| Code::parse(c).unwrap()).collect())
    }
}
