//! MDACE-style evidence: predicted (code, span) pairs against gold ones.

use serde::{Deserialize, Serialize};

use super::{f1_counts, ratio, MetricsError};

/// Convention of exact-span matching.
pub const EXACT_SPANS: &str =
    "micro over documents: a predicted (code, start, end) is correct when a gold \
     span of the same document has the same code and the same offsets; duplicates count once";
/// Convention of character overlap.
pub const OVERLAP_CHARS: &str = "micro over characters: per document and code, gold spans and predicted \
     spans are each merged into a union of character ranges; precision = overlapping chars / predicted chars, \
     recall = overlapping chars / gold chars; spans of different codes never overlap";

/// Exact-span precision, recall and F1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactSpanMetrics {
    pub convention: String,
    pub n_gold_spans: u64,
    pub n_pred_spans: u64,
    pub n_matched: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Character-overlap precision, recall and F1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverlapMetrics {
    pub convention: String,
    pub gold_chars: u64,
    pub pred_chars: u64,
    pub overlap_chars: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Evidence scores of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceReport {
    pub n_docs: usize,
    pub exact: ExactSpanMetrics,
    pub overlap: OverlapMetrics,
}

/// Scores `pred[d]` against `gold[d]`, spans being `(code, start, end)` with
/// half-open character offsets `[start, end)`. Empty or reversed spans and
/// lists of different lengths are errors.
pub fn evidence_scores<G: AsRef<str>, P: AsRef<str>>(
    gold: &[Vec<(G, usize, usize)>],
    pred: &[Vec<(P, usize, usize)>],
) -> Result<EvidenceReport, MetricsError> {
    if gold.len() != pred.len() {
        return Err(MetricsError::LengthMismatch {
            what: "evidence spans",
            gold: gold.len(),
            pred: pred.len(),
        });
    }
    let (mut n_gold, mut n_pred, mut matched) = (0u64, 0u64, 0u64);
    let (mut gold_chars, mut pred_chars, mut overlap) = (0u64, 0u64, 0u64);
    for (d, (g, p)) in gold.iter().zip(pred).enumerate() {
        let g = sorted_spans(d, g)?;
        let p = sorted_spans(d, p)?;
        n_gold += g.len() as u64;
        n_pred += p.len() as u64;
        matched += count_common(&g, &p);
        // Walk the codes of both lists together.
        let (mut i, mut j) = (0, 0);
        while i < g.len() || j < p.len() {
            let code = match (g.get(i), p.get(j)) {
                (Some(a), Some(b)) => a.0.min(b.0),
                (Some(a), None) => a.0,
                (None, Some(b)) => b.0,
                (None, None) => break,
            };
            let gi = i + g[i..].iter().take_while(|s| s.0 == code).count();
            let pj = j + p[j..].iter().take_while(|s| s.0 == code).count();
            let gu = union(&g[i..gi]);
            let pu = union(&p[j..pj]);
            gold_chars += gu.iter().map(|r| (r.1 - r.0) as u64).sum::<u64>();
            pred_chars += pu.iter().map(|r| (r.1 - r.0) as u64).sum::<u64>();
            overlap += intersection(&gu, &pu);
            i = gi;
            j = pj;
        }
    }
    Ok(EvidenceReport {
        n_docs: gold.len(),
        exact: ExactSpanMetrics {
            convention: EXACT_SPANS.to_owned(),
            n_gold_spans: n_gold,
            n_pred_spans: n_pred,
            n_matched: matched,
            precision: ratio(matched as f64, n_pred as f64),
            recall: ratio(matched as f64, n_gold as f64),
            f1: f1_counts(matched, n_pred - matched, n_gold - matched),
        },
        overlap: OverlapMetrics {
            convention: OVERLAP_CHARS.to_owned(),
            gold_chars,
            pred_chars,
            overlap_chars: overlap,
            precision: ratio(overlap as f64, pred_chars as f64),
            recall: ratio(overlap as f64, gold_chars as f64),
            f1: f1_counts(overlap, pred_chars - overlap, gold_chars - overlap),
        },
    })
}

/// Validated, sorted, de-duplicated (code, start, end).
fn sorted_spans<S: AsRef<str>>(
    doc: usize,
    spans: &[(S, usize, usize)],
) -> Result<Vec<(&str, usize, usize)>, MetricsError> {
    let mut out = Vec::with_capacity(spans.len());
    for (code, start, end) in spans {
        if start >= end {
            return Err(MetricsError::InvalidSpan {
                doc,
                code: code.as_ref().to_owned(),
                start: *start,
                end: *end,
            });
        }
        out.push((code.as_ref(), *start, *end));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn count_common<T: Ord>(a: &[T], b: &[T]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Disjoint ranges covering spans sorted by start (one code's spans).
fn union(spans: &[(&str, usize, usize)]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &(_, s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Characters covered by both of two sorted disjoint range lists.
fn intersection(a: &[(usize, usize)], b: &[(usize, usize)]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo < hi {
            n += (hi - lo) as u64;
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_spans_of_one_code_are_not_double_counted() {
        // Gold [0,10); predictions [2,6) and [4,12) merge to [2,12): 10 chars, 8 overlapping.
        let r = evidence_scores(&[vec![("A", 0, 10)]], &[vec![("A", 2, 6), ("A", 4, 12)]]).unwrap();
        assert_eq!(
            (
                r.overlap.gold_chars,
                r.overlap.pred_chars,
                r.overlap.overlap_chars
            ),
            (10, 10, 8)
        );
        assert_eq!(r.exact.n_matched, 0);
    }

    #[test]
    fn different_codes_do_not_overlap_and_bad_spans_are_errors() {
        let r = evidence_scores(&[vec![("A", 0, 10)]], &[vec![("B", 0, 10)]]).unwrap();
        assert_eq!(r.overlap.overlap_chars, 0);
        let e = evidence_scores(&[vec![("A", 5, 5)]], &[vec![("A", 0, 1)]]).unwrap_err();
        assert!(matches!(
            e,
            MetricsError::InvalidSpan {
                doc: 0,
                start: 5,
                end: 5,
                ..
            }
        ));
        let none: [Vec<(&str, usize, usize)>; 0] = [];
        assert!(evidence_scores(&none, &[vec![("A", 0, 1)]]).is_err());
    }
}
