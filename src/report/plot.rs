//! Plots of finished runs (plotters), each written as PNG and SVG, each with a
//! footer naming the fingerprints of the runs behind it. Also the plots' font,
//! shared with the data card.

use super::gather::FinishedRun;
use super::table::span_ratio;
use super::ReportError;
use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// DejaVu Sans, committed under assets/fonts/ with its licence, so plots draw
/// the same text on any machine.
const EMBEDDED_FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the plots' font once (plotters draws no text without one):
/// `ICDBENCH_FONT` (a .ttf file) when set, else the embedded DejaVu Sans.
/// False when no font could be registered.
pub(crate) fn ensure_font() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        let bytes: &'static [u8] = match std::env::var("ICDBENCH_FONT").ok().and_then(|p| std::fs::read(p).ok()) {
            // plotters keeps fonts for the life of the program.
            Some(file) => Box::leak(file.into_boxed_slice()),
            None => EMBEDDED_FONT,
        };
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes).is_ok()
    })
}

/// Tableau-10, readable on white and for most colour-blind readers.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can draw itself on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
    fn height(&self) -> u32;
}

const WIDTH: u32 = 1300;
const FOOTER_LINE: u32 = 20;

fn footer_lines(fingerprints: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, chunk) in fingerprints.chunks(8).enumerate() {
        let head = if i == 0 { format!("Runs behind this figure ({}), by fingerprint: ", fingerprints.len()) } else { "    ".to_string() };
        lines.push(format!("{head}{}", chunk.join("  ")));
    }
    lines
}

fn render<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, fig: &impl Figure, footer: &[String]) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let footer_h = FOOTER_LINE * footer.len() as u32 + 14;
    let (_, h) = root.dim_in_pixel();
    let (top, bottom) = root.split_vertically(h.saturating_sub(footer_h));
    fig.draw(&top)?;
    let style = ("sans-serif", 14).into_font().color(&RGBColor(80, 80, 80));
    for (i, line) in footer.iter().enumerate() {
        bottom.draw(&Text::new(line.clone(), (20, 4 + i as i32 * FOOTER_LINE as i32), style.clone()))?;
    }
    root.present()
}

/// Writes `<dir>/<stem>.png` and `<dir>/<stem>.svg`.
fn save(fig: &impl Figure, dir: &Path, stem: &str, fingerprints: &[String]) -> Result<Vec<PathBuf>, ReportError> {
    if !ensure_font() {
        return Err(ReportError::Failed("the font for the plots' text could not be loaded: point ICDBENCH_FONT at a TrueType (.ttf) file, or unset it to use the embedded DejaVu Sans".into()));
    }
    let footer = footer_lines(fingerprints);
    let size = (WIDTH, fig.height() + FOOTER_LINE * footer.len() as u32 + 14);
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let fail = |p: &Path, e: &dyn std::fmt::Display| ReportError::Write { path: p.to_path_buf(), message: format!("cannot draw the plot: {e}") };
    render(BitMapBackend::new(&png, size).into_drawing_area(), fig, &footer).map_err(|e| fail(&png, &e))?;
    render(SVGBackend::new(&svg, size).into_drawing_area(), fig, &footer).map_err(|e| fail(&svg, &e))?;
    Ok(vec![png, svg])
}

/// A row of coloured keys under the title (outside the plot, so it never hides data).
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[(String, RGBColor)], marker: bool) -> DrawResult<DB> {
    let mut x = 30i32;
    for (name, color) in items {
        if marker {
            area.draw(&Circle::new((x + 9, 16), 6, color.filled()))?;
        } else {
            area.draw(&Rectangle::new([(x, 8), (x + 18, 24)], color.filled()))?;
        }
        area.draw(&Text::new(name.clone(), (x + 26, 7), ("sans-serif", 17)))?;
        x += 26 + 10 * name.chars().count() as i32 + 30;
    }
    Ok(())
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// One bar series of a horizontal bar chart: a value (and CI) per run, in percent.
struct BarSeries {
    name: String,
    color: RGBColor,
    values: Vec<Option<(f64, Option<(f64, f64)>)>>,
}

/// Horizontal grouped bars: one group per run (top to bottom), one bar per series.
struct HBars {
    title: String,
    x_desc: String,
    labels: Vec<String>,
    series: Vec<BarSeries>,
}

impl Figure for HBars {
    fn height(&self) -> u32 {
        let per_run = 14 * self.series.len() as u32 + 16;
        (170 + per_run * self.labels.len() as u32).max(380)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let area = area.titled(&self.title, ("sans-serif", 26))?;
        let (key, area) = area.split_vertically(34);
        legend(&key, &self.series.iter().map(|s| (s.name.clone(), s.color)).collect::<Vec<_>>(), false)?;
        let n = self.labels.len().max(1);
        let labels: Vec<String> = self.labels.iter().map(|l| shorten(l, 60)).collect();
        let label_px = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32 * 9 + 30;
        let top = self.series.iter().flat_map(|s| s.values.iter().flatten()).map(|(v, ci)| ci.map_or(*v, |c| c.1.max(*v))).fold(0.0, f64::max);
        let x_max = (top * 1.12 + 6.0).clamp(10.0, 108.0);
        let mut chart = ChartBuilder::on(&area).margin(15).margin_right(30).x_label_area_size(50).y_label_area_size(label_px).build_cartesian_2d(0f64..x_max, 0f64..n as f64)?;
        let names = labels.clone();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&move |y| {
                let row = y.floor();
                if (y - row - 0.5).abs() < 1e-6 && row >= 0.0 {
                    // Row 0 is drawn at the bottom; the first run goes on top.
                    names.get(n - 1 - row as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(self.x_desc.clone())
            .x_label_formatter(&|x| format!("{x:.0}"))
            .max_light_lines(0)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()?;
        let k = self.series.len().max(1) as f64;
        let h = 0.8 / k;
        let value_style = ("sans-serif", 13).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        for (j, s) in self.series.iter().enumerate() {
            for (i, v) in s.values.iter().enumerate() {
                let Some((v, ci)) = v else { continue };
                let row = (n - 1 - i) as f64;
                let (y0, y1) = (row + 0.9 - (j as f64 + 1.0) * h, row + 0.9 - j as f64 * h);
                let yc = (y0 + y1) / 2.0;
                chart.draw_series(std::iter::once(Rectangle::new([(0.0, y0 + 0.01), (*v, y1 - 0.01)], s.color.filled())))?;
                let mut end = *v;
                if let Some((lo, hi)) = ci {
                    let cap = h * 0.3;
                    let black = BLACK.stroke_width(2);
                    chart.draw_series([
                        PathElement::new(vec![(*lo, yc), (*hi, yc)], black),
                        PathElement::new(vec![(*lo, yc - cap), (*lo, yc + cap)], black),
                        PathElement::new(vec![(*hi, yc - cap), (*hi, yc + cap)], black),
                    ])?;
                    end = end.max(*hi);
                }
                chart.draw_series(std::iter::once(Text::new(format!("{v:.1}"), (end + x_max * 0.006, yc), value_style.clone())))?;
            }
        }
        Ok(())
    }
}

/// Points (x, y, label) per series, with straight lines between a series' points when `lines`.
struct XY {
    title: String,
    x_desc: String,
    y_desc: String,
    series: Vec<(String, RGBColor, Vec<(f64, f64, String)>)>,
    lines: bool,
    /// Horizontal reference lines (label, y, colour), e.g. baselines without a training cost.
    refs: Vec<(String, f64, RGBColor)>,
    x_formatter: fn(&f64) -> String,
    height: u32,
}

impl Figure for XY {
    fn height(&self) -> u32 {
        self.height
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let area = area.titled(&self.title, ("sans-serif", 26))?;
        let (key, area) = area.split_vertically(34);
        legend(&key, &self.series.iter().map(|s| (s.0.clone(), s.1)).collect::<Vec<_>>(), true)?;
        let xs = self.series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
        let ys: Vec<f64> = self.series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).chain(self.refs.iter().map(|r| r.1)).collect();
        let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let (x_lo, x_hi) = if x_lo.is_finite() { (x_lo, x_hi) } else { (0.0, 1.0) };
        // Costs and ratios start at 0, so "a fifth of the cost" reads off the axis; room on the right for labels.
        let (x_lo, x_hi) = if x_lo >= 0.0 { (0.0, (x_hi * 1.45).max(x_hi + 0.1)) } else { (x_lo, x_hi + (x_hi - x_lo) * 0.45) };
        // F1 in percent: from 0, and at least to 10 so an all-zero sweep still has a readable axis.
        let y_lo = 0.0;
        let y_hi = (ys.iter().copied().fold(0.0, f64::max) * 1.1).max(10.0);
        let mut chart = ChartBuilder::on(&area).margin(15).margin_right(40).x_label_area_size(55).y_label_area_size(75).build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.clone())
            .y_desc(self.y_desc.clone())
            .x_label_formatter(&self.x_formatter)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .max_light_lines(0)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()?;
        let note = ("sans-serif", 14).into_font().color(&RGBColor(60, 60, 60)).pos(Pos::new(HPos::Left, VPos::Center));
        let gap = (y_hi - y_lo) * 0.045;
        let ref_text = spread(&self.refs.iter().map(|r| r.1 + gap * 0.5).collect::<Vec<_>>(), gap);
        for ((label, y, color), ty) in self.refs.iter().zip(ref_text) {
            chart.draw_series(DashedLineSeries::new(vec![(x_lo, *y), (x_hi, *y)], 8, 6, color.mix(0.6).stroke_width(2)))?;
            chart.draw_series(std::iter::once(Text::new(label.clone(), (x_lo + (x_hi - x_lo) * 0.01, ty), note.clone())))?;
        }
        for (_, color, points) in &self.series {
            if self.lines && points.len() > 1 {
                chart.draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), color.stroke_width(3)))?;
            }
            chart.draw_series(points.iter().map(|p| Circle::new((p.0, p.1), 6, color.filled())))?;
            let labelled: Vec<&(f64, f64, String)> = points.iter().filter(|p| !p.2.is_empty()).collect();
            let text_y = spread(&labelled.iter().map(|p| p.1).collect::<Vec<_>>(), gap);
            for (p, ty) in labelled.iter().zip(text_y) {
                let x = p.0 + (x_hi - x_lo) * 0.012;
                if (ty - p.1).abs() > 1e-9 {
                    chart.draw_series(std::iter::once(PathElement::new(vec![(p.0, p.1), (x, ty)], color.mix(0.5).stroke_width(1))))?;
                }
                chart.draw_series(std::iter::once(Text::new(p.2.clone(), (x, ty), note.clone())))?;
            }
        }
        Ok(())
    }
}

/// Training loss against optimizer step, one line per run.
struct Loss {
    curves: Vec<(String, RGBColor, Vec<(f64, f64)>)>,
    window: usize,
}

impl Figure for Loss {
    fn height(&self) -> u32 {
        620
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let title = if self.window > 1 { format!("Training loss (moving average over {} steps)", self.window) } else { "Training loss".to_string() };
        let area = area.titled(&title, ("sans-serif", 26))?;
        let x_hi = self.curves.iter().flat_map(|c| c.2.iter().map(|p| p.0)).fold(1.0, f64::max);
        let y_hi = self.curves.iter().flat_map(|c| c.2.iter().map(|p| p.1)).fold(0.0, f64::max) * 1.08 + 1e-6;
        let mut chart = ChartBuilder::on(&area).margin(15).margin_right(40).x_label_area_size(55).y_label_area_size(75).build_cartesian_2d(0f64..x_hi, 0f64..y_hi)?;
        chart
            .configure_mesh()
            .x_desc("optimizer step")
            .y_desc("answer-token loss")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .max_light_lines(0)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()?;
        for (label, color, points) in &self.curves {
            let c = *color;
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        }
        chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).border_style(BLACK).background_style(WHITE.mix(0.9)).label_font(("sans-serif", 16)).draw()?;
        Ok(())
    }
}

/// A run's name for plots: the system, plus the sweep settings the name does not already say.
fn short_label(r: &FinishedRun) -> String {
    let system = r.record.run.spec.system_name();
    let extra: Vec<String> = r
        .record
        .run
        .spec
        .sweep
        .iter()
        .map(|(k, v)| (k.rsplit('.').next().unwrap_or(k).to_string(), v.trim_matches('"').to_string()))
        .filter(|(_, v)| !system.contains(v.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if extra.is_empty() {
        system
    } else {
        format!("{system} [{}]", extra.join(", "))
    }
}

/// Labels for the runs in a plot, with a fingerprint prefix where two runs would share one.
pub fn plot_labels(runs: &[&FinishedRun]) -> Vec<String> {
    let labels: Vec<String> = runs.iter().map(|r| short_label(r)).collect();
    labels
        .iter()
        .zip(runs)
        .map(|(l, r)| if labels.iter().filter(|x| *x == l).count() > 1 { format!("{l} · {}", &r.short()[..8]) } else { l.clone() })
        .collect()
}

/// Text positions for labels at heights `ys`, pushed upwards so no two are closer than `gap`.
fn spread(ys: &[f64], gap: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..ys.len()).collect();
    order.sort_by(|a, b| ys[*a].total_cmp(&ys[*b]));
    let mut out = ys.to_vec();
    let mut last = f64::NEG_INFINITY;
    for i in order {
        let y = ys[i].max(last + gap);
        out[i] = y;
        last = y;
    }
    out
}

fn pct(x: f64) -> f64 {
    100.0 * x
}

/// Token counts given in millions: `250k` below a million, `1.5M` above.
fn millions(x: &f64) -> String {
    if x.abs() < 1e-12 {
        "0".into()
    } else if x.abs() < 1.0 {
        format!("{:.0}k", x * 1e3)
    } else {
        format!("{x:.1}M")
    }
}

fn plain(x: &f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The split the plots show: `test` when any run has it, else the first split found.
pub fn plot_split(runs: &[FinishedRun]) -> Option<String> {
    let has = |s: &str| runs.iter().any(|r| r.record.metrics.splits.contains_key(s));
    if has("test") {
        return Some("test".into());
    }
    runs.iter().find_map(|r| r.record.metrics.splits.keys().next().cloned())
}

/// Every plot the runs allow, as (title, [png, svg]) in the order a reader wants them.
pub fn write_plots(runs: &[FinishedRun], dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, ReportError> {
    let mut out = Vec::new();
    let Some(split) = plot_split(runs) else { return Ok(out) };
    let shown: Vec<&FinishedRun> = runs.iter().filter(|r| r.record.metrics.splits.contains_key(&split)).collect();
    let labels = plot_labels(&shown);
    let fps = |rs: &[&FinishedRun]| -> Vec<String> { rs.iter().map(|r| r.short().to_string()).collect() };
    let sets = |r: &FinishedRun| r.record.metrics.splits.get(&split).map(|m| m.sets.clone());
    let part = |m: Option<&crate::metrics::SetMetrics>, macro_f1: bool| -> Option<(f64, Option<(f64, f64)>)> {
        let m = m.filter(|m| m.n_gold_labels + m.n_pred_labels > 0)?;
        let (v, ci) = if macro_f1 { (m.macro_gold.f1, m.ci.as_ref().map(|c| (c.macro_f1_gold.lower, c.macro_f1_gold.upper))) } else { (m.micro.f1, m.ci.as_ref().map(|c| (c.micro_f1.lower, c.micro_f1.upper))) };
        Some((pct(v), ci.map(|(l, h)| (pct(l), pct(h)))))
    };

    // 1. Micro and macro F1 per run, with bootstrap CIs.
    let f1 = HBars {
        title: format!("Micro- and macro-F1 per run ({split} split, 95% bootstrap CIs)"),
        x_desc: "F1 (%) — macro over the codes in the split's gold labels".into(),
        labels: labels.clone(),
        series: vec![
            BarSeries { name: "micro-F1".into(), color: PALETTE[0], values: shown.iter().map(|r| sets(r).and_then(|s| part(Some(&s.overall), false))).collect() },
            BarSeries { name: "macro-F1".into(), color: PALETTE[1], values: shown.iter().map(|r| sets(r).and_then(|s| part(Some(&s.overall), true))).collect() },
        ],
    };
    out.push(("Micro- and macro-F1 per run".to_string(), save(&f1, dir, "f1", &fps(&shown))?));

    // 2. Seen vs unseen codes.
    if shown.iter().any(|r| sets(r).is_some_and(|s| s.unseen.is_some())) {
        let bars = |name: &str, color, unseen: bool, macro_f1: bool| BarSeries {
            name: name.into(),
            color,
            values: shown.iter().map(|r| sets(r).and_then(|s| part(if unseen { s.unseen.as_ref() } else { s.seen.as_ref() }, macro_f1).map(|(v, _)| (v, None)))).collect(),
        };
        let fig = HBars {
            title: format!("Seen vs unseen codes ({split} split)"),
            x_desc: "F1 (%) — unseen = codes no training document carries".into(),
            labels: labels.clone(),
            series: vec![
                bars("seen macro-F1", PALETTE[0], false, true),
                bars("unseen macro-F1", PALETTE[1], true, true),
                bars("seen micro-F1", RGBColor(158, 202, 225), false, false),
                bars("unseen micro-F1", RGBColor(253, 190, 133), true, false),
            ],
        };
        out.push(("Seen vs unseen codes".to_string(), save(&fig, dir, "seen-unseen", &fps(&shown))?));
    }

    // 3. Where the hits come from: recall of gold mentions by how they are worded.
    let by_mention = |r: &FinishedRun| r.record.metrics.splits.get(&split).and_then(|m| m.by_mention.clone());
    if shown.iter().any(|r| by_mention(r).is_some()) {
        let groups: [(&str, &str, bool, RGBColor); 5] = [
            ("verbatim", "verbatim", false, PALETTE[0]),
            ("shared paraphrase", "shared", false, PALETTE[1]),
            ("held-out paraphrase", "held_out", false, RGBColor(44, 160, 44)),
            ("shared, unseen codes", "shared", true, RGBColor(253, 190, 133)),
            ("held-out, unseen codes", "held_out", true, RGBColor(152, 223, 138)),
        ];
        let series = groups
            .iter()
            .map(|(name, key, unseen, color)| BarSeries {
                name: (*name).into(),
                color: *color,
                values: shown
                    .iter()
                    .map(|r| {
                        let g = by_mention(r)?.get(*key).cloned()?;
                        let recall = if *unseen { g.unseen } else { g.all };
                        (recall.gold > 0).then(|| (pct(recall.recall), None))
                    })
                    .collect(),
            })
            .filter(|s| s.values.iter().any(Option::is_some))
            .collect();
        let fig = HBars {
            title: format!("Recall by mention kind ({split} split)"),
            x_desc: "recall (%) of gold (document, code) pairs, by how the note words the mention".into(),
            labels: labels.clone(),
            series,
        };
        out.push(("Recall by mention kind".to_string(), save(&fig, dir, "mention-kinds", &fps(&shown))?));
    }

    // 4. F1 against training cost: the trade-off span-centric training claims.
    let trained: Vec<(&FinishedRun, String)> = shown.iter().zip(&labels).filter(|(r, _)| r.record.metrics.cost.is_some()).map(|(r, l)| (*r, l.clone())).collect();
    if !trained.is_empty() {
        let point = |r: &FinishedRun, f: &dyn Fn(&crate::metrics::Report) -> Option<f64>, label: String| -> Option<(f64, f64, String)> {
            let tokens = r.record.metrics.cost.as_ref()?.input_tokens as f64 / 1e6;
            Some((tokens, pct(f(&sets(r)?)?), label))
        };
        let active = |m: Option<&crate::metrics::SetMetrics>| m.filter(|m| m.n_gold_labels + m.n_pred_labels > 0).map(|m| m.macro_gold.f1);
        let macro_pts: Vec<_> = trained.iter().filter_map(|(r, l)| point(r, &|s| Some(s.overall.macro_gold.f1), l.clone())).collect();
        let unseen_pts: Vec<_> = trained.iter().filter_map(|(r, _)| point(r, &|s| active(s.unseen.as_ref()), String::new())).collect();
        // Baselines have no training cost: drawn as reference lines (at most four, to stay legible).
        let baselines: Vec<(&FinishedRun, String)> = shown.iter().zip(&labels).filter(|(r, _)| r.record.metrics.cost.is_none()).map(|(r, l)| (*r, l.clone())).take(4).collect();
        let refs: Vec<(String, f64, RGBColor)> = baselines
            .iter()
            .filter_map(|(r, l)| {
                let v = pct(sets(r)?.overall.macro_gold.f1);
                Some((format!("{l} (no training): macro-F1 {v:.1}"), v, PALETTE[7]))
            })
            .collect();
        let used: Vec<&FinishedRun> = trained.iter().map(|(r, _)| *r).chain(baselines.iter().map(|(r, _)| *r)).collect();
        let fig = XY {
            title: format!("F1 against training cost ({split} split)"),
            x_desc: "training input tokens".into(),
            y_desc: "F1 (%)".into(),
            series: vec![("macro-F1".into(), PALETTE[1], macro_pts), ("unseen macro-F1".into(), PALETTE[3], unseen_pts)],
            lines: false,
            refs,
            x_formatter: millions,
            height: 620,
        };
        out.push(("F1 against training cost".to_string(), save(&fig, dir, "f1-vs-cost", &fps(&used))?));
    }

    // 5. Span ratio against unseen macro-F1, when the runs sweep it.
    let swept: Vec<&FinishedRun> = shown.iter().copied().filter(|r| r.record.run.spec.sweep.iter().any(|(k, _)| k == "mix.span_ratio")).filter(|r| span_ratio(r).is_some()).collect();
    if !swept.is_empty() {
        let mut by_ratio: Vec<(f64, Vec<f64>, Vec<f64>)> = Vec::new();
        for r in &swept {
            let (Some(x), Some(s)) = (span_ratio(r), sets(r)) else { continue };
            let get = |m: Option<&crate::metrics::SetMetrics>| m.filter(|m| m.n_gold_labels + m.n_pred_labels > 0).map(|m| pct(m.macro_gold.f1));
            let slot = match by_ratio.iter().position(|b| (b.0 - x).abs() < 1e-9) {
                Some(i) => i,
                None => {
                    by_ratio.push((x, Vec::new(), Vec::new()));
                    by_ratio.len() - 1
                }
            };
            by_ratio[slot].1.extend(get(s.unseen.as_ref()));
            by_ratio[slot].2.extend(get(s.seen.as_ref()));
        }
        by_ratio.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let line = |k: usize| -> Vec<(f64, f64, String)> {
            by_ratio.iter().filter_map(|b| mean(if k == 1 { &b.1 } else { &b.2 }).map(|m| (b.0, m, format!("{m:.1}")))).collect()
        };
        let fig = XY {
            title: format!("Span ratio against macro-F1 ({split} split; mean over seeds)"),
            x_desc: "share of span examples in the training mix (mix.span_ratio)".into(),
            y_desc: "macro-F1 (%)".into(),
            series: vec![("unseen macro-F1".into(), PALETTE[1], line(1)), ("seen macro-F1".into(), PALETTE[0], line(2))],
            lines: true,
            refs: Vec::new(),
            x_formatter: plain,
            height: 600,
        };
        out.push(("Span ratio against macro-F1".to_string(), save(&fig, dir, "span-ratio", &fps(&swept))?));
    }

    // 5b. Backbones side by side, when the runs sweep `backbone.name`: F1 overall (with CIs),
    // seen and unseen, each backbone labelled with what its training cost.
    // A packaged or tiny backbone by its name, a path by its last component.
    let backbone = |r: &FinishedRun| {
        r.record.run.spec.sweep.iter().find(|(k, _)| k == "backbone.name").map(|(_, v)| {
            let v = v.trim_matches('"');
            Path::new(v).file_name().map_or(v.to_string(), |n| n.to_string_lossy().to_string())
        })
    };
    let by_backbone: Vec<&FinishedRun> = shown.iter().copied().filter(|r| backbone(r).is_some()).collect();
    let mut names: Vec<String> = by_backbone.iter().filter_map(|r| backbone(r)).collect();
    names.sort();
    names.dedup();
    if names.len() >= 2 {
        let cost_label = |r: &FinishedRun| {
            let name = backbone(r).unwrap_or_default();
            match &r.record.metrics.cost {
                Some(c) => format!("{name} ({:.0} s, {} tokens trained)", c.train_seconds, millions(&(c.input_tokens as f64 / 1e6))),
                None => name,
            }
        };
        let value = |r: &FinishedRun, unseen: Option<bool>, macro_f1: bool| {
            sets(r).and_then(|s| match unseen {
                None => part(Some(&s.overall), macro_f1),
                Some(true) => part(s.unseen.as_ref(), macro_f1).map(|(v, _)| (v, None)),
                Some(false) => part(s.seen.as_ref(), macro_f1).map(|(v, _)| (v, None)),
            })
        };
        let series = |name: &str, color, unseen: Option<bool>, macro_f1: bool| BarSeries { name: name.into(), color, values: by_backbone.iter().map(|r| value(r, unseen, macro_f1)).collect() };
        let fig = HBars {
            title: format!("Backbones on one benchmark ({split} split, 95% bootstrap CIs)"),
            x_desc: "F1 (%) — each backbone with its training time and tokens".into(),
            labels: by_backbone.iter().map(|r| cost_label(r)).collect(),
            series: vec![
                series("micro-F1", PALETTE[0], None, false),
                series("macro-F1", PALETTE[1], None, true),
                series("seen macro-F1", RGBColor(158, 202, 225), Some(false), true),
                series("unseen macro-F1", RGBColor(253, 190, 133), Some(true), true),
            ],
        };
        out.push(("Backbones on one benchmark".to_string(), save(&fig, dir, "backbones", &fps(&by_backbone))?));
    }

    // 6. Training loss curves.
    let with_loss: Vec<&FinishedRun> = runs.iter().filter(|r| !r.loss_curve.is_empty()).collect();
    if !with_loss.is_empty() {
        let longest = with_loss.iter().map(|r| r.loss_curve.len()).max().unwrap_or(1);
        let window = (longest / 60).max(1);
        let loss_labels = plot_labels(&with_loss);
        let curves = with_loss
            .iter()
            .zip(loss_labels)
            .enumerate()
            .map(|(i, (r, l))| {
                let pts: Vec<(f64, f64)> = r
                    .loss_curve
                    .windows(window)
                    .map(|w| (w[w.len() - 1].0 as f64, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64))
                    .collect();
                (shorten(&l, 60), PALETTE[i % PALETTE.len()], pts)
            })
            .collect();
        let fig = Loss { curves, window };
        out.push(("Training loss".to_string(), save(&fig, dir, "loss", &fps(&with_loss))?));
    }
    Ok(out)
}
