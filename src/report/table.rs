//! The results of finished runs as one polars DataFrame (one row per run and
//! split), and the paper-style Markdown and CSV tables made from it.

use super::gather::FinishedRun;
use super::{markdown_table, pct, ReportError};
use crate::config::MixStrategy;
use crate::metrics::SetMetrics;
use crate::plan::SystemSpec;
use polars::prelude::*;
use std::path::Path;

/// The CSV's columns that hold a score in [0, 1] (fractions, as in metrics.json).
pub const SCORE_COLUMNS: [&str; 7] = ["micro_f1", "macro_f1", "seen_micro_f1", "seen_macro_f1", "unseen_micro_f1", "unseen_macro_f1", "evidence_f1_overlap"];

/// One run on one split, before it becomes a DataFrame row.
struct Row {
    experiment: String,
    run: String,
    system: String,
    seed: u64,
    sweep: String,
    split: String,
    dataset: String,
    fingerprint: String,
    n_docs: u64,
    micro: [Option<f64>; 3],
    macro_: [Option<f64>; 3],
    macro_nonzero: f64,
    seen_micro: Option<f64>,
    seen_macro: Option<f64>,
    unseen_micro: Option<f64>,
    unseen_macro: [Option<f64>; 3],
    unseen_codes: u64,
    evidence_exact: Option<f64>,
    evidence_overlap: Option<f64>,
    /// Predicted strings outside the code set and their share of all predicted codes (None for older metrics.json).
    invalid: Option<(u64, f64)>,
    train_tokens: Option<u64>,
    train_seconds: Option<f64>,
    run_seconds: f64,
    span_ratio: Option<f64>,
    dir: String,
}

/// A seen/unseen partition's scores, or nothing where the split has no codes of it.
fn active(m: Option<&SetMetrics>) -> Option<&SetMetrics> {
    m.filter(|m| m.n_gold_labels + m.n_pred_labels > 0)
}

/// The data set a run used, by source kind (`synthetic`, `mimic`, `mdace`, `codiesp`, `jsonl`).
pub fn dataset_kind(r: &FinishedRun) -> String {
    let value = serde_json::to_value(&r.record.run.spec.data.config.source).unwrap_or_default();
    value.get("kind").and_then(|k| k.as_str()).unwrap_or("unknown").to_string()
}

/// Which codes a run's data scores: `diagnoses+procedures`, `diagnoses` or `procedures`
/// (MIMIC defaults to Edin et al.'s target, diagnoses + procedures; MDACE carries both).
pub fn dataset_target(r: &FinishedRun) -> String {
    let value = serde_json::to_value(&r.record.run.spec.data.config.source).unwrap_or_default();
    let codes = value.get("codes").and_then(|k| k.as_str());
    let target = match (value.get("kind").and_then(|k| k.as_str()), codes) {
        (_, Some("both")) | (Some("mdace"), _) => "diagnoses+procedures",
        (_, Some("procedure")) => "procedures",
        _ => "diagnoses",
    };
    target.to_string()
}

/// Share of span examples in the training mix (None for baselines and zero-shot runs).
pub fn span_ratio(r: &FinishedRun) -> Option<f64> {
    match &r.record.run.spec.system {
        SystemSpec::Model(m) if r.record.metrics.cost.is_some() => match m.mix.strategy {
            MixStrategy::DocumentOnly => Some(0.0),
            MixStrategy::SpanOnly => Some(1.0),
            MixStrategy::Mixed | MixStrategy::Curriculum => Some(m.mix.span_ratio),
        },
        _ => None,
    }
}

fn rows(runs: &[FinishedRun]) -> Vec<Row> {
    let mut out = Vec::new();
    for r in runs {
        let rec = &r.record;
        let order = &rec.run.spec.eval.splits;
        let mut splits: Vec<_> = rec.metrics.splits.iter().collect();
        splits.sort_by_key(|(s, _)| order.iter().position(|o| o == *s).unwrap_or(usize::MAX));
        for (split, m) in splits {
            let s = &m.sets;
            let ci = s.overall.ci.as_ref();
            let unseen = active(s.unseen.as_ref());
            let unseen_ci = unseen.and_then(|u| u.ci.as_ref());
            out.push(Row {
                experiment: rec.run.spec.experiment.clone(),
                run: rec.run.label(),
                system: rec.run.spec.system_name(),
                seed: rec.run.spec.seed,
                sweep: rec.run.spec.sweep.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                split: split.clone(),
                dataset: dataset_kind(r),
                fingerprint: r.fingerprint().to_string(),
                n_docs: m.n_docs as u64,
                micro: [Some(s.overall.micro.f1), ci.map(|c| c.micro_f1.lower), ci.map(|c| c.micro_f1.upper)],
                macro_: [Some(s.overall.macro_gold.f1), ci.map(|c| c.macro_f1_gold.lower), ci.map(|c| c.macro_f1_gold.upper)],
                macro_nonzero: s.overall.macro_nonzero.f1,
                seen_micro: active(s.seen.as_ref()).map(|x| x.micro.f1),
                seen_macro: active(s.seen.as_ref()).map(|x| x.macro_gold.f1),
                unseen_micro: unseen.map(|x| x.micro.f1),
                unseen_macro: [unseen.map(|x| x.macro_gold.f1), unseen_ci.map(|c| c.macro_f1_gold.lower), unseen_ci.map(|c| c.macro_f1_gold.upper)],
                unseen_codes: s.unseen.as_ref().map_or(0, |x| x.macro_gold.n_codes as u64),
                evidence_exact: m.evidence.as_ref().map(|e| e.exact.f1),
                evidence_overlap: m.evidence.as_ref().map(|e| e.overlap.f1),
                invalid: m.invalid_predictions.as_ref().map(|i| (i.count as u64, i.rate)),
                train_tokens: rec.metrics.cost.as_ref().map(|c| c.input_tokens),
                train_seconds: rec.metrics.cost.as_ref().map(|c| c.train_seconds),
                run_seconds: rec.metrics.seconds,
                span_ratio: span_ratio(r),
                dir: rec.run.dir.display().to_string(),
            });
        }
    }
    out
}

/// One row per run and split; scores are fractions in [0, 1] exactly as in metrics.json.
pub fn results_frame(runs: &[FinishedRun]) -> PolarsResult<DataFrame> {
    let rows = rows(runs);
    let s = |name: &str, f: &dyn Fn(&Row) -> String| Column::from(Series::new(name.into(), rows.iter().map(f).collect::<Vec<_>>()));
    let u = |name: &str, f: &dyn Fn(&Row) -> u64| Column::from(Series::new(name.into(), rows.iter().map(f).collect::<Vec<_>>()));
    let ou = |name: &str, f: &dyn Fn(&Row) -> Option<u64>| Column::from(Series::new(name.into(), rows.iter().map(f).collect::<Vec<_>>()));
    let of = |name: &str, f: &dyn Fn(&Row) -> Option<f64>| Column::from(Series::new(name.into(), rows.iter().map(f).collect::<Vec<_>>()));
    DataFrame::new_infer_height(vec![
        s("experiment", &|r| r.experiment.clone()),
        s("run", &|r| r.run.clone()),
        s("system", &|r| r.system.clone()),
        u("seed", &|r| r.seed),
        s("sweep", &|r| r.sweep.clone()),
        s("split", &|r| r.split.clone()),
        s("dataset", &|r| r.dataset.clone()),
        u("n_docs", &|r| r.n_docs),
        of("micro_f1", &|r| r.micro[0]),
        of("micro_f1_ci_low", &|r| r.micro[1]),
        of("micro_f1_ci_high", &|r| r.micro[2]),
        of("macro_f1", &|r| r.macro_[0]),
        of("macro_f1_ci_low", &|r| r.macro_[1]),
        of("macro_f1_ci_high", &|r| r.macro_[2]),
        of("macro_f1_nonzero", &|r| Some(r.macro_nonzero)),
        of("seen_micro_f1", &|r| r.seen_micro),
        of("seen_macro_f1", &|r| r.seen_macro),
        of("unseen_micro_f1", &|r| r.unseen_micro),
        of("unseen_macro_f1", &|r| r.unseen_macro[0]),
        of("unseen_macro_f1_ci_low", &|r| r.unseen_macro[1]),
        of("unseen_macro_f1_ci_high", &|r| r.unseen_macro[2]),
        u("unseen_codes", &|r| r.unseen_codes),
        of("evidence_f1_exact", &|r| r.evidence_exact),
        of("evidence_f1_overlap", &|r| r.evidence_overlap),
        ou("invalid_predictions", &|r| r.invalid.map(|i| i.0)),
        of("invalid_rate", &|r| r.invalid.map(|i| i.1)),
        ou("train_tokens", &|r| r.train_tokens),
        of("train_seconds", &|r| r.train_seconds),
        of("run_seconds", &|r| Some(r.run_seconds)),
        of("span_ratio", &|r| r.span_ratio),
        s("fingerprint", &|r| r.fingerprint.clone()),
        s("dir", &|r| r.dir.clone()),
    ])
}

/// Writes the frame as CSV (header row, full-precision numbers, empty cells where a value does not apply).
pub fn write_csv(df: &DataFrame, path: &Path) -> Result<(), ReportError> {
    let fail = |e: &dyn std::fmt::Display| ReportError::Write { path: path.to_path_buf(), message: e.to_string() };
    let mut file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let mut df = df.clone();
    CsvWriter::new(&mut file).include_header(true).finish(&mut df).map_err(|e| fail(&e))
}

fn f64_col(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    match df.column(name).ok().and_then(|c| c.as_materialized_series().cast(&DataType::Float64).ok()) {
        Some(s) => s.f64().map(|ca| ca.iter().collect()).unwrap_or_else(|_| vec![None; df.height()]),
        None => vec![None; df.height()],
    }
}

pub(crate) fn str_col(df: &DataFrame, name: &str) -> Vec<String> {
    match df.column(name).ok().and_then(|c| c.str().ok().map(|ca| ca.iter().map(|v| v.unwrap_or_default().to_string()).collect::<Vec<_>>())) {
        Some(v) => v,
        None => vec![String::new(); df.height()],
    }
}

/// Which rows hold the best value of a column among the rows of their group (one data set and
/// split, see [`comparable`]): the highest score, or the lowest cost.
fn best_rows(values: &[Option<f64>], groups: &[String], lower_is_better: bool) -> Vec<bool> {
    values
        .iter()
        .zip(groups)
        .map(|(v, group)| {
            let Some(v) = v else { return false };
            let others: Vec<f64> = values.iter().zip(groups).filter(|(_, g)| *g == group).filter_map(|(o, _)| *o).collect();
            let best = if lower_is_better { others.iter().copied().fold(f64::INFINITY, f64::min) } else { others.iter().copied().fold(f64::NEG_INFINITY, f64::max) };
            // More than one row must compete for a mark to mean anything.
            others.len() > 1 && *v == best
        })
        .collect()
}

/// The group a row competes in for the best mark: its data set (source kind and document
/// count, so two synthetic benchmarks of different sizes are not ranked together) and split.
fn comparable(df: &DataFrame) -> Vec<String> {
    let datasets = str_col(df, "dataset");
    let splits = str_col(df, "split");
    let docs = f64_col(df, "n_docs");
    (0..df.height()).map(|i| format!("{} / {} docs / {}", datasets[i], docs[i].map_or("?".into(), |d| format!("{d:.0}")), splits[i])).collect()
}

/// Columns of the paper-style table, with how each cell is drawn from the frame.
struct Col {
    header: &'static str,
    value: &'static str,
    ci: Option<(&'static str, &'static str)>,
    lower_is_better: bool,
    format: fn(f64) -> String,
    /// Whether the best value is marked (run time is not a property of the method).
    mark: bool,
}

fn tokens(x: f64) -> String {
    format!("{:.2}M", x / 1e6)
}

fn seconds(x: f64) -> String {
    if x >= 100.0 { format!("{x:.0} s") } else { format!("{x:.1} s") }
}

const COLS: [Col; 12] = [
    Col { header: "micro-F1 [95% CI]", value: "micro_f1", ci: Some(("micro_f1_ci_low", "micro_f1_ci_high")), lower_is_better: false, format: pct, mark: true },
    Col { header: "macro-F1 [95% CI]", value: "macro_f1", ci: Some(("macro_f1_ci_low", "macro_f1_ci_high")), lower_is_better: false, format: pct, mark: true },
    Col { header: "seen micro", value: "seen_micro_f1", ci: None, lower_is_better: false, format: pct, mark: true },
    Col { header: "seen macro", value: "seen_macro_f1", ci: None, lower_is_better: false, format: pct, mark: true },
    Col { header: "unseen micro", value: "unseen_micro_f1", ci: None, lower_is_better: false, format: pct, mark: true },
    Col { header: "unseen macro [95% CI]", value: "unseen_macro_f1", ci: Some(("unseen_macro_f1_ci_low", "unseen_macro_f1_ci_high")), lower_is_better: false, format: pct, mark: true },
    Col { header: "evidence F1 exact", value: "evidence_f1_exact", ci: None, lower_is_better: false, format: pct, mark: true },
    Col { header: "evidence F1 overlap", value: "evidence_f1_overlap", ci: None, lower_is_better: false, format: pct, mark: true },
    Col { header: "invalid codes", value: "invalid_rate", ci: None, lower_is_better: true, format: pct, mark: false },
    Col { header: "train tokens", value: "train_tokens", ci: None, lower_is_better: true, format: tokens, mark: true },
    Col { header: "train time", value: "train_seconds", ci: None, lower_is_better: true, format: seconds, mark: true },
    Col { header: "run time", value: "run_seconds", ci: None, lower_is_better: true, format: seconds, mark: false },
];

/// The headline table (Markdown) and its rows as cells, best value per column and split in bold.
pub struct PaperTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub footnote: String,
}

impl PaperTable {
    pub fn markdown(&self) -> String {
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        format!("{}\n{}\n", markdown_table(&header, &self.rows), self.footnote)
    }
}

pub const FOOTNOTE: &str = "Percent. micro-F1 = TP / (TP + (FP+FN)/2) (Edin et al. 2023). macro-F1 averages per-code F1 over the codes present in the split's gold labels \
     (Edin et al. 2023; results.csv also has `macro_f1_nonzero`, over codes with TP+FP+FN > 0 as in Code Like Humans). Seen = codes in training documents' labels; \
     unseen = the rest. [95% CI]: percentile bootstrap over documents (metrics.json). Evidence F1: predicted spans against gold spans of the same code, \
     exact offsets / overlapping characters. Invalid codes: share of predicted codes outside the code set, each scored as a false positive \
     (results.csv: `invalid_predictions`, `invalid_rate`). Train tokens: input tokens fed in training; train time: training wall time; run time: the whole run. \
     **Bold**: best in its column among the runs on the same data set and split (highest score, lowest cost). –: does not apply.";

/// The paper-style table of the frame's rows.
pub fn paper_table(df: &DataFrame) -> PaperTable {
    let splits = str_col(df, "split");
    let runs = str_col(df, "run");
    let fps = str_col(df, "fingerprint");
    let mut header = vec!["run".to_string(), "split".to_string(), "docs".to_string()];
    header.extend(COLS.iter().map(|c| c.header.to_string()));
    header.push("fingerprint".into());
    let docs = f64_col(df, "n_docs");
    let groups = comparable(df);
    let mut rows: Vec<Vec<String>> = (0..df.height()).map(|i| vec![runs[i].clone(), splits[i].clone(), docs[i].map_or("–".into(), |d| format!("{d:.0}"))]).collect();
    for col in &COLS {
        let values = f64_col(df, col.value);
        let best = if col.mark { best_rows(&values, &groups, col.lower_is_better) } else { vec![false; df.height()] };
        let (lo, hi) = col.ci.map_or((vec![None; df.height()], vec![None; df.height()]), |(l, h)| (f64_col(df, l), f64_col(df, h)));
        for i in 0..df.height() {
            let cell = match values[i] {
                None => "–".to_string(),
                Some(v) => {
                    let shown = if best[i] { format!("**{}**", (col.format)(v)) } else { (col.format)(v) };
                    match (lo[i], hi[i]) {
                        (Some(l), Some(h)) => format!("{shown} [{}–{}]", (col.format)(l), (col.format)(h)),
                        _ => shown,
                    }
                }
            };
            rows[i].push(cell);
        }
    }
    for (i, row) in rows.iter_mut().enumerate() {
        row.push(fps[i].chars().take(12).collect());
    }
    PaperTable { header, rows, footnote: FOOTNOTE.to_string() }
}

#[cfg(test)]
mod tests {
    use super::best_rows;

    #[test]
    fn best_is_per_group_and_needs_a_competitor() {
        let groups: Vec<String> = ["test", "test", "val", "test"].iter().map(|s| s.to_string()).collect();
        let v = [Some(0.5), Some(0.7), Some(0.9), None];
        assert_eq!(best_rows(&v, &groups, false), vec![false, true, false, false]);
        assert_eq!(best_rows(&v, &groups, true), vec![true, false, false, false]);
        // Ties are all marked.
        let t = [Some(0.7), Some(0.7), None, Some(0.1)];
        assert_eq!(best_rows(&t, &groups, false), vec![true, true, false, false]);
    }

    #[test]
    fn best_is_never_decided_across_data_sets() {
        // Two data sets, one split: the 0.9 on mimic does not outshine the synthetic runs.
        let groups: Vec<String> = ["synthetic/test", "synthetic/test", "mimic/test", "mimic/test"].iter().map(|s| s.to_string()).collect();
        let v = [Some(0.5), Some(0.7), Some(0.9), Some(0.2)];
        assert_eq!(best_rows(&v, &groups, false), vec![false, true, true, false]);
        // A lone run on its data set has no competitor, however good.
        let lone: Vec<String> = ["synthetic/test", "synthetic/test", "mimic/test"].iter().map(|s| s.to_string()).collect();
        assert_eq!(best_rows(&[Some(0.5), Some(0.7), Some(0.9)], &lone, false), vec![false, true, false]);
    }
}
