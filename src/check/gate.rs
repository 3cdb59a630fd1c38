//! The gate's judgement: tolerances, the status of each gated value, and the comparison of
//! current runs with the reference. Pure: no files, no runs.

use super::config::{Gate, Tolerance};
use super::metric::Direction;
use super::reference::Reference;
use super::CurrentRun;
use std::collections::HashSet;
use std::path::PathBuf;

/// Differences this small are float noise, not a change.
pub(crate) const EPS: f64 = 1e-9;

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
    /// Not above the backbone gate's floor (a baseline such as the prior).
    BelowFloor,
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
            Status::BelowFloor => "BELOW FLOOR",
        }
    }

    pub fn fails(self) -> bool {
        matches!(self, Status::Regressed | Status::Missing | Status::Failed | Status::BelowFloor)
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
    /// What the runs were compared with, as shown: the reference file, or the reference backbone.
    pub reference: String,
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
            "{} ok, {} improved, {} regressed, {} missing, {} failed, {} new, {} below the floor",
            self.count(Status::Ok),
            self.count(Status::Improved),
            self.count(Status::Regressed),
            self.count(Status::Missing),
            self.count(Status::Failed),
            self.count(Status::New),
            self.count(Status::BelowFloor)
        );
        if self.passed() {
            format!("ok: {} runs, nothing regressed beyond its tolerance ({counts})", self.runs)
        } else {
            format!("check failed against {}: {counts}", self.reference)
        }
    }

    /// Rows worth reading: everything but metrics equal to the reference.
    pub(super) fn moved(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| !r.unchanged()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::metric::Metric;
    use crate::check::reference::{reference_from, ReferenceRun};
    use crate::check::CheckConfig;

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
            sweep: vec![],
            baseline: None,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            failed: None,
        }
    }

    fn reference(runs: &[(&str, &[(&str, f64)])]) -> Reference {
        let mut r = reference_from(&[], &CheckConfig { path: "c.toml".into(), experiments: vec![], reference: Some("r.json".into()), backbone_gate: None, gates: vec![] });
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
}
