//! What `icdbench check` prints: plain text, Markdown for a CI job summary, and GitHub
//! Actions workflow commands.

use super::config::Tolerance;
use super::gate::{Outcome, Row, Status};
use crate::report::markdown_table;

impl Outcome {
    /// A plain-text report: the rows that moved, one sentence per failure, and the summary.
    pub fn text(&self) -> String {
        let mut out = format!("icdbench check {} against {}\n\n", self.config.display(), self.reference);
        let moved = self.moved();
        if moved.is_empty() {
            out.push_str(&format!("All {} gated metrics equal the reference.\n", self.rows.len()));
        } else {
            out.push_str(&table(&moved));
            let same = self.rows.len() - moved.len();
            if same > 0 {
                out.push_str(&format!("{same} more metrics equal the reference (not listed).\n"));
            }
        }
        let notable: Vec<String> = self.rows.iter().filter(|r| r.status.fails() || r.status == Status::Improved).map(sentence).collect();
        if !notable.is_empty() {
            out.push_str(&format!("\n{}\n", notable.join("\n")));
        }
        out.push_str(&format!("\n{}\n", self.summary()));
        out
    }

    /// Markdown for a CI job summary ($GITHUB_STEP_SUMMARY): what moved, then every value folded away.
    pub fn markdown(&self) -> String {
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        let mut out = format!("## icdbench check {verdict}\n\n`{}` against `{}`\n\n", self.config.display(), self.reference);
        let moved = self.moved();
        if moved.is_empty() {
            out.push_str(&format!("All {} gated metrics equal the reference.\n\n", self.rows.len()));
        } else {
            out.push_str(&table(&moved));
            out.push('\n');
        }
        for r in self.rows.iter().filter(|r| r.status.fails()) {
            out.push_str(&format!("- {}\n", sentence(r)));
        }
        let all: Vec<&Row> = self.rows.iter().collect();
        out.push_str(&format!("\n<details><summary>All {} gated values</summary>\n\n{}\n</details>\n\n", all.len(), table(&all)));
        out.push_str(&format!("{}\n", self.summary()));
        out
    }

    /// GitHub Actions workflow commands: an error per failure, a notice per improvement or new run.
    pub fn github_annotations(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            let kind = match r.status {
                s if s.fails() => "error",
                Status::Improved | Status::New => "notice",
                _ => continue,
            };
            let title = match r.status {
                Status::Regressed => "icdbench check regression",
                Status::Missing => "icdbench check missing result",
                Status::Failed => "icdbench check run failed",
                Status::BelowFloor => "icdbench check below the floor",
                Status::Improved => "icdbench check improvement",
                _ => "icdbench check new result",
            };
            out.push_str(&format!("::{kind} title={}::{}\n", escape_property(title), escape_data(&sentence(r))));
        }
        out
    }
}

/// `%`, CR and LF are escaped in a workflow command's message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A property value also escapes `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn table(rows: &[&Row]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.run.clone(),
                if r.metric.is_empty() { "(run)".into() } else { r.metric.clone() },
                r.reference.map_or("–".into(), |v| value(v, r.is_score)),
                r.now.map_or("–".into(), |v| value(v, r.is_score)),
                delta(r),
                r.tolerance.map_or("–".into(), show),
                r.status.as_str().into(),
            ]
        })
        .collect();
    markdown_table(&["run", "metric", "reference", "now", "delta", "tolerance", "status"], &cells)
}

/// One readable sentence about a row, naming the run, the metric and the numbers.
fn sentence(r: &Row) -> String {
    let what = if r.metric.is_empty() { r.run.clone() } else { format!("{} {}", r.run, r.metric) };
    let numbers = match (r.reference, r.now) {
        (Some(a), Some(b)) => format!(": {} -> {} ({}; tolerance {})", value(a, r.is_score), value(b, r.is_score), delta(r), r.tolerance.map_or("–".into(), show)),
        (Some(a), None) => format!(": reference {}, now missing", value(a, r.is_score)),
        (None, Some(b)) => format!(": {} (not in the reference; `--update` adds it)", value(b, r.is_score)),
        (None, None) => String::new(),
    };
    let note = r.note.as_ref().map(|n| format!(" — {n}")).unwrap_or_default();
    format!("{} {what}{numbers}{note}", r.status.as_str())
}

/// Scores in F1 points (percent), costs as they are.
fn value(v: f64, is_score: bool) -> String {
    if is_score {
        format!("{:.2}", 100.0 * v)
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 1e6 {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

fn delta(r: &Row) -> String {
    let (Some(a), Some(b)) = (r.reference, r.now) else { return "–".into() };
    if r.is_score {
        format!("{:+.2} pts", 100.0 * (b - a))
    } else if a != 0.0 {
        format!("{:+.1}%", 100.0 * (b - a) / a.abs())
    } else {
        format!("{:+}", b - a)
    }
}

/// `10` rather than `10.0`, `2.5` as it is.
fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A tolerance as the tables show it: `0.50 pts` or `10%`.
fn show(t: Tolerance) -> String {
    match t {
        Tolerance::Points(p) => format!("{p:.2} pts"),
        Tolerance::Relative(r) => format!("{}%", trim(100.0 * r)),
    }
}
