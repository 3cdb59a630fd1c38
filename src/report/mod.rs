//! Tables of results: printed after a run and written beside its results;
//! and `icdbench report` / `icdbench compare` over finished runs: tables (polars),
//! plots (plotters), an HTML page, published figures and paired significance tests.

pub mod compare;
pub mod data_stats;
pub mod gather;
pub mod html;
pub mod plot;
pub mod published;
pub mod score_files;
pub mod table;

use crate::metrics::split::FEW_UNSEEN_CODES;
use crate::metrics::{InvalidPredictions, Report, SetMetrics, SplitMetrics};
use crate::results::{Cost, RunRecord};
use std::time::SystemTime;

/// What went wrong while reporting; `Input` is the user's to fix (exit 2), the rest failed (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Input(String),
    #[error("{path}: {message}")]
    Write { path: std::path::PathBuf, message: String },
    #[error("{0}")]
    Failed(String),
}

impl ReportError {
    pub fn is_user_input(&self) -> bool {
        matches!(self, ReportError::Input(_))
    }
}

/// What `icdbench report` wrote.
#[derive(Debug)]
pub struct Written {
    pub out: std::path::PathBuf,
    pub files: Vec<std::path::PathBuf>,
    pub runs: usize,
    pub warnings: Vec<String>,
    /// The results table, also printed.
    pub markdown: String,
}

/// Where a report goes by default: beside the runs when they share one experiment folder, else `<results>/report`.
fn default_out(runs: &[gather::FinishedRun], results_root: &std::path::Path) -> std::path::PathBuf {
    let parents: Vec<Option<&std::path::Path>> = runs.iter().map(|r| r.record.run.dir.parent()).collect();
    match parents.first() {
        Some(Some(first)) if parents.iter().all(|p| p == &Some(*first)) => first.join("report"),
        _ => results_root.join("report"),
    }
}

/// `icdbench report`: gathers the finished runs of `inputs` and writes results.md, results.csv,
/// the plots (PNG and SVG) and index.html into `out` (default: see [`default_out`]).
/// Runs computed by older code than the newest run of their spec are left out unless `all_versions`.
pub fn write_report(inputs: &[std::path::PathBuf], results_root: &std::path::Path, out: Option<&std::path::Path>, all_versions: bool) -> Result<Written, ReportError> {
    let inputs: Vec<std::path::PathBuf> = if inputs.is_empty() { vec![results_root.to_path_buf()] } else { inputs.to_vec() };
    let (runs, mut warnings) = gather::gather(&inputs, results_root, all_versions)?;
    if runs.is_empty() {
        let named: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(ReportError::Input(format!("{}: no finished runs found; `icdbench run EXPERIMENT.toml` makes them", named.join(", "))));
    }
    let out = out.map(std::path::Path::to_path_buf).unwrap_or_else(|| default_out(&runs, results_root));
    std::fs::create_dir_all(&out).map_err(|e| ReportError::Write { path: out.clone(), message: e.to_string() })?;
    let df = table::results_frame(&runs).map_err(|e| ReportError::Failed(format!("building the results table: {e}")))?;
    let csv = out.join("results.csv");
    table::write_csv(&df, &csv)?;
    let paper = table::paper_table(&df);
    let plots = plot::write_plots(&runs, &out)?;

    let mut experiments: Vec<&str> = runs.iter().map(|r| r.record.run.spec.experiment.as_str()).collect();
    experiments.dedup();
    let title = format!("Results: {}", experiments.join(", "));
    let mut md = format!("# {title}\n\n{} finished runs. Table also in results.csv (fractions, full precision).\n\n", runs.len());
    md.push_str(&paper.markdown());
    let dated: Vec<(&RunRecord, SystemTime)> = runs.iter().map(|r| (&r.record, r.finished)).collect();
    if let Some(seeds) = over_seeds(&dated) {
        md.push_str(&format!("\n## Over seeds\n\n{}", seeds.markdown));
        warnings.extend(seeds.superseded_note());
    }
    let records: Vec<RunRecord> = runs.iter().map(|r| r.record.clone()).collect();
    if let Some(by_mention) = mention_table(&records) {
        md.push_str(&format!("\n## Where the hits come from\n\n{by_mention}"));
    }
    if let Some(diagnostics) = diagnostics_table(&records) {
        md.push_str(&format!("\n## Unseen codes and the span probe\n\n{diagnostics}"));
    }
    md.push_str(&format!("\n## Paper says / we measured\n\n{}", published::section(&runs)));
    if !plots.is_empty() {
        md.push_str("\n## Plots\n\n");
        for (name, files) in &plots {
            if let Some(png) = files.iter().find(|f| f.extension().is_some_and(|e| e == "png")) {
                md.push_str(&format!("![{name}]({})\n", png.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()));
            }
        }
    }
    md.push_str("\n## Runs\n\n");
    for r in &runs {
        md.push_str(&format!("- `{}` {} — {}\n", r.fingerprint(), r.record.run.label(), r.record.run.dir.display()));
    }
    if !warnings.is_empty() {
        md.push_str("\n## Left out\n\n");
        for w in &warnings {
            md.push_str(&format!("- {w}\n"));
        }
    }
    let write = |path: &std::path::Path, text: &str| std::fs::write(path, text).map_err(|e| ReportError::Write { path: path.to_path_buf(), message: e.to_string() });
    let md_path = out.join("results.md");
    write(&md_path, &md)?;
    let mut svgs = Vec::new();
    for (name, files) in &plots {
        if let Some(svg) = files.iter().find(|f| f.extension().is_some_and(|e| e == "svg")) {
            let text = std::fs::read_to_string(svg).map_err(|e| ReportError::Write { path: svg.clone(), message: e.to_string() })?;
            svgs.push((name.clone(), text));
        }
    }
    let html_path = out.join("index.html");
    write(&html_path, &html::page(&title, &md, &svgs))?;
    let mut files = vec![md_path, csv, html_path];
    files.extend(plots.into_iter().flat_map(|(_, f)| f));
    Ok(Written { out, files, runs: runs.len(), warnings, markdown: paper.markdown() })
}

/// A plain Markdown table (also readable in a terminal).
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).chain([header[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// A fraction as percent with one decimal.
pub(crate) fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn millions(n: u64) -> String {
    format!("{:.2}M", n as f64 / 1e6)
}

fn with_ci(m: &SetMetrics) -> String {
    match &m.ci {
        Some(ci) => format!("{} [{}–{}]", pct(m.micro.f1), pct(ci.micro_f1.lower), pct(ci.micro_f1.upper)),
        None => pct(m.micro.f1),
    }
}

/// A seen/unseen column; "–" where the partition has no codes in this split.
fn part(m: Option<&SetMetrics>, f: impl Fn(&SetMetrics) -> String) -> String {
    match m {
        Some(m) if m.n_gold_labels + m.n_pred_labels > 0 => f(m),
        _ => "–".into(),
    }
}

/// `codes / notes` of the unseen gold labels (`⚠` under [`FEW_UNSEEN_CODES`]), or the codes
/// alone for metrics.json written before notes were counted.
fn unseen_cell(m: &SplitMetrics) -> String {
    match &m.unseen_gold {
        Some(u) => format!("{} / {}{}", u.codes, u.notes, if u.codes > 0 && u.few() { " ⚠" } else { "" }),
        None => m.sets.unseen.as_ref().map_or("0".into(), |x| x.macro_gold.n_codes.to_string()),
    }
}

/// Invalid predictions as `count (rate%)`; "–" for metrics.json written before they were counted.
pub(crate) fn invalid_cell(invalid: Option<&InvalidPredictions>) -> String {
    invalid.map_or("–".into(), |i| format!("{} ({}%)", i.count, pct(i.rate)))
}

/// One row per run and split: micro/macro F1 overall, seen and unseen, in percent.
pub fn results_table(records: &[RunRecord]) -> String {
    let header = [
        "run", "split", "docs", "micro-F1 [95% CI]", "macro-F1", "seen micro", "seen macro", "unseen micro", "unseen macro", "unseen codes / notes", "evidence F1 exact/overlap", "invalid (rate)", "answers cut", "train tokens (span/doc)", "fingerprint", "status",
    ];
    let mut rows = Vec::new();
    let mut few = Vec::new();
    for r in records {
        let order = &r.run.spec.eval.splits;
        let mut splits: Vec<(&String, _)> = r.metrics.splits.iter().collect();
        splits.sort_by_key(|(s, _)| order.iter().position(|o| o == *s).unwrap_or(usize::MAX));
        for (split, m) in splits {
            let s: &Report = &m.sets;
            rows.push(vec![
                r.run.label(),
                split.clone(),
                m.n_docs.to_string(),
                with_ci(&s.overall),
                pct(s.overall.macro_gold.f1),
                part(s.seen.as_ref(), |x| pct(x.micro.f1)),
                part(s.seen.as_ref(), |x| pct(x.macro_gold.f1)),
                part(s.unseen.as_ref(), |x| pct(x.micro.f1)),
                part(s.unseen.as_ref(), |x| pct(x.macro_gold.f1)),
                unseen_cell(m),
                m.evidence.as_ref().map_or("–".into(), |e| format!("{} / {}", pct(e.exact.f1), pct(e.overlap.f1))),
                invalid_cell(m.invalid_predictions.as_ref()),
                m.answers_cut.as_ref().map_or("–".into(), |a| format!("{} / {}", a.cut, a.windows)),
                r.metrics.cost.as_ref().map_or("–".into(), |c| format!("{} ({}/{})", millions(c.input_tokens), millions(c.span_tokens), millions(c.document_tokens))),
                r.run.fingerprint.short().to_string(),
                if r.reused { "reused".into() } else { format!("computed {:.1}s", r.metrics.seconds) },
            ]);
            if let Some(u) = m.unseen_gold.as_ref().filter(|u| u.codes > 0 && u.few()) {
                few.push(format!("{} on {split} ({} codes)", r.run.label(), u.codes));
            }
        }
    }
    let mut out = markdown_table(&header, &rows);
    if !few.is_empty() {
        out.push_str(&format!(
            "\n**Unseen columns on fewer than {FEW_UNSEEN_CODES} codes** (one code moves them by points; read them as anecdotes): {}.\n",
            few.join("; ")
        ));
    }
    out.push_str(
        "\nPercent. micro-F1 = TP / (TP + (FP+FN)/2); macro-F1 averages per-code F1 over the codes in the split's gold labels (Edin et al. 2023). \
         Seen = codes in training documents' labels; unseen = the rest. CIs: percentile bootstrap over documents. \
         Evidence F1: predicted spans against gold spans of the same code, exact offsets / characters overlapping. \
         Unseen codes / notes: the split's gold codes no training document carries, and the notes carrying at least one. \
         Invalid: predicted codes outside the code set, each scored as a false positive (rate: share of all predicted codes). \
         Answers cut: windows whose answer was still being written when `max_new_tokens` ran out, of all windows answered (model runs). \
         Train tokens: input tokens fed in training (spans / documents); see each run's metrics.json `cost` for steps, FLOPs and time.\n",
    );
    out
}

/// The sweep key that repeats a run with other seeds.
pub const SEED_KEY: &str = "experiment.seed";

/// Two-sided 95% quantiles of Student's t for 1..=30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// Mean and the half-width of its 95% t-interval (0 for a single value).
pub fn mean_ci(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n as f64).sqrt())
}

/// A run's label without its seed, so repeats with other seeds share it.
fn label_without_seed(r: &RunRecord) -> String {
    let system = r.run.spec.system_name();
    let rest: Vec<String> = r.run.spec.sweep.iter().filter(|(k, _)| k != SEED_KEY).map(|(k, v)| format!("{k}={v}")).collect();
    if rest.is_empty() {
        system
    } else {
        format!("{system} [{}]", rest.join(","))
    }
}

/// The over-seeds table and the runs it left out of its means.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedsTable {
    pub markdown: String,
    /// Fingerprints (short) of runs left out because a run of the same spec and seed finished later.
    pub superseded: Vec<String>,
}

impl SeedsTable {
    /// A line for the report's warnings, when runs were left out of the means.
    pub fn superseded_note(&self) -> Option<String> {
        (!self.superseded.is_empty()).then(|| {
            format!(
                "over seeds: {} runs left out of the means, each because a run of the same spec and seed finished later ({})",
                self.superseded.len(),
                self.superseded.join(", ")
            )
        })
    }
}

/// Recall by mention kind (where the data records kinds): one row per run and split,
/// by wording (overall, and on unseen codes) and by paraphrase family.
pub fn mention_table(records: &[RunRecord]) -> Option<String> {
    use crate::data::Family;
    use crate::metrics::mention::Recall;
    let families: Vec<String> = Family::ALL.iter().map(|f| format!("family:{f}")).collect();
    let mut header: Vec<String> = ["run", "split", "verbatim", "shared", "held-out", "shared, unseen codes", "held-out, unseen codes"].map(String::from).to_vec();
    header.extend(Family::ALL.iter().map(|f| f.as_str().replace('_', " ")));
    let cell = |r: Option<&Recall>| match r {
        Some(r) if r.gold > 0 => format!("{:.1} ({}/{})", 100.0 * r.recall, r.found, r.gold),
        _ => "–".into(),
    };
    let mut rows = Vec::new();
    for r in records {
        for (split, m) in &r.metrics.splits {
            let Some(by) = &m.by_mention else { continue };
            let all = |g: &str| cell(by.get(g).map(|x| &x.all));
            let unseen = |g: &str| cell(by.get(g).map(|x| &x.unseen));
            let mut row = vec![r.run.label(), split.clone(), all("verbatim"), all("shared"), all("held_out"), unseen("shared"), unseen("held_out")];
            row.extend(families.iter().map(|f| all(f)));
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return None;
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    Some(format!("Recall by mention kind, % (found/gold (document, code) pairs):\n\n{}", markdown_table(&header, &rows)))
}

/// What each run wrote for unseen-code mentions, and the span probe of model runs: one row
/// per run and split where the split has gold pairs of unseen codes.
pub fn diagnostics_table(records: &[RunRecord]) -> Option<String> {
    let header = [
        "run", "split", "probe seen", "probe unseen", "unseen pairs found", "wrote a sibling", "wrote another code", "wrote nothing", "unseen share: predicted / gold",
    ];
    let share = |part: usize, all: usize| if all == 0 { "–".to_string() } else { format!("{:.1}% of {all}", 100.0 * part as f64 / all as f64) };
    let mut rows = Vec::new();
    for r in records {
        for (split, m) in &r.metrics.splits {
            let Some(u) = &m.unseen_errors else { continue };
            let acc = |a: &crate::metrics::probe::Accuracy| if a.n == 0 { "–".into() } else { format!("{:.1} ({}/{})", 100.0 * a.accuracy, a.correct, a.n) };
            let (seen, unseen) = m.probe.as_ref().map_or(("–".to_string(), "–".to_string()), |p| {
                (format!("{} [{}; {} trained strings]", acc(&p.seen), p.format, p.seen_in_training_spans), format!("{} [{} trained strings]", acc(&p.unseen), p.unseen_in_training_spans))
            });
            rows.push(vec![
                r.run.label(),
                split.clone(),
                seen,
                unseen,
                format!("{}/{}", u.found, u.gold_pairs),
                u.sibling.to_string(),
                u.other_code.to_string(),
                u.nothing.to_string(),
                format!("{} / {}", share(u.predicted_unseen_pairs, u.predicted_pairs), share(u.gold_pairs, u.gold_all_pairs)),
            ]);
        }
    }
    if rows.is_empty() {
        return None;
    }
    Some(format!(
        "Unseen codes and the span probe (probe: the split's gold mentions coded one at a time outside their note, % correct (correct/asked) [format; how many of the mentions asked are, letter for letter, span texts the run trained on for that code]; unseen pairs: gold (document, unseen code) pairs and what was written for the missed ones):\n\n{}",
        markdown_table(&header, &rows)
    ))
}

/// [`over_seeds`] for runs just executed or reused: each dated by its DONE marker.
pub fn seeds_table(records: &[RunRecord]) -> Option<String> {
    let dated: Vec<(&RunRecord, SystemTime)> = records.iter().map(|r| (r, done_time(&r.run.dir))).collect();
    over_seeds(&dated).map(|t| t.markdown)
}

/// When a run finished: its DONE marker's modification time (the epoch when unreadable, so it counts as oldest).
fn done_time(dir: &std::path::Path) -> SystemTime {
    std::fs::metadata(dir.join(crate::store::DONE_MARKER)).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Exactly one run per spec and seed: the one that finished last (ties: the larger fingerprint,
/// so the choice does not depend on input order). Returns the runs kept and the short
/// fingerprints of those left out.
fn newest_per_seed<'a>(runs: &[(&'a RunRecord, SystemTime)]) -> (Vec<&'a RunRecord>, Vec<String>) {
    let mut newest: Vec<(String, u64, &'a RunRecord, SystemTime)> = Vec::new();
    let mut superseded = Vec::new();
    for &(r, finished) in runs {
        let key = gather::spec_key(&r.run.spec);
        let seed = r.run.spec.seed;
        match newest.iter_mut().find(|(k, s, _, _)| *k == key && *s == seed) {
            None => newest.push((key, seed, r, finished)),
            Some(slot) => {
                let later = (finished, &r.run.fingerprint) > (slot.3, &slot.2.run.fingerprint);
                let older = if later { std::mem::replace(&mut slot.2, r) } else { r };
                if later {
                    slot.3 = finished;
                }
                superseded.push(older.run.fingerprint.short().to_string());
            }
        }
    }
    superseded.sort();
    (newest.into_iter().map(|(_, _, r, _)| r).collect(), superseded)
}

/// One row per run (seed left out) and split, averaging over the seeds it ran
/// with: mean and 95% t-interval over seeds for micro/macro F1 overall, seen
/// and unseen. Each seed counts once: of several runs of one spec and seed, the
/// newest (see [`newest_per_seed`]). `None` when no run was repeated with another seed.
pub fn over_seeds(runs: &[(&RunRecord, SystemTime)]) -> Option<SeedsTable> {
    let (records, superseded) = newest_per_seed(runs);
    // Runs are repeats of each other when their specs agree on everything but the seed
    // (older runs left in a results folder under the same label are not).
    let mut groups: Vec<(String, String, String, Vec<&RunRecord>)> = Vec::new();
    for r in records {
        let label = label_without_seed(r);
        let key = gather::spec_key(&r.run.spec);
        for split in &r.run.spec.eval.splits {
            if !r.metrics.splits.contains_key(split) {
                continue;
            }
            match groups.iter_mut().find(|(l, k, s, _)| *l == label && *k == key && s == split) {
                Some(g) => g.3.push(r),
                None => groups.push((label.clone(), key.clone(), split.clone(), vec![r])),
            }
        }
    }
    let groups: Vec<(String, String, Vec<&RunRecord>)> = groups.into_iter().map(|(l, _, s, rs)| (l, s, rs)).collect();
    if groups.iter().all(|(_, _, rs)| rs.len() < 2) {
        return None;
    }
    let header = [
        "run", "split", "seeds", "micro-F1", "macro-F1", "seen micro", "seen macro", "unseen micro", "unseen macro", "train tokens", "train time",
    ];
    let cell = |xs: Vec<f64>| -> String {
        if xs.is_empty() {
            return "–".into();
        }
        let (m, h) = mean_ci(&xs);
        if xs.len() == 1 {
            pct(m)
        } else {
            format!("{} ± {}", pct(m), pct(h))
        }
    };
    let mut rows = Vec::new();
    for (label, split, rs) in &groups {
        let sets = |f: &dyn Fn(&Report) -> Option<f64>| -> Vec<f64> { rs.iter().filter_map(|r| f(&r.metrics.splits[split].sets)).collect() };
        let part_value = |m: Option<&SetMetrics>, macro_f1: bool| {
            m.filter(|m| m.n_gold_labels + m.n_pred_labels > 0).map(|m| if macro_f1 { m.macro_gold.f1 } else { m.micro.f1 })
        };
        let costs: Vec<&Cost> = rs.iter().filter_map(|r| r.metrics.cost.as_ref()).collect();
        let mean = |xs: Vec<f64>| xs.iter().sum::<f64>() / xs.len() as f64;
        rows.push(vec![
            label.clone(),
            split.clone(),
            rs.len().to_string(),
            cell(sets(&|s| Some(s.overall.micro.f1))),
            cell(sets(&|s| Some(s.overall.macro_gold.f1))),
            cell(sets(&|s| part_value(s.seen.as_ref(), false))),
            cell(sets(&|s| part_value(s.seen.as_ref(), true))),
            cell(sets(&|s| part_value(s.unseen.as_ref(), false))),
            cell(sets(&|s| part_value(s.unseen.as_ref(), true))),
            if costs.is_empty() { "–".into() } else { millions(mean(costs.iter().map(|c| c.input_tokens as f64).collect()) as u64) },
            if costs.is_empty() { "–".into() } else { format!("{:.0} s", mean(costs.iter().map(|c| c.train_seconds).collect())) },
        ]);
    }
    let mut out = markdown_table(&header, &rows);
    out.push_str(
        "\nPercent, mean ± half-width of the 95% t-interval over seeds (the spread of training runs, not of documents). \
         Train tokens and time: means per run.\n",
    );
    if !superseded.is_empty() {
        out.push_str(&format!(
            "\nOne run per seed: {} runs left out, each because a run of the same spec and seed finished later ({}).\n",
            superseded.len(),
            superseded.join(", ")
        ));
    }
    Some(SeedsTable { markdown: out, superseded })
}

#[cfg(test)]
mod tests {
    use super::mean_ci;

    #[test]
    fn t_interval_over_seeds() {
        let (m, h) = mean_ci(&[0.1, 0.2, 0.3]);
        assert!((m - 0.2).abs() < 1e-12);
        // t(0.975, 2) · s/√n = 4.303 · 0.1/√3
        assert!((h - 4.303 * 0.1 / 3f64.sqrt()).abs() < 1e-9, "{h}");
        assert_eq!(mean_ci(&[0.4]), (0.4, 0.0));
        assert!(mean_ci(&[]).0.is_nan());
    }
}
