//! One evaluated split scored from the crate's documents and predictions: the
//! bridge between [`Document`]/[`Prediction`] and the string-based scores of
//! this module. icdbench's runs and `icdbench score` both score through here.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::{evidence_scores, ratio, score, score_ranking, Bootstrap, EvidenceReport, LabelSets, MetricsError, Report, ScoreOptions, ScoredDocs, ScoredReport};
use crate::data::jsonl::Prediction;
use crate::data::{Document, EvidenceSpan};

/// Cut-offs of P@k and R@k in metrics.json.
pub const RANKING_KS: [usize; 3] = [5, 8, 15];

/// How many of the most frequent invalid strings [`InvalidPredictions::examples`] keeps.
pub const INVALID_EXAMPLES: usize = 20;

/// Scores of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    pub n_docs: usize,
    pub sets: Report,
    /// Evidence scores where the split has gold evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceReport>,
    /// P@k, R@k, R-precision, mAP and AUC where the predictions carry per-code scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<ScoredReport>,
    /// Predicted strings outside the code set, each scored as a false positive.
    /// `None` only in metrics.json written before they were counted (they were dropped then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_predictions: Option<InvalidPredictions>,
    /// Recall by mention kind (verbatim, shared or held-out paraphrase, each family),
    /// overall and seen / unseen, where the documents record kinds (synthetic data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_mention: Option<super::mention::MentionRecall>,
    /// What was written for the mentions of codes no training document carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_errors: Option<super::probe::UnseenErrors>,
    /// A model's span probe on this split's gold mentions (set by the runner from the predict stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<super::probe::ProbeReport>,
    /// What the unseen columns rest on: this split's gold codes no training document
    /// carries, the notes and evidence mentions that carry them (where seen codes are known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_gold: Option<UnseenGold>,
    /// A model's answers cut short by the generation limit (set by the runner from the predict stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers_cut: Option<AnswersCut>,
    /// How much of the notes' text a model read (set by the runner from the predict stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<Reading>,
}

/// The text a model read of a split's notes (`eval.read`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// `windows` or `first_window`.
    pub policy: String,
    /// Tokens of the notes' text, and of them the tokens not read.
    pub note_tokens: usize,
    pub unread_tokens: usize,
    /// `unread_tokens / note_tokens`.
    pub unread_share: f64,
    /// Notes that lost some text.
    pub notes_cut: usize,
}

/// Fewer unseen codes than this and the unseen columns are flagged: a macro-F1 over a
/// handful of codes moves by whole points with one code.
pub const FEW_UNSEEN_CODES: usize = 30;

/// The gold labels behind a split's unseen columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnseenGold {
    /// Distinct gold codes of the split that no training document carries.
    pub codes: usize,
    /// Notes with at least one of them.
    pub notes: usize,
    /// (note, code) gold labels on them.
    pub labels: usize,
    /// Gold evidence spans of them (0 where the data has no evidence).
    pub mentions: usize,
}

impl UnseenGold {
    pub fn of(docs: &[&Document], seen: &HashSet<String>) -> UnseenGold {
        let unseen = |c: &crate::icd::Code| !seen.contains(&c.to_string());
        let mut codes = BTreeSet::new();
        let mut out = UnseenGold::default();
        for d in docs {
            let here: BTreeSet<String> = d.codes.iter().filter(|c| unseen(c)).map(|c| c.to_string()).collect();
            out.notes += usize::from(!here.is_empty());
            out.labels += here.len();
            out.mentions += d.evidence.iter().filter(|e| unseen(&e.code)).count();
            codes.extend(here);
        }
        out.codes = codes.len();
        out
    }

    /// Whether the unseen columns rest on too few codes to read much into ([`FEW_UNSEEN_CODES`]).
    pub fn few(&self) -> bool {
        self.codes < FEW_UNSEEN_CODES
    }
}

/// Answers of a model cut by `max_new_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswersCut {
    /// Windows answered.
    pub windows: usize,
    /// Of them, answers still being written when the limit ran out.
    pub cut: usize,
    /// The limit, in tokens.
    pub max_new_tokens: usize,
}

/// Predicted codes that are not in the code set: well-formed codes missing from
/// the table (normalised) and malformed strings (verbatim).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvalidPredictions {
    /// Invalid (document, string) pairs: false positives no valid code could have matched.
    pub count: usize,
    /// Predicted (document, code) pairs, invalid ones included.
    pub predicted: usize,
    /// `count / predicted`; 0 when nothing was predicted.
    pub rate: f64,
    /// The most frequent invalid strings (up to [`INVALID_EXAMPLES`]) with how many documents predicted each.
    pub examples: BTreeMap<String, usize>,
}

impl InvalidPredictions {
    /// Counts over documents; codes and invalid strings are each unique within a prediction.
    pub fn count(preds: &[Prediction]) -> InvalidPredictions {
        let mut by_string: BTreeMap<&str, usize> = BTreeMap::new();
        let mut predicted = 0;
        for p in preds {
            predicted += p.codes.len() + p.invalid.len();
            for s in &p.invalid {
                *by_string.entry(s.as_str()).or_default() += 1;
            }
        }
        let count: usize = by_string.values().sum();
        let mut frequent: Vec<(&str, usize)> = by_string.into_iter().collect();
        // Most frequent first; ties in string order, so the kept examples do not depend on input order.
        frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let examples = frequent.into_iter().take(INVALID_EXAMPLES).map(|(s, n)| (s.to_string(), n)).collect();
        InvalidPredictions { count, predicted, rate: ratio(count as f64, predicted as f64), examples }
    }
}

/// Scores predictions aligned with `docs` (sets, seen/unseen, bootstrap CIs,
/// evidence where the documents have gold evidence, ranking where predictions
/// carry scores). A prediction's invalid strings join its codes in the
/// predicted set: gold never holds one, so each is a false positive, and the
/// macro average over codes with TP+FP+FN > 0 counts it as a code with F1 0.
pub fn score_split(
    docs: &[&Document],
    preds: &[Prediction],
    bootstrap_samples: usize,
    seed: u64,
    seen: Option<HashSet<String>>,
    label_space: Option<Vec<String>>,
) -> Result<SplitMetrics, MetricsError> {
    let gold: Vec<Vec<String>> = docs.iter().map(|d| d.codes.iter().map(|c| c.to_string()).collect()).collect();
    let pred: Vec<Vec<String>> = preds.iter().map(|p| p.codes.iter().map(|c| c.to_string()).chain(p.invalid.iter().cloned()).collect()).collect();
    let sets = LabelSets::new(&gold, &pred)?;
    let by_mention = super::mention::mention_recall(docs, preds, seen.as_ref());
    let unseen_errors = seen.as_ref().and_then(|s| super::probe::unseen_errors(docs, preds, s));
    let unseen_gold = seen.as_ref().map(|s| UnseenGold::of(docs, s));
    let opts = ScoreOptions {
        seen_codes: seen,
        label_space,
        bootstrap: (bootstrap_samples > 0).then(|| Bootstrap::new(bootstrap_samples, seed)),
    };
    let report = score(&sets, &opts);
    let evidence = if docs.iter().any(|d| !d.evidence.is_empty()) {
        let spans = |ev: &[EvidenceSpan]| -> Vec<(String, usize, usize)> { ev.iter().map(|e| (e.code.to_string(), e.start, e.end)).collect() };
        let gold_ev: Vec<_> = docs.iter().map(|d| spans(&d.evidence)).collect();
        let pred_ev: Vec<_> = preds.iter().map(|p| spans(&p.evidence)).collect();
        Some(evidence_scores(&gold_ev, &pred_ev)?)
    } else {
        None
    };
    let ranking = if preds.iter().any(|p| !p.scores.is_empty()) {
        let codes: Vec<&String> = preds.iter().flat_map(|p| p.scores.keys()).collect::<BTreeSet<_>>().into_iter().collect();
        let scores: Vec<Vec<(&String, f64)>> = preds.iter().map(|p| p.scores.iter().map(|(k, v)| (k, *v)).collect()).collect();
        let scored = ScoredDocs::sparse(&codes, &gold, &scores)?;
        Some(score_ranking(&scored, &RANKING_KS)?)
    } else {
        None
    };
    Ok(SplitMetrics { n_docs: docs.len(), sets: report, evidence, ranking, invalid_predictions: Some(InvalidPredictions::count(preds)), by_mention, unseen_errors, probe: None, unseen_gold, answers_cut: None, reading: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;
    use crate::icd::Code;

    fn doc(id: &str, codes: &[&str]) -> Document {
        Document { id: id.into(), split: Split::Test, text: String::new(), codes: codes.iter().map(|c| Code::parse(c).expect("test code")).collect(), evidence: Vec::new() }
    }

    fn pred(id: &str, codes: &[&str], invalid: &[&str]) -> Prediction {
        Prediction {
            id: id.into(),
            codes: codes.iter().map(|c| Code::parse(c).expect("test code")).collect(),
            invalid: invalid.iter().map(|s| s.to_string()).collect(),
            evidence: Vec::new(),
            scores: BTreeMap::new(),
            raw: None,
        }
    }

    #[test]
    fn invalid_strings_are_false_positives_in_micro_and_macro() {
        // d0: gold {I10}, predicted {I10} + invalid {Z99.999}; d1: gold {E11.9}, predicted invalid {Z99.999, NOTACODE}.
        let docs = [doc("d0", &["I10"]), doc("d1", &["E11.9"])];
        let preds = [pred("d0", &["I10"], &["Z99.999"]), pred("d1", &[], &["NOTACODE", "Z99.999"])];
        let refs: Vec<&Document> = docs.iter().collect();
        let m = score_split(&refs, &preds, 0, 0, None, None).expect("scores");
        let o = &m.sets.overall;
        // TP 1 (I10), FP 3 (three invalid pairs), FN 1 (E11.9): P = 1/4, R = 1/2, F1 = 1 / (1 + 4/2) = 1/3.
        assert_eq!((o.tp, o.fp, o.fn_), (1, 3, 1));
        assert!((o.micro.precision - 0.25).abs() < 1e-12 && (o.micro.recall - 0.5).abs() < 1e-12);
        assert!((o.micro.f1 - 1.0 / 3.0).abs() < 1e-12);
        // Over codes with TP+FP+FN > 0: I10 (F1 1), E11.9, Z99.999, NOTACODE (F1 0) -> 1/4.
        assert_eq!(o.macro_nonzero.n_codes, 4);
        assert!((o.macro_nonzero.f1 - 0.25).abs() < 1e-12);
        let inv = m.invalid_predictions.expect("always counted");
        assert_eq!((inv.count, inv.predicted), (3, 4));
        assert!((inv.rate - 0.75).abs() < 1e-12);
        assert_eq!(inv.examples, BTreeMap::from([("NOTACODE".to_string(), 1), ("Z99.999".to_string(), 2)]));
    }

    #[test]
    fn examples_keep_the_most_frequent_strings() {
        let preds: Vec<Prediction> = (0..30).map(|i| pred("d", &[], &[&format!("BAD{i:02}"), "X"])).collect();
        let inv = InvalidPredictions::count(&preds);
        assert_eq!((inv.count, inv.predicted, inv.examples.len()), (60, 60, INVALID_EXAMPLES));
        assert_eq!(inv.examples.get("X"), Some(&30));
        // 19 of the 30 singletons fit beside X: the first in string order.
        assert!(inv.examples.contains_key("BAD18") && !inv.examples.contains_key("BAD19"));
        assert_eq!(InvalidPredictions::count(&[]).rate, 0.0);
    }
}
