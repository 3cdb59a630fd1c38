//! The `[data]` section and the registry of data sources.
//!
//! A data source is one module that owns its `[data.source]` schema (a struct that denies
//! unknown keys), its validation and its loading, by implementing [`Source`]. The
//! `sources!` list below registers it under its `kind`: adding a source is one new file and
//! one line in that list (the test-only `toy` source shows it).

use super::leakage::Leakage;
use super::source::{Input, Source};
use super::{DataError, Dataset, Split};
use crate::schema::Checker;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Registers the data sources: `Variant(Params) = "kind"`, one line each.
macro_rules! sources {
    ($($(#[$attr:meta])* $variant:ident($params:ty) = $kind:literal,)*) => {
        /// `[data.source]`: the registered source its `kind` names, with that source's keys.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        pub enum DataSource {
            $($(#[$attr])* #[serde(rename = $kind)] $variant($params),)*
        }

        impl DataSource {
            /// The source behind the settings.
            pub fn source(&self) -> &dyn Source {
                match self {
                    $($(#[$attr])* DataSource::$variant(p) => p,)*
                }
            }

            /// The `kind` that names it in an experiment file.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($(#[$attr])* DataSource::$variant(_) => $kind,)*
                }
            }
        }
    };
}

sources! {
    Synthetic(super::synthetic::SyntheticParams) = "synthetic",
    Jsonl(super::jsonl::JsonlFiles) = "jsonl",
    Mimic(super::mimic::MimicParams) = "mimic",
    Mdace(super::mdace::MdaceParams) = "mdace",
    Codiesp(super::codiesp::CodiespParams) = "codiesp",
    #[cfg(test)]
    Toy(super::toy::ToySource) = "toy",
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource::Synthetic(Default::default())
    }
}

/// `[data]`: where documents come from and which code set they are coded in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    #[serde(default)]
    pub source: DataSource,
    /// `builtin`: the committed ICD-10-CM FY2026 table, with the committed ICD-10-PCS table
    /// when the source carries procedure codes (see [`Data::uses_procedures`]);
    /// `builtin+pcs`: both tables whatever the source; or a path to a table built by
    /// `icdbench data build-codes`.
    #[serde(default = "default_code_table")]
    pub code_table: String,
    /// `"edin"`: pass every text through Edin et al.'s MIMIC pre-processing (lower case,
    /// no punctuation, no standalone numbers) after loading, evidence moved with it — to
    /// read any benchmark the way their MIMIC-IV table reads. Default `"none"`.
    #[serde(default, skip_serializing_if = "Preprocess::is_none")]
    pub preprocess: Preprocess,
    /// The near-duplicate check between training notes and held-out notes: found pairs
    /// reported, their training notes left out unless `action = "report"` or `"off"`.
    #[serde(default, skip_serializing_if = "Leakage::is_default")]
    pub leakage: Leakage,
}

/// Text pre-processing applied after loading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocess {
    #[default]
    None,
    Edin,
}

impl Preprocess {
    pub fn is_none(&self) -> bool {
        *self == Preprocess::None
    }
}

fn default_code_table() -> String {
    "builtin".into()
}

impl Default for Data {
    fn default() -> Self {
        Data { source: DataSource::default(), code_table: default_code_table(), preprocess: Preprocess::None, leakage: Leakage::default() }
    }
}

impl Data {
    /// Whether the builtin tables include ICD-10-PCS: for `builtin+pcs`, and for `builtin`
    /// when the source's gold codes include procedures.
    pub fn uses_procedures(&self) -> bool {
        match self.code_table.as_str() {
            "builtin+pcs" => true,
            "builtin" => self.source.source().carries_procedures(),
            _ => false,
        }
    }

    /// Whether the code table is one of the committed ones.
    pub fn builtin_table(&self) -> bool {
        matches!(self.code_table.as_str(), "builtin" | "builtin+pcs")
    }

    /// Every file the section reads, the code table first when it is a file, with its key
    /// from the top of the experiment (`data.source.table`).
    pub fn inputs(&self) -> Vec<Input> {
        let mut inputs = Vec::new();
        if !self.builtin_table() {
            inputs.push(Input { key: "data.code_table".into(), hint: " (or use \"builtin\")", ..Input::file("code_table", "", Path::new(&self.code_table)) });
        }
        for input in self.source.source().inputs() {
            inputs.push(Input { key: format!("data.source.{}", input.key), ..input });
        }
        inputs
    }

    /// Checks the section: the source's own settings, and with `c.check_inputs` that every
    /// input is there (files relative to `base`).
    pub fn check(&self, c: &mut Checker, base: &Path) {
        self.source.source().check(c, "data.source", base);
        if !(self.leakage.threshold > 0.0 && self.leakage.threshold <= 1.0) {
            c.fail("data.leakage.threshold", format!("a Jaccard similarity above 0 and at most 1, got {}", self.leakage.threshold));
        }
        c.positive("data.leakage.shingle_words", self.leakage.shingle_words);
        if !c.check_inputs {
            return;
        }
        for input in self.inputs() {
            let full = base.join(&input.path);
            let present = if input.folder { full.is_dir() } else { full.is_file() };
            if !present {
                let what = if input.folder { "folder" } else { "file" };
                c.fail(&input.key, format!("{what} {} not found{}", full.display(), input.hint));
            }
        }
    }
}

/// Refuses a dataset that has no documents in a split the run scores: an empty or missing
/// evaluation split is bad input, never a row of zeros.
pub fn require_splits(data: &Data, dataset: &Dataset, splits: &[Split]) -> Result<(), DataError> {
    for &split in splits {
        if dataset.count(split) == 0 {
            return Err(DataError::EmptySplit { split, origin: data.source.source().origin_of(split) });
        }
    }
    Ok(())
}
