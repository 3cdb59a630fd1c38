//! Ranking metrics for discriminative models that give every code a score.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::intern::Interner;
use super::{ratio, MetricsError};

/// Convention of P@k.
pub const PRECISION_AT_K: &str =
    "mean over all documents of (gold codes among the k highest-scored) / k; \
     a document with fewer than k scored codes still divides by k — Edin et al. 2023";
/// Convention of R@k.
pub const RECALL_AT_K: &str = "mean over documents with at least one gold code of \
     (gold codes among the k highest-scored) / (number of gold codes)";
/// Convention of R-precision.
pub const R_PRECISION: &str =
    "mean over documents with at least one gold code of P@R, R = number of gold codes";
/// Convention of mAP.
pub const MEAN_AVERAGE_PRECISION: &str = "mean over documents with at least one gold code of \
     AP = (1/R) * sum over gold codes ranked at position i of (gold codes in the top i) / i; \
     a gold code without a score is never retrieved and adds 0";
/// Convention of micro AUC.
pub const AUC_MICRO: &str = "ROC AUC over every (document, code) pair of documents x code list (plus gold codes \
     outside it): Mann-Whitney U with average ranks for ties; codes without a score tie below every score";
/// Convention of macro AUC.
pub const AUC_MACRO: &str = "mean of per-code ROC AUC (Mann-Whitney U, average ranks for ties) over codes having \
     both positive and negative documents; codes without a score in a document tie below every score";
/// Tie-breaking rule of every top-k ranking.
pub const RANKING_TIES: &str =
    "codes are ranked by score, highest first; equal scores rank in code order";

/// Gold code sets and per-document scores over a code list.
///
/// The ranking of a document is its scored codes, highest score first, equal
/// scores in code order. Gold codes outside the code list are kept (they
/// count as gold, and can never be ranked).
///
/// Memory is about 13 bytes per scored (document, code) pair: dense scores
/// for a 20,000 x 8,000 split take ~2 GB, so at that scale pass each
/// document's top few hundred codes through [`ScoredDocs::sparse`] instead.
#[derive(Debug, Clone)]
pub struct ScoredDocs {
    /// Code list ∪ gold codes, sorted; a code's id is its index.
    pub(super) codes: Vec<String>,
    /// Size of the model's code list.
    pub(super) n_listed_codes: usize,
    /// Sorted gold ids of document `d`: `gold[gold_off[d]..gold_off[d + 1]]`.
    pub(super) gold_off: Vec<usize>,
    pub(super) gold: Vec<u32>,
    /// Scored codes of document `d`, best first: `rank_*[rank_off[d]..rank_off[d + 1]]`.
    pub(super) rank_off: Vec<usize>,
    pub(super) rank_ids: Vec<u32>,
    pub(super) rank_scores: Vec<f64>,
    pub(super) rank_gold: Vec<bool>,
}

impl ScoredDocs {
    /// One score per code of `codes` for every document: `scores[d][j]` scores `codes[j]`.
    pub fn dense<C: AsRef<str>, G: AsRef<str>>(
        codes: &[C],
        gold: &[Vec<G>],
        scores: &[Vec<f64>],
    ) -> Result<Self, MetricsError> {
        if gold.len() != scores.len() {
            return Err(MetricsError::LengthMismatch {
                what: "scored documents",
                gold: gold.len(),
                pred: scores.len(),
            });
        }
        let mut interner = intern_code_list(codes)?;
        for (d, row) in scores.iter().enumerate() {
            if row.len() != codes.len() {
                return Err(MetricsError::ScoreRowLength {
                    doc: d,
                    expected: codes.len(),
                    found: row.len(),
                });
            }
            if let Some(j) = row.iter().position(|s| !s.is_finite()) {
                return Err(MetricsError::NonFiniteScore {
                    doc: d,
                    code: codes[j].as_ref().to_owned(),
                    value: row[j],
                });
            }
        }
        let n_listed = codes.len();
        let (gold_ids, gold_off) = intern_gold(&mut interner, gold)?;
        let (vocab, remap) = interner.into_sorted();
        let rows = scores
            .par_iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(j, &s)| (remap[j], s))
                    .collect()
            })
            .collect();
        Ok(build(vocab, n_listed, &remap, gold_ids, gold_off, rows))
    }

    /// Scores for some codes of `codes` per document; a code a document does
    /// not score is ranked nowhere and ties below every score for AUC.
    pub fn sparse<C: AsRef<str>, G: AsRef<str>, K: AsRef<str>>(
        codes: &[C],
        gold: &[Vec<G>],
        scores: &[Vec<(K, f64)>],
    ) -> Result<Self, MetricsError> {
        if gold.len() != scores.len() {
            return Err(MetricsError::LengthMismatch {
                what: "scored documents",
                gold: gold.len(),
                pred: scores.len(),
            });
        }
        let mut interner = intern_code_list(codes)?;
        let n_listed = codes.len();
        let mut rows: Vec<Vec<(u32, f64)>> = Vec::with_capacity(scores.len());
        let mut seen_ids = Vec::new();
        for (d, row) in scores.iter().enumerate() {
            let mut out = Vec::with_capacity(row.len());
            for (code, s) in row {
                let code = code.as_ref();
                let Some(id) = interner.get(code) else {
                    return Err(MetricsError::UnknownScoredCode {
                        doc: d,
                        code: code.to_owned(),
                    });
                };
                if !s.is_finite() {
                    return Err(MetricsError::NonFiniteScore {
                        doc: d,
                        code: code.to_owned(),
                        value: *s,
                    });
                }
                out.push((id, *s));
            }
            seen_ids.clear();
            seen_ids.extend(out.iter().map(|e| e.0));
            seen_ids.sort_unstable();
            if let Some(w) = seen_ids.windows(2).find(|w| w[0] == w[1]) {
                return Err(MetricsError::DuplicateScoredCode {
                    doc: d,
                    code: codes[w[0] as usize].as_ref().to_owned(),
                });
            }
            rows.push(out);
        }
        let (gold_ids, gold_off) = intern_gold(&mut interner, gold)?;
        let (vocab, remap) = interner.into_sorted();
        for row in rows.iter_mut() {
            for e in row.iter_mut() {
                e.0 = remap[e.0 as usize];
            }
        }
        Ok(build(vocab, n_listed, &remap, gold_ids, gold_off, rows))
    }

    /// Number of documents.
    pub fn n_docs(&self) -> usize {
        self.gold_off.len() - 1
    }

    /// Code list ∪ gold codes, sorted.
    pub fn codes(&self) -> &[String] {
        &self.codes
    }

    /// Gold codes (sorted by code) of every document.
    pub fn gold_sets(&self) -> Vec<Vec<String>> {
        (0..self.n_docs())
            .map(|d| {
                self.gold_ids(d)
                    .iter()
                    .map(|&id| self.codes[id as usize].clone())
                    .collect()
            })
            .collect()
    }

    pub(super) fn gold_ids(&self, d: usize) -> &[u32] {
        &self.gold[self.gold_off[d]..self.gold_off[d + 1]]
    }

    pub(super) fn ranked(&self, d: usize) -> (&[u32], &[f64], &[bool]) {
        let r = self.rank_off[d]..self.rank_off[d + 1];
        (
            &self.rank_ids[r.clone()],
            &self.rank_scores[r.clone()],
            &self.rank_gold[r],
        )
    }
}

/// Interns the code list first so that its codes keep ids `0..codes.len()` until sorting.
fn intern_code_list<C: AsRef<str>>(codes: &[C]) -> Result<Interner<'_>, MetricsError> {
    let mut interner = Interner::default();
    for c in codes {
        let c = c.as_ref();
        if interner.get(c).is_some() {
            return Err(MetricsError::DuplicateCode { code: c.to_owned() });
        }
        interner.intern(c)?;
    }
    debug_assert_eq!(interner.len(), codes.len());
    Ok(interner)
}

fn intern_gold<'a, G: AsRef<str>>(
    interner: &mut Interner<'a>,
    gold: &'a [Vec<G>],
) -> Result<(Vec<u32>, Vec<usize>), MetricsError> {
    let mut ids = Vec::with_capacity(gold.iter().map(Vec::len).sum());
    let mut off = Vec::with_capacity(gold.len() + 1);
    off.push(0);
    for doc in gold {
        for c in doc {
            ids.push(interner.intern(c.as_ref())?);
        }
        off.push(ids.len());
    }
    Ok((ids, off))
}

/// Sorts gold sets and rankings; `rows` already carry sorted ids, `gold_ids` first-seen ids.
fn build(
    codes: Vec<String>,
    n_listed_codes: usize,
    remap: &[u32],
    gold_ids: Vec<u32>,
    gold_off_raw: Vec<usize>,
    rows: Vec<Vec<(u32, f64)>>,
) -> ScoredDocs {
    let n_docs = rows.len();
    let mut gold = Vec::with_capacity(gold_ids.len());
    let mut gold_off = Vec::with_capacity(n_docs + 1);
    gold_off.push(0);
    for d in 0..n_docs {
        let start = gold.len();
        gold.extend(
            gold_ids[gold_off_raw[d]..gold_off_raw[d + 1]]
                .iter()
                .map(|&id| remap[id as usize]),
        );
        gold[start..].sort_unstable();
        let kept = {
            let tail = &mut gold[start..];
            let mut w = 0;
            for r in 0..tail.len() {
                if r == 0 || tail[r] != tail[w - 1] {
                    tail[w] = tail[r];
                    w += 1;
                }
            }
            w
        };
        gold.truncate(start + kept);
        gold_off.push(gold.len());
    }

    let ranked: Vec<(Vec<u32>, Vec<f64>, Vec<bool>)> = rows
        .into_par_iter()
        .enumerate()
        .map(|(d, mut row)| {
            for e in row.iter_mut() {
                e.1 += 0.0; // -0.0 becomes 0.0, so total_cmp ties them
            }
            row.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let g = &gold[gold_off[d]..gold_off[d + 1]];
            let is_gold = row.iter().map(|e| g.binary_search(&e.0).is_ok()).collect();
            (
                row.iter().map(|e| e.0).collect(),
                row.iter().map(|e| e.1).collect(),
                is_gold,
            )
        })
        .collect();
    let total: usize = ranked.iter().map(|r| r.0.len()).sum();
    let mut docs = ScoredDocs {
        codes,
        n_listed_codes,
        gold_off,
        gold,
        rank_off: Vec::with_capacity(n_docs + 1),
        rank_ids: Vec::with_capacity(total),
        rank_scores: Vec::with_capacity(total),
        rank_gold: Vec::with_capacity(total),
    };
    docs.rank_off.push(0);
    for (ids, scores, is_gold) in ranked {
        docs.rank_ids.extend(ids);
        docs.rank_scores.extend(scores);
        docs.rank_gold.extend(is_gold);
        docs.rank_off.push(docs.rank_ids.len());
    }
    docs
}

fn hits_in_top(is_gold: &[bool], k: usize) -> usize {
    is_gold[..k.min(is_gold.len())]
        .iter()
        .filter(|&&g| g)
        .count()
}

/// Mean over documents of `f(d)`, skipping documents where it is `None`; (mean, documents used).
fn mean_over_docs(
    docs: &ScoredDocs,
    f: impl Fn(usize) -> Option<f64> + Sync + Send,
) -> (f64, usize) {
    let vals: Vec<Option<f64>> = (0..docs.n_docs()).into_par_iter().map(f).collect();
    // Summed in document order, so the result does not depend on the thread count.
    let (sum, n) = vals
        .iter()
        .flatten()
        .fold((0.0, 0), |(s, n), v| (s + v, n + 1));
    (ratio(sum, n as f64), n)
}

/// P@k; see [`PRECISION_AT_K`]. k = 0 is an error.
pub fn precision_at_k(docs: &ScoredDocs, k: usize) -> Result<f64, MetricsError> {
    Ok(precision_at_k_n(docs, k)?.0)
}

fn precision_at_k_n(docs: &ScoredDocs, k: usize) -> Result<(f64, usize), MetricsError> {
    if k == 0 {
        return Err(MetricsError::InvalidK { k });
    }
    Ok(mean_over_docs(docs, |d| {
        Some(hits_in_top(docs.ranked(d).2, k) as f64 / k as f64)
    }))
}

/// R@k; see [`RECALL_AT_K`]. k = 0 is an error.
pub fn recall_at_k(docs: &ScoredDocs, k: usize) -> Result<f64, MetricsError> {
    Ok(recall_at_k_n(docs, k)?.0)
}

fn recall_at_k_n(docs: &ScoredDocs, k: usize) -> Result<(f64, usize), MetricsError> {
    if k == 0 {
        return Err(MetricsError::InvalidK { k });
    }
    Ok(mean_over_docs(docs, |d| {
        let r = docs.gold_ids(d).len();
        (r > 0).then(|| hits_in_top(docs.ranked(d).2, k) as f64 / r as f64)
    }))
}

/// R-precision; see [`R_PRECISION`].
pub fn r_precision(docs: &ScoredDocs) -> f64 {
    r_precision_n(docs).0
}

fn r_precision_n(docs: &ScoredDocs) -> (f64, usize) {
    mean_over_docs(docs, |d| {
        let r = docs.gold_ids(d).len();
        (r > 0).then(|| hits_in_top(docs.ranked(d).2, r) as f64 / r as f64)
    })
}

/// Mean average precision; see [`MEAN_AVERAGE_PRECISION`].
pub fn mean_average_precision(docs: &ScoredDocs) -> f64 {
    mean_average_precision_n(docs).0
}

fn mean_average_precision_n(docs: &ScoredDocs) -> (f64, usize) {
    mean_over_docs(docs, |d| {
        let r = docs.gold_ids(d).len();
        (r > 0).then(|| {
            let mut hits = 0usize;
            let mut sum = 0.0;
            for (i, &g) in docs.ranked(d).2.iter().enumerate() {
                if g {
                    hits += 1;
                    sum += hits as f64 / (i + 1) as f64;
                }
            }
            sum / r as f64
        })
    })
}

/// ROC AUC by Mann-Whitney U: `scored` are (score, positive) pairs, plus
/// `absent` pairs (`absent_pos` of them positive) tied below every score.
/// `None` when there are no positives or no negatives.
fn auc(scored: &mut [(f64, bool)], absent: u64, absent_pos: u64) -> Option<f64> {
    if scored.len() > 1 << 16 {
        scored.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    } else {
        scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    }
    let pos = absent_pos + scored.iter().filter(|e| e.1).count() as u64;
    let neg = absent + scored.len() as u64 - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Twice the rank sum of the positives (ranks are 1-based; a tie group
    // covering ranks below+1 ..= below+g shares rank below + (g + 1) / 2).
    let mut twice_rank_sum = u128::from(absent_pos) * u128::from(absent + 1);
    let mut below = u128::from(absent);
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            j += 1;
        }
        let g = (j - i) as u128;
        let p = scored[i..j].iter().filter(|e| e.1).count() as u128;
        twice_rank_sum += p * (2 * below + g + 1);
        below += g;
        i = j;
    }
    let pos = u128::from(pos);
    let twice_u = twice_rank_sum - pos * (pos + 1);
    Some(twice_u as f64 / (2.0 * pos as f64 * neg as f64))
}

/// Micro ROC AUC; see [`AUC_MICRO`]. `None` without positives or negatives.
pub fn micro_auc(docs: &ScoredDocs) -> Option<f64> {
    let mut scored: Vec<(f64, bool)> = docs
        .rank_scores
        .iter()
        .copied()
        .zip(docs.rank_gold.iter().copied())
        .collect();
    let pairs = docs.n_docs() as u64 * docs.codes.len() as u64;
    let absent = pairs - scored.len() as u64;
    let scored_pos = docs.rank_gold.iter().filter(|&&g| g).count() as u64;
    let absent_pos = docs.gold.len() as u64 - scored_pos;
    auc(&mut scored, absent, absent_pos)
}

/// Macro ROC AUC; see [`AUC_MACRO`]. `None` when no code has both positives and negatives.
pub fn macro_auc(docs: &ScoredDocs) -> Option<f64> {
    macro_auc_n(docs).0
}

fn macro_auc_n(docs: &ScoredDocs) -> (Option<f64>, usize) {
    let n_codes = docs.codes.len();
    let n_docs = docs.n_docs() as u64;
    // Transpose the rankings: each code's (score, positive) over the documents that score it.
    let mut off = vec![0usize; n_codes + 1];
    for &id in &docs.rank_ids {
        off[id as usize + 1] += 1;
    }
    for c in 0..n_codes {
        off[c + 1] += off[c];
    }
    let mut fill = off.clone();
    let mut by_code = vec![(0.0, false); docs.rank_ids.len()];
    for ((&id, &s), &g) in docs
        .rank_ids
        .iter()
        .zip(&docs.rank_scores)
        .zip(&docs.rank_gold)
    {
        by_code[fill[id as usize]] = (s, g);
        fill[id as usize] += 1;
    }
    let mut support = vec![0u64; n_codes];
    for &id in &docs.gold {
        support[id as usize] += 1;
    }
    let mut slices = Vec::with_capacity(n_codes);
    let mut rest = by_code.as_mut_slice();
    for c in 0..n_codes {
        let (head, tail) = rest.split_at_mut(off[c + 1] - off[c]);
        slices.push(head);
        rest = tail;
    }
    let per_code: Vec<Option<f64>> = slices
        .into_par_iter()
        .enumerate()
        .map(|(c, scored)| {
            let scored_pos = scored.iter().filter(|e| e.1).count() as u64;
            auc(
                scored,
                n_docs - scored.len() as u64,
                support[c] - scored_pos,
            )
        })
        .collect();
    let (sum, n) = per_code
        .iter()
        .flatten()
        .fold((0.0, 0), |(s, n), v| (s + v, n + 1));
    ((n > 0).then(|| sum / n as f64), n)
}

/// A metric at one cut-off k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtK {
    pub k: usize,
    pub value: f64,
    /// Documents averaged over.
    pub n_docs: usize,
    pub convention: String,
}

/// A per-document ranking metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankMetric {
    pub value: f64,
    /// Documents averaged over.
    pub n_docs: usize,
    pub convention: String,
}

/// An AUC; `value` is `None` when undefined (no positives or no negatives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AucMetric {
    pub value: Option<f64>,
    /// (document, code) pairs for micro; codes averaged over for macro.
    pub n: u64,
    pub convention: String,
}

/// Every ranking metric of one run, each with its convention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredReport {
    pub n_docs: usize,
    /// Size of the model's code list.
    pub n_listed_codes: usize,
    /// Gold codes outside the code list: they count as gold but are never ranked.
    pub n_unlisted_gold_codes: usize,
    pub ties: String,
    pub precision_at_k: Vec<AtK>,
    pub recall_at_k: Vec<AtK>,
    pub r_precision: RankMetric,
    pub mean_average_precision: RankMetric,
    pub auc_micro: AucMetric,
    pub auc_macro: AucMetric,
}

/// A metric at cut-off k with the number of documents it averaged over.
type AtKFn = fn(&ScoredDocs, usize) -> Result<(f64, usize), MetricsError>;

/// All ranking metrics, with P@k and R@k at each of `ks` (e.g. `&[8, 15]`).
pub fn score_ranking(docs: &ScoredDocs, ks: &[usize]) -> Result<ScoredReport, MetricsError> {
    let at = |f: AtKFn, conv: &str| {
        ks.iter()
            .map(|&k| {
                let (value, n_docs) = f(docs, k)?;
                Ok(AtK {
                    k,
                    value,
                    n_docs,
                    convention: conv.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, MetricsError>>()
    };
    let precision_at_k = at(precision_at_k_n, PRECISION_AT_K)?;
    let recall_at_k = at(recall_at_k_n, RECALL_AT_K)?;
    let (rp, rp_n) = r_precision_n(docs);
    let (map, map_n) = mean_average_precision_n(docs);
    let (auc_macro, auc_macro_n) = macro_auc_n(docs);
    Ok(ScoredReport {
        n_docs: docs.n_docs(),
        n_listed_codes: docs.n_listed_codes,
        n_unlisted_gold_codes: docs.codes.len() - docs.n_listed_codes,
        ties: RANKING_TIES.to_owned(),
        precision_at_k,
        recall_at_k,
        r_precision: RankMetric {
            value: rp,
            n_docs: rp_n,
            convention: R_PRECISION.to_owned(),
        },
        mean_average_precision: RankMetric {
            value: map,
            n_docs: map_n,
            convention: MEAN_AVERAGE_PRECISION.to_owned(),
        },
        auc_micro: AucMetric {
            value: micro_auc(docs),
            n: docs.n_docs() as u64 * docs.codes.len() as u64,
            convention: AUC_MICRO.to_owned(),
        },
        auc_macro: AucMetric {
            value: auc_macro,
            n: auc_macro_n as u64,
            convention: AUC_MACRO.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        // pos {0.8, 0.5}, neg {0.5, 0.2}: pairs 1 + 0.5 + 1 + 1 = 3.5 of 4.
        let mut s = [(0.8, true), (0.5, true), (0.5, false), (0.2, false)];
        assert_eq!(auc(&mut s, 0, 0), Some(0.875));
        // One absent negative under everything: 3.5 + 2 = 5.5 of 6.
        let mut s = [(0.8, true), (0.5, true), (0.5, false), (0.2, false)];
        assert_eq!(auc(&mut s, 1, 0), Some(5.5 / 6.0));
        let mut s = [(0.8, true)];
        assert_eq!(auc(&mut s, 0, 0), None);
    }

    #[test]
    fn sparse_rejects_unknown_and_duplicate_codes() {
        let gold = vec![vec!["A"]];
        let e = ScoredDocs::sparse(&["A"], &gold, &[vec![("B", 0.5)]]).unwrap_err();
        assert!(matches!(e, MetricsError::UnknownScoredCode { doc: 0, .. }));
        let e = ScoredDocs::sparse(&["A"], &gold, &[vec![("A", 0.5), ("A", 0.1)]]).unwrap_err();
        assert!(matches!(
            e,
            MetricsError::DuplicateScoredCode { doc: 0, .. }
        ));
        let e = ScoredDocs::dense(&["A", "A"], &gold, &[vec![0.1, 0.2]]).unwrap_err();
        assert!(matches!(e, MetricsError::DuplicateCode { .. }));
        let e = ScoredDocs::dense(&["A"], &gold, &[vec![f64::NAN]]).unwrap_err();
        assert!(matches!(e, MetricsError::NonFiniteScore { doc: 0, .. }));
    }

    #[test]
    fn gold_outside_code_list_is_never_ranked() {
        let docs = ScoredDocs::dense(&["A", "B"], &[vec!["A", "Z"]], &[vec![0.9, 0.1]]).unwrap();
        assert_eq!(docs.codes(), ["A", "B", "Z"]);
        assert_eq!(recall_at_k(&docs, 2).unwrap(), 0.5);
        assert_eq!(mean_average_precision(&docs), 0.5);
        assert_eq!(
            precision_at_k(&docs, 0).unwrap_err(),
            MetricsError::InvalidK { k: 0 }
        );
    }
}
