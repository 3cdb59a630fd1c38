//! Documents, their gold codes and evidence spans, grouped in splits.
//!
//! Offsets are character offsets (Unicode scalar values) into `Document::text`,
//! the convention of MDACE and CodiEsp-X (and of Python string indexing).

pub mod codiesp;
pub mod export;
pub mod jsonl;
pub mod leakage;
pub mod load_report;
pub mod mdace;
pub mod mimic;
pub mod paraphrase;
pub mod preprocess;
pub mod registry;
pub mod source;
pub mod synthetic;
mod table;
#[cfg(test)]
mod toy;

use crate::icd::{Code, CodeSet, System};
pub use paraphrase::{Family, MentionKind, Wording};
pub use registry::{Data, DataSource, Preprocess};
pub use source::{CodeSystem, Source};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
    /// Notes of another source held out with gold evidence and scored beside `test`: MDACE's
    /// test charts in a MIMIC-IV experiment (`data.source.score_mdace_test`).
    Evidence,
}

impl Split {
    /// The splits a data file names.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];
    /// Every split a run may score (`eval.splits`).
    pub const SCORED: [Split; 4] = [Split::Train, Split::Val, Split::Test, Split::Evidence];

    /// A split `eval.splits` (or `--split`) names: a data file's, or `evidence`.
    pub fn parse_scored(s: &str) -> Option<Split> {
        match s {
            "evidence" => Some(Split::Evidence),
            _ => Split::parse(s),
        }
    }

    pub fn parse(s: &str) -> Option<Split> {
        match s {
            "train" => Some(Split::Train),
            "val" | "dev" | "validation" => Some(Split::Val),
            "test" => Some(Split::Test),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::Evidence => "evidence",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stretch of document text that supports one code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EvidenceSpan {
    pub code: Code,
    /// Character offset of the first character.
    pub start: usize,
    /// Character offset one past the last character.
    pub end: usize,
    pub text: String,
    /// How the mention is worded, where the source records it (the synthetic benchmark does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MentionKind>,
}

impl EvidenceSpan {
    /// A span without a recorded mention kind.
    pub fn new(code: Code, start: usize, end: usize, text: String) -> EvidenceSpan {
        EvidenceSpan { code, start, end, text, kind: None }
    }
}

/// A clinical document with its gold codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub split: Split,
    pub text: String,
    /// Gold codes, sorted and unique.
    pub codes: Vec<Code>,
    /// Gold evidence, where the source has it (empty otherwise).
    #[serde(default)]
    pub evidence: Vec<EvidenceSpan>,
}

impl Document {
    /// The text between two character offsets (`None` when out of range).
    pub fn slice_chars(&self, start: usize, end: usize) -> Option<&str> {
        slice_chars(&self.text, start, end)
    }
}

/// The text between two character offsets of `text` (`None` when out of range).
pub fn slice_chars(text: &str, start: usize, end: usize) -> Option<&str> {
    if start > end {
        return None;
    }
    let mut indices = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len()));
    let from = indices.nth(start)?;
    let to = if end == start { from } else { indices.nth(end - start - 1)? };
    text.get(from..to)
}

/// A benchmark: documents of every split, plus the code pool they were drawn from when known.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub documents: Vec<Document>,
    /// The codes the data can carry: the synthetic pool, or for real data every code that
    /// training and validation documents carry (never codes only test documents carry);
    /// empty when unknown.
    pub pool: Vec<Code>,
    /// Every code the data could have drawn its labels from, independent of which
    /// ones it drew or held out: on synthetic data the billable codes of the
    /// benchmark's chapters and prefixes; empty for real data (unknown).
    pub code_space: Vec<Code>,
}

/// Every code a training or validation document carries, sorted: the label space a system
/// may train on or restrict its output to on a real data set.
pub(crate) fn label_space(documents: &[Document]) -> Vec<Code> {
    // Test labels never enter the label space: codes only test documents carry are unseen.
    let codes: BTreeSet<&Code> = documents.iter().filter(|d| d.split != Split::Test).flat_map(|d| d.codes.iter()).collect();
    codes.into_iter().cloned().collect()
}

impl Dataset {
    pub fn split(&self, split: Split) -> impl Iterator<Item = &Document> {
        self.documents.iter().filter(move |d| d.split == split)
    }

    /// Codes that training documents carry: the "seen" codes.
    pub fn seen_codes(&self) -> BTreeSet<Code> {
        self.split(Split::Train).flat_map(|d| d.codes.iter().cloned()).collect()
    }

    /// Codes in `split` that no training document carries: the "unseen" codes.
    pub fn unseen_codes(&self, split: Split) -> BTreeSet<Code> {
        let seen = self.seen_codes();
        self.split(split).flat_map(|d| d.codes.iter()).filter(|c| !seen.contains(*c)).cloned().collect()
    }

    pub fn count(&self, split: Split) -> usize {
        self.split(split).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_by_characters_not_bytes() {
        let t = "héllo wörld";
        assert_eq!(slice_chars(t, 0, 5), Some("héllo"));
        assert_eq!(slice_chars(t, 6, 11), Some("wörld"));
        assert_eq!(slice_chars(t, 3, 3), Some(""));
        assert_eq!(slice_chars(t, 6, 12), None);
        assert_eq!(slice_chars(t, 4, 2), None);
    }
}

/// The codes of `raw` that are in the code set, sorted and unique; the others are counted in `report`.
/// Reads gold code strings as labels, sorted and unique. A well-formed code the table
/// does not know stays a label and is counted in `report` by reason; a malformed string
/// is an error (the message names the value; callers add the file and row).
/// `system_of` names the system a string belongs to when the source says so.
pub(crate) fn gold_codes<'a>(
    raw: impl IntoIterator<Item = &'a str>,
    system_of: impl Fn(&str) -> Option<System>,
    codes: &CodeSet,
    report: &mut jsonl::LoadReport,
) -> Result<Vec<Code>, String> {
    let mut out = Vec::new();
    for r in raw {
        let code = match system_of(r) {
            Some(system) => Code::parse_in(system, r).or_else(|_| codes.resolve(r)),
            None => codes.resolve(r),
        }
        .map_err(|e| e.to_string())?;
        if !codes.contains(&code) {
            report.unknown_label(&code, codes);
        }
        out.push(code);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The code set an experiment codes in: the embedded table or one loaded from a file.
pub enum CodeTable {
    Builtin(&'static CodeSet),
    Loaded(Box<CodeSet>),
}

impl std::ops::Deref for CodeTable {
    type Target = CodeSet;
    fn deref(&self) -> &CodeSet {
        match self {
            CodeTable::Builtin(c) => c,
            CodeTable::Loaded(c) => c,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Icd(#[from] crate::icd::IcdError),
    #[error(transparent)]
    Jsonl(#[from] jsonl::JsonlError),
    #[error(transparent)]
    Synthetic(#[from] synthetic::SyntheticError),
    /// A data file that cannot be used as it is: names the file and what to fix.
    #[error("{}: {message}", path.display())]
    File { path: std::path::PathBuf, message: String },
    /// A split the run scores holds no document.
    #[error("{origin}: the {split} split has no documents, but eval.splits scores it: give it documents or leave it out of eval.splits")]
    EmptySplit { split: Split, origin: String },
}

impl DataError {
    pub(crate) fn file(path: &std::path::Path, message: impl Into<String>) -> DataError {
        DataError::File { path: path.to_path_buf(), message: message.into() }
    }
}

/// Opens the experiment's code table (`builtin` or a path relative to the experiment file).
pub fn code_table(config: &Data, base_dir: &std::path::Path) -> Result<CodeTable, DataError> {
    if config.builtin_table() {
        Ok(CodeTable::Builtin(if config.uses_procedures() { CodeSet::builtin_with_procedures()? } else { CodeSet::builtin()? }))
    } else {
        Ok(CodeTable::Loaded(Box::new(CodeSet::load(&base_dir.join(&config.code_table))?)))
    }
}

/// Generates or reads the experiment's documents.
pub fn load(config: &Data, base_dir: &std::path::Path, codes: &CodeSet) -> Result<(Dataset, jsonl::LoadReport), DataError> {
    let (mut dataset, mut report) = config.source.source().load(base_dir, codes)?;
    if config.preprocess == Preprocess::Edin {
        let dropped = preprocess::apply_edin(&mut dataset.documents);
        report.notes.push(format!(
            "preprocess = \"edin\": texts lower-cased, punctuation and standalone numbers removed (Edin et al.'s MIMIC preparation){}",
            if dropped > 0 { format!("; {dropped} evidence spans left with no text dropped") } else { String::new() }
        ));
    }
    let styles = preprocess::TextStyles::of(&dataset.documents);
    if let Some(mismatch) = styles.mismatch() {
        report.notes.push(mismatch);
    }
    report.text_styles = Some(styles);
    if let Some(found) = leakage::check(&mut dataset, &config.leakage) {
        for id in &found.excluded {
            report.skip(leakage::EXCLUDED, id.clone());
        }
        report.leakage = Some(found);
    }
    Ok((dataset, report))
}
