//! A data source that exists for the tests: what adding a source takes. This file and
//! one line in `source.rs`'s list are the whole change; the experiment schema, validation
//! with line numbers, the plan's input hashes, the empty-split check and the runner all
//! pick it up from there.
//!
//! Format: one tab-separated file per split, `id<TAB>codes (comma-separated)<TAB>text`.

use super::jsonl::LoadReport;
use super::source::{Input, Source};
use super::{gold_codes, DataError, Dataset, Document, Split};
use crate::icd::CodeSet;
use crate::schema::Checker;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `kind = "toy"`: a train and a test file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToySource {
    pub train: PathBuf,
    pub test: PathBuf,
    /// Keep at most this many words of each text (at least 1).
    #[serde(default = "default_max_words")]
    pub max_words: usize,
}

fn default_max_words() -> usize {
    100
}

impl Source for ToySource {
    fn check(&self, c: &mut Checker, key: &str, _base: &Path) {
        c.positive(&format!("{key}.max_words"), self.max_words);
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::file("data.train", "train", &self.train), Input::file("data.test", "test", &self.test)]
    }

    fn load(&self, base_dir: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
        let mut report = LoadReport::default();
        let mut documents = Vec::new();
        for (split, file) in [(Split::Train, &self.train), (Split::Test, &self.test)] {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| DataError::file(&path, format!("cannot read: {e}")))?;
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let mut fields = line.splitn(3, '\t');
                let (Some(id), Some(raw), Some(body)) = (fields.next(), fields.next(), fields.next()) else {
                    return Err(DataError::file(&path, format!("line {}: write id<TAB>codes<TAB>text", i + 1)));
                };
                let labels = gold_codes(raw.split(',').map(str::trim), |_| None, codes, &mut report)
                    .map_err(|e| DataError::file(&path, format!("line {}: {e}", i + 1)))?;
                let text = body.split_whitespace().take(self.max_words).collect::<Vec<_>>().join(" ");
                documents.push(Document { id: id.to_string(), split, text, codes: labels, evidence: Vec::new() });
            }
        }
        let pool = super::label_space(&documents);
        Ok((Dataset { name: "toy".into(), documents, pool, code_space: Vec::new() }, report))
    }

    fn origin_of(&self, split: Split) -> String {
        match split {
            Split::Train => self.train.display().to_string(),
            Split::Test => self.test.display().to_string(),
            Split::Val => "data.source (the toy source has no validation file)".into(),
            Split::Evidence => "data.source (the toy source has no evidence split)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_experiment;
    use crate::data::{self, DataError, DataSource, Split};
    use crate::runner::{self, RunError, RunOptions};
    use std::path::Path;

    const TRAIN: &str = "a\tE11.9\tType 2 diabetes mellitus without complications.\n\
                         b\tE11.9,I10\tDiabetes, and essential hypertension.\n\
                         c\tE11.9\tDiabetes again.\n";

    fn experiment(dir: &Path, source: &str) -> std::path::PathBuf {
        let text = format!(
            "[experiment]\nname = \"toy\"\n\n[data.source]\nkind = \"toy\"\n{source}\n\n[[baselines]]\nkind = \"prior\"\n\n[eval]\nsplits = [\"test\"]\n"
        );
        let path = dir.join("toy.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn options() -> RunOptions {
        RunOptions { force: false, progress: false, stop_after_steps: None, leave_busy: false }
    }

    #[test]
    fn a_source_added_in_one_file_is_read_checked_hashed_and_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.tsv"), TRAIN).unwrap();
        std::fs::write(dir.path().join("test.tsv"), "x\tE11.9\tDiabetes.\ny\tI10\tHypertension.\n").unwrap();
        let path = experiment(dir.path(), "train = \"train.tsv\"\ntest = \"test.tsv\"\nmax_words = 3");

        // The schema: its own keys, read into its own struct.
        let exp = parse_experiment(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let DataSource::Toy(toy) = &exp.data.source else { panic!("{:?}", exp.data.source) };
        assert_eq!(toy.max_words, 3);

        // Loading, through the same call every source goes through.
        let table = data::code_table(&exp.data, dir.path()).unwrap();
        let (dataset, report) = data::load(&exp.data, dir.path(), &table).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!((dataset.count(Split::Train), dataset.count(Split::Test)), (3, 2));
        assert_eq!(dataset.split(Split::Train).next().unwrap().text, "Type 2 diabetes");

        // The plan hashes its files, and the runner scores it: the prior writes E11.9 (k = 1,
        // the training notes' mean code count) for both test notes, one of two right.
        let results = dir.path().join("results");
        let runs = crate::plan::plan_file(&path, &results).unwrap();
        let roles: Vec<&str> = runs[0].manifest.key.inputs.iter().map(|i| i.role.as_str()).collect();
        assert!(roles.contains(&"data.train") && roles.contains(&"data.test"), "{roles:?}");
        let records = runner::execute(&runs, &options(), |_| {}).unwrap();
        let micro = &records[0].metrics.splits["test"].sets.overall.micro;
        assert_eq!((micro.precision, micro.recall, micro.f1), (0.5, 0.5, 0.5));
    }

    #[test]
    fn its_settings_and_files_are_checked_where_the_file_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.tsv"), TRAIN).unwrap();
        let path = experiment(dir.path(), "train = \"train.tsv\"\ntest = \"missing.tsv\"\nmax_words = 0");
        let err = parse_experiment(&std::fs::read_to_string(&path).unwrap(), &path).unwrap_err().to_string();
        assert!(err.contains("toy.toml:7:8: [data.source.test] file") && err.contains("missing.tsv not found"), "{err}");
        assert!(err.contains("toy.toml:8:13: [data.source.max_words] must be at least 1"), "{err}");

        let path = experiment(dir.path(), "train = \"train.tsv\"\ntest = \"test.tsv\"\nwords = 3");
        let err = parse_experiment(&std::fs::read_to_string(&path).unwrap(), &path).unwrap_err().to_string();
        assert!(err.contains("unknown field `words`"), "{err}");
        assert!(err.contains("toy.toml:8:1: [data.source.words] unknown field"), "{err}");
    }

    #[test]
    fn an_empty_scored_split_is_refused_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.tsv"), TRAIN).unwrap();
        std::fs::write(dir.path().join("test.tsv"), "\n").unwrap();
        let path = experiment(dir.path(), "train = \"train.tsv\"\ntest = \"test.tsv\"");
        let runs = crate::plan::plan_file(&path, &dir.path().join("results")).unwrap();
        let err = runner::execute(&runs, &options(), |_| {}).unwrap_err();
        assert!(matches!(&err, RunError::Data(DataError::EmptySplit { split: Split::Test, .. })), "{err:?}");
        assert!(err.to_string().starts_with("test.tsv: the test split has no documents"), "{err}");
    }
}
