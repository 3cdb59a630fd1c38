//! Set-based metrics: what a model that outputs a set of codes is scored on.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::intern::{find, Interner};
use super::{f1_counts, ratio, MetricsError, MACRO_GOLD, MACRO_LABEL_SPACE, MACRO_NONZERO, MICRO};

/// Event tags packed into the low two bits of an event (`id << 2 | tag`).
pub(super) const TP: u32 = 0;
pub(super) const FP: u32 = 1;
pub(super) const FN: u32 = 2;

/// Convention of the exact-match ratio.
pub const EXACT_MATCH: &str =
    "share of documents whose predicted code set equals the gold code set \
     (within the partition's codes); a document with no gold and no predicted code matches";
/// Which codes are unseen in a seen/unseen breakdown.
pub const UNSEEN_DEFINITION: &str = "seen = codes in the training documents' labels; unseen = every \
     other gold or predicted code (a predicted code never seen in training is an unseen false positive). \
     Gold and predicted sets are both filtered to the partition's codes; documents are not dropped";

/// Gold and predicted code sets per document, interned once.
///
/// Codes are compared as exact strings (normalise them before); duplicates
/// within one document's list count once. Every later score is computed from
/// the per-document TP/FP/FN events held here.
#[derive(Debug, Clone)]
pub struct LabelSets {
    /// Every gold or predicted code, sorted; a code's id is its index.
    pub(super) codes: Vec<String>,
    /// `events[doc_off[d]..doc_off[d + 1]]` are document `d`'s `id << 2 | tag`, by id.
    pub(super) doc_off: Vec<usize>,
    pub(super) events: Vec<u32>,
    /// Per code, over all documents: [tp, fp, fn].
    pub(super) counts: Vec<[u64; 3]>,
}

impl LabelSets {
    /// `gold[d]` and `pred[d]` are document `d`'s codes; the two must have the same length.
    pub fn new<S: AsRef<str>>(gold: &[Vec<S>], pred: &[Vec<S>]) -> Result<Self, MetricsError> {
        if gold.len() != pred.len() {
            return Err(MetricsError::LengthMismatch {
                what: "label sets",
                gold: gold.len(),
                pred: pred.len(),
            });
        }
        let mut interner = Interner::default();
        let (mut gold_ids, gold_off) = intern_lists(&mut interner, gold)?;
        let (mut pred_ids, pred_off) = intern_lists(&mut interner, pred)?;
        let (codes, remap) = interner.into_sorted();
        for id in gold_ids.iter_mut().chain(pred_ids.iter_mut()) {
            *id = remap[*id as usize];
        }

        let n_docs = gold.len();
        let mut events = Vec::with_capacity(gold_ids.len() + pred_ids.len());
        let mut doc_off = Vec::with_capacity(n_docs + 1);
        doc_off.push(0);
        let mut counts = vec![[0u64; 3]; codes.len()];
        let (mut g, mut p) = (Vec::new(), Vec::new());
        for d in 0..n_docs {
            sorted_set(&mut g, &gold_ids[gold_off[d]..gold_off[d + 1]]);
            sorted_set(&mut p, &pred_ids[pred_off[d]..pred_off[d + 1]]);
            let (mut i, mut j) = (0, 0);
            while i < g.len() || j < p.len() {
                let (id, tag) = if j == p.len() || (i < g.len() && g[i] < p[j]) {
                    i += 1;
                    (g[i - 1], FN)
                } else if i == g.len() || p[j] < g[i] {
                    j += 1;
                    (p[j - 1], FP)
                } else {
                    i += 1;
                    j += 1;
                    (g[i - 1], TP)
                };
                events.push(id << 2 | tag);
                counts[id as usize][tag as usize] += 1;
            }
            doc_off.push(events.len());
        }
        Ok(LabelSets {
            codes,
            doc_off,
            events,
            counts,
        })
    }

    /// Number of documents.
    pub fn n_docs(&self) -> usize {
        self.doc_off.len() - 1
    }

    /// Every code that occurs in gold or predictions, sorted.
    pub fn codes(&self) -> &[String] {
        &self.codes
    }

    pub(super) fn doc_events(&self, d: usize) -> &[u32] {
        &self.events[self.doc_off[d]..self.doc_off[d + 1]]
    }
}

fn intern_lists<'a, S: AsRef<str>>(
    interner: &mut Interner<'a>,
    lists: &'a [Vec<S>],
) -> Result<(Vec<u32>, Vec<usize>), MetricsError> {
    let mut ids = Vec::with_capacity(lists.iter().map(Vec::len).sum());
    let mut off = Vec::with_capacity(lists.len() + 1);
    off.push(0);
    for list in lists {
        for code in list {
            ids.push(interner.intern(code.as_ref())?);
        }
        off.push(ids.len());
    }
    Ok((ids, off))
}

fn sorted_set(buf: &mut Vec<u32>, ids: &[u32]) {
    buf.clear();
    buf.extend_from_slice(ids);
    buf.sort_unstable();
    buf.dedup();
}

/// Percentile bootstrap over documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Number of resampled replicates (1,000 is customary).
    pub samples: usize,
    /// Replicate `r` draws from `StdRng` seeded by a mix of `seed` and `r`.
    pub seed: u64,
    /// Two-sided coverage, strictly between 0 and 1 (0.95 for 95% intervals).
    pub confidence: f64,
}

impl Bootstrap {
    /// `samples` replicates at 95% confidence.
    pub fn new(samples: usize, seed: u64) -> Self {
        Bootstrap {
            samples,
            seed,
            confidence: 0.95,
        }
    }

    /// Checks what [`score`] needs; call it when reading a config to fail early.
    pub fn validate(&self) -> Result<(), MetricsError> {
        if self.samples == 0 {
            return Err(MetricsError::InvalidBootstrap {
                reason: "samples must be at least 1 (1000 is customary)".into(),
            });
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(MetricsError::InvalidBootstrap {
                reason: format!(
                    "confidence must be strictly between 0 and 1 (e.g. 0.95), got {}",
                    self.confidence
                ),
            });
        }
        Ok(())
    }
}

/// What [`score`] should add beyond the overall figures.
#[derive(Debug, Clone, Default)]
pub struct ScoreOptions {
    /// Codes present in the training documents' labels; `None` skips the seen/unseen breakdown.
    pub seen_codes: Option<HashSet<String>>,
    /// The full label space for the [`MACRO_LABEL_SPACE`] convention; `None` skips it.
    pub label_space: Option<Vec<String>>,
    /// Confidence intervals for micro F1 and gold-convention macro F1; `None` skips them.
    pub bootstrap: Option<Bootstrap>,
}

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

/// Confidence intervals of one [`SetMetrics`] ([`super::bootstrap`] makes them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    pub method: String,
    pub confidence: f64,
    pub samples: usize,
    pub seed: u64,
    pub micro_f1: Interval,
    /// Macro F1 under the gold convention ([`super::MACRO_GOLD`]).
    pub macro_f1_gold: Interval,
}

/// Micro-averaged precision, recall and F1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MicroMetrics {
    pub convention: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Macro-averaged precision, recall and F1 under one named convention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MacroMetrics {
    pub convention: String,
    /// Number of codes averaged over.
    pub n_codes: usize,
    /// Codes with TP+FP+FN > 0 that this convention leaves out of the average
    /// (predicted-only codes for `gold`; codes outside the label space for `label_space`).
    pub n_codes_left_out: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Share of documents whose predicted set equals the gold set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactMatch {
    pub convention: String,
    pub ratio: f64,
    pub n_exact: usize,
}

/// Every set-based figure for one partition of the codes (all, seen or unseen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetMetrics {
    pub n_docs: usize,
    /// Documents with at least one gold or predicted code of this partition.
    pub n_docs_with_labels: usize,
    /// Distinct codes of this partition in the gold labels.
    pub n_gold_codes: usize,
    /// Distinct codes of this partition in the predictions.
    pub n_pred_codes: usize,
    /// Gold (document, code) pairs: tp + fn.
    pub n_gold_labels: u64,
    /// Predicted (document, code) pairs: tp + fp.
    pub n_pred_labels: u64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub micro: MicroMetrics,
    pub macro_gold: MacroMetrics,
    pub macro_nonzero: MacroMetrics,
    /// `None` when no label space was given.
    pub macro_label_space: Option<MacroMetrics>,
    pub exact_match: ExactMatch,
    /// `None` when no bootstrap was asked for.
    pub ci: Option<Intervals>,
}

/// Set-based scores of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub overall: SetMetrics,
    /// Restricted to seen codes; `None` without `seen_codes`.
    pub seen: Option<SetMetrics>,
    /// Restricted to unseen codes; `None` without `seen_codes`.
    pub unseen: Option<SetMetrics>,
    /// How seen and unseen are defined; `None` without `seen_codes`.
    pub unseen_definition: Option<String>,
    /// Anything the caller asked for that could not be computed, and why.
    pub notes: Vec<String>,
}

/// Which codes a [`SetMetrics`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    All,
    Seen,
    Unseen,
}

impl Part {
    #[inline]
    pub(super) fn has(self, seen: Option<&[bool]>, id: usize) -> bool {
        match (self, seen) {
            (Part::All, _) | (_, None) => true,
            (Part::Seen, Some(m)) => m[id],
            (Part::Unseen, Some(m)) => !m[id],
        }
    }
}

/// The label space resolved against the interned codes.
pub(super) struct LabelSpace {
    /// Interned ids of label-space codes that occur in gold or predictions.
    ids: Vec<u32>,
    in_space: Vec<bool>,
    /// Distinct label-space codes: all, seen, unseen.
    n_all: usize,
    n_seen: usize,
}

impl LabelSpace {
    pub(super) fn new(space: &[String], sets: &LabelSets, seen: Option<&HashSet<String>>) -> Self {
        let mut distinct: Vec<&str> = space.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let n_seen = seen.map_or(0, |s| distinct.iter().filter(|c| s.contains(**c)).count());
        let mut in_space = vec![false; sets.codes.len()];
        let ids: Vec<u32> = distinct
            .iter()
            .filter_map(|c| find(&sets.codes, c))
            .collect();
        for &id in &ids {
            in_space[id as usize] = true;
        }
        LabelSpace {
            ids,
            in_space,
            n_all: distinct.len(),
            n_seen,
        }
    }

    fn size(&self, part: Part) -> usize {
        match part {
            Part::All => self.n_all,
            Part::Seen => self.n_seen,
            Part::Unseen => self.n_all - self.n_seen,
        }
    }
}

/// Per-code precision, recall and F1 under the module's zero conventions.
#[inline]
pub(super) fn code_prf(c: [u64; 3]) -> (f64, f64, f64) {
    let [tp, fp, fn_] = c;
    (
        ratio(tp as f64, (tp + fp) as f64),
        ratio(tp as f64, (tp + fn_) as f64),
        f1_counts(tp, fp, fn_),
    )
}

#[derive(Default)]
struct MacroAcc {
    n: usize,
    p: f64,
    r: f64,
    f1: f64,
}

impl MacroAcc {
    fn add(&mut self, c: [u64; 3]) {
        let (p, r, f1) = code_prf(c);
        self.n += 1;
        self.p += p;
        self.r += r;
        self.f1 += f1;
    }

    fn finish(self, convention: &str, n_codes: usize, n_codes_left_out: usize) -> MacroMetrics {
        let n = n_codes as f64;
        MacroMetrics {
            convention: convention.to_owned(),
            n_codes,
            n_codes_left_out,
            precision: ratio(self.p, n),
            recall: ratio(self.r, n),
            f1: ratio(self.f1, n),
        }
    }
}

pub(super) fn set_metrics(
    sets: &LabelSets,
    part: Part,
    seen: Option<&[bool]>,
    space: Option<&LabelSpace>,
) -> SetMetrics {
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    let (mut gold, mut nonzero) = (MacroAcc::default(), MacroAcc::default());
    let (mut n_pred_codes, mut n_active_in_space) = (0, 0);
    for (id, &c) in sets.counts.iter().enumerate() {
        if !part.has(seen, id) {
            continue;
        }
        tp += c[0];
        fp += c[1];
        fn_ += c[2];
        if c[0] + c[2] > 0 {
            gold.add(c);
        }
        if c[0] + c[1] > 0 {
            n_pred_codes += 1;
        }
        if c.iter().sum::<u64>() > 0 {
            nonzero.add(c);
            if space.is_some_and(|s| s.in_space[id]) {
                n_active_in_space += 1;
            }
        }
    }
    let n_active = nonzero.n;
    let n_gold_codes = gold.n;

    let macro_label_space = space.map(|s| {
        let mut acc = MacroAcc::default();
        for &id in &s.ids {
            if part.has(seen, id as usize) {
                acc.add(sets.counts[id as usize]);
            }
        }
        // Label-space codes absent from gold and predictions add 0 to every sum.
        acc.finish(
            MACRO_LABEL_SPACE,
            s.size(part),
            n_active - n_active_in_space,
        )
    });

    let (mut n_exact, mut n_with_labels) = (0, 0);
    for d in 0..sets.n_docs() {
        let mut any = false;
        let mut wrong = false;
        for &e in sets.doc_events(d) {
            if part.has(seen, (e >> 2) as usize) {
                any = true;
                wrong |= e & 3 != TP;
            }
        }
        n_with_labels += usize::from(any);
        n_exact += usize::from(!wrong);
    }

    SetMetrics {
        n_docs: sets.n_docs(),
        n_docs_with_labels: n_with_labels,
        n_gold_codes,
        n_pred_codes,
        n_gold_labels: tp + fn_,
        n_pred_labels: tp + fp,
        tp,
        fp,
        fn_,
        micro: MicroMetrics {
            convention: MICRO.to_owned(),
            precision: ratio(tp as f64, (tp + fp) as f64),
            recall: ratio(tp as f64, (tp + fn_) as f64),
            f1: f1_counts(tp, fp, fn_),
        },
        macro_gold: gold.finish(MACRO_GOLD, n_gold_codes, n_active - n_gold_codes),
        macro_nonzero: nonzero.finish(MACRO_NONZERO, n_active, 0),
        macro_label_space,
        exact_match: ExactMatch {
            convention: EXACT_MATCH.to_owned(),
            ratio: ratio(n_exact as f64, sets.n_docs() as f64),
            n_exact,
        },
        ci: None,
    }
}

/// One code's counts and scores, as behind every macro average.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeRow {
    pub code: String,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Documents with this code in gold: tp + fn.
    pub support: u64,
    /// tp / (tp + fp); 0 for a code never predicted.
    pub precision: f64,
    /// tp / (tp + fn); 0 for a code without gold.
    pub recall: f64,
    /// 2tp / (2tp + fp + fn); 0 when all three are 0.
    pub f1: f64,
}

/// Per-code rows for every gold or predicted code, sorted by code.
pub fn per_code(sets: &LabelSets) -> Vec<CodeRow> {
    sets.codes
        .iter()
        .zip(&sets.counts)
        .map(|(code, &c)| {
            let (precision, recall, f1) = code_prf(c);
            CodeRow {
                code: code.clone(),
                tp: c[0],
                fp: c[1],
                fn_: c[2],
                support: c[0] + c[2],
                precision,
                recall,
                f1,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::score;

    fn v(x: &[&[&str]]) -> Vec<Vec<String>> {
        x.iter()
            .map(|d| d.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn events_count_duplicates_once() {
        let sets = LabelSets::new(&v(&[&["A", "B", "A"]]), &v(&[&["B", "C", "C"]])).unwrap();
        assert_eq!(sets.codes(), ["A", "B", "C"]);
        assert_eq!(sets.counts, vec![[0, 0, 1], [1, 0, 0], [0, 1, 0]]);
        let r = score(&sets, &ScoreOptions::default());
        assert_eq!((r.overall.tp, r.overall.fp, r.overall.fn_), (1, 1, 1));
        assert!((r.overall.micro.f1 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let e = LabelSets::new(&v(&[&["A"]]), &v(&[])).unwrap_err();
        assert!(matches!(
            e,
            MetricsError::LengthMismatch {
                gold: 1,
                pred: 0,
                ..
            }
        ));
    }

    #[test]
    fn macro_gold_leaves_out_predicted_only_codes() {
        // A: tp 1. B: fp 1 only. gold convention averages A alone; nonzero A and B.
        let sets = LabelSets::new(&v(&[&["A"]]), &v(&[&["A", "B"]])).unwrap();
        let r = score(&sets, &ScoreOptions::default()).overall;
        assert_eq!(
            (r.macro_gold.n_codes, r.macro_gold.n_codes_left_out),
            (1, 1)
        );
        assert_eq!(r.macro_gold.f1, 1.0);
        assert_eq!(r.macro_nonzero.n_codes, 2);
        assert_eq!(r.macro_nonzero.f1, 0.5);
    }

    #[test]
    fn invalid_bootstrap_is_a_note_not_a_panic() {
        let sets = LabelSets::new(&v(&[&["A"]]), &v(&[&["A"]])).unwrap();
        let opts = ScoreOptions {
            bootstrap: Some(Bootstrap {
                samples: 10,
                seed: 1,
                confidence: 1.5,
            }),
            ..Default::default()
        };
        let r = score(&sets, &opts);
        assert!(r.overall.ci.is_none());
        assert_eq!(r.notes.len(), 1);
        assert!(Bootstrap::new(0, 1).validate().is_err());
    }
}
