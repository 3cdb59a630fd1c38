//! Paired bootstrap over documents: is the difference between two systems
//! scored on the same documents larger than resampling the documents explains?

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::bootstrap::{quantile, splitmix64, weighted_scores};
use super::sets::{Bootstrap, Interval, LabelSets};
use super::MetricsError;

/// How the test is made, recorded beside its results.
pub const PAIRED_METHOD: &str = "paired bootstrap over documents: each replicate resamples document indices \
     with replacement once and scores both systems on that same resample; the CI is the percentile interval of \
     the replicate differences B − A; the two-sided p-value is (1 + #{r : |d_r − d| ≥ |d|}) / (R + 1), the \
     replicate differences shifted to a null of no difference (macro F1 over the codes in the resample's gold labels)";

/// One metric on one partition of the codes, for both systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedRow {
    /// `micro-F1` or `macro-F1`.
    pub metric: String,
    /// `overall`, `seen` or `unseen`.
    pub part: String,
    pub a: f64,
    pub b: f64,
    /// `b - a` on the full set of documents.
    pub difference: f64,
    /// Percentile interval of the replicate differences.
    pub ci: Interval,
    pub p_value: f64,
}

/// What [`paired_bootstrap`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedReport {
    pub method: String,
    pub samples: usize,
    pub seed: u64,
    pub confidence: f64,
    pub n_docs: usize,
    pub rows: Vec<PairedRow>,
}

/// Replicate `r`'s RNG seed depends only on (`seed`, `r`), so any thread count gives the same answer.
fn replicate_seed(seed: u64, r: u64) -> u64 {
    splitmix64(splitmix64(seed ^ 0x5041_4952_4544) ^ r.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Paired bootstrap of B − A for micro and macro F1, overall and (with `seen`) on seen and unseen codes.
///
/// `gold[d]`, `pred_a[d]` and `pred_b[d]` must describe the same document `d`.
pub fn paired_bootstrap<S: AsRef<str>>(gold: &[Vec<S>], pred_a: &[Vec<S>], pred_b: &[Vec<S>], seen: Option<&HashSet<String>>, b: &Bootstrap) -> Result<PairedReport, MetricsError> {
    b.validate()?;
    let sets = [LabelSets::new(gold, pred_a)?, LabelSets::new(gold, pred_b)?];
    let masks: Vec<Option<Vec<bool>>> = sets.iter().map(|s| seen.map(|seen| s.codes.iter().map(|c| seen.contains(c.as_str())).collect())).collect();
    let n = gold.len();
    let score = |weights: &[u32], counts: &mut [Vec<[u64; 3]>; 2]| -> [[[f64; 2]; 3]; 2] {
        let [ca, cb] = counts;
        [weighted_scores(&sets[0], masks[0].as_deref(), weights, ca), weighted_scores(&sets[1], masks[1].as_deref(), weights, cb)]
    };
    let fresh_counts = || [vec![[0u64; 3]; sets[0].codes.len()], vec![[0u64; 3]; sets[1].codes.len()]];
    let observed = score(&vec![1; n], &mut fresh_counts());
    let reps: Vec<[[[f64; 2]; 3]; 2]> = (0..b.samples)
        .into_par_iter()
        .map_init(
            || (vec![0u32; n], fresh_counts()),
            |(weights, counts), r| {
                weights.fill(0);
                let mut rng = StdRng::seed_from_u64(replicate_seed(b.seed, r as u64));
                if n > 0 {
                    for _ in 0..n {
                        weights[rng.random_range(0..n)] += 1;
                    }
                }
                score(weights, counts)
            },
        )
        .collect();
    let alpha = (1.0 - b.confidence) / 2.0;
    let parts: &[(usize, &str)] = if seen.is_some() { &[(0, "overall"), (1, "seen"), (2, "unseen")] } else { &[(0, "overall")] };
    let mut rows = Vec::new();
    for (m, metric) in [(0usize, "micro-F1"), (1, "macro-F1")] {
        for &(g, part) in parts {
            let (a, bv) = (observed[0][g][m], observed[1][g][m]);
            let d = bv - a;
            let mut diffs: Vec<f64> = reps.iter().map(|r| r[1][g][m] - r[0][g][m]).collect();
            diffs.sort_unstable_by(f64::total_cmp);
            // The tolerance keeps "no difference at all" at p = 1 despite rounding.
            let extreme = diffs.iter().filter(|x| (*x - d).abs() >= d.abs() - 1e-12).count();
            rows.push(PairedRow {
                metric: metric.into(),
                part: part.into(),
                a,
                b: bv,
                difference: d,
                ci: Interval { lower: quantile(&diffs, alpha), upper: quantile(&diffs, 1.0 - alpha) },
                p_value: ((1 + extreme) as f64 / (b.samples + 1) as f64).min(1.0),
            });
        }
    }
    Ok(PairedReport { method: PAIRED_METHOD.into(), samples: b.samples, seed: b.seed, confidence: b.confidence, n_docs: n, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(x: &[&[&str]]) -> Vec<Vec<String>> {
        x.iter().map(|d| d.iter().map(|c| c.to_string()).collect()).collect()
    }

    fn row<'a>(r: &'a PairedReport, metric: &str, part: &str) -> &'a PairedRow {
        r.rows.iter().find(|x| x.metric == metric && x.part == part).expect("row")
    }

    #[test]
    fn a_system_against_itself_differs_by_nothing() {
        let gold = docs(&[&["A"], &["B", "C"], &["A", "D"]]);
        let pred = docs(&[&["A"], &["B"], &["E"]]);
        let r = paired_bootstrap(&gold, &pred, &pred, None, &Bootstrap::new(300, 3)).unwrap();
        assert_eq!(r.rows.len(), 2);
        for x in &r.rows {
            assert_eq!(x.difference, 0.0);
            assert_eq!((x.ci.lower, x.ci.upper), (0.0, 0.0));
            assert_eq!(x.p_value, 1.0);
        }
    }

    #[test]
    fn perfect_against_empty_differs_in_every_replicate() {
        let gold = docs(&[&["A"], &["B"], &["A", "C"]]);
        let empty = docs(&[&[], &[], &[]]);
        let r = paired_bootstrap(&gold, &gold, &empty, None, &Bootstrap::new(199, 1)).unwrap();
        let micro = row(&r, "micro-F1", "overall");
        // A scores 1 and B scores 0 on every resample: d = -1 always, and no replicate is as far from -1 as 0 is.
        assert_eq!((micro.a, micro.b, micro.difference), (1.0, 0.0, -1.0));
        assert_eq!((micro.ci.lower, micro.ci.upper), (-1.0, -1.0));
        assert_eq!(micro.p_value, 1.0 / 200.0);
    }

    #[test]
    fn hand_computed_seen_and_unseen() {
        // Doc 0: both right on seen A. Doc 1: A right on unseen B; B predicts unseen C instead.
        let gold = docs(&[&["A"], &["B"]]);
        let pa = docs(&[&["A"], &["B"]]);
        let pb = docs(&[&["A"], &["C"]]);
        let seen: HashSet<String> = ["A".to_string()].into();
        let r = paired_bootstrap(&gold, &pa, &pb, Some(&seen), &Bootstrap::new(4000, 17)).unwrap();
        assert_eq!(r.rows.len(), 6);
        // B: tp 1, fp 1, fn 1 -> micro F1 = 1 / (1 + 1) = 0.5; macro over gold codes {A: 1, B: 0} = 0.5.
        let m = row(&r, "micro-F1", "overall");
        assert_eq!((m.a, m.b, m.difference), (1.0, 0.5, -0.5));
        assert_eq!(row(&r, "macro-F1", "overall").b, 0.5);
        let s = row(&r, "micro-F1", "seen");
        assert_eq!((s.difference, s.p_value), (0.0, 1.0));
        // Unseen: d = -1 unless the resample leaves doc 1 out (probability 1/4), where both score 0.
        let u = row(&r, "micro-F1", "unseen");
        assert_eq!(u.difference, -1.0);
        assert!((u.p_value - 0.25).abs() < 0.03, "{}", u.p_value);
        assert_eq!((u.ci.lower, u.ci.upper), (-1.0, 0.0));
    }

    #[test]
    fn same_answer_for_any_thread_count() {
        let gold: Vec<Vec<String>> = (0..50).map(|d| vec![format!("C{}", d % 7), format!("C{}", d % 3)]).collect();
        let pa: Vec<Vec<String>> = (0..50).map(|d| vec![format!("C{}", d % 7)]).collect();
        let pb: Vec<Vec<String>> = (0..50).map(|d| vec![format!("C{}", d % 5), format!("C{}", d % 3)]).collect();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| paired_bootstrap(&gold, &pa, &pb, None, &Bootstrap::new(200, 9)).unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert!(one.rows.iter().all(|r| (0.0..=1.0).contains(&r.p_value)));
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let gold = docs(&[&["A"], &["B"]]);
        let short = docs(&[&["A"]]);
        assert!(paired_bootstrap(&gold, &gold, &short, None, &Bootstrap::new(10, 1)).is_err());
    }
}
