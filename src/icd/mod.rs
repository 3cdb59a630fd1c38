//! The ICD-10-CM code set: codes, their hierarchy, descriptions and
//! inclusion terms, from the public CDC/CMS FY2026 tabular list.
//!
//! - [`Code`] normalises one code ("e119" -> "E11.9").
//! - [`build_table`] turns the tabular XML into the compact table committed
//!   at `datasets/icd10cm/icd10cm-2026.tsv.gz` (see `scripts/build-codeset.sh`).
//! - [`CodeSet`] loads such a table ([`CodeSet::builtin`] is the committed
//!   one) and answers lookups, parents, children, siblings and chapters.

mod build;
mod catalog;
mod code;
mod table;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use build::{
    build_table, build_table_bytes, BuildSummary, SOURCE_PACKAGE, SOURCE_PACKAGE_VERSION,
    SOURCE_XML_NAME, SOURCE_XML_SHA256,
};
pub use catalog::{CodeSet, TableSource, BUILTIN_ORIGIN, BUILTIN_PCS_ORIGIN, PCS_CHAPTER_BASE};
pub use code::{Code, System};

/// Number of billable codes in the FY2026 release (the leaves of the CMS
/// code list `code-list-April-2026.txt`); the builtin table must match it.
pub const FY2026_BILLABLE: usize = 74_719;

/// One row of the code table: a category, a subcategory or a billable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeEntry {
    pub code: Code,
    /// True for codes valid on a claim: leaves, after 7th-character expansion.
    pub billable: bool,
    /// The long description; for a 7th-character code, the parent's
    /// description + ", " + the character's meaning.
    pub description: String,
    /// Synonyms listed under the code in the tabular list ("inclusion terms").
    pub inclusion_terms: Vec<String>,
    /// None for a 3-character category.
    pub parent: Option<Code>,
    /// The tabular section, e.g. "E08-E13".
    pub block: String,
    /// Chapter number, 1..=22.
    pub chapter: u8,
}

/// A chapter of the tabular list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chapter {
    pub number: u8,
    /// The title without its range, e.g. "Endocrine, nutritional and metabolic diseases".
    pub description: String,
    /// First and last category, e.g. "E00-E89".
    pub range: String,
}

/// What can go wrong with codes and code tables. Messages are one line and
/// say what to do.
#[derive(Debug, thiserror::Error)]
pub enum IcdError {
    #[error(
        "malformed ICD-10 code {input:?}: {reason}; write an ICD-10-CM code (a letter, two letters or digits, then up to 4 letters or digits, with an optional dot after the 3rd character, e.g. E11.9) or a 7-character ICD-10-PCS code (e.g. 0BH17EZ)"
    )]
    MalformedCode { input: String, reason: &'static str },

    #[error("unknown code {code}: not in the code table {origin}; check for a typo or a code from another release")]
    UnknownCode { code: String, origin: String },

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write {}: {source}; check the folder exists and is writable", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{}: corrupt code table: {reason}; rebuild it with scripts/build-codeset.sh", at(origin, *line))]
    Table {
        origin: String,
        line: usize,
        reason: String,
    },

    #[error("{origin}: cannot parse the tabular XML: {message}; use the file from simple-icd-10-cm==1.5.0")]
    Xml { origin: String, message: String },

    #[error(
        "{origin}: unexpected tabular XML: {reason}; use the file from simple-icd-10-cm==1.5.0"
    )]
    XmlStructure { origin: String, reason: String },

    #[error("the builtin ICD-10-CM table is unusable ({message}); rebuild it with scripts/build-codeset.sh and recompile")]
    Builtin { message: String },
}

/// "file:line", or just "file" for whole-file problems (line 0).
fn at(origin: &str, line: usize) -> String {
    if line == 0 {
        origin.to_string()
    } else {
        format!("{origin}:{line}")
    }
}
