//! Every file of a run and of the cached stages it is assembled from, named in one place:
//! the runner writes through [`RunPaths`] and the report reads a run folder through the
//! names here; neither builds a path itself.

use super::{atomic, cache_root, sibling, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The resolved spec of a finished run.
pub const SPEC: &str = "spec.json";
/// Its key: spec, inputs by content, versions, and the stage keys.
pub const MANIFEST: &str = "manifest.json";
/// Its scores (the file the integrity check reads).
pub const METRICS: &str = "metrics.json";
/// Its log.
pub const LOG: &str = "run.log";
/// A model run's training record (losses, mix, expansion, cost).
pub const TRAINING: &str = "training.json";
/// A baseline run's record (what it fitted, its tuned threshold).
pub const BASELINE: &str = "baseline.json";

/// A finished run's predictions of one split.
pub fn predictions_file(split: &str) -> String {
    format!("predictions-{split}.jsonl")
}

/// In a train stage: the trained (or fitted) system's record, written once it is complete.
const TRAIN_RECORD: &str = "record.json";
/// In a predict stage: the split's predictions, written last (their presence means complete).
const PREDICTIONS: &str = "predictions.jsonl";
/// In a predict stage: decoding statistics and the span probe, written first.
const PREDICT_RECORD: &str = "stats.json";
/// In the data stage: the documents of every split, written first.
const DATASET: &str = "dataset.json";
/// In the data stage: what loading left out, written last (its presence means complete).
const LOAD_REPORT: &str = "load_report.json";

/// The cached stages a run is assembled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Data,
    Train,
    Predict,
}

impl Stage {
    fn folder(self) -> &'static str {
        match self {
            Stage::Data => "data",
            Stage::Train => "train",
            Stage::Predict => "predict",
        }
    }
}

/// `results/.cache/<stage>/<key>/` for a run folder `results/<experiment>/<prefix>/`.
pub fn stage_dir(run_dir: &Path, stage: Stage, key: &str) -> PathBuf {
    cache_root(run_dir).join(stage.folder()).join(key)
}

/// Where one run and its stages live.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPaths {
    /// `results/<experiment>/<prefix>/`.
    pub dir: PathBuf,
    data: PathBuf,
    train: PathBuf,
    predict: BTreeMap<String, PathBuf>,
}

impl RunPaths {
    /// A run folder and the keys of its data stage, train stage and each split's predict stage.
    pub fn new(dir: &Path, data_key: &str, train_key: &str, predict_keys: impl IntoIterator<Item = (String, String)>) -> RunPaths {
        RunPaths {
            dir: dir.to_path_buf(),
            data: stage_dir(dir, Stage::Data, data_key),
            train: stage_dir(dir, Stage::Train, train_key),
            predict: predict_keys.into_iter().map(|(split, key)| (split, stage_dir(dir, Stage::Predict, &key))).collect(),
        }
    }

    /// The hidden folder a run is written into before it is renamed into place.
    pub fn partial(&self) -> PathBuf {
        sibling(&self.dir, "partial")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn train_dir(&self) -> &Path {
        &self.train
    }

    pub fn train_record(&self) -> PathBuf {
        self.train.join(TRAIN_RECORD)
    }

    /// A split's predict stage (a split the plan did not key has none: `none`).
    pub fn predict_dir(&self, split: &str) -> PathBuf {
        self.predict.get(split).cloned().unwrap_or_else(|| stage_dir(&self.dir, Stage::Predict, "none"))
    }

    pub fn predictions(&self, split: &str) -> PathBuf {
        self.predict_dir(split).join(PREDICTIONS)
    }

    pub fn predict_record(&self, split: &str) -> PathBuf {
        self.predict_dir(split).join(PREDICT_RECORD)
    }

    /// Stores one split's predictions: the record first, the predictions last.
    pub fn write_predictions(&self, split: &str, record: &impl Serialize, fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>) -> Result<(), StoreError> {
        atomic::write_json(&self.predict_record(split), record)?;
        atomic::write_atomic(&self.predictions(split), fill)
    }

    /// The data stage's documents and load report, if a process stored them completely.
    pub fn read_data<D: DeserializeOwned, R: DeserializeOwned>(&self) -> Result<Option<(D, R)>, StoreError> {
        if !self.data.join(LOAD_REPORT).is_file() {
            return Ok(None);
        }
        Ok(Some((read_json(&self.data.join(DATASET))?, read_json(&self.data.join(LOAD_REPORT))?)))
    }

    /// Stores the data stage: the documents first, the load report last.
    pub fn write_data(&self, dataset: &impl Serialize, report: &impl Serialize) -> Result<(), StoreError> {
        atomic::write_json(&self.data.join(DATASET), dataset)?;
        atomic::write_json(&self.data.join(LOAD_REPORT), report)
    }
}

/// Reads a JSON file the store wrote; one that does not parse is a corrupt cache entry.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let text = std::fs::read_to_string(path).map_err(super::io_err(path))?;
    serde_json::from_str(&text).map_err(|e| StoreError::CorruptCache { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_finds_its_stages_beside_its_experiment() {
        let p = RunPaths::new(Path::new("results/quick/abc123"), "d1", "t1", [("test".to_string(), "p1".to_string())]);
        assert_eq!(p.partial(), Path::new("results/quick/.abc123.partial"));
        assert_eq!(p.data_dir(), Path::new("results/.cache/data/d1"));
        assert_eq!(p.train_record(), Path::new("results/.cache/train/t1/record.json"));
        assert_eq!(p.predictions("test"), Path::new("results/.cache/predict/p1/predictions.jsonl"));
        assert_eq!(p.predict_record("val"), Path::new("results/.cache/predict/none/stats.json"));
    }

    #[test]
    fn the_data_stage_counts_only_when_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let p = RunPaths::new(&tmp.path().join("results/e/r"), "d", "t", []);
        std::fs::create_dir_all(p.data_dir()).unwrap();
        assert_eq!(p.read_data::<Vec<u32>, String>().unwrap(), None);
        std::fs::write(p.data_dir().join(DATASET), "[1, 2]").unwrap();
        assert_eq!(p.read_data::<Vec<u32>, String>().unwrap(), None, "no report yet: not complete");
        p.write_data(&vec![1u32, 2], &"clean").unwrap();
        assert_eq!(p.read_data::<Vec<u32>, String>().unwrap(), Some((vec![1, 2], "clean".to_string())));
        std::fs::write(p.data_dir().join(DATASET), "[1,").unwrap();
        assert!(matches!(p.read_data::<Vec<u32>, String>(), Err(StoreError::CorruptCache { .. })));
    }
}
