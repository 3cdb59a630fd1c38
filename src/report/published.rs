//! Published figures (baselines/published.toml), so a report can put "paper says"
//! beside "we measured" where a run's data set matches.

use super::gather::FinishedRun;
use super::markdown_table;
use super::table::{dataset_kind, dataset_target};
use serde::Deserialize;

/// The checked-in file, compiled in so a report finds it from any folder.
pub const PUBLISHED_TOML: &str = include_str!("../../baselines/published.toml");

/// One published figure; scores in percent as published.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    pub source: String,
    pub year: u32,
    pub dataset: String,
    /// icdbench's `data.source.kind` that this data set is read with.
    pub data_kind: String,
    pub split: String,
    /// Which codes the figure scores: `diagnoses+procedures`, `diagnoses`, `procedures`, or
    /// `not stated`; a report places a figure only beside runs of the same target.
    pub target: String,
    pub system: String,
    pub micro_f1: Option<f64>,
    pub macro_f1: Option<f64>,
    pub macro_convention: String,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    figure: Vec<Figure>,
}

/// Every published figure; an error names the file and the line to fix.
pub fn figures() -> Result<Vec<Figure>, String> {
    toml::from_str::<File>(PUBLISHED_TOML).map(|f| f.figure).map_err(|e| format!("baselines/published.toml: {e}"))
}

/// A Markdown section: for each data set of the runs, what papers report and what we measured on it.
pub fn section(runs: &[FinishedRun]) -> String {
    let figures = match figures() {
        Ok(f) => f,
        Err(e) => return format!("Published figures unavailable: {e}\n"),
    };
    let mut kinds: Vec<(String, String)> = runs.iter().map(|r| (dataset_kind(r), dataset_target(r))).collect();
    kinds.sort();
    kinds.dedup();
    let mut out = String::new();
    let mut unmatched = Vec::new();
    for (kind, target) in &kinds {
        let papers: Vec<&Figure> = figures.iter().filter(|f| &f.data_kind == kind && &f.target == target).collect();
        let other_targets: Vec<&Figure> = figures.iter().filter(|f| &f.data_kind == kind && &f.target != target).collect();
        if papers.is_empty() {
            if other_targets.is_empty() {
                unmatched.push(kind.clone());
            } else {
                out.push_str(&format!(
                    "Data set `{kind}`, target {target}: no published figure scores this target ({} figures score {}); none is placed beside these runs.\n\n",
                    other_targets.len(),
                    {
                        let mut t: Vec<&str> = other_targets.iter().map(|f| f.target.as_str()).collect();
                        t.sort();
                        t.dedup();
                        t.join(", ")
                    }
                ));
            }
            continue;
        }
        let kind = &format!("{kind}`, target `{target}");
        let fmt = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.1}"));
        let mut rows: Vec<Vec<String>> = papers
            .iter()
            .map(|f| vec!["paper says".into(), f.system.clone(), f.split.clone(), fmt(f.micro_f1), fmt(f.macro_f1), f.macro_convention.clone(), format!("{} — {}", f.source, f.dataset)])
            .collect();
        for r in runs.iter().filter(|r| dataset_kind(r) == papers[0].data_kind && &dataset_target(r) == target) {
            for (split, m) in &r.record.metrics.splits {
                rows.push(vec![
                    "we measured".into(),
                    r.record.run.label(),
                    split.clone(),
                    format!("{:.1}", 100.0 * m.sets.overall.micro.f1),
                    format!("{:.1}", 100.0 * m.sets.overall.macro_gold.f1),
                    "codes present in the split's gold labels (Edin et al. 2023)".into(),
                    format!("run {}", r.short()),
                ]);
            }
        }
        out.push_str(&format!("Data set `{kind}`:\n\n"));
        out.push_str(&markdown_table(&["", "system", "split", "micro-F1", "macro-F1", "macro-F1 averages over", "source"], &rows));
        out.push('\n');
    }
    if !unmatched.is_empty() {
        out.push_str(&format!(
            "No published figures for data set {} (baselines/published.toml lists {}); the synthetic benchmark has none by construction.\n",
            unmatched.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
            {
                let mut k: Vec<&str> = figures.iter().map(|f| f.data_kind.as_str()).collect();
                k.dedup();
                k.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_file_parses_with_the_reference_figures() {
        let f = figures().unwrap();
        let plm = f.iter().find(|f| f.system == "PLM-ICD" && f.data_kind == "mimic").unwrap();
        assert_eq!((plm.micro_f1, plm.macro_f1), (Some(58.5), Some(21.1)));
        assert!(f.iter().all(|f| f.data_kind != "synthetic"));
        assert!(f.iter().all(|f| !f.macro_convention.is_empty() && !f.split.is_empty()));
    }
}
