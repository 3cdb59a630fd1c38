//! Tables of results: printed after a run and written beside its results.

use crate::metrics::{Report, SetMetrics};
use crate::runner::RunRecord;

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

fn pct(x: f64) -> String {
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

/// One row per run and split: micro/macro F1 overall, seen and unseen, in percent.
pub fn results_table(records: &[RunRecord]) -> String {
    let header = [
        "run", "split", "docs", "micro-F1 [95% CI]", "macro-F1", "seen micro", "seen macro", "unseen micro", "unseen macro", "unseen codes", "evidence F1 exact/overlap", "train tokens (span/doc)", "fingerprint", "status",
    ];
    let mut rows = Vec::new();
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
                s.unseen.as_ref().map_or("0".into(), |x| x.macro_gold.n_codes.to_string()),
                m.evidence.as_ref().map_or("–".into(), |e| format!("{} / {}", pct(e.exact.f1), pct(e.overlap.f1))),
                r.metrics.cost.as_ref().map_or("–".into(), |c| format!("{} ({}/{})", millions(c.input_tokens), millions(c.span_tokens), millions(c.document_tokens))),
                r.run.fingerprint.short().to_string(),
                if r.reused { "reused".into() } else { format!("computed {:.1}s", r.metrics.seconds) },
            ]);
        }
    }
    let mut out = markdown_table(&header, &rows);
    out.push_str(
        "\nPercent. micro-F1 = TP / (TP + (FP+FN)/2); macro-F1 averages per-code F1 over the codes in the split's gold labels (Edin et al. 2023). \
         Seen = codes in training documents' labels; unseen = the rest. CIs: percentile bootstrap over documents. \
         Evidence F1: predicted spans against gold spans of the same code, exact offsets / characters overlapping. \
         Train tokens: input tokens fed in training (spans / documents); see each run's metrics.json `cost` for steps, FLOPs and time.\n",
    );
    out
}
