//! The frequency prior: the `k` codes most often carried by training documents,
//! written for every note, with `k` chosen on validation for micro-F1.
//!
//! It reads nothing of the note. A trained system that does not beat it has
//! learned the label distribution, not the task, so it belongs in every table.

use super::kind::{record_of, BaselineError, BaselineKind, DocumentCoder, Fit, FitData, Fitted};
use crate::config::PriorParams;
use crate::data::jsonl::Prediction;
use crate::data::Document;
use crate::icd::Code;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The fitted prior: codes by training frequency, and the `k` it writes.
#[derive(Debug, Clone, Serialize)]
pub struct PriorCoder {
    /// Codes by descending share of training documents carrying them (ties: code order).
    pub ranking: Vec<(Code, f64)>,
    pub k: usize,
    /// Validation micro-F1 of every `k` tried (0..=max_k), empty without validation documents.
    pub curve: Vec<(usize, f64)>,
    /// How `k` was chosen.
    pub chosen_by: String,
    pub train_docs: usize,
}

impl PriorCoder {
    /// Ranks the training codes and picks `k` on `val` (best micro-F1, the smaller `k` on a
    /// tie); without validation documents, `k` is the training notes' mean code count, rounded.
    pub fn fit(train: &[&Document], val: &[&Document], params: &PriorParams) -> PriorCoder {
        let mut counts: HashMap<&Code, usize> = HashMap::new();
        for d in train {
            for c in &d.codes {
                *counts.entry(c).or_default() += 1;
            }
        }
        let n = train.len().max(1) as f64;
        let mut ranking: Vec<(Code, f64)> = counts.into_iter().map(|(c, k)| (c.clone(), k as f64 / n)).collect();
        ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let max_k = params.max_k.min(ranking.len());
        if val.is_empty() {
            let mean = train.iter().map(|d| d.codes.len()).sum::<usize>() as f64 / n;
            let k = (mean.round() as usize).min(max_k);
            return PriorCoder { ranking, k, curve: Vec::new(), chosen_by: "training notes' mean code count (no validation documents)".into(), train_docs: train.len() };
        }
        let curve: Vec<(usize, f64)> = (0..=max_k).map(|k| (k, micro_f1(&ranking[..k], val))).collect();
        let k = curve.iter().fold((0, f64::MIN), |best, &(k, f1)| if f1 > best.1 { (k, f1) } else { best }).0;
        PriorCoder { ranking, k, curve, chosen_by: format!("best validation micro-F1 over k = 0..={max_k}"), train_docs: train.len() }
    }

    /// The same `k` codes for every note, with every ranked code's training share as its score.
    pub fn predict(&self, doc: &Document) -> Prediction {
        let mut codes: Vec<Code> = self.ranking[..self.k].iter().map(|(c, _)| c.clone()).collect();
        codes.sort();
        let scores: BTreeMap<String, f64> = self.ranking.iter().map(|(c, s)| (c.to_string(), *s)).collect();
        Prediction { id: doc.id.clone(), codes, invalid: Vec::new(), evidence: Vec::new(), scores, raw: None }
    }
}

/// Micro-F1 of writing `top` for every document of `docs`.
fn micro_f1(top: &[(Code, f64)], docs: &[&Document]) -> f64 {
    let (mut tp, mut gold) = (0usize, 0usize);
    for d in docs {
        tp += top.iter().filter(|(c, _)| d.codes.contains(c)).count();
        gold += d.codes.len();
    }
    let predicted = top.len() * docs.len();
    if tp == 0 {
        return 0.0;
    }
    2.0 * tp as f64 / (predicted + gold) as f64
}

impl BaselineKind for PriorParams {
    fn fit(&self, data: &FitData<'_>) -> Result<Fit, BaselineError> {
        let train: Vec<&Document> = data.dataset.split(crate::data::Split::Train).collect();
        let val: Vec<&Document> = data.dataset.split(crate::data::Split::Val).collect();
        let prior = PriorCoder::fit(&train, &val, self);
        let top: Vec<String> = prior.ranking.iter().take(prior.k.max(3)).map(|(c, s)| format!("{c} {:.1}%", 100.0 * s)).collect();
        let summary = format!("prior: k = {} ({}); most frequent training codes: {}", prior.k, prior.chosen_by, top.join(", "));
        let record = record_of("prior", &prior)?;
        Ok(Fit { fitted: Fitted::Coder(Box::new(prior)), summary, record, training: None })
    }
}

impl DocumentCoder for PriorCoder {
    fn predict(&self, doc: &Document) -> Prediction {
        PriorCoder::predict(self, doc)
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;

    fn doc(id: &str, codes: &[&str]) -> Document {
        Document { id: id.into(), split: Split::Train, text: String::new(), codes: codes.iter().map(|c| Code::parse(c).expect("test code")).collect(), evidence: Vec::new() }
    }

    #[test]
    fn ranks_by_training_share_and_tunes_k_on_validation() {
        let train = [doc("a", &["I10", "E11.9"]), doc("b", &["I10"]), doc("c", &["I10", "J45.909"]), doc("d", &["E11.9"])];
        let train: Vec<&Document> = train.iter().collect();
        // Every validation note has I10 and E11.9: k = 2 gives micro-F1 1.0; k = 1 gives 2/3.
        let val = [doc("v1", &["I10", "E11.9"]), doc("v2", &["E11.9", "I10"])];
        let val: Vec<&Document> = val.iter().collect();
        let p = PriorCoder::fit(&train, &val, &PriorParams::default());
        let ranked: Vec<(&str, f64)> = p.ranking.iter().map(|(c, s)| (c.as_str(), *s)).collect();
        assert_eq!(ranked, [("I10", 0.75), ("E11.9", 0.5), ("J45.909", 0.25)]);
        assert_eq!(p.k, 2);
        assert!((p.curve[1].1 - 2.0 / 3.0).abs() < 1e-12, "{:?}", p.curve);
        assert_eq!(p.curve[2].1, 1.0);
        // k = 3 adds a false positive to every note: 4 TP, 2 FP -> 0.8.
        assert!((p.curve[3].1 - 0.8).abs() < 1e-12);
        let pred = p.predict(&doc("t", &["K21.9"]));
        assert_eq!(pred.codes.iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["E11.9", "I10"]);
        assert_eq!(pred.scores.len(), 3);
    }

    #[test]
    fn ties_pick_the_smaller_k_and_no_validation_uses_the_mean_count() {
        let train = [doc("a", &["I10", "E11.9"]), doc("b", &["I10", "E11.9"])];
        let train: Vec<&Document> = train.iter().collect();
        // A validation note with neither code: every k scores 0, so k = 0 (write nothing).
        let val = [doc("v", &["K21.9"])];
        let val: Vec<&Document> = val.iter().collect();
        assert_eq!(PriorCoder::fit(&train, &val, &PriorParams::default()).k, 0);
        let p = PriorCoder::fit(&train, &[], &PriorParams::default());
        assert_eq!(p.k, 2);
        assert!(p.curve.is_empty());
        assert_eq!(PriorCoder::fit(&train, &[], &PriorParams { max_k: 1, ..PriorParams::default() }).k, 1);
    }
}
