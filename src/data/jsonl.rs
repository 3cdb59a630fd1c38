//! icdbench's JSONL formats: documents (gold) and predictions.
//!
//! Document line: `{"id", "split"?, "text"?, "codes": [..], "evidence"?: [{"code", "start", "end", "text"?}]}`
//! Prediction line: `{"id", "codes": [..], "invalid"?: [..], "evidence"?: [..], "scores"?: {"E11.9": 0.93}, "raw"?: ".."}`
//! Codes are ICD-10-CM (with or without dots) or ICD-10-PCS, any case. Offsets are character offsets.
//! A well-formed gold code the code table does not know stays a label (counted in the
//! [`LoadReport`]); a malformed one is an error naming the line.
//! A document without `text` (gold labels only, as other tools write them) has
//! empty text; its evidence offsets are kept unchecked.

pub use super::load_report::{unknown_reason, LoadReport};
use super::source::{Input, Source};
use super::{slice_chars, DataError, Dataset, Document, EvidenceSpan, Split};
use crate::icd::{Code, CodeSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// `kind = "jsonl"`: documents in icdbench's JSONL format, one file per split (every
/// line takes the split of its file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlFiles {
    pub train: PathBuf,
    pub val: Option<PathBuf>,
    pub test: PathBuf,
}

impl JsonlFiles {
    fn files(&self) -> [(Split, Option<&PathBuf>); 3] {
        [(Split::Train, Some(&self.train)), (Split::Val, self.val.as_ref()), (Split::Test, Some(&self.test))]
    }
}

impl Source for JsonlFiles {
    fn inputs(&self) -> Vec<Input> {
        let roles = |split| match split {
            Split::Train => "data.train",
            Split::Val => "data.val",
            Split::Test | Split::Evidence => "data.test",
        };
        self.files().into_iter().filter_map(|(split, path)| Some(Input::file(roles(split), split.as_str(), path?))).collect()
    }

    fn load(&self, base_dir: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
        let mut report = LoadReport::default();
        let mut documents = Vec::new();
        for (split, path) in self.files() {
            let Some(path) = path else { continue };
            let (docs, r) = read_documents(&base_dir.join(path), Some(split), codes)?;
            documents.extend(docs);
            report.merge(r);
        }
        Ok((Dataset { name: "jsonl".into(), documents, ..Dataset::default() }, report))
    }

    fn origin_of(&self, split: Split) -> String {
        match self.files().into_iter().find(|(s, _)| *s == split).and_then(|(_, p)| p) {
            Some(path) => path.display().to_string(),
            None => format!("data.source.{split} (not set)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Line { path: PathBuf, line: usize, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    id: String,
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    text: Option<String>,
    codes: Vec<String>,
    #[serde(default)]
    evidence: Vec<RawEvidence>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvidence {
    pub code: String,
    pub start: usize,
    pub end: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The mention kind (synthetic data records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<super::MentionKind>,
}

/// One system's output for one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    /// Predicted codes of the code set, sorted and unique.
    pub codes: Vec<Code>,
    /// Predicted strings outside the code set, sorted and unique: well-formed codes
    /// missing from the table (normalised) and malformed strings (as written).
    /// Scored as false positives, never dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceSpan>,
    /// Per-code scores, for discriminative systems.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scores: BTreeMap<String, f64>,
    /// The raw model output, kept so predictions can be re-parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

fn lines(path: &Path) -> Result<impl Iterator<Item = (usize, Result<String, JsonlError>)> + '_, JsonlError> {
    let file = std::fs::File::open(path).map_err(|source| JsonlError::Io { path: path.to_path_buf(), source })?;
    Ok(BufReader::new(file).lines().enumerate().map(move |(i, l)| {
        (i + 1, l.map_err(|source| JsonlError::Io { path: path.to_path_buf(), source }))
    }))
}

/// Reads documents; `default_split` applies to lines without a `split`.
pub fn read_documents(path: &Path, default_split: Option<Split>, codes: &CodeSet) -> Result<(Vec<Document>, LoadReport), JsonlError> {
    let mut docs = Vec::new();
    let mut report = LoadReport::default();
    let mut ids = HashMap::new();
    for (line, text) in lines(path)? {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let fail = |message: String| JsonlError::Line { path: path.to_path_buf(), line, message };
        let raw: RawDocument = serde_json::from_str(&text).map_err(|e| fail(format!("not a document line: {e}")))?;
        let split = match raw.split.as_deref() {
            Some(s) => Split::parse_scored(s).ok_or_else(|| fail(format!("unknown split {s:?}: use train, val, test or evidence")))?,
            None => default_split.ok_or_else(|| fail("no \"split\" field and the file has no default split".into()))?,
        };
        if let Some(first) = ids.insert(raw.id.clone(), line) {
            return Err(fail(format!("duplicate document id {:?} (first on line {first}); give each document its own id", raw.id)));
        }
        let known = super::gold_codes(raw.codes.iter().map(String::as_str), |_| None, codes, &mut report).map_err(&fail)?;
        let mut evidence = Vec::new();
        for ev in raw.evidence {
            let code = codes.resolve(&ev.code).map_err(|e| fail(format!("evidence: {e}")))?;
            if ev.start >= ev.end {
                return Err(fail(format!("evidence {}..{} for {} is empty or reversed: end must be greater than start", ev.start, ev.end, ev.code)));
            }
            // Without the text there is nothing to check the offsets against; the span is kept as given.
            let Some(doc_text) = raw.text.as_deref() else {
                evidence.push(EvidenceSpan { code, start: ev.start, end: ev.end, text: ev.text.unwrap_or_default(), kind: ev.kind });
                continue;
            };
            let Some(actual) = slice_chars(doc_text, ev.start, ev.end) else {
                return Err(fail(format!("evidence {}..{} for {} lies outside the text ({} characters)", ev.start, ev.end, ev.code, doc_text.chars().count())));
            };
            if ev.text.as_deref().is_some_and(|t| t != actual) {
                report.mismatched_evidence.push(format!("{}:{line} document {} code {} at {}..{}", path.display(), raw.id, ev.code, ev.start, ev.end));
            }
            evidence.push(EvidenceSpan { code, start: ev.start, end: ev.end, text: actual.to_string(), kind: ev.kind });
        }
        docs.push(Document { id: raw.id, split, text: raw.text.unwrap_or_default(), codes: known, evidence });
    }
    Ok((docs, report))
}

/// Writes documents as JSONL, one per line, in the given order (byte-stable).
pub fn write_documents<'a>(out: &mut impl Write, docs: impl IntoIterator<Item = &'a Document>) -> std::io::Result<()> {
    for d in docs {
        serde_json::to_writer(&mut *out, d)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Splits predicted strings into codes of the code set and the rest (see
/// [`Prediction::invalid`]), each sorted and unique.
fn partition_predicted<'a>(raw: impl IntoIterator<Item = &'a str>, codes: &CodeSet) -> (Vec<Code>, Vec<String>) {
    let mut known = BTreeSet::new();
    let mut invalid = BTreeSet::new();
    for r in raw {
        match codes.resolve(r) {
            Ok(c) if codes.contains(&c) => known.insert(c),
            Ok(c) => invalid.insert(c.to_string()),
            Err(_) => invalid.insert(r.to_string()),
        };
    }
    (known.into_iter().collect(), invalid.into_iter().collect())
}

/// Reads predictions. Strings in `codes` or `invalid` are partitioned again against
/// `codes` (a wider code table may know what a narrower one did not); a
/// malformed line or a second line for one id is an error naming the line.
pub fn read_predictions(path: &Path, codes: &CodeSet) -> Result<Vec<Prediction>, JsonlError> {
    #[derive(Deserialize)]
    struct RawPrediction {
        id: String,
        codes: Vec<String>,
        #[serde(default)]
        invalid: Vec<String>,
        #[serde(default)]
        evidence: Vec<RawEvidence>,
        #[serde(default)]
        scores: BTreeMap<String, f64>,
        #[serde(default)]
        raw: Option<String>,
    }
    let mut out = Vec::new();
    let mut ids = HashMap::new();
    for (line, text) in lines(path)? {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let fail = |message: String| JsonlError::Line { path: path.to_path_buf(), line, message };
        let raw: RawPrediction = serde_json::from_str(&text).map_err(|e| fail(format!("not a prediction line: {e}")))?;
        if let Some(first) = ids.insert(raw.id.clone(), line) {
            return Err(fail(format!("second prediction for document id {:?} (the first is on line {first}); give one line per document", raw.id)));
        }
        let (known, invalid) = partition_predicted(raw.codes.iter().chain(&raw.invalid).map(String::as_str), codes);
        let evidence = raw
            .evidence
            .into_iter()
            .filter_map(|e| {
                // Empty or reversed predicted spans support nothing; they are left out.
                if e.start >= e.end {
                    return None;
                }
                let code = Code::parse(&e.code).ok()?;
                Some(EvidenceSpan::new(code, e.start, e.end, e.text.unwrap_or_default()))
            })
            .collect();
        // Scores are keyed like the predicted set: a malformed key is a code that is never gold.
        let scores = raw.scores.into_iter().map(|(k, v)| (Code::parse(&k).map(|c| c.to_string()).unwrap_or(k), v)).collect();
        out.push(Prediction { id: raw.id, codes: known, invalid, evidence, scores, raw: raw.raw });
    }
    Ok(out)
}

/// Writes predictions as JSONL.
pub fn write_predictions<'a>(out: &mut impl Write, preds: impl IntoIterator<Item = &'a Prediction>) -> std::io::Result<()> {
    for p in preds {
        serde_json::to_writer(&mut *out, p)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> &'static CodeSet {
        CodeSet::builtin().expect("builtin code set")
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pred.jsonl");
        std::fs::write(&path, text).expect("written");
        (dir, path)
    }

    #[test]
    fn predicted_strings_outside_the_code_set_are_kept_and_round_trip() {
        // `E11.9` under `invalid` is in this code table, so it is a code here; `i10` repeats I10.
        let (_dir, path) = file("{\"id\":\"1\",\"codes\":[\"I10\",\"z99999\",\"NOTACODE\",\"i10\"],\"invalid\":[\"E11.9\"]}\n{\"id\":\"2\",\"codes\":[\"J45.909\"]}\n");
        let preds = read_predictions(&path, codes()).expect("reads");
        let codes_of = |p: &Prediction| p.codes.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(codes_of(&preds[0]), ["E11.9", "I10"]);
        assert_eq!(preds[0].invalid, ["NOTACODE", "Z99.999"]);
        assert!(preds[1].invalid.is_empty(), "a line without `invalid` still loads");
        let mut out = Vec::new();
        write_predictions(&mut out, &preds).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.lines().next().is_some_and(|l| l.contains("\"invalid\":[\"NOTACODE\",\"Z99.999\"]")), "{text}");
        assert!(!text.lines().nth(1).is_some_and(|l| l.contains("invalid")), "{text}");
        let (_dir2, again) = file(&text);
        assert_eq!(read_predictions(&again, codes()).expect("reads back"), preds);
    }

    #[test]
    fn a_second_prediction_for_one_id_names_both_lines() {
        let (_dir, path) = file("{\"id\":\"a\",\"codes\":[]}\n\n{\"id\":\"a\",\"codes\":[\"I10\"]}\n");
        let err = read_predictions(&path, codes()).expect_err("duplicate id");
        assert!(matches!(&err, JsonlError::Line { line: 3, message, .. } if message.contains("\"a\"") && message.contains("line 1")), "{err}");
    }
}
