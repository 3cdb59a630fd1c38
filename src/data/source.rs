//! What a data source is: the [`Source`] trait every source implements, and the inputs it
//! names. The sources themselves register in [`super::registry`].

use super::{load_report::LoadReport, DataError, Dataset, Split};
use crate::icd::CodeSet;
use crate::schema::Checker;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a data source does: check its settings, name its input files, load its documents.
pub trait Source {
    /// Problems with the settings beyond what the schema's types say (ranges, column names),
    /// written to `c` under `key` (`"data.source"`); files are relative to `base`. The
    /// presence of [`Source::inputs`] is checked apart, when the data must exist.
    fn check(&self, _c: &mut Checker, _key: &str, _base: &Path) {}

    /// The files and folders the source reads, relative to the experiment file's folder:
    /// checked for presence at load and hashed into the plan's fingerprint.
    fn inputs(&self) -> Vec<Input>;

    /// Generates or reads the documents of every split, with what loading left out or changed.
    fn load(&self, base_dir: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError>;

    /// Where the documents of `split` come from, to name it when that split is empty:
    /// a file, or the key that sizes it.
    fn origin_of(&self, split: Split) -> String;

    /// Whether the gold codes include ICD-10-PCS procedures (then `code_table = "builtin"`
    /// loads the PCS table too).
    fn carries_procedures(&self) -> bool {
        false
    }

    /// The generator version, for a source that generates its documents.
    fn generator_version(&self) -> Option<u32> {
        None
    }

    /// Whether the dataset's code pool holds codes only test documents carry (the synthetic
    /// benchmark's does; a real data set's never does), which marks systems that read it.
    fn pool_has_test_labels(&self) -> bool {
        false
    }
}

/// One file or folder a source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Its name in the plan's input hashes (`data.table`).
    pub role: &'static str,
    /// Its key under the source's section (`table`, `mdace.notes`).
    pub key: String,
    pub path: PathBuf,
    pub folder: bool,
    /// What to write there, added to the "not found" message.
    pub hint: &'static str,
}

impl Input {
    pub fn file(role: &'static str, key: impl Into<String>, path: &Path) -> Input {
        Input { role, key: key.into(), path: path.to_path_buf(), folder: false, hint: "" }
    }

    pub fn folder(role: &'static str, key: impl Into<String>, path: &Path, hint: &'static str) -> Input {
        Input { role, key: key.into(), path: path.to_path_buf(), folder: true, hint }
    }
}

/// Which codes of a source are gold: diagnoses, procedures or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeSystem {
    /// Diagnosis codes only (ICD-10-CM).
    #[default]
    Diagnosis,
    /// Procedure codes only (ICD-10-PCS).
    Procedure,
    /// Diagnoses and procedures, as Edin et al.'s `target` column.
    Both,
}

