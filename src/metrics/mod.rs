//! Every score, each with its convention named.
//!
//! Codes are opaque strings here (`"E11.9"`); apart from [`split`], which
//! scores the crate's documents and predictions through it, this module
//! depends on no other part of the crate. Each entry point interns the codes once to dense `u32`
//! ids (sorted by code, so ids and code order agree) and then counts with
//! vectors, which keeps a 20,000-document MIMIC-IV test split far under a
//! second.
//!
//! Four families of scores:
//!
//! - [`score`] on [`LabelSets`]: set-based metrics for any model that outputs
//!   a set of codes (generative models included): micro P/R/F1, macro P/R/F1
//!   under three named conventions, exact match, a seen/unseen split and
//!   percentile-bootstrap confidence intervals. [`per_code`] gives the rows
//!   behind the macro averages.
//! - [`score_ranking`] on [`ScoredDocs`]: P@k, R@k, R-precision, mAP and
//!   micro/macro AUC, for discriminative models that give every code a score.
//! - [`tune_threshold`] / [`apply_threshold`]: one global threshold chosen on
//!   validation for best micro F1, then applied to test.
//! - [`evidence_scores`]: MDACE-style evidence spans, exact and by character
//!   overlap.
//!
//! [`score_split`] puts them together for one evaluated split, the same for
//! icdbench's runs and `icdbench score`; a predicted string outside the code
//! set is a false positive there, never dropped ([`InvalidPredictions`]).
//!
//! # Conventions (every figure in a report names its own)
//!
//! - Micro F1 (Edin et al. 2023) = TP / (TP + (FP + FN) / 2).
//!   Micro precision is 0 when nothing was predicted; micro recall is 0 when
//!   there is no gold label.
//! - Per-code precision = tp / (tp + fp), **0 for a code never predicted**;
//!   per-code recall = tp / (tp + fn), 0 for a code without gold;
//!   per-code F1 = 2tp / (2tp + fp + fn), **0 for a code with no gold and no
//!   prediction**. Macro P, R and F1 are each the plain mean of the per-code
//!   values (macro F1 is *not* the harmonic mean of macro P and macro R).
//! - Macro conventions differ only in which codes are averaged over:
//!   [`MACRO_GOLD`] (codes in the split's gold labels — Edin et al. 2023),
//!   [`MACRO_NONZERO`] (codes with TP+FP+FN > 0 — Code Like Humans) and
//!   [`MACRO_LABEL_SPACE`] (every code of a given label space — older papers,
//!   LLM4ICD). Label-space codes that never occur score F1 = 0, which is what
//!   roughly halves macro F1 under that convention.
//! - No score is ever NaN: every ratio with a zero denominator is 0, and a
//!   score that is undefined as a whole (AUC with no negatives) is `None`.

mod bootstrap;
mod evidence;
mod intern;
pub mod mention;
pub mod paired;
pub mod probe;
mod ranking;
mod score;
mod sets;
pub mod split;
mod threshold;

pub use bootstrap::METHOD as BOOTSTRAP_METHOD;
pub use score::score;
pub use evidence::{
    evidence_scores, EvidenceReport, ExactSpanMetrics, OverlapMetrics, EXACT_SPANS, OVERLAP_CHARS,
};
pub use ranking::{
    macro_auc, mean_average_precision, micro_auc, precision_at_k, r_precision, recall_at_k,
    score_ranking, AtK, AucMetric, RankMetric, ScoredDocs, ScoredReport, AUC_MACRO, AUC_MICRO,
    MEAN_AVERAGE_PRECISION, PRECISION_AT_K, RANKING_TIES, RECALL_AT_K, R_PRECISION,
};
pub use sets::{
    per_code, Bootstrap, CodeRow, ExactMatch, Interval, Intervals, LabelSets, MacroMetrics, MicroMetrics,
    Report, ScoreOptions, SetMetrics,
};
pub use split::{score_split, InvalidPredictions, SplitMetrics, RANKING_KS};
pub use threshold::{
    apply_threshold, tune_threshold, tune_threshold_on, ThresholdChoice, ThresholdGrid,
    ThresholdPoint, RULE as THRESHOLD_RULE,
};

/// Convention of micro P/R/F1.
pub const MICRO: &str = "micro: sums of TP/FP/FN over all (document, code) pairs; \
     F1 = TP / (TP + (FP + FN) / 2) — Edin et al. 2023";
/// Macro average over the codes present in the split's gold labels.
pub const MACRO_GOLD: &str = "codes present in the split's gold labels — Edin et al. 2023";
/// Macro average over the codes with any TP, FP or FN.
pub const MACRO_NONZERO: &str = "codes with TP+FP+FN > 0 — Code Like Humans";
/// Macro average over every code of a label space.
pub const MACRO_LABEL_SPACE: &str = "every code of the label space — older papers; LLM4ICD";

/// What went wrong, in terms the caller can fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "{what}: gold has {gold} documents but predictions have {pred}; \
         give exactly one prediction list per gold document, in the same order"
    )]
    LengthMismatch {
        what: &'static str,
        gold: usize,
        pred: usize,
    },
    #[error("more than {max} distinct codes; metrics ids are limited to {max}")]
    TooManyCodes { max: usize },
    #[error("code `{code}` appears twice in the scored code list; each code must be listed once")]
    DuplicateCode { code: String },
    #[error(
        "document {doc}: code `{code}` is scored twice; give each code one score per document"
    )]
    DuplicateScoredCode { doc: usize, code: String },
    #[error(
        "document {doc}: code `{code}` is scored but is not in the code list; \
         add it to the code list or drop its score"
    )]
    UnknownScoredCode { doc: usize, code: String },
    #[error("document {doc}: {found} scores for {expected} codes; give one score per code of the code list")]
    ScoreRowLength {
        doc: usize,
        expected: usize,
        found: usize,
    },
    #[error("document {doc}: score for code `{code}` is {value}; scores must be finite numbers")]
    NonFiniteScore {
        doc: usize,
        code: String,
        value: f64,
    },
    #[error("k must be at least 1 (got {k})")]
    InvalidK { k: usize },
    #[error(
        "document {doc}: span ({code}, {start}, {end}) is empty or reversed; \
         spans are half-open character ranges [start, end) with start < end"
    )]
    InvalidSpan {
        doc: usize,
        code: String,
        start: usize,
        end: usize,
    },
    #[error("bootstrap: {reason}")]
    InvalidBootstrap { reason: String },
}

/// `num / den`, or 0 when the denominator is 0 (the "defined as 0" convention).
#[inline]
pub(crate) fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// F1 from counts: 2tp / (2tp + fp + fn) = tp / (tp + (fp + fn) / 2); 0 when all are 0.
#[inline]
pub(crate) fn f1_counts(tp: u64, fp: u64, fn_: u64) -> f64 {
    ratio(2.0 * tp as f64, (2 * tp + fp + fn_) as f64)
}
