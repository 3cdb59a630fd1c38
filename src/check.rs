//! `icdbench check`: the CI gate. Runs (or reuses) the experiments a small CI
//! config names, reads each run's gated metrics, and compares them with a
//! checked-in reference under stated tolerances. Runs are matched by a stable
//! name (experiment / run label), never by fingerprint: a fingerprint changes
//! with every commit, and the point of the gate is to compare across commits.
//!
//! ```toml
//! experiments = ["../baselines/dictionary.toml"]        # relative to this file
//! reference = "../baselines/reference/quickstart-dictionary.json"
//!
//! [[gate]]
//! metric = "test.overall.micro_f1"
//! points = 0.5              # may drop by at most 0.5 F1 points
//!
//! [[gate]]
//! metric = "cost.train_seconds"
//! relative = 0.5            # may grow by at most 50%
//! ```

use crate::plan::{self, PlanError, PlannedRun};
use crate::report::markdown_table;
use crate::runner::{self, RunError, RunMetrics, RunOptions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The CI config or the reference file is missing or invalid (exit 2).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Differences this small are float noise, not a change.
const EPS: f64 = 1e-9;

// ---------------------------------------------------------------- metrics

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Higher,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Overall,
    Seen,
    Unseen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMeasure {
    MicroF1,
    MicroPrecision,
    MicroRecall,
    /// Macro-F1 over the codes in the split's gold labels, the tables' `macro-F1`.
    MacroF1,
    /// Macro-F1 over codes with TP+FP+FN > 0.
    MacroF1Nonzero,
    ExactMatch,
}

const SET_MEASURES: &[(&str, SetMeasure)] = &[
    ("micro_f1", SetMeasure::MicroF1),
    ("micro_precision", SetMeasure::MicroPrecision),
    ("micro_recall", SetMeasure::MicroRecall),
    ("macro_f1", SetMeasure::MacroF1),
    ("macro_f1_nonzero", SetMeasure::MacroF1Nonzero),
    ("exact_match", SetMeasure::ExactMatch),
];

const COST_FIELDS: &[&str] = &[
    "train_seconds",
    "input_tokens",
    "padded_tokens",
    "estimated_flops",
    "optimizer_steps",
    "examples",
    "peak_rss_bytes",
    "peak_gpu_memory_bytes",
    "tokens_per_second",
];

/// A metric a gate can name: `<split>.<overall|seen|unseen>.<measure>`, `<split>.evidence.<exact_f1|overlap_f1>`
/// or `cost.<field>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Set { split: String, part: Part, measure: SetMeasure },
    Evidence { split: String, overlap: bool },
    Cost { field: &'static str },
}

impl Metric {
    pub fn parse(name: &str) -> Result<Metric, String> {
        let parts: Vec<&str> = name.split('.').collect();
        let measures = || SET_MEASURES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        match parts.as_slice() {
            ["cost", field] => match COST_FIELDS.iter().find(|f| *f == field) {
                Some(f) => Ok(Metric::Cost { field: f }),
                None => Err(format!("unknown cost field {field:?}; use one of {}", COST_FIELDS.join(", "))),
            },
            [split, part, measure] => {
                if crate::data::Split::parse(split).is_none() {
                    return Err(format!("unknown split {split:?}; use train, val or test (as in `{split}.overall.micro_f1`)"));
                }
                let split = split.to_string();
                if *part == "evidence" {
                    return match *measure {
                        "exact_f1" => Ok(Metric::Evidence { split, overlap: false }),
                        "overlap_f1" => Ok(Metric::Evidence { split, overlap: true }),
                        _ => Err(format!("unknown evidence measure {measure:?}; use exact_f1 or overlap_f1")),
                    };
                }
                let part = match *part {
                    "overall" => Part::Overall,
                    "seen" => Part::Seen,
                    "unseen" => Part::Unseen,
                    _ => return Err(format!("unknown part {part:?}; use overall, seen, unseen or evidence")),
                };
                match SET_MEASURES.iter().find(|(n, _)| n == measure) {
                    Some((_, m)) => Ok(Metric::Set { split, part, measure: *m }),
                    None => Err(format!("unknown measure {measure:?}; use one of {}", measures())),
                }
            }
            _ => Err("expected `<split>.<overall|seen|unseen>.<measure>` (e.g. test.overall.micro_f1), \
                      `<split>.evidence.<exact_f1|overlap_f1>` or `cost.<field>` (e.g. cost.train_seconds)"
                .into()),
        }
    }

    /// Scores are fractions shown in F1 points; a cost is in its own units.
    pub fn is_score(&self) -> bool {
        !matches!(self, Metric::Cost { .. })
    }

    pub fn direction(&self) -> Direction {
        match self {
            Metric::Cost { field } if *field != "tokens_per_second" => Direction::Lower,
            _ => Direction::Higher,
        }
    }

    /// The run's value, or `None` when the run does not have it (split not evaluated, no unseen codes, no cost).
    pub fn value(&self, m: &RunMetrics) -> Option<f64> {
        match self {
            Metric::Set { split, part, measure } => {
                let sets = &m.splits.get(split)?.sets;
                let s = match part {
                    Part::Overall => &sets.overall,
                    Part::Seen => sets.seen.as_ref()?,
                    Part::Unseen => sets.unseen.as_ref()?,
                };
                Some(match measure {
                    SetMeasure::MicroF1 => s.micro.f1,
                    SetMeasure::MicroPrecision => s.micro.precision,
                    SetMeasure::MicroRecall => s.micro.recall,
                    SetMeasure::MacroF1 => s.macro_gold.f1,
                    SetMeasure::MacroF1Nonzero => s.macro_nonzero.f1,
                    SetMeasure::ExactMatch => s.exact_match.ratio,
                })
            }
            Metric::Evidence { split, overlap } => {
                let e = m.splits.get(split)?.evidence.as_ref()?;
                Some(if *overlap { e.overlap.f1 } else { e.exact.f1 })
            }
            Metric::Cost { field } => {
                let c = m.cost.as_ref()?;
                match *field {
                    "train_seconds" => Some(c.train_seconds),
                    "input_tokens" => Some(c.input_tokens as f64),
                    "padded_tokens" => Some(c.padded_tokens as f64),
                    "estimated_flops" => Some(c.estimated_flops),
                    "optimizer_steps" => Some(c.optimizer_steps as f64),
                    "examples" => Some(c.examples as f64),
                    "peak_rss_bytes" => c.peak_rss_bytes.map(|b| b as f64),
                    "peak_gpu_memory_bytes" => c.peak_gpu_memory_bytes.map(|b| b as f64),
                    "tokens_per_second" => Some(c.tokens_per_second),
                    _ => None,
                }
            }
        }
    }
}

// ---------------------------------------------------------------- tolerance and judgement

/// How far a metric may move the wrong way before the gate fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// Absolute, in F1 points (percent): 0.5 allows 80.0 -> 79.5.
    Points(f64),
    /// A fraction of the reference value: 0.1 allows 10% worse.
    Relative(f64),
}

impl Tolerance {
    /// The largest allowed move, in the metric's own units (fractions for scores).
    pub fn allowed(self, reference: f64) -> f64 {
        match self {
            Tolerance::Points(p) => p / 100.0,
            Tolerance::Relative(r) => r * reference.abs(),
        }
    }

    fn show(self) -> String {
        match self {
            Tolerance::Points(p) => format!("{p:.2} pts"),
            Tolerance::Relative(r) => format!("{}%", trim(100.0 * r)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Within tolerance either way.
    Ok,
    /// Better by more than the tolerance.
    Improved,
    /// Worse by more than the tolerance.
    Regressed,
    /// In the reference, not in the current results.
    Missing,
    /// In the current results, not in the reference.
    New,
    /// The run failed.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Improved => "improved",
            Status::Regressed => "REGRESSED",
            Status::Missing => "MISSING",
            Status::New => "new",
            Status::Failed => "FAILED",
        }
    }

    pub fn fails(self) -> bool {
        matches!(self, Status::Regressed | Status::Missing | Status::Failed)
    }
}

/// Compares one value with its reference: a move the wrong way by more than the tolerance regresses;
/// a move of exactly the tolerance is still ok.
pub fn judge(reference: f64, now: f64, direction: Direction, tolerance: Tolerance) -> Status {
    let gain = match direction {
        Direction::Higher => now - reference,
        Direction::Lower => reference - now,
    };
    let allowed = tolerance.allowed(reference);
    if gain < -(allowed + EPS) {
        Status::Regressed
    } else if gain > allowed + EPS {
        Status::Improved
    } else {
        Status::Ok
    }
}

// ---------------------------------------------------------------- the CI config

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    experiments: Vec<toml::Spanned<PathBuf>>,
    reference: toml::Spanned<PathBuf>,
    #[serde(default)]
    gate: Vec<GateFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateFile {
    metric: toml::Spanned<String>,
    points: Option<toml::Spanned<f64>>,
    relative: Option<toml::Spanned<f64>>,
}

/// One gated metric and how far it may move.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub name: String,
    pub metric: Metric,
    pub tolerance: Tolerance,
}

/// A CI config, paths resolved against its folder.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub path: PathBuf,
    pub experiments: Vec<PathBuf>,
    pub reference: PathBuf,
    pub gates: Vec<Gate>,
}

/// `1-based line:column` of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `a/b/../c` -> `a/c` without touching the file system, so messages name the file as a user would.
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

impl CheckConfig {
    pub fn load(path: &Path) -> Result<CheckConfig, CheckError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CheckError::Input(format!("{}: cannot read the CI config: {e}; pass its path, e.g. `icdbench check ci/check.toml`", path.display()))
        })?;
        CheckConfig::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<CheckConfig, CheckError> {
        let at = |span: std::ops::Range<usize>, key: &str, msg: String| {
            let (l, c) = line_col(text, span.start);
            CheckError::Input(format!("{}:{l}:{c}: [{key}] {msg}", path.display()))
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().lines().next().unwrap_or("invalid TOML").to_string();
            match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    CheckError::Input(format!("{}:{l}:{c}: {msg}", path.display()))
                }
                None => CheckError::Input(format!("{}: {msg}", path.display())),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        if file.experiments.is_empty() {
            return Err(CheckError::Input(format!("{}: [experiments] is empty; name at least one experiment file", path.display())));
        }
        let mut gates: Vec<Gate> = Vec::new();
        for (i, g) in file.gate.iter().enumerate() {
            let key = format!("gate[{i}].metric");
            let name = g.metric.get_ref().trim().to_string();
            let metric = Metric::parse(&name).map_err(|m| at(g.metric.span(), &key, format!("{name:?}: {m}")))?;
            if gates.iter().any(|x| x.name == name) {
                return Err(at(g.metric.span(), &key, format!("{name:?} is gated twice; keep one [[gate]]")));
            }
            let tolerance = match (&g.points, &g.relative) {
                (Some(_), Some(r)) => return Err(at(r.span(), &format!("gate[{i}]"), "give `points` or `relative`, not both".into())),
                (None, None) => {
                    let hint = if metric.is_score() { "`points = 0.5` (F1 points) or `relative = 0.01`" } else { "`relative = 0.5` (50%)" };
                    return Err(at(g.metric.span(), &format!("gate[{i}]"), format!("{name:?} has no tolerance; add {hint}")));
                }
                (Some(p), None) => {
                    if !metric.is_score() {
                        return Err(at(p.span(), &format!("gate[{i}].points"), format!("{name:?} is a cost, not a score: use `relative`")));
                    }
                    Tolerance::Points(*p.get_ref())
                }
                (None, Some(r)) => Tolerance::Relative(*r.get_ref()),
            };
            let (value, span, field) = match (&g.points, &g.relative) {
                (Some(p), _) => (*p.get_ref(), p.span(), "points"),
                (_, Some(r)) => (*r.get_ref(), r.span(), "relative"),
                _ => (0.0, 0..0, ""),
            };
            if !value.is_finite() || value < 0.0 {
                return Err(at(span, &format!("gate[{i}].{field}"), format!("{value} must be a number >= 0")));
            }
            gates.push(Gate { name, metric, tolerance });
        }
        if gates.is_empty() {
            return Err(CheckError::Input(format!(
                "{}: no [[gate]] given; add one, e.g. [[gate]] metric = \"test.overall.micro_f1\" points = 0.5",
                path.display()
            )));
        }
        let experiments = file.experiments.iter().map(|e| tidy(&base.join(e.get_ref()))).collect();
        Ok(CheckConfig { path: path.to_path_buf(), experiments, reference: tidy(&base.join(file.reference.get_ref())), gates })
    }
}

// ---------------------------------------------------------------- the reference file

/// `baselines/reference/<name>.json`, written by `icdbench check --update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// What wrote it, for the reader.
    pub written_by: String,
    pub icdbench_version: String,
    pub git_revision: String,
    /// The CI config it was written from.
    pub config: String,
    /// Keyed by run name (`experiment / run label`).
    pub runs: BTreeMap<String, ReferenceRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRun {
    pub experiment: String,
    pub label: String,
    /// For information only: runs are matched by name.
    pub fingerprint: String,
    /// Gated metrics: scores as fractions, costs in their units.
    pub metrics: BTreeMap<String, f64>,
}

impl Reference {
    pub fn load(path: &Path) -> Result<Reference, CheckError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CheckError::Input(format!("{}: cannot read the reference file: {e}; write one with `icdbench check CI.toml --update`", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| CheckError::Input(format!("{}:{}:{}: not a reference file: {e}", path.display(), e.line(), e.column())))
    }
}

// ---------------------------------------------------------------- running

/// One current run: its stable name and the values of the gated metrics it has.
#[derive(Debug, Clone)]
pub struct CurrentRun {
    pub name: String,
    pub experiment: String,
    pub label: String,
    pub fingerprint: String,
    pub reused: bool,
    pub values: BTreeMap<String, f64>,
    /// Why the run failed, if it did.
    pub failed: Option<String>,
}

/// The name a run is matched by across commits.
pub fn run_name(run: &PlannedRun) -> String {
    format!("{} / {}", run.spec.experiment, run.label())
}

/// Plans every experiment of the config (all before running any: a bad file fails first),
/// then runs or reuses each run. A failed run is recorded and the others still run.
pub fn run_all(config: &CheckConfig, results: &Path, progress: bool, mut on_done: impl FnMut(&CurrentRun)) -> Result<Vec<CurrentRun>, CheckError> {
    let mut planned: Vec<PlannedRun> = Vec::new();
    let mut names = HashSet::new();
    for f in &config.experiments {
        for run in plan::plan_file(f, results)? {
            let name = run_name(&run);
            if !names.insert(name.clone()) {
                return Err(CheckError::Input(format!(
                    "{}: two runs are named {name:?}; give the experiments or baselines distinct names (the gate matches runs by name)",
                    f.display()
                )));
            }
            planned.push(run);
        }
    }
    let opts = RunOptions { force: false, progress, stop_after_steps: None };
    let mut out = Vec::new();
    for run in &planned {
        let mut current = CurrentRun {
            name: run_name(run),
            experiment: run.spec.experiment.clone(),
            label: run.label(),
            fingerprint: run.fingerprint.to_string(),
            reused: false,
            values: BTreeMap::new(),
            failed: None,
        };
        match runner::execute(std::slice::from_ref(run), &opts, |_| {}) {
            Ok(records) => {
                if let Some(r) = records.first() {
                    current.reused = r.reused;
                    for g in &config.gates {
                        if let Some(v) = g.metric.value(&r.metrics) {
                            current.values.insert(g.name.clone(), v);
                        }
                    }
                }
            }
            // Input the user must fix (bad data, a corrupt results folder) stops the gate with exit 2.
            Err(e) if e.is_user_input() => return Err(CheckError::Run(e)),
            Err(e) => current.failed = Some(e.to_string()),
        }
        on_done(&current);
        out.push(current);
    }
    Ok(out)
}

/// The reference that `--update` writes from the current runs.
pub fn reference_from(runs: &[CurrentRun], config: &CheckConfig) -> Reference {
    Reference {
        written_by: "icdbench check --update (runs are matched by name; fingerprints are for information)".into(),
        icdbench_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: env!("ICDBENCH_GIT_REVISION").into(),
        config: config.path.display().to_string(),
        runs: runs
            .iter()
            .map(|r| {
                let run = ReferenceRun { experiment: r.experiment.clone(), label: r.label.clone(), fingerprint: r.fingerprint.clone(), metrics: r.values.clone() };
                (r.name.clone(), run)
            })
            .collect(),
    }
}

// ---------------------------------------------------------------- comparison

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub run: String,
    /// Empty for a row about the whole run (failed, missing).
    pub metric: String,
    pub reference: Option<f64>,
    pub now: Option<f64>,
    pub tolerance: Option<Tolerance>,
    pub is_score: bool,
    pub status: Status,
    /// Why, for failed and missing runs.
    pub note: Option<String>,
}

impl Row {
    pub fn unchanged(&self) -> bool {
        self.status == Status::Ok && matches!((self.reference, self.now), (Some(a), Some(b)) if (a - b).abs() < EPS)
    }
}

/// Compares current runs with the reference, gate by gate. Pure: no files, no runs.
pub fn compare(reference: &Reference, current: &[CurrentRun], gates: &[Gate]) -> Vec<Row> {
    let mut rows = Vec::new();
    for run in current {
        let base = Row { run: run.name.clone(), metric: String::new(), reference: None, now: None, tolerance: None, is_score: true, status: Status::Ok, note: None };
        if let Some(why) = &run.failed {
            rows.push(Row { status: Status::Failed, note: Some(why.clone()), ..base });
            continue;
        }
        let known = reference.runs.get(&run.name);
        for g in gates {
            let was = known.and_then(|k| k.metrics.get(&g.name).copied());
            let now = run.values.get(&g.name).copied();
            let status = match (was, now) {
                (Some(r), Some(n)) => judge(r, n, g.metric.direction(), g.tolerance),
                (Some(_), None) => Status::Missing,
                (None, Some(_)) => Status::New,
                // Neither has it (e.g. the cost of an untrained baseline): nothing to compare.
                (None, None) => continue,
            };
            let note = (status == Status::Missing).then(|| "the current run does not report this metric".to_string());
            rows.push(Row { metric: g.name.clone(), reference: was, now, tolerance: Some(g.tolerance), is_score: g.metric.is_score(), status, note, ..base.clone() });
        }
    }
    let names: HashSet<&str> = current.iter().map(|r| r.name.as_str()).collect();
    for name in reference.runs.keys().filter(|n| !names.contains(n.as_str())) {
        rows.push(Row {
            run: name.clone(),
            metric: String::new(),
            reference: None,
            now: None,
            tolerance: None,
            is_score: true,
            status: Status::Missing,
            note: Some("in the reference, but no experiment of the CI config plans a run of this name".into()),
        });
    }
    rows
}

/// What `icdbench check` found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub config: PathBuf,
    pub reference: PathBuf,
    pub rows: Vec<Row>,
    pub runs: usize,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        !self.rows.iter().any(|r| r.status.fails())
    }

    fn count(&self, s: Status) -> usize {
        self.rows.iter().filter(|r| r.status == s).count()
    }

    /// One line: passed or failed, and the counts.
    pub fn summary(&self) -> String {
        let counts = format!(
            "{} ok, {} improved, {} regressed, {} missing, {} failed, {} new",
            self.count(Status::Ok),
            self.count(Status::Improved),
            self.count(Status::Regressed),
            self.count(Status::Missing),
            self.count(Status::Failed),
            self.count(Status::New)
        );
        if self.passed() {
            format!("ok: {} runs, nothing regressed beyond its tolerance ({counts})", self.runs)
        } else {
            format!("check failed against {}: {counts}", self.reference.display())
        }
    }

    /// Rows worth reading: everything but metrics equal to the reference.
    fn moved(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| !r.unchanged()).collect()
    }

    /// A plain-text report: the rows that moved, one sentence per failure, and the summary.
    pub fn text(&self) -> String {
        let mut out = format!("icdbench check {} against {}\n\n", self.config.display(), self.reference.display());
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
        let mut out = format!("## icdbench check {verdict}\n\n`{}` against `{}`\n\n", self.config.display(), self.reference.display());
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
                r.tolerance.map_or("–".into(), |t| t.show()),
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
        (Some(a), Some(b)) => format!(": {} -> {} ({}; tolerance {})", value(a, r.is_score), value(b, r.is_score), delta(r), r.tolerance.map_or("–".into(), |t| t.show())),
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

// ---------------------------------------------------------------- the command

/// `icdbench check`: load the config (and the reference unless updating), run or reuse every run,
/// compare; with `update`, write the current values as the new reference (atomically) instead of failing.
pub fn check(config_path: &Path, results: &Path, update: bool, progress: bool) -> Result<(Outcome, Option<PathBuf>), CheckError> {
    let config = CheckConfig::load(config_path)?;
    let reference = if update {
        // An old reference, when readable, still shows what the update changes.
        Reference::load(&config.reference).ok()
    } else {
        Some(Reference::load(&config.reference)?)
    };
    let current = run_all(&config, results, progress, |r| {
        let how = match (&r.failed, r.reused) {
            (Some(_), _) => "FAILED",
            (None, true) => "reused",
            (None, false) => "computed",
        };
        eprintln!("  {} {} {how}", r.fingerprint.get(..12).unwrap_or(&r.fingerprint), r.name);
    })?;
    let rows = compare(&reference.unwrap_or_default(), &current, &config.gates);
    let outcome = Outcome { config: config.path.clone(), reference: config.reference.clone(), rows, runs: current.len() };
    if !update {
        return Ok((outcome, None));
    }
    if current.iter().any(|r| r.failed.is_some()) {
        // Never record a reference with a failed run in it.
        return Ok((outcome, None));
    }
    let new = reference_from(&current, &config);
    runner::write_json(&config.reference, &new)?;
    Ok((outcome, Some(config.reference.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(name: &str, tolerance: Tolerance) -> Gate {
        Gate { name: name.into(), metric: Metric::parse(name).unwrap(), tolerance }
    }

    fn current(name: &str, values: &[(&str, f64)]) -> CurrentRun {
        CurrentRun {
            name: name.into(),
            experiment: "e".into(),
            label: name.into(),
            fingerprint: "f".into(),
            reused: true,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            failed: None,
        }
    }

    fn reference(runs: &[(&str, &[(&str, f64)])]) -> Reference {
        let mut r = reference_from(&[], &CheckConfig { path: "c.toml".into(), experiments: vec![], reference: "r.json".into(), gates: vec![] });
        for (name, values) in runs {
            r.runs.insert(name.to_string(), ReferenceRun { experiment: "e".into(), label: name.to_string(), fingerprint: "f".into(), metrics: current(name, values).values });
        }
        r
    }

    #[test]
    fn points_tolerance_is_inclusive_at_the_boundary() {
        let t = Tolerance::Points(0.5);
        // Exactly half a point down is allowed; a hair more is not.
        assert_eq!(judge(0.80, 0.795, Direction::Higher, t), Status::Ok);
        assert_eq!(judge(0.80, 0.7949, Direction::Higher, t), Status::Regressed);
        assert_eq!(judge(0.80, 0.805, Direction::Higher, t), Status::Ok);
        assert_eq!(judge(0.80, 0.8051, Direction::Higher, t), Status::Improved);
        assert_eq!(judge(0.80, 0.80, Direction::Higher, Tolerance::Points(0.0)), Status::Ok);
        assert_eq!(judge(0.80, 0.7999, Direction::Higher, Tolerance::Points(0.0)), Status::Regressed);
    }

    #[test]
    fn relative_tolerance_scales_with_the_reference_and_respects_direction() {
        let t = Tolerance::Relative(0.1);
        // Lower is better for time: 10 s -> 11 s is exactly 10% worse (ok), 11.01 s regresses, 8 s improves.
        assert_eq!(judge(10.0, 11.0, Direction::Lower, t), Status::Ok);
        assert_eq!(judge(10.0, 11.01, Direction::Lower, t), Status::Regressed);
        assert_eq!(judge(10.0, 8.0, Direction::Lower, t), Status::Improved);
        // Higher is better for scores: 10% of 0.5 is 0.05.
        assert_eq!(judge(0.5, 0.45, Direction::Higher, t), Status::Ok);
        assert_eq!(judge(0.5, 0.449, Direction::Higher, t), Status::Regressed);
        assert!((t.allowed(-4.0) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn metric_names_parse_or_say_what_to_use() {
        assert_eq!(Metric::parse("test.unseen.macro_f1").unwrap().direction(), Direction::Higher);
        assert_eq!(Metric::parse("cost.train_seconds").unwrap().direction(), Direction::Lower);
        assert_eq!(Metric::parse("cost.tokens_per_second").unwrap().direction(), Direction::Higher);
        assert!(!Metric::parse("cost.input_tokens").unwrap().is_score());
        assert!(Metric::parse("val.evidence.overlap_f1").unwrap().is_score());
        assert!(Metric::parse("test.overal.micro_f1").unwrap_err().contains("overall, seen, unseen"));
        assert!(Metric::parse("tset.overall.micro_f1").unwrap_err().contains("unknown split"));
        assert!(Metric::parse("test.overall.f1").unwrap_err().contains("micro_f1"));
        assert!(Metric::parse("micro_f1").is_err());
    }

    #[test]
    fn compare_marks_missing_new_and_failed_runs() {
        let gates = [gate("test.overall.micro_f1", Tolerance::Points(0.5)), gate("test.unseen.macro_f1", Tolerance::Points(1.0))];
        let reference = reference(&[
            ("a", &[("test.overall.micro_f1", 0.8), ("test.unseen.macro_f1", 0.5)]),
            ("gone", &[("test.overall.micro_f1", 0.7)]),
            ("broken", &[("test.overall.micro_f1", 0.7)]),
        ]);
        let mut broken = current("broken", &[]);
        broken.failed = Some("baseline failed".into());
        // `a` dropped 2 points overall and lost its unseen metric; `fresh` is new.
        let now = [current("a", &[("test.overall.micro_f1", 0.78)]), broken, current("fresh", &[("test.overall.micro_f1", 0.9)])];
        let rows = compare(&reference, &now, &gates);
        let status = |run: &str, metric: &str| rows.iter().find(|r| r.run == run && r.metric == metric).map(|r| r.status);
        assert_eq!(status("a", "test.overall.micro_f1"), Some(Status::Regressed));
        assert_eq!(status("a", "test.unseen.macro_f1"), Some(Status::Missing));
        assert_eq!(status("broken", ""), Some(Status::Failed));
        assert_eq!(status("fresh", "test.overall.micro_f1"), Some(Status::New));
        // `fresh` has no unseen value and neither does the reference: no row.
        assert_eq!(status("fresh", "test.unseen.macro_f1"), None);
        assert_eq!(status("gone", ""), Some(Status::Missing));
        let outcome = Outcome { config: "c.toml".into(), reference: "r.json".into(), rows, runs: 3 };
        assert!(!outcome.passed());
        let text = outcome.text();
        assert!(text.contains("REGRESSED a test.overall.micro_f1: 80.00 -> 78.00 (-2.00 pts; tolerance 0.50 pts)"), "{text}");
        let gh = outcome.github_annotations();
        assert!(gh.lines().any(|l| l.starts_with("::error title=icdbench check regression::REGRESSED a test.overall.micro_f1")), "{gh}");
        assert!(gh.lines().any(|l| l.starts_with("::notice title=icdbench check new result::new fresh")), "{gh}");
    }

    #[test]
    fn new_runs_and_improvements_pass() {
        let gates = [gate("test.overall.micro_f1", Tolerance::Points(0.5))];
        let reference = reference(&[("a", &[("test.overall.micro_f1", 0.8)])]);
        let now = [current("a", &[("test.overall.micro_f1", 0.9)]), current("b", &[("test.overall.micro_f1", 0.1)])];
        let outcome = Outcome { config: "c.toml".into(), reference: "r.json".into(), rows: compare(&reference, &now, &gates), runs: 2 };
        assert!(outcome.passed(), "{}", outcome.text());
        assert_eq!(outcome.rows[0].status, Status::Improved);
    }

    #[test]
    fn config_errors_name_the_file_line_and_key() {
        let p = Path::new("ci/x.toml");
        let err = |t: &str| CheckConfig::parse(t, p).unwrap_err().to_string();
        let e = err("experiments = [\"a.toml\"]\nreference = \"r.json\"\ntolerence = 1\n");
        assert!(e.starts_with("ci/x.toml:3:1:") && e.contains("tolerence"), "{e}");
        let e = err("experiments = [\"a.toml\"]\nreference = \"r.json\"\n[[gate]]\nmetric = \"test.overal.micro_f1\"\npoints = 1\n");
        assert!(e.starts_with("ci/x.toml:4:") && e.contains("gate[0].metric") && e.contains("overall"), "{e}");
        let e = err("experiments = [\"a.toml\"]\nreference = \"r.json\"\n[[gate]]\nmetric = \"cost.train_seconds\"\npoints = 1\n");
        assert!(e.contains("use `relative`"), "{e}");
        let e = err("experiments = [\"a.toml\"]\nreference = \"r.json\"\n[[gate]]\nmetric = \"test.overall.micro_f1\"\npoints = -1\n");
        assert!(e.contains("gate[0].points") && e.contains(">= 0"), "{e}");
        let e = err("experiments = [\"a.toml\"]\nreference = \"r.json\"\n[[gate]]\nmetric = \"test.overall.micro_f1\"\n");
        assert!(e.contains("no tolerance"), "{e}");
        assert!(!err("").contains('\n'));
        let ok = CheckConfig::parse("experiments = [\"../b/e.toml\"]\nreference = \"../r/x.json\"\n[[gate]]\nmetric = \"test.overall.micro_f1\"\nrelative = 0.01\n", p).unwrap();
        assert_eq!(ok.experiments, vec![PathBuf::from("b/e.toml")]);
        assert_eq!(ok.reference, PathBuf::from("r/x.json"));
        assert_eq!(ok.gates[0].tolerance, Tolerance::Relative(0.01));
    }
}
