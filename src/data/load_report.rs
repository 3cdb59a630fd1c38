//! What loading found that the user should know: codes the table does not know, evidence
//! that does not match its text, documents left out. Every source fills one.

use crate::icd::{Code, CodeSet, System};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What loading found that the user should know: nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Codes not in the code table, with how often they occurred. They stay gold labels,
    /// scored like any other code (Edin et al. keep every code of the data).
    pub unknown_codes: BTreeMap<String, usize>,
    /// The same codes grouped by reason (retired or unknown to the table, other code system).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unknown_reasons: BTreeMap<String, BTreeSet<String>>,
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
    /// Each split's notes by text style (Edin et al.'s prepared text, or raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_styles: Option<super::preprocess::TextStyles>,
    /// The near-duplicate check between training and held-out notes (`[data.leakage]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leakage: Option<super::leakage::LeakageReport>,
}

impl LoadReport {
    pub fn is_clean(&self) -> bool {
        self.unknown_codes.is_empty()
            && self.mismatched_evidence.is_empty()
            && self.out_of_range_evidence.is_empty()
            && self.skipped.is_empty()
            && self.notes.is_empty()
            && self.leakage.as_ref().is_none_or(|l| l.pairs.is_empty())
    }

    /// Counts a gold code the table does not know (it stays a label), with its reason.
    pub fn unknown_label(&mut self, code: &Code, codes: &CodeSet) {
        *self.unknown_codes.entry(code.to_string()).or_default() += 1;
        self.unknown_reasons.entry(unknown_reason(code, codes).to_string()).or_default().insert(code.to_string());
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
        for (k, v) in other.unknown_reasons {
            self.unknown_reasons.entry(k).or_default().extend(v);
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
            let reasons: Vec<String> = self
                .unknown_reasons
                .iter()
                .map(|(reason, codes)| format!("{}: {reason} (e.g. {})", codes.len(), codes.iter().take(3).map(String::as_str).collect::<Vec<_>>().join(", ")))
                .collect();
            parts.push(format!("{} codes outside the code table kept as gold labels ({total} occurrences; {})", self.unknown_codes.len(), reasons.join("; ")));
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
        if let Some(l) = self.leakage.as_ref().filter(|l| !l.pairs.is_empty() && l.excluded.is_empty()) {
            parts.push(format!("near-duplicates kept: {}", l.describe()));
        }
        parts.join("; ")
    }
}

/// Why a well-formed gold code is not in the code table.
pub fn unknown_reason(code: &Code, codes: &CodeSet) -> &'static str {
    match (code.system(), codes.has_system(code.system())) {
        (System::Cm, true) => "ICD-10-CM code not in the table (retired, or never valid)",
        (System::Pcs, true) => "ICD-10-PCS code not in the table (retired, or never valid)",
        (System::Cm, false) => "ICD-10-CM code, but the code table holds no ICD-10-CM (other code system)",
        (System::Pcs, false) => "ICD-10-PCS code, but no procedure table is in use (other code system)",
    }
}

