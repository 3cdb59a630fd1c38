//! Recall by how the gold mention is worded: where a system's hits come from.
//!
//! The synthetic benchmark records each gold mention's kind (code-table wording,
//! a shared-lexicon paraphrase, a held-out paraphrase, and the paraphrase
//! families used). A gold (document, code) pair takes the kind of its mentions
//! (one per pair on synthetic data) and counts as found when the code is
//! predicted for the document. Pairs are split into seen and unseen codes.

use crate::data::jsonl::Prediction;
use crate::data::{Document, Wording};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Found / gold pairs and their ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Recall {
    pub gold: usize,
    pub found: usize,
    /// `found / gold`; 0 when there is no gold pair.
    pub recall: f64,
}

impl Recall {
    fn add(&mut self, found: bool) {
        self.gold += 1;
        self.found += found as usize;
        self.recall = self.found as f64 / self.gold as f64;
    }
}

/// Recall of one group of mentions, overall and on seen / unseen codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupRecall {
    pub all: Recall,
    pub seen: Recall,
    pub unseen: Recall,
}

/// Groups: `verbatim`, `shared`, `held_out` (by wording; they partition the pairs)
/// and `family:<name>` (a pair counts in every family its paraphrase used).
pub type MentionRecall = BTreeMap<String, GroupRecall>;

/// Recall by mention kind, or `None` when the documents record no kinds.
/// `seen` holds the codes training documents carry (`None`: every code counts as seen).
pub fn mention_recall(docs: &[&Document], preds: &[Prediction], seen: Option<&HashSet<String>>) -> Option<MentionRecall> {
    let mut out = MentionRecall::new();
    for (doc, pred) in docs.iter().zip(preds) {
        for code in &doc.codes {
            let Some(kind) = doc.evidence.iter().filter(|e| &e.code == code).find_map(|e| e.kind.as_ref()) else { continue };
            let found = pred.codes.contains(code);
            let is_seen = seen.is_none_or(|s| s.contains(code.as_ref()));
            let groups = std::iter::once(wording_group(kind.wording)).chain(kind.families.iter().map(|f| format!("family:{f}")));
            for g in groups {
                let r = out.entry(g).or_default();
                r.all.add(found);
                if is_seen { r.seen.add(found) } else { r.unseen.add(found) }
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn wording_group(w: Wording) -> String {
    w.as_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{EvidenceSpan, Family, MentionKind, Split};
    use crate::icd::Code;

    #[test]
    fn pairs_count_once_per_wording_and_in_every_family() {
        let code = |s: &str| Code::parse(s).unwrap();
        let ev = |c: &str, kind: MentionKind| EvidenceSpan { kind: Some(kind), ..EvidenceSpan::new(code(c), 0, 1, "x".into()) };
        let held = MentionKind { wording: Wording::HeldOut, families: vec![Family::Synonym, Family::Hedge] };
        let doc = Document {
            id: "d".into(),
            split: Split::Test,
            text: "x".into(),
            codes: vec![code("I10"), code("E11.9"), code("K21.9")],
            evidence: vec![ev("I10", MentionKind::verbatim()), ev("I10", MentionKind::verbatim()), ev("E11.9", held.clone()), ev("K21.9", held)],
        };
        let pred = Prediction { id: "d".into(), codes: vec![code("I10"), code("K21.9")], ..Default::default() };
        let seen: HashSet<String> = ["I10".to_string(), "E11.9".to_string()].into();
        let r = mention_recall(&[&doc], &[pred], Some(&seen)).unwrap();
        assert_eq!((r["verbatim"].all.gold, r["verbatim"].all.found), (1, 1));
        assert_eq!((r["held_out"].all.gold, r["held_out"].all.found, r["held_out"].all.recall), (2, 1, 0.5));
        assert_eq!((r["held_out"].seen.found, r["held_out"].unseen.found), (0, 1));
        assert_eq!(r["family:hedge"].all, r["family:synonym"].all);
        assert!(!r.contains_key("shared"));
    }
}
