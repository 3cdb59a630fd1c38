//! Two diagnostics that tell "did not learn the span task" from "learned it but
//! does not carry it into documents":
//!
//! - the span probe ([`score_probe`]): held-out gold mentions (the evaluated
//!   split's evidence, never trained on) coded one at a time, outside their
//!   note; accuracy on seen and unseen codes, and what was written instead;
//! - unseen-code errors ([`unseen_errors`]): for every gold (document, code)
//!   pair of a code no training document carries, what the system wrote for
//!   that mention in the document — the code, a sibling of the same category,
//!   another code, or nothing — and how often it writes unseen codes at all.

use crate::data::jsonl::Prediction;
use crate::data::Document;
use crate::icd::Code;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Correct / asked and their ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub n: usize,
    pub correct: usize,
    /// `correct / n`; 0 when `n` is 0.
    pub accuracy: f64,
}

impl Accuracy {
    fn add(&mut self, ok: bool) {
        self.n += 1;
        self.correct += ok as usize;
        self.accuracy = self.correct as f64 / self.n as f64;
    }
}

/// One probed mention: its text, its gold code, whether training documents carry the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeItem {
    pub mention: String,
    pub code: Code,
    pub seen: bool,
}

/// A gold code and what was written instead, with how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub gold: String,
    /// The codes written instead, `;`-joined (empty: nothing).
    pub written: String,
    pub count: usize,
}

/// The span probe's outcome on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// How the mentions were put to the model: `span` (the span task) or `note` (a one-sentence note, the document task).
    pub format: String,
    /// Distinct (mention, code) pairs of the split's gold evidence, and how many were probed.
    pub available: usize,
    pub probed: usize,
    /// The gold code among the codes written.
    pub seen: Accuracy,
    pub unseen: Accuracy,
    /// For unseen codes: a code of the same category written instead (`I26.99` for `I26.09`).
    pub unseen_sibling: usize,
    /// Probed mentions whose text (case aside) is also a span example the run trained on, for
    /// the same code: those test recall of a trained string, the rest generalisation.
    #[serde(default)]
    pub seen_in_training_spans: usize,
    #[serde(default)]
    pub unseen_in_training_spans: usize,
    /// The most frequent misses, unseen codes first.
    pub confusions: Vec<Confusion>,
}

/// Scores the probe: `written[i]` holds the codes the model wrote for `items[i]`.
pub fn score_probe(format: &str, available: usize, items: &[ProbeItem], written: &[Vec<Code>], trained: &HashSet<(String, Code)>) -> ProbeReport {
    let in_training = |seen: bool| items.iter().filter(|i| i.seen == seen && trained.contains(&(i.mention.to_lowercase(), i.code.clone()))).count();
    let (mut seen, mut unseen, mut sibling) = (Accuracy::default(), Accuracy::default(), 0);
    let mut misses: BTreeMap<(bool, String, String), usize> = BTreeMap::new();
    for (item, codes) in items.iter().zip(written) {
        let ok = codes.contains(&item.code);
        if item.seen { seen.add(ok) } else { unseen.add(ok) }
        if !ok {
            if !item.seen && codes.iter().any(|c| c.category() == item.code.category()) {
                sibling += 1;
            }
            let w: Vec<&str> = codes.iter().map(Code::as_str).collect();
            *misses.entry((item.seen, item.code.to_string(), w.join(";"))).or_default() += 1;
        }
    }
    let mut confusions: Vec<(bool, Confusion)> =
        misses.into_iter().map(|((s, gold, written), count)| (s, Confusion { gold, written, count })).collect();
    confusions.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.count.cmp(&a.1.count)).then(a.1.gold.cmp(&b.1.gold)));
    let confusions = confusions.into_iter().take(12).map(|(_, c)| c).collect();
    ProbeReport {
        format: format.to_string(),
        available,
        probed: items.len(),
        seen,
        unseen,
        unseen_sibling: sibling,
        seen_in_training_spans: in_training(true),
        unseen_in_training_spans: in_training(false),
        confusions,
    }
}

/// What a system wrote for the mentions of codes no training document carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnseenErrors {
    /// Gold (document, unseen code) pairs.
    pub gold_pairs: usize,
    /// The code was predicted for the document.
    pub found: usize,
    /// Missed, and a code of the same category that is not gold was predicted for the document.
    pub sibling: usize,
    /// Missed, no sibling, but another non-gold code was predicted on (overlapping) the mention's evidence.
    pub other_code: usize,
    /// Missed, and nothing was written on the mention.
    pub nothing: usize,
    /// Of all predicted (document, code) pairs, how many are unseen codes; of gold pairs, how many.
    pub predicted_pairs: usize,
    pub predicted_unseen_pairs: usize,
    pub gold_all_pairs: usize,
    /// The most frequent (gold → written) substitutions among the misses.
    pub confusions: Vec<Confusion>,
}

/// The unseen-code error breakdown, or `None` when no gold code of `docs` is unseen.
pub fn unseen_errors(docs: &[&Document], preds: &[Prediction], seen: &HashSet<String>) -> Option<UnseenErrors> {
    let mut out = UnseenErrors::default();
    let mut misses: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (doc, pred) in docs.iter().zip(preds) {
        out.gold_all_pairs += doc.codes.len();
        out.predicted_pairs += pred.codes.len() + pred.invalid.len();
        out.predicted_unseen_pairs += pred.codes.iter().filter(|c| !seen.contains(c.as_str())).count();
        let wrong: Vec<&Code> = pred.codes.iter().filter(|c| !doc.codes.contains(c)).collect();
        for code in doc.codes.iter().filter(|c| !seen.contains(c.as_str())) {
            out.gold_pairs += 1;
            if pred.codes.contains(code) {
                out.found += 1;
                continue;
            }
            let siblings: Vec<&Code> = wrong.iter().copied().filter(|c| c.category() == code.category()).collect();
            let spans: Vec<(usize, usize)> = doc.evidence.iter().filter(|e| &e.code == code).map(|e| (e.start, e.end)).collect();
            let on_mention: Vec<&Code> = wrong
                .iter()
                .copied()
                .filter(|c| pred.evidence.iter().any(|e| &e.code == *c && spans.iter().any(|&(s, t)| e.start < t && s < e.end)))
                .collect();
            let written = if !siblings.is_empty() {
                out.sibling += 1;
                siblings
            } else if !on_mention.is_empty() {
                out.other_code += 1;
                on_mention
            } else {
                out.nothing += 1;
                Vec::new()
            };
            let w: Vec<&str> = written.iter().map(|c| c.as_str()).collect();
            *misses.entry((code.to_string(), w.join(";"))).or_default() += 1;
        }
    }
    if out.gold_pairs == 0 {
        return None;
    }
    let mut confusions: Vec<Confusion> = misses.into_iter().map(|((gold, written), count)| Confusion { gold, written, count }).collect();
    confusions.sort_by(|a, b| b.count.cmp(&a.count).then(a.gold.cmp(&b.gold)));
    confusions.truncate(12);
    out.confusions = confusions;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{EvidenceSpan, Split};

    fn code(s: &str) -> Code {
        Code::parse(s).expect("test code")
    }

    #[test]
    fn probe_accuracy_splits_seen_and_unseen_and_counts_siblings() {
        let items = vec![
            ProbeItem { mention: "htn".into(), code: code("I10"), seen: true },
            ProbeItem { mention: "clot in lung".into(), code: code("I26.09"), seen: false },
            ProbeItem { mention: "lung clot".into(), code: code("I26.09"), seen: false },
            ProbeItem { mention: "reflux".into(), code: code("K21.9"), seen: true },
        ];
        let written = vec![vec![code("I10")], vec![code("I26.99")], vec![code("I26.09")], vec![]];
        let trained: HashSet<(String, Code)> = [("lung clot".to_string(), code("I26.09")), ("clot in lung".to_string(), code("I26.99"))].into_iter().collect();
        let r = score_probe("note", 9, &items, &written, &trained);
        // Only the same text for the same code counts as trained.
        assert_eq!((r.seen_in_training_spans, r.unseen_in_training_spans), (0, 1));
        assert_eq!((r.available, r.probed), (9, 4));
        assert_eq!((r.seen.n, r.seen.correct), (2, 1));
        assert_eq!((r.unseen.n, r.unseen.correct, r.unseen.accuracy), (2, 1, 0.5));
        assert_eq!(r.unseen_sibling, 1);
        // Unseen misses first.
        assert_eq!(r.confusions[0], Confusion { gold: "I26.09".into(), written: "I26.99".into(), count: 1 });
        assert_eq!(r.confusions[1], Confusion { gold: "K21.9".into(), written: String::new(), count: 1 });
    }

    #[test]
    fn unseen_errors_name_what_was_written_on_the_mention() {
        let text = "Clot in lung. Stone in gallbladder. Reflux.".to_string();
        let ev = |c: &str, s: usize, e: usize| EvidenceSpan::new(code(c), s, e, text[s..e].to_string());
        let doc = Document {
            id: "d".into(),
            split: Split::Test,
            text: text.clone(),
            codes: vec![code("I26.09"), code("K80.20"), code("K21.9"), code("E03.9")],
            evidence: vec![ev("I26.09", 0, 12), ev("K80.20", 14, 34), ev("K21.9", 36, 42), ev("E03.9", 36, 42)],
        };
        let pred = Prediction {
            id: "d".into(),
            codes: vec![code("I26.99"), code("K21.9"), code("K85.00")],
            invalid: vec![],
            evidence: vec![ev("I26.99", 0, 12), ev("K85.00", 14, 34)],
            scores: Default::default(),
            raw: None,
        };
        let seen: HashSet<String> = ["I26.99", "K21.9", "K85.00"].iter().map(|s| s.to_string()).collect();
        let r = unseen_errors(&[&doc], &[pred], &seen).expect("unseen gold");
        // I26.09: sibling I26.99; K80.20: K85.00 on its mention; E03.9: nothing on it.
        assert_eq!((r.gold_pairs, r.found, r.sibling, r.other_code, r.nothing), (3, 0, 1, 1, 1));
        assert_eq!((r.predicted_pairs, r.predicted_unseen_pairs, r.gold_all_pairs), (3, 0, 4));
        assert!(r.confusions.contains(&Confusion { gold: "K80.20".into(), written: "K85.00".into(), count: 1 }));
        assert!(unseen_errors(&[&doc], &[Prediction { id: "d".into(), codes: vec![], invalid: vec![], evidence: vec![], scores: Default::default(), raw: None }], &["I26.09", "K80.20", "K21.9", "E03.9"].iter().map(|s| s.to_string()).collect()).is_none());
    }
}
