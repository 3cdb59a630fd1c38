//! A data card for any source: documents per split, document length, codes per
//! document, the long tail of code frequencies, unseen test codes, evidence per
//! code — as numbers ([`DataStats`]), a table, and a PNG.

use crate::data::{Dataset, Split};
use crate::icd::Code;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Min, quartiles, 95th percentile, max and mean of a count.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distribution {
    pub min: usize,
    pub p25: usize,
    pub median: usize,
    pub p75: usize,
    pub p95: usize,
    pub max: usize,
    pub mean: f64,
}

impl Distribution {
    pub fn of(values: &[usize]) -> Distribution {
        if values.is_empty() {
            return Distribution::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        // Nearest rank: the smallest value with at least q of the values at or below it.
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Distribution { min: v[0], p25: at(0.25), median: at(0.5), p75: at(0.75), p95: at(0.95), max: v[v.len() - 1], mean: v.iter().sum::<usize>() as f64 / v.len() as f64 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitStats {
    pub split: Split,
    pub documents: usize,
    /// Whitespace-separated words per document.
    pub words: Distribution,
    pub codes_per_document: Distribution,
    pub distinct_codes: usize,
    pub evidence_spans: usize,
    /// Codes of this split that no training document carries.
    pub unseen_codes: usize,
    /// Gold code occurrences of this split whose code is unseen.
    pub unseen_occurrences: usize,
    pub occurrences: usize,
}

/// How many codes fall in each band of training-document frequency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TailBand {
    /// `0 (unseen)`, `1`, `2-4`, `5-9`, `10-49`, `50-99`, `100+`.
    pub band: String,
    pub codes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataStats {
    pub name: String,
    pub splits: Vec<SplitStats>,
    /// Codes by the number of training documents that carry them (codes of every split).
    pub tail: Vec<TailBand>,
    /// Training-document frequency of each training code, most frequent first.
    pub train_frequency: Vec<(Code, usize)>,
    /// Evidence spans per code, over codes with at least one span (all splits).
    pub spans_per_code: Distribution,
    pub codes_with_evidence: usize,
}

const BANDS: [(&str, usize, usize); 7] = [("0 (unseen)", 0, 0), ("1", 1, 1), ("2-4", 2, 4), ("5-9", 5, 9), ("10-49", 10, 49), ("50-99", 50, 99), ("100+", 100, usize::MAX)];

/// Computes the data card of a dataset.
pub fn compute(data: &Dataset) -> DataStats {
    let seen = data.seen_codes();
    let mut train_freq: BTreeMap<&Code, usize> = BTreeMap::new();
    for d in data.split(Split::Train) {
        for c in &d.codes {
            *train_freq.entry(c).or_default() += 1;
        }
    }
    let mut splits = Vec::new();
    for split in Split::SCORED {
        let docs: Vec<_> = data.split(split).collect();
        if docs.is_empty() {
            continue;
        }
        let words: Vec<usize> = docs.iter().map(|d| crate::text::count_words(&d.text)).collect();
        let per_doc: Vec<usize> = docs.iter().map(|d| d.codes.len()).collect();
        let distinct: BTreeSet<&Code> = docs.iter().flat_map(|d| d.codes.iter()).collect();
        let occurrences: usize = per_doc.iter().sum();
        let unseen_occurrences = docs.iter().flat_map(|d| d.codes.iter()).filter(|c| !seen.contains(*c)).count();
        splits.push(SplitStats {
            split,
            documents: docs.len(),
            words: Distribution::of(&words),
            codes_per_document: Distribution::of(&per_doc),
            distinct_codes: distinct.len(),
            evidence_spans: docs.iter().map(|d| d.evidence.len()).sum(),
            unseen_codes: distinct.iter().filter(|c| !seen.contains(**c)).count(),
            unseen_occurrences,
            occurrences,
        });
    }
    let all_codes: BTreeSet<&Code> = data.documents.iter().flat_map(|d| d.codes.iter()).collect();
    let tail = BANDS
        .iter()
        .map(|(band, lo, hi)| TailBand { band: band.to_string(), codes: all_codes.iter().filter(|c| (*lo..=*hi).contains(&train_freq.get(*c).copied().unwrap_or(0))).count() })
        .collect();
    let mut train_frequency: Vec<(Code, usize)> = train_freq.iter().map(|(c, n)| ((*c).clone(), *n)).collect();
    train_frequency.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut spans: BTreeMap<&Code, usize> = BTreeMap::new();
    for e in data.documents.iter().flat_map(|d| d.evidence.iter()) {
        *spans.entry(&e.code).or_default() += 1;
    }
    let span_counts: Vec<usize> = spans.values().copied().collect();
    DataStats { name: data.name.clone(), splits, tail, train_frequency, spans_per_code: Distribution::of(&span_counts), codes_with_evidence: spans.len() }
}

impl DataStats {
    /// The card as markdown tables.
    pub fn table(&self) -> String {
        use super::markdown_table;
        let dist = |d: &Distribution| format!("{} / {} / {} / {} / {} ({:.1})", d.min, d.p25, d.median, d.p95, d.max, d.mean);
        let rows: Vec<Vec<String>> = self
            .splits
            .iter()
            .map(|s| {
                vec![
                    s.split.to_string(),
                    s.documents.to_string(),
                    dist(&s.words),
                    dist(&s.codes_per_document),
                    s.distinct_codes.to_string(),
                    if s.split == Split::Train { "–".into() } else { format!("{} ({:.1}% of occurrences)", s.unseen_codes, pct(s.unseen_occurrences, s.occurrences)) },
                    s.evidence_spans.to_string(),
                ]
            })
            .collect();
        let mut out = format!("Data: {}\n\n", self.name);
        out.push_str(&markdown_table(&["split", "documents", "words/doc min/p25/median/p95/max (mean)", "codes/doc min/p25/median/p95/max (mean)", "distinct codes", "codes unseen in train", "evidence spans"], &rows));
        out.push_str("\nCode-frequency long tail (codes of any split, by the number of training documents that carry them):\n\n");
        let tail: Vec<Vec<String>> = self.tail.iter().map(|b| vec![b.band.clone(), b.codes.to_string()]).collect();
        out.push_str(&markdown_table(&["training documents", "codes"], &tail));
        if let Some((top, n)) = self.train_frequency.first() {
            out.push_str(&format!("\nMost frequent training code: {top} ({n} documents); {} training codes in all.\n", self.train_frequency.len()));
        }
        if self.codes_with_evidence > 0 {
            let d = &self.spans_per_code;
            out.push_str(&format!(
                "\nEvidence spans per code ({} codes with evidence): min {} / p25 {} / median {} / p95 {} / max {} (mean {:.1})\n",
                self.codes_with_evidence, d.min, d.p25, d.median, d.p95, d.max, d.mean
            ));
        } else {
            out.push_str("\nNo evidence spans in this data.\n");
        }
        out
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("the font for the plot's text could not be loaded: point ICDBENCH_FONT at a TrueType (.ttf) file, or unset it to use the embedded DejaVu Sans")]
    NoFont,
    #[error("{path}: cannot draw the plot: {message}")]
    Draw { path: String, message: String },
}

/// Registers the plots' font once (shared with the reports' plots).
fn ensure_font() -> Result<(), PlotError> {
    if super::plot::ensure_font() {
        Ok(())
    } else {
        Err(PlotError::NoFont)
    }
}

/// Draws the card as a 2x2 PNG: documents per split, words per document, the code-frequency
/// long tail (log-log), and evidence spans per code (or codes per document without evidence).
pub fn plot(stats: &DataStats, data: &Dataset, path: &Path) -> Result<(), PlotError> {
    use plotters::prelude::*;
    ensure_font()?;
    let fail = |e: &dyn std::fmt::Display| PlotError::Draw { path: path.display().to_string(), message: e.to_string() };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(&e))?;
    }
    let root = BitMapBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root.titled(&format!("Data card: {}", stats.name), ("sans-serif", 30)).map_err(|e| fail(&e))?;
    let panels = root.split_evenly((2, 2));
    let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44)];

    // 1. Documents per split.
    let labels: Vec<String> = stats.splits.iter().map(|s| s.split.to_string()).collect();
    let counts: Vec<f64> = stats.splits.iter().map(|s| s.documents as f64).collect();
    bar_panel(&panels[0], "Documents per split", "split", "documents", &labels, &counts, &colors).map_err(|e| fail(&e))?;

    // 2. Words per document, per split (histogram, shared bins).
    let max_words = stats.splits.iter().map(|s| s.words.max).max().unwrap_or(1).max(1);
    let bins = 30usize;
    let width = (max_words as f64 / bins as f64).max(1.0);
    let mut hist: Vec<(Split, Vec<f64>)> = Vec::new();
    for s in &stats.splits {
        let mut h = vec![0f64; bins];
        for d in data.split(s.split) {
            let w = crate::text::count_words(&d.text);
            h[((w as f64 / width) as usize).min(bins - 1)] += 1.0;
        }
        hist.push((s.split, h));
    }
    let y_max = hist.iter().flat_map(|(_, h)| h.iter().copied()).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&panels[1])
        .caption("Words per document", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..width * bins as f64, 0f64..y_max)
        .map_err(|e| fail(&e))?;
    chart.configure_mesh().x_label_formatter(&whole).y_label_formatter(&whole).x_desc("whitespace words").y_desc("documents").label_style(("sans-serif", 16)).axis_desc_style(("sans-serif", 18)).draw().map_err(|e| fail(&e))?;
    for (k, (split, h)) in hist.iter().enumerate() {
        let color = colors[k % colors.len()];
        chart
            .draw_series(LineSeries::new(h.iter().enumerate().map(|(i, v)| ((i as f64 + 0.5) * width, *v)), color.stroke_width(3)))
            .map_err(|e| fail(&e))?
            .label(split.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.9)).label_font(("sans-serif", 16)).draw().map_err(|e| fail(&e))?;

    // 3. Long tail: training-document frequency by rank, log-log.
    let unseen: usize = stats.splits.iter().filter(|s| s.split == Split::Test).map(|s| s.unseen_codes).sum();
    let x_desc = format!("code rank ({} training codes; {} test codes unseen in training)", stats.train_frequency.len(), unseen);
    let freq: Vec<f64> = stats.train_frequency.iter().map(|(_, n)| *n as f64).collect();
    let n_codes = freq.len().max(2) as f64;
    let f_max = freq.first().copied().unwrap_or(1.0).max(2.0);
    let mut chart = ChartBuilder::on(&panels[2])
        .caption("Code frequency long tail (training)", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..n_codes).log_scale(), (0.9f64..f_max * 1.2).log_scale())
        .map_err(|e| fail(&e))?;
    let one_two_five = |v: &f64| {
        let r = v.round();
        let mantissa = r / 10f64.powi(r.log10().floor() as i32);
        if (v - r).abs() < 1e-6 && r >= 1.0 && [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9) { format!("{r:.0}") } else { String::new() }
    };
    chart.configure_mesh().x_label_formatter(&one_two_five).y_label_formatter(&one_two_five).x_desc(x_desc).y_desc("training documents").label_style(("sans-serif", 16)).axis_desc_style(("sans-serif", 18)).draw().map_err(|e| fail(&e))?;
    chart.draw_series(LineSeries::new(freq.iter().enumerate().map(|(i, f)| ((i + 1) as f64, *f)), colors[0].stroke_width(3))).map_err(|e| fail(&e))?;
    // 4. Evidence spans per code, or codes per document when there is no evidence.
    if stats.codes_with_evidence > 0 {
        let mut per_code: BTreeMap<&Code, usize> = BTreeMap::new();
        for e in data.documents.iter().flat_map(|d| d.evidence.iter()) {
            *per_code.entry(&e.code).or_default() += 1;
        }
        let bands = [(1, 1), (2, 2), (3, 4), (5, 9), (10, 19), (20, 49), (50, 99), (100, usize::MAX)];
        let (labels, values) = banded(per_code.values().copied(), &bands);
        bar_panel(&panels[3], &format!("Evidence spans per code ({} codes)", stats.codes_with_evidence), "evidence spans", "codes", &labels, &values, &colors[1..2]).map_err(|e| fail(&e))?;
    } else {
        let bands = [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 9), (10, 14), (15, 19), (20, 29), (30, usize::MAX)];
        let (labels, values) = banded(data.documents.iter().map(|d| d.codes.len()), &bands);
        bar_panel(&panels[3], "Codes per document (no evidence in this data)", "gold codes", "documents", &labels, &values, &colors[2..3]).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// Axis labels for counts: whole numbers only.
fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// How many values fall in each inclusive band; empty bands at either end are left out.
fn banded(values: impl Iterator<Item = usize>, bands: &[(usize, usize)]) -> (Vec<String>, Vec<f64>) {
    let mut counts = vec![0f64; bands.len()];
    for v in values {
        if let Some(i) = bands.iter().position(|(lo, hi)| (*lo..=*hi).contains(&v)) {
            counts[i] += 1.0;
        }
    }
    let first = counts.iter().position(|c| *c > 0.0).unwrap_or(0);
    let last = counts.iter().rposition(|c| *c > 0.0).unwrap_or(0).max(first);
    let labels = bands[first..=last]
        .iter()
        .map(|(lo, hi)| match (*lo, *hi) {
            (lo, usize::MAX) => format!("{lo}+"),
            (lo, hi) if lo == hi => lo.to_string(),
            (lo, hi) => format!("{lo}-{hi}"),
        })
        .collect();
    (labels, counts[first..=last].to_vec())
}

fn bar_panel<DB: plotters::prelude::DrawingBackend>(
    area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    labels: &[String],
    values: &[f64],
    colors: &[plotters::prelude::RGBColor],
) -> Result<(), plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>> {
    use plotters::prelude::*;
    let y_max = values.iter().copied().fold(1.0, f64::max) * 1.15;
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(area).caption(title, ("sans-serif", 24)).margin(15).x_label_area_size(45).y_label_area_size(60).build_cartesian_2d(0f64..n as f64, 0f64..y_max)?;
    let names = labels.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(20) * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 1e-6 { names.get(i).cloned().unwrap_or_default() } else { String::new() }
        })
        .y_label_formatter(&whole)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    chart.draw_series(values.iter().enumerate().map(|(i, v)| {
        let color = colors[i % colors.len()];
        Rectangle::new([(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *v)], color.filled())
    }))?;
    let centred = ("sans-serif", 15).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(plotters::style::text_anchor::HPos::Center, plotters::style::text_anchor::VPos::Bottom));
    chart.draw_series(values.iter().enumerate().map(|(i, v)| Text::new(format!("{v}"), (i as f64 + 0.5, *v + y_max * 0.01), centred.clone())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Distribution::of(&[5, 1, 3, 2, 4]);
        assert_eq!((d.min, d.p25, d.median, d.p75, d.p95, d.max), (1, 2, 3, 4, 5, 5));
        assert!((d.mean - 3.0).abs() < 1e-12);
        assert_eq!(Distribution::of(&[]), Distribution::default());
    }
}
