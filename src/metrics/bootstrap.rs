//! Percentile bootstrap over documents, identical for any number of threads.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use super::f1_counts;
use super::sets::{code_prf, Bootstrap, Interval, Intervals, LabelSets, Part};

/// How the intervals are made, recorded beside them.
pub const METHOD: &str =
    "percentile bootstrap over documents: resample documents with replacement, \
     recompute the metric (macro F1 over the codes in the resample's gold labels), \
     take the linearly interpolated (1-c)/2 and (1+c)/2 quantiles of the replicates";

/// Replicate `r`'s RNG seed: depends only on (`seed`, `r`), never on scheduling.
fn replicate_seed(seed: u64, r: u64) -> u64 {
    splitmix64(splitmix64(seed) ^ r.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

pub(super) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Scratch {
    weights: Vec<u32>,
    counts: Vec<[u64; 3]>,
}

/// Micro F1 and gold-convention macro F1 for [all, seen, unseen] codes in one replicate.
fn replicate(sets: &LabelSets, seen: Option<&[bool]>, seed: u64, s: &mut Scratch) -> [[f64; 2]; 3] {
    let n = sets.n_docs();
    s.weights.fill(0);
    let mut rng = StdRng::seed_from_u64(seed);
    if n > 0 {
        for _ in 0..n {
            s.weights[rng.random_range(0..n)] += 1;
        }
    }
    weighted_scores(sets, seen, &s.weights, &mut s.counts)
}

/// Micro F1 and gold-convention macro F1 for [all, seen, unseen] codes, each
/// document counted `weights[d]` times (`counts` is scratch, one entry per code).
pub(super) fn weighted_scores(sets: &LabelSets, seen: Option<&[bool]>, weights: &[u32], counts: &mut [[u64; 3]]) -> [[f64; 2]; 3] {
    counts.fill([0; 3]);
    for (d, &w) in weights.iter().enumerate() {
        if w == 0 {
            continue;
        }
        for &e in sets.doc_events(d) {
            counts[(e >> 2) as usize][(e & 3) as usize] += u64::from(w);
        }
    }
    let parts = [Part::All, Part::Seen, Part::Unseen];
    let mut micro = [[0u64; 3]; 3];
    let mut macro_sum = [0.0f64; 3];
    let mut macro_n = [0usize; 3];
    for (id, &c) in counts.iter().enumerate() {
        for (g, part) in parts.iter().enumerate() {
            if !part.has(seen, id) || (g > 0 && seen.is_none()) {
                continue;
            }
            for k in 0..3 {
                micro[g][k] += c[k];
            }
            if c[0] + c[2] > 0 {
                macro_sum[g] += code_prf(c).2;
                macro_n[g] += 1;
            }
        }
    }
    std::array::from_fn(|g| {
        let [tp, fp, fn_] = micro[g];
        let macro_f1 = if macro_n[g] > 0 { macro_sum[g] / macro_n[g] as f64 } else { 0.0 };
        [f1_counts(tp, fp, fn_), macro_f1]
    })
}

/// Linear-interpolation quantile (NumPy's default) of sorted, non-empty values.
pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Intervals for [all, seen, unseen]; seen/unseen are meaningless without a mask.
/// `b` must have passed [`Bootstrap::validate`].
pub(super) fn intervals(sets: &LabelSets, seen: Option<&[bool]>, b: &Bootstrap) -> [Intervals; 3] {
    let reps: Vec<[[f64; 2]; 3]> = (0..b.samples)
        .into_par_iter()
        .map_init(
            || Scratch {
                weights: vec![0; sets.n_docs()],
                counts: vec![[0; 3]; sets.codes.len()],
            },
            |s, r| replicate(sets, seen, replicate_seed(b.seed, r as u64), s),
        )
        .collect();
    let alpha = (1.0 - b.confidence) / 2.0;
    let interval = |g: usize, m: usize| {
        let mut xs: Vec<f64> = reps.iter().map(|r| r[g][m]).collect();
        xs.sort_unstable_by(f64::total_cmp);
        Interval {
            lower: quantile(&xs, alpha),
            upper: quantile(&xs, 1.0 - alpha),
        }
    };
    std::array::from_fn(|g| Intervals {
        method: METHOD.to_owned(),
        confidence: b.confidence,
        samples: b.samples,
        seed: b.seed,
        micro_f1: interval(g, 0),
        macro_f1_gold: interval(g, 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_linearly() {
        let xs = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&xs, 0.0), 0.0);
        assert_eq!(quantile(&xs, 1.0), 4.0);
        assert!((quantile(&xs, 0.025) - 0.1).abs() < 1e-12);
        assert!((quantile(&xs, 0.975) - 3.9).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn replicate_seeds_differ_across_seed_and_index() {
        assert_ne!(replicate_seed(0, 1), replicate_seed(1, 0));
        assert_ne!(replicate_seed(5, 0), replicate_seed(5, 1));
    }

    #[test]
    fn thread_count_does_not_change_intervals() {
        let gold: Vec<Vec<String>> = (0..60)
            .map(|d| vec![format!("C{}", d % 7), format!("C{}", d % 3)])
            .collect();
        let pred: Vec<Vec<String>> = (0..60)
            .map(|d| vec![format!("C{}", d % 7), format!("C{}", d % 5)])
            .collect();
        let sets = LabelSets::new(&gold, &pred).unwrap();
        let b = Bootstrap::new(200, 11);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| intervals(&sets, None, &b))
        };
        assert_eq!(run(1), run(4));
    }
}
