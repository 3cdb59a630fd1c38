//! One global decision threshold: tuned on validation for micro F1, applied to test.

use serde::{Deserialize, Serialize};

use super::ranking::ScoredDocs;
use super::{f1_counts, ratio};

/// The decision rule shared by tuning and applying.
pub const RULE: &str = "a code is predicted when its score is strictly greater than the threshold \
     (as Edin et al.: logits > db); a code without a score is never predicted";

/// Which 100 evenly spaced thresholds in [0, 1] are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdGrid {
    /// 0.00, 0.01, ..., 0.99 (`i / 100`, i = 0..=99); the project default.
    #[default]
    Hundredths,
    /// 0, 1/99, ..., 1 (`i / 99`, i = 0..=99): `torch.linspace(0, 1, 100)`, as Edin et al.'s code.
    Linspace100,
}

impl ThresholdGrid {
    /// The 100 thresholds, ascending.
    pub fn values(self) -> Vec<f64> {
        let den = match self {
            ThresholdGrid::Hundredths => 100.0,
            ThresholdGrid::Linspace100 => 99.0,
        };
        (0..100).map(|i| i as f64 / den).collect()
    }

    pub fn describe(self) -> &'static str {
        match self {
            ThresholdGrid::Hundredths => {
                "100 thresholds i/100 for i = 0..=99 (0.00, 0.01, ..., 0.99)"
            }
            ThresholdGrid::Linspace100 => {
                "100 thresholds i/99 for i = 0..=99 (0, 1/99, ..., 1; torch.linspace(0, 1, 100))"
            }
        }
    }
}

/// Micro F1 at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdPoint {
    pub threshold: f64,
    pub micro_f1: f64,
}

/// The tuned threshold, what it scored, and the whole curve (for plots).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdChoice {
    pub threshold: f64,
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
    pub grid: String,
    pub rule: String,
    /// Ties in micro F1 go to the lowest threshold.
    pub tie_break: String,
    pub curve: Vec<ThresholdPoint>,
}

/// Best micro-F1 threshold over [`ThresholdGrid::Hundredths`]; see [`tune_threshold_on`].
pub fn tune_threshold(val: &ScoredDocs) -> ThresholdChoice {
    tune_threshold_on(val, ThresholdGrid::Hundredths)
}

/// Best micro-F1 threshold over `grid` under [`RULE`]; ties go to the lowest threshold.
pub fn tune_threshold_on(val: &ScoredDocs, grid: ThresholdGrid) -> ThresholdChoice {
    let ts = grid.values();
    // passed[i]: scored pairs that clear exactly the i lowest thresholds (score > t_j for j < i).
    let mut passed = vec![[0u64; 2]; ts.len() + 1];
    for (&s, &g) in val.rank_scores.iter().zip(&val.rank_gold) {
        passed[ts.partition_point(|&t| t < s)][usize::from(g)] += 1;
    }
    let n_gold = val.gold.len() as u64;
    // Pairs predicted at t_i are those that clear more than i thresholds.
    let (mut pred, mut tp) = (0u64, 0u64);
    let mut at = vec![(0u64, 0u64); ts.len()];
    for i in (0..ts.len()).rev() {
        pred += passed[i + 1][0] + passed[i + 1][1];
        tp += passed[i + 1][1];
        at[i] = (tp, pred);
    }
    let curve: Vec<ThresholdPoint> = ts
        .iter()
        .zip(&at)
        .map(|(&threshold, &(tp, pred))| ThresholdPoint {
            threshold,
            micro_f1: f1_counts(tp, pred - tp, n_gold - tp),
        })
        .collect();
    let mut best = 0;
    for (i, p) in curve.iter().enumerate() {
        if p.micro_f1 > curve[best].micro_f1 {
            best = i;
        }
    }
    let (tp, pred) = at[best];
    ThresholdChoice {
        threshold: ts[best],
        micro_precision: ratio(tp as f64, pred as f64),
        micro_recall: ratio(tp as f64, n_gold as f64),
        micro_f1: curve[best].micro_f1,
        grid: grid.describe().to_owned(),
        rule: RULE.to_owned(),
        tie_break: "equal micro F1: the lowest threshold wins".to_owned(),
        curve,
    }
}

/// Codes predicted at threshold `t` under [`RULE`], per document, sorted by code.
pub fn apply_threshold(docs: &ScoredDocs, t: f64) -> Vec<Vec<String>> {
    (0..docs.n_docs())
        .map(|d| {
            let (ids, scores, _) = docs.ranked(d);
            // Rankings are sorted by score, highest first.
            let n = scores.partition_point(|&s| s > t);
            let mut out: Vec<u32> = ids[..n].to_vec();
            out.sort_unstable();
            out.into_iter()
                .map(|id| docs.codes[id as usize].clone())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_have_a_hundred_values() {
        let h = ThresholdGrid::Hundredths.values();
        assert_eq!((h.len(), h[0], h[99]), (100, 0.0, 0.99));
        let l = ThresholdGrid::Linspace100.values();
        assert_eq!((l.len(), l[0], l[99]), (100, 0.0, 1.0));
    }

    #[test]
    fn a_score_equal_to_the_threshold_is_not_predicted() {
        let docs = ScoredDocs::dense(&["A", "B"], &[vec!["A"]], &[vec![0.5, 0.3]]).unwrap();
        assert_eq!(apply_threshold(&docs, 0.5), vec![Vec::<String>::new()]);
        assert_eq!(apply_threshold(&docs, 0.49), vec![vec!["A".to_string()]]);
        // A alone is predicted for every t in [0.30, 0.49]; the lowest wins.
        let c = tune_threshold(&docs);
        assert_eq!(c.threshold, 0.3);
        assert_eq!(c.micro_f1, 1.0);
    }
}
