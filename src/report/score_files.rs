//! `icdbench score`: another tool's predictions scored exactly as a run scores its own
//! (`metrics::score_split`), and the text form of one split's scores.

use super::{markdown_table, ReportError};
use crate::data::jsonl;
use crate::data::{self, Document, Split};
use crate::metrics::{self, split::score_split, SplitMetrics};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What to score: a gold file, a predictions file, and how.
pub struct ScoreRequest<'a> {
    pub gold: &'a Path,
    pub pred: &'a Path,
    /// Training documents, whose codes are the seen codes (else the gold file's training split).
    pub train: Option<&'a Path>,
    pub split: Split,
    /// `builtin`, `builtin+pcs` or a code table file.
    pub code_table: &'a str,
    pub bootstrap: usize,
    pub seed: u64,
}

/// The scores, the documents scored, and what the user should read beside them.
pub struct ScoredFiles {
    pub scored: SplitMetrics,
    pub n_docs: usize,
    pub warnings: Vec<String>,
}

fn input(e: impl std::fmt::Display) -> ReportError {
    ReportError::Input(e.to_string())
}

/// Scores `r.pred` against the `r.split` documents of `r.gold`: one prediction per gold
/// document in gold order (a document without one predicts nothing, a prediction for no
/// document is counted and ignored); files that do not pair are refused.
pub fn score_files(r: &ScoreRequest<'_>) -> Result<ScoredFiles, ReportError> {
    let (gold, pred, split) = (r.gold, r.pred, r.split);
    let mut warnings = Vec::new();
    let table_config = crate::data::Data { code_table: r.code_table.to_string(), ..Default::default() };
    let codes = data::code_table(&table_config, Path::new(".")).map_err(input)?;
    let (gold_docs, gold_report) = jsonl::read_documents(r.gold, Some(split), &codes).map_err(input)?;
    let preds = jsonl::read_predictions(r.pred, &codes).map_err(input)?;
    if !gold_report.is_clean() {
        warnings.push(format!("warning: {}: {}", gold.display(), gold_report.summary()));
    }
    let seen: HashSet<String> = match r.train {
        Some(t) => jsonl::read_documents(t, Some(Split::Train), &codes).map_err(input)?.0.iter().flat_map(|d| d.codes.iter().map(|c| c.to_string())).collect(),
        None => gold_docs.iter().filter(|d| d.split == Split::Train).flat_map(|d| d.codes.iter().map(|c| c.to_string())).collect(),
    };
    let docs: Vec<&Document> = gold_docs.iter().filter(|d| d.split == split).collect();
    if docs.is_empty() {
        return Err(ReportError::Input(format!("{}: no documents of split {split}; choose the split to score with --split", gold.display())));
    }
    let by_id: HashMap<&str, &jsonl::Prediction> = preds.iter().map(|p| (p.id.as_str(), p)).collect();
    let known: HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    let stray = preds.iter().filter(|p| !known.contains(p.id.as_str())).count();
    if preds.is_empty() {
        return Err(ReportError::Input(format!("{}: no predictions; write one line per document of {}", pred.display(), gold.display())));
    }
    // Predictions for other documents entirely are a wrong pairing of files, not a system that predicted nothing.
    if stray == preds.len() {
        return Err(ReportError::Input(format!(
            "{}: none of its {} predictions names a document of the {split} split of {} (first id {:?}); score the predictions against their own gold file, or choose the split with --split",
            pred.display(),
            preds.len(),
            gold.display(),
            preds[0].id
        )));
    }
    if stray > 0 {
        warnings.push(format!("warning: {}: {stray} predictions name documents not in the {split} split of {}; ignored", pred.display(), gold.display()));
    }
    // One prediction per gold document, in order; a document without one predicts nothing.
    let aligned: Vec<jsonl::Prediction> = docs.iter().map(|d| by_id.get(d.id.as_str()).map_or_else(|| jsonl::Prediction { id: d.id.clone(), ..Default::default() }, |p| (*p).clone())).collect();
    let missing = docs.iter().filter(|d| !by_id.contains_key(d.id.as_str())).count();
    if missing > 0 {
        warnings.push(format!("warning: {missing} of {} documents have no prediction; they count as predicting nothing", docs.len()));
    }
    let seen = (!seen.is_empty()).then_some(seen);
    let mut scored = score_split(&docs, &aligned, r.bootstrap, r.seed, seen, None).map_err(|e| ReportError::Input(format!("{}: {e}", pred.display())))?;
    // A tool that writes no evidence at all is not scored on evidence (a run's model is, having been asked for it).
    if scored.evidence.is_some() && preds.iter().all(|p| p.evidence.is_empty()) {
        warnings.push(format!("note: {} carries no evidence spans; evidence scores left out", pred.display()));
        scored.evidence = None;
    }
    Ok(ScoredFiles { n_docs: docs.len(), scored, warnings })
}

/// The text form of one split's scores: sets, evidence and ranking where present, invalid predictions.
pub fn split_table(scored: &SplitMetrics) -> String {
    let report = &scored.sets;
    let row = |name: &str, m: Option<&metrics::SetMetrics>| -> Vec<String> {
        match m {
            Some(m) => vec![
                name.into(),
                format!("{:.2}", 100.0 * m.micro.precision),
                format!("{:.2}", 100.0 * m.micro.recall),
                match &m.ci {
                    Some(ci) => format!("{:.2} [{:.2}–{:.2}]", 100.0 * m.micro.f1, 100.0 * ci.micro_f1.lower, 100.0 * ci.micro_f1.upper),
                    None => format!("{:.2}", 100.0 * m.micro.f1),
                },
                format!("{:.2}", 100.0 * m.macro_gold.f1),
                format!("{:.2}", 100.0 * m.macro_nonzero.f1),
                m.macro_gold.n_codes.to_string(),
                format!("{:.2}", 100.0 * m.exact_match.ratio),
            ],
            None => vec![name.into(), "–".into(), "–".into(), "–".into(), "–".into(), "–".into(), "–".into(), "–".into()],
        }
    };
    let rows = vec![row("overall", Some(&report.overall)), row("seen", report.seen.as_ref()), row("unseen", report.unseen.as_ref())];
    let mut out = markdown_table(&["codes", "micro-P", "micro-R", "micro-F1 [95% CI]", "macro-F1 (gold codes)", "macro-F1 (TP+FP+FN>0)", "codes", "exact match"], &rows);
    out.push_str("Percent. micro-F1 = TP/(TP+(FP+FN)/2) (Edin et al. 2023); macro-F1 under two conventions as named.\n");
    if let Some(inv) = &scored.invalid_predictions {
        out.push_str(&format!("Invalid predictions: {} of {} predicted codes ({:.2}%) are not in the code set; each counts as a false positive above", inv.count, inv.predicted, 100.0 * inv.rate));
        let mut frequent: Vec<(&String, &usize)> = inv.examples.iter().collect();
        frequent.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = frequent.iter().take(5).map(|(s, n)| format!("{s} ×{n}")).collect();
        out.push_str(&if shown.is_empty() { ".\n".to_string() } else { format!(" (most frequent: {}).\n", shown.join(", ")) });
    }
    if let Some(ev) = &scored.evidence {
        out.push_str(&format!("\nEvidence ({} documents):\n", ev.n_docs));
        let (x, o) = (&ev.exact, &ev.overlap);
        let rows = vec![
            vec!["exact spans".into(), format!("{:.2}", 100.0 * x.precision), format!("{:.2}", 100.0 * x.recall), format!("{:.2}", 100.0 * x.f1), format!("{} / {} / {} spans", x.n_matched, x.n_pred_spans, x.n_gold_spans)],
            vec!["overlapping characters".into(), format!("{:.2}", 100.0 * o.precision), format!("{:.2}", 100.0 * o.recall), format!("{:.2}", 100.0 * o.f1), format!("{} / {} / {} chars", o.overlap_chars, o.pred_chars, o.gold_chars)],
        ];
        out.push_str(&markdown_table(&["evidence", "precision", "recall", "F1", "matched / predicted / gold"], &rows));
    }
    if let Some(ranking) = &scored.ranking {
        out.push_str(&format!("\nScored predictions ({} documents, {} codes scored):\n", ranking.n_docs, ranking.n_listed_codes));
        let mut rows: Vec<Vec<String>> = Vec::new();
        let at_k = ranking.precision_at_k.iter().map(|a| ("P", a)).chain(ranking.recall_at_k.iter().map(|a| ("R", a)));
        for (name, a) in at_k {
            rows.push(vec![format!("{name}@{}", a.k), format!("{:.2}", 100.0 * a.value)]);
        }
        rows.push(vec!["R-precision".into(), format!("{:.2}", 100.0 * ranking.r_precision.value)]);
        rows.push(vec!["mAP".into(), format!("{:.2}", 100.0 * ranking.mean_average_precision.value)]);
        for (name, auc) in [("AUC micro", &ranking.auc_micro), ("AUC macro", &ranking.auc_macro)] {
            rows.push(vec![name.into(), auc.value.map_or("–".into(), |v| format!("{:.2}", 100.0 * v))]);
        }
        out.push_str(&markdown_table(&["metric", "value"], &rows));
    }
    out
}

