//! icdbench's JSONL formats: documents (gold) and predictions.
//!
//! Document line: `{"id", "split"?, "text", "codes": [..], "evidence"?: [{"code", "start", "end", "text"?}]}`
//! Prediction line: `{"id", "codes": [..], "evidence"?: [..], "scores"?: {"E11.9": 0.93}, "raw"?: ".."}`
//! Codes are ICD-10-CM, with or without dots, any case. Offsets are character offsets.

use super::{slice_chars, Document, EvidenceSpan, Split};
use crate::icd::{Code, CodeSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Line { path: PathBuf, line: usize, message: String },
}

/// What loading found that the user should know: nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Codes not in the code set (or malformed), with how often they occurred; dropped from the gold labels.
    pub unknown_codes: BTreeMap<String, usize>,
    /// Evidence spans whose text does not match the document at their offsets.
    pub mismatched_evidence: Vec<String>,
    /// Evidence spans whose offsets fall outside their text (left out), each named by its document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_of_range_evidence: Vec<String>,
    /// Documents (or split ids) left out, by reason, with their ids.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, Vec<String>>,
    /// Other changes the loader made on request (rare codes removed, texts truncated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl LoadReport {
    pub fn is_clean(&self) -> bool {
        self.unknown_codes.is_empty() && self.mismatched_evidence.is_empty() && self.out_of_range_evidence.is_empty() && self.skipped.is_empty() && self.notes.is_empty()
    }

    /// Counts an unknown code.
    pub fn unknown(&mut self, raw: &str) {
        *self.unknown_codes.entry(raw.to_string()).or_default() += 1;
    }

    /// Records that `id` was left out for `reason`.
    pub fn skip(&mut self, reason: &str, id: impl Into<String>) {
        self.skipped.entry(reason.to_string()).or_default().push(id.into());
    }

    /// Adds another report's findings to this one.
    pub fn merge(&mut self, other: LoadReport) {
        for (k, v) in other.unknown_codes {
            *self.unknown_codes.entry(k).or_default() += v;
        }
        self.mismatched_evidence.extend(other.mismatched_evidence);
        self.out_of_range_evidence.extend(other.out_of_range_evidence);
        for (k, v) in other.skipped {
            self.skipped.entry(k).or_default().extend(v);
        }
        self.notes.extend(other.notes);
    }

    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.unknown_codes.is_empty() {
            let total: usize = self.unknown_codes.values().sum();
            let some: Vec<&str> = self.unknown_codes.keys().take(5).map(String::as_str).collect();
            parts.push(format!("{} unknown codes ({} occurrences, e.g. {}) not in the code set", self.unknown_codes.len(), total, some.join(", ")));
        }
        if !self.mismatched_evidence.is_empty() {
            parts.push(format!("{} evidence spans whose text does not match their offsets (first: {})", self.mismatched_evidence.len(), self.mismatched_evidence[0]));
        }
        if let Some(first) = self.out_of_range_evidence.first() {
            parts.push(format!("{} evidence spans whose offsets fall outside their text, left out (first: {first})", self.out_of_range_evidence.len()));
        }
        for (reason, ids) in &self.skipped {
            let some: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
            parts.push(format!("{} left out: {reason} (e.g. {})", ids.len(), some.join(", ")));
        }
        parts.extend(self.notes.iter().cloned());
        parts.join("; ")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    id: String,
    #[serde(default)]
    split: Option<String>,
    text: String,
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
}

/// One system's output for one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub codes: Vec<Code>,
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
    let mut ids = HashSet::new();
    for (line, text) in lines(path)? {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let fail = |message: String| JsonlError::Line { path: path.to_path_buf(), line, message };
        let raw: RawDocument = serde_json::from_str(&text).map_err(|e| fail(format!("not a document line: {e}")))?;
        let split = match raw.split.as_deref() {
            Some(s) => Split::parse(s).ok_or_else(|| fail(format!("unknown split {s:?}: use train, val or test")))?,
            None => default_split.ok_or_else(|| fail("no \"split\" field and the file has no default split".into()))?,
        };
        if !ids.insert(raw.id.clone()) {
            return Err(fail(format!("duplicate document id {:?}", raw.id)));
        }
        let (mut known, unknown) = codes.check_codes(raw.codes.iter().map(String::as_str));
        for u in unknown {
            *report.unknown_codes.entry(u).or_default() += 1;
        }
        known.sort();
        known.dedup();
        let mut evidence = Vec::new();
        for ev in raw.evidence {
            let Ok(code) = codes.lookup(&ev.code).map(|e| e.code.clone()) else {
                *report.unknown_codes.entry(ev.code.clone()).or_default() += 1;
                continue;
            };
            if ev.start >= ev.end {
                return Err(fail(format!("evidence {}..{} for {} is empty or reversed: end must be greater than start", ev.start, ev.end, ev.code)));
            }
            let Some(actual) = slice_chars(&raw.text, ev.start, ev.end) else {
                return Err(fail(format!("evidence {}..{} for {} lies outside the text ({} characters)", ev.start, ev.end, ev.code, raw.text.chars().count())));
            };
            if ev.text.as_deref().is_some_and(|t| t != actual) {
                report.mismatched_evidence.push(format!("{}:{line} document {} code {} at {}..{}", path.display(), raw.id, ev.code, ev.start, ev.end));
            }
            evidence.push(EvidenceSpan { code, start: ev.start, end: ev.end, text: actual.to_string() });
        }
        docs.push(Document { id: raw.id, split, text: raw.text, codes: known, evidence });
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

/// Reads predictions; unknown codes are reported (and dropped from the scored set), malformed lines are errors.
pub fn read_predictions(path: &Path, codes: &CodeSet) -> Result<(Vec<Prediction>, LoadReport), JsonlError> {
    #[derive(Deserialize)]
    struct RawPrediction {
        id: String,
        codes: Vec<String>,
        #[serde(default)]
        evidence: Vec<RawEvidence>,
        #[serde(default)]
        scores: BTreeMap<String, f64>,
        #[serde(default)]
        raw: Option<String>,
    }
    let mut out = Vec::new();
    let mut report = LoadReport::default();
    for (line, text) in lines(path)? {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let raw: RawPrediction = serde_json::from_str(&text)
            .map_err(|e| JsonlError::Line { path: path.to_path_buf(), line, message: format!("not a prediction line: {e}") })?;
        let (mut known, unknown) = codes.check_codes(raw.codes.iter().map(String::as_str));
        for u in unknown {
            *report.unknown_codes.entry(u).or_default() += 1;
        }
        known.sort();
        known.dedup();
        let evidence = raw
            .evidence
            .into_iter()
            .filter_map(|e| {
                // Empty or reversed predicted spans support nothing; they are left out.
                if e.start >= e.end {
                    return None;
                }
                let code = Code::parse(&e.code).ok()?;
                Some(EvidenceSpan { code, start: e.start, end: e.end, text: e.text.unwrap_or_default() })
            })
            .collect();
        let mut scores = BTreeMap::new();
        for (k, v) in raw.scores {
            match Code::parse(&k) {
                Ok(c) => {
                    scores.insert(c.to_string(), v);
                }
                Err(_) => *report.unknown_codes.entry(k).or_default() += 1,
            }
        }
        out.push(Prediction { id: raw.id, codes: known, evidence, scores, raw: raw.raw });
    }
    Ok((out, report))
}

/// Writes predictions as JSONL.
pub fn write_predictions<'a>(out: &mut impl Write, preds: impl IntoIterator<Item = &'a Prediction>) -> std::io::Result<()> {
    for p in preds {
        serde_json::to_writer(&mut *out, p)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
