//! Edin et al.'s text pre-processing for MIMIC (`TextPreprocessor(lower=True,
//! remove_special_characters_mullenbach=True, remove_digits=True)` in their
//! `prepare_data/utils.py`), so any benchmark can be read the way their MIMIC-IV
//! table is: lower-cased; every run of characters other than `A-Za-z0-9` one space;
//! digit-only words between spaces removed (their `(\s\d+)+\s` -> " "); whitespace
//! collapsed and trimmed. Evidence offsets follow the text.

use super::{Document, EvidenceSpan};

/// `text` pre-processed, with the source character offset of every output character.
pub fn edin(text: &str) -> (String, Vec<usize>) {
    // Lower-case, then split into maximal runs of ASCII letters and digits (the rest separates).
    let mut words: Vec<(String, Vec<usize>)> = Vec::new();
    let mut current = (String::new(), Vec::new());
    let mut leading_separator = false;
    for (i, ch) in text.chars().enumerate() {
        let mut pushed = false;
        for low in ch.to_lowercase() {
            if low.is_ascii_alphanumeric() {
                current.0.push(low);
                current.1.push(i);
                pushed = true;
            }
        }
        if !pushed {
            if words.is_empty() && current.0.is_empty() {
                leading_separator = true;
            }
            if !current.0.is_empty() {
                words.push(std::mem::take(&mut current));
            }
        }
    }
    let trailing_separator = current.0.is_empty();
    if !current.0.is_empty() {
        words.push(current);
    }
    // A digit-only word goes when a space precedes and follows it in the spaced text: every
    // word but the first (unless the text began with a separator) and the last (unless it
    // ended with one).
    let n = words.len();
    let mut out = String::new();
    let mut src = Vec::new();
    for (k, (w, at)) in words.into_iter().enumerate() {
        let space_before = k > 0 || leading_separator;
        let space_after = k + 1 < n || trailing_separator;
        if w.bytes().all(|b| b.is_ascii_digit()) && space_before && space_after {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
            src.push(at[0]);
        }
        out.push_str(&w);
        src.extend(at);
    }
    (out, src)
}

/// Pre-processes every document's text in place, moving its evidence with it; returns how
/// many spans were left with no text (digits only, or punctuation) and dropped.
pub fn apply_edin(docs: &mut [Document]) -> usize {
    let mut dropped = 0;
    for d in docs {
        let (text, src) = edin(&d.text);
        let mut evidence = Vec::with_capacity(d.evidence.len());
        for e in d.evidence.drain(..) {
            let start = src.partition_point(|&s| s < e.start);
            let end = src.partition_point(|&s| s < e.end);
            let piece = super::slice_chars(&text, start, end).unwrap_or("").trim();
            if piece.is_empty() {
                dropped += 1;
                continue;
            }
            // Trim a space the span picked up at either end.
            let lead = super::slice_chars(&text, start, end).unwrap_or("").chars().take_while(|c| *c == ' ').count();
            let (start, end) = (start + lead, start + lead + piece.chars().count());
            evidence.push(EvidenceSpan { start, end, text: piece.to_string(), ..e });
        }
        d.text = text;
        d.evidence = evidence;
    }
    dropped
}

/// How a note is written: as Edin et al.'s preparation writes it (lower-case letters,
/// digits inside words and single spaces only), or raw.
pub fn is_prepared(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == ' ')
}

/// The text styles of a dataset's splits, and whether training and held-out notes differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextStyles {
    /// Split → (prepared notes, raw notes).
    pub splits: std::collections::BTreeMap<String, (usize, usize)>,
}

impl TextStyles {
    pub fn of(docs: &[Document]) -> TextStyles {
        let mut splits: std::collections::BTreeMap<String, (usize, usize)> = std::collections::BTreeMap::new();
        for d in docs.iter().filter(|d| !d.text.is_empty()) {
            let e = splits.entry(d.split.to_string()).or_default();
            if is_prepared(&d.text) {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        TextStyles { splits }
    }

    /// A split's style in words: "prepared", "raw", or "mixed (p prepared, r raw)".
    fn style(&(prepared, raw): &(usize, usize)) -> String {
        match (prepared, raw) {
            (_, 0) => "prepared".into(),
            (0, _) => "raw".into(),
            _ => format!("mixed ({prepared} prepared, {raw} raw)"),
        }
    }

    /// Why a model would read two surface forms, or `None` when every split reads one style.
    pub fn mismatch(&self) -> Option<String> {
        let styles: std::collections::BTreeSet<String> = self.splits.values().map(Self::style).collect();
        (styles.len() > 1 || styles.iter().any(|s| s.starts_with("mixed"))).then(|| {
            let each: Vec<String> = self.splits.iter().map(|(split, c)| format!("{split} {}", Self::style(c))).collect();
            format!(
                "notes in two text styles ({}): a model learns one surface form and is tested on another; set data.preprocess = \"edin\" to write every note (and span) as Edin et al.'s preparation does",
                each.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn styles_of_splits_and_their_mismatch() {
        let doc = |split: crate::data::Split, text: &str| Document { id: text.into(), split, text: text.into(), codes: Vec::new(), evidence: Vec::new() };
        assert!(is_prepared("right iph with intraventricular extension dm2") && !is_prepared("Right IPH.") && !is_prepared("two  spaces\n"));
        let same = TextStyles::of(&[doc(crate::data::Split::Train, "a note"), doc(crate::data::Split::Test, "another note")]);
        assert_eq!(same.mismatch(), None);
        let two = TextStyles::of(&[doc(crate::data::Split::Train, "a note"), doc(crate::data::Split::Train, "A raw note."), doc(crate::data::Split::Test, "another note")]);
        let m = two.mismatch().unwrap();
        assert!(m.contains("test prepared, train mixed (1 prepared, 1 raw)") && m.contains("data.preprocess = \"edin\""), "{m}");
    }

    use super::*;

    fn pre(s: &str) -> String {
        edin(s).0
    }

    #[test]
    fn follows_edins_steps() {
        // Lower-case, punctuation runs to one space, standalone numbers out, words with digits kept.
        assert_eq!(pre("Chief Complaint:\nShortness of breath, fever"), "chief complaint shortness of breath fever");
        assert_eq!(pre("BP 120/80, HR 88; O2 sat 95% on 4L NC."), "bp hr o2 sat on 4l nc");
        assert_eq!(pre("Ms. ___ is a 60 y/o woman"), "ms is a y o woman");
        // A number opening or closing the text stays (their regex needs a space on both sides).
        assert_eq!(pre("12 apples and 3"), "12 apples and 3");
        assert_eq!(pre("(12 apples and 3)"), "apples and");
        // Non-ASCII letters are separators for their [^A-Za-z0-9] class.
        assert_eq!(pre("Crohn's dz—stable café"), "crohn s dz stable caf");
    }

    #[test]
    fn evidence_moves_with_the_text() {
        let text = "Hx: Type 2 DM, HTN.";
        let code = crate::icd::Code::parse("I10").unwrap();
        let at = |s: &str| text.find(s).unwrap();
        let mut docs = vec![Document {
            id: "d".into(),
            split: super::super::Split::Test,
            text: text.into(),
            codes: vec![code.clone()],
            evidence: vec![EvidenceSpan::new(code.clone(), at("HTN"), at("HTN") + 3, "HTN".into()), EvidenceSpan::new(code, at("2"), at("2") + 1, "2".into())],
        }];
        assert_eq!(apply_edin(&mut docs), 1, "the digit-only span has no text left");
        assert_eq!(docs[0].text, "hx type dm htn");
        let e = &docs[0].evidence[0];
        assert_eq!((e.start, e.end, e.text.as_str()), (11, 14, "htn"));
        assert_eq!(docs[0].slice_chars(e.start, e.end), Some("htn"));
    }
}
