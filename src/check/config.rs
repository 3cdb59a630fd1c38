//! The CI config file (`ci/check.toml`): which experiments, which reference, which gates.

use super::metric::Metric;
use super::CheckError;
use crate::config::line_col;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

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
}

/// One gated metric and how far it may move.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub name: String,
    pub metric: Metric,
    pub tolerance: Tolerance,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    experiments: Vec<toml::Spanned<PathBuf>>,
    #[serde(default)]
    reference: Option<toml::Spanned<PathBuf>>,
    #[serde(default)]
    backbone_gate: Option<toml::Spanned<BackboneGateFile>>,
    #[serde(default)]
    gate: Vec<GateFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackboneGateFile {
    #[serde(default)]
    key: Option<String>,
    reference: String,
    #[serde(default)]
    judge: Option<Vec<String>>,
    #[serde(default)]
    floor: Option<String>,
}

/// Compare each run with the run of the reference backbone that has the same other settings,
/// in the same invocation: a new backbone passes when it is not worse beyond the gates' tolerances.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneGate {
    /// The sweep key that names the backbone (`backbone.name`).
    pub key: String,
    /// Its value for the reference backbone (`smollm2-135m`).
    pub reference: String,
    /// The values judged against it; `None`: every other value. Runs of values not judged
    /// (a floor such as the tiny model) run and are reported, but cannot fail the check.
    pub judge: Option<Vec<String>>,
    /// A baseline of the same experiments (its name, e.g. `prior`) that the reference backbone
    /// and every judged one must beat on each gated score, whatever the tolerances.
    pub floor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateFile {
    metric: toml::Spanned<String>,
    points: Option<toml::Spanned<f64>>,
    relative: Option<toml::Spanned<f64>>,
}

/// A CI config, paths resolved against its folder.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub path: PathBuf,
    pub experiments: Vec<PathBuf>,
    /// The checked-in reference file (none for a backbone gate).
    pub reference: Option<PathBuf>,
    pub backbone_gate: Option<BackboneGate>,
    pub gates: Vec<Gate>,
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
        let backbone_gate = match (&file.reference, &file.backbone_gate) {
            (Some(_), Some(g)) => return Err(at(g.span(), "backbone_gate", "give a `reference` file or a [backbone_gate], not both".into())),
            (None, None) => {
                return Err(CheckError::Input(format!(
                    "{}: nothing to compare with: give `reference = \"...json\"` (a checked-in reference) or [backbone_gate] reference = \"<backbone>\"",
                    path.display()
                )))
            }
            (_, Some(g)) => {
                let g = g.get_ref();
                Some(BackboneGate { key: g.key.clone().unwrap_or_else(|| "backbone.name".into()), reference: g.reference.clone(), judge: g.judge.clone(), floor: g.floor.clone() })
            }
            (Some(_), None) => None,
        };
        let reference = file.reference.as_ref().map(|r| tidy(&base.join(r.get_ref())));
        Ok(CheckConfig { path: path.to_path_buf(), experiments, reference, backbone_gate, gates })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(ok.reference, Some(PathBuf::from("r/x.json")));
        let bb = CheckConfig::parse("experiments = [\"e.toml\"]\n[backbone_gate]\nreference = \"smollm2-135m\"\n[[gate]]\nmetric = \"test.overall.micro_f1\"\npoints = 1\n", p).unwrap();
        assert_eq!(bb.backbone_gate, Some(BackboneGate { key: "backbone.name".into(), reference: "smollm2-135m".into(), judge: None, floor: None }));
        let floored = CheckConfig::parse("experiments = [\"e.toml\"]\n[backbone_gate]\nreference = \"smollm2-135m\"\nfloor = \"prior\"\n[[gate]]\nmetric = \"test.overall.micro_f1\"\npoints = 1\n", p).unwrap();
        assert_eq!(floored.backbone_gate.unwrap().floor.as_deref(), Some("prior"));
        assert!(err("experiments = [\"e.toml\"]\n[[gate]]\nmetric = \"test.overall.micro_f1\"\npoints = 1\n").contains("nothing to compare with"));
        assert_eq!(ok.gates[0].tolerance, Tolerance::Relative(0.01));
    }
}
