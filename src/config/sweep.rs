//! `[sweep]` axes: `"mix.span_ratio" = [0.0, 0.5, 1.0]` set one key per axis;
//! the cartesian product of all axes becomes one experiment per point.
//!
//! `[arms.<name>]` tables are one more axis, for settings that only make sense
//! together. Each arm sets its keys over the rest of the file — dotted as sweep
//! keys are, and a table value sets the keys inside it, leaving the others — and
//! its runs are labelled `arm=<name>`:
//!
//! ```toml
//! [arms.document_only]
//! "mix.strategy" = "document_only"
//!
//! [arms.mixed]
//! "mix.strategy" = "mixed"
//! "mix.span_ratio" = 0.5
//!
//! [sweep]
//! "experiment.seed" = [1, 2, 3]    # 2 arms × 3 seeds = 6 runs
//! ```
//!
//! A key may be set by an arm or by a sweep axis, not by both.

use super::load::{locate, ConfigError, Problem};
use super::{parse_experiment_with, Experiment};
use std::path::Path;

/// The sweep setting that names a point's arm.
pub const ARM_KEY: &str = "arm";

/// One point of a sweep: the values it set and the experiment they give.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// `key=value` pairs this point set: its arm first (`arm=<name>`), then the axes in
    /// order (empty without a sweep or arms).
    pub settings: Vec<(String, String)>,
    /// The dotted keys the point's arm sets (empty without arms).
    pub arm_keys: Vec<String>,
    pub experiment: Experiment,
}

impl SweepPoint {
    /// A short human label, e.g. `mix.span_ratio=0.5` or `arm=mixed,experiment.seed=2`.
    pub fn label(&self) -> String {
        if self.settings.is_empty() {
            return "default".into();
        }
        label(&self.settings)
    }
}

/// One key an arm sets: `written` is its path under `[arms.<name>]` as the file writes it
/// (`["train.match_tokens_of", "span_ratio"]`), `key` the dotted path it sets.
#[derive(Debug, Clone)]
struct ArmSetting {
    written: Vec<String>,
    key: String,
    value: toml::Value,
}

/// An arm's table as the keys it sets: a table value sets the keys inside it.
fn arm_settings(table: &toml::Table) -> Vec<ArmSetting> {
    fn walk(table: &toml::Table, written: &mut Vec<String>, prefix: &str, out: &mut Vec<ArmSetting>) {
        for (k, v) in table {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            written.push(k.clone());
            match v {
                toml::Value::Table(t) => walk(t, written, &key, out),
                _ => out.push(ArmSetting { written: written.clone(), key, value: v.clone() }),
            }
            written.pop();
        }
    }
    let mut out = Vec::new();
    walk(table, &mut Vec::new(), "", &mut out);
    out
}

/// Whether two dotted keys name the same setting or one lies inside the other.
fn overlap(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."))
}

/// Problems with the arms themselves, before any is applied, located in `text`.
fn check_arms(exp: &Experiment, arms: &[(&String, Vec<ArmSetting>)], text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut fail = |at: Vec<&str>, key: String, message: String| {
        let (line, column) = locate(text, &at);
        problems.push(Problem { line, column, key: Some(key), message });
    };
    for (name, settings) in arms {
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            fail(vec!["arms", name.as_str()], format!("arms.{name}"), "name an arm with letters, digits, '-' and '_' (it labels the arm's runs)".into());
        }
        if settings.is_empty() {
            fail(vec!["arms", name.as_str()], format!("arms.{name}"), "an arm sets at least one key, e.g. \"mix.strategy\" = \"mixed\"".into());
        }
        for s in settings {
            let at: Vec<&str> = ["arms", name.as_str()].into_iter().chain(s.written.iter().map(String::as_str)).collect();
            let top = s.key.split('.').next().unwrap_or_default();
            if top == "sweep" || top == "arms" {
                fail(at, format!("arms.{name}"), format!("an arm cannot set `{top}` keys"));
            } else if let Some(axis) = exp.sweep.keys().find(|axis| overlap(axis, &s.key)) {
                fail(at, format!("arms.{name}"), format!("`{}` is set by this arm and by the sweep axis \"{axis}\": set it in one place", s.key));
            }
        }
    }
    problems
}

/// The byte offset of a 1-based line and column (in characters) of `text`.
fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
    let start: usize = text.split_inclusive('\n').take(line.checked_sub(1)?).map(str::len).sum();
    let rest = text.get(start..)?;
    Some(start + rest.char_indices().nth(column.saturating_sub(1)).map_or(rest.len(), |(i, _)| i))
}

/// The deepest dotted key whose name or value covers byte `offset` of `text`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    use toml_edit::{Item, TableLike, Value};
    type Best = Option<Vec<String>>;
    fn note(path: &[String], best: &mut Best) {
        if best.as_ref().is_none_or(|b| b.len() < path.len()) {
            *best = Some(path.to_vec());
        }
    }
    fn table(t: &dyn TableLike, offset: usize, path: &mut Vec<String>, best: &mut Best) {
        for (k, item) in t.iter() {
            path.push(k.to_string());
            let key_span = t.get_key_value(k).and_then(|(key, _)| key.span());
            if key_span.is_some_and(|s| s.contains(&offset)) || item.span().is_some_and(|s| s.contains(&offset)) {
                note(path, best);
            }
            match item {
                Item::Table(t) => table(t, offset, path, best),
                Item::ArrayOfTables(a) => {
                    for (i, t) in a.iter().enumerate() {
                        path.push(i.to_string());
                        table(t, offset, path, best);
                        path.pop();
                    }
                }
                Item::Value(v) => value(v, offset, path, best),
                Item::None => {}
            }
            path.pop();
        }
    }
    fn value(v: &Value, offset: usize, path: &mut Vec<String>, best: &mut Best) {
        match v {
            Value::InlineTable(t) => table(t, offset, path, best),
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(i.to_string());
                    if x.span().is_some_and(|s| s.contains(&offset)) {
                        note(path, best);
                    }
                    value(x, offset, path, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut best = None;
    table(doc.as_table(), offset, &mut Vec::new(), &mut best);
    best.map(|b| b.join("."))
}

/// Where in the experiment file a problem of one point's experiment comes from: the arm
/// key or sweep axis that set the key the problem is about (found from where it sits in
/// the point's own text), else nowhere.
fn locate_in_file(text: &str, point_text: &str, problem: &Problem, arm: Option<(&String, &[ArmSetting])>, axes: &[&String]) -> (Option<usize>, Option<usize>) {
    let at = problem.line.zip(problem.column).and_then(|(l, c)| offset_of(point_text, l, c)).and_then(|o| key_at(point_text, o));
    for key in at.iter().chain(problem.key.iter()) {
        if let Some((name, settings)) = arm {
            if let Some(s) = settings.iter().find(|s| overlap(&s.key, key)) {
                let deeper = key.strip_prefix(s.key.as_str()).unwrap_or("").split('.').filter(|p| !p.is_empty());
                let path: Vec<&str> = ["arms", name.as_str()].into_iter().chain(s.written.iter().map(String::as_str)).chain(deeper).collect();
                return locate(text, &path);
            }
        }
        if let Some(axis) = axes.iter().find(|axis| overlap(axis, key)) {
            return locate(text, &["sweep", axis.as_str()]);
        }
    }
    (None, None)
}

/// Expands the experiment file's sweep into validated experiments (one when there is no sweep).
pub fn expand_sweep(text: &str, path: &Path) -> Result<Vec<SweepPoint>, ConfigError> {
    expand_sweep_with(text, path, true)
}

/// As [`expand_sweep`]; with `check_inputs` false, data files need not exist yet.
pub fn expand_sweep_with(text: &str, path: &Path, check_inputs: bool) -> Result<Vec<SweepPoint>, ConfigError> {
    let base = parse_experiment_with(text, path, check_inputs)?;
    if base.sweep.is_empty() && base.arms.is_empty() {
        let mut experiment = base;
        experiment.sweep.clear();
        return Ok(vec![SweepPoint { settings: Vec::new(), arm_keys: Vec::new(), experiment }]);
    }
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems: vec![Problem { line: None, column: None, key: Some(format!("sweep.{key}")), message }],
    };
    let raw: toml::Table = toml::from_str(text).map_err(|e| invalid("", e.to_string()))?;
    let axes: Vec<(&String, &Vec<toml::Value>)> = base.sweep.iter().collect();
    for (key, values) in &axes {
        if values.is_empty() {
            return Err(invalid(key, "an axis needs at least one value".into()));
        }
        if key.starts_with("sweep") {
            return Err(invalid(key, "a sweep cannot set sweep keys".into()));
        }
    }
    let arms: Vec<(&String, Vec<ArmSetting>)> = base.arms.iter().map(|(name, t)| (name, arm_settings(t))).collect();
    let problems = check_arms(&base, &arms, text);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid { path: path.to_path_buf(), problems });
    }
    let axis_keys: Vec<&String> = axes.iter().map(|(k, _)| *k).collect();
    let n_arms = arms.len().max(1);
    let mut points = Vec::new();
    let total: usize = n_arms * axes.iter().map(|(_, v)| v.len()).product::<usize>();
    for index in 0..total {
        let mut table = toml::Value::Table(raw.clone());
        if let toml::Value::Table(t) = &mut table {
            t.remove("sweep");
            t.remove("arms");
            t.remove("compare");
        }
        let mut settings = Vec::new();
        let mut arm_keys = Vec::new();
        let mut rest = index;
        let arm = arms.get(rest % n_arms).map(|(name, s)| (*name, s.as_slice()));
        rest /= n_arms;
        if let Some((name, arm_settings)) = arm {
            for s in arm_settings {
                set_path(&mut table, &s.key.split('.').collect::<Vec<_>>(), s.value.clone()).map_err(|m| {
                    let at: Vec<&str> = ["arms", name.as_str()].into_iter().chain(s.written.iter().map(String::as_str)).collect();
                    let (line, column) = locate(text, &at);
                    ConfigError::Invalid { path: path.to_path_buf(), problems: vec![Problem { line, column, key: Some(format!("arms.{name}")), message: m }] }
                })?;
                arm_keys.push(s.key.clone());
            }
            settings.push((ARM_KEY.to_string(), name.clone()));
        }
        for (key, values) in &axes {
            let value = &values[rest % values.len()];
            rest /= values.len();
            set_path(&mut table, &key.split('.').collect::<Vec<_>>(), value.clone()).map_err(|m| invalid(key, m))?;
            settings.push(((*key).clone(), value.to_string()));
        }
        let point_text = toml::to_string(&table).map_err(|e| invalid("", e.to_string()))?;
        let experiment = parse_experiment_with(&point_text, path, check_inputs).map_err(|e| match e {
            ConfigError::Invalid { path, problems } => ConfigError::Invalid {
                path,
                problems: problems
                    .into_iter()
                    .map(|p| {
                        // Located at the arm key or axis that set it; others have no line of their own.
                        let (line, column) = locate_in_file(text, &point_text, &p, arm, &axis_keys);
                        Problem { line, column, message: format!("{} (at sweep point {})", p.message, label(&settings)), ..p }
                    })
                    .collect(),
            },
            other => other,
        })?;
        points.push(SweepPoint { settings, arm_keys, experiment });
    }
    Ok(points)
}

fn label(settings: &[(String, String)]) -> String {
    settings.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Sets `a.b.c` (numeric parts index lists, as in `baselines.0.negation`), creating tables on the way.
fn set_path(here: &mut toml::Value, parts: &[&str], value: toml::Value) -> Result<(), String> {
    let (first, rest) = parts.split_first().ok_or("empty key")?;
    let child = match here {
        toml::Value::Table(t) if rest.is_empty() => {
            t.insert(first.to_string(), value);
            return Ok(());
        }
        toml::Value::Table(t) => t.entry(first.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new())),
        toml::Value::Array(items) => {
            let len = items.len();
            let i: usize = first.parse().map_err(|_| format!("`{first}` is not a list index"))?;
            items.get_mut(i).ok_or(format!("index {i} is out of range (the list has {len} entries)"))?
        }
        _ => return Err(format!("cannot set `{first}` inside a plain value")),
    };
    if rest.is_empty() {
        *child = value;
        return Ok(());
    }
    set_path(child, rest, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[experiment]
name = "s"

[[baselines]]
kind = "dictionary"

[sweep]
"mix.span_ratio" = [0.0, 0.5, 1.0]
"experiment.seed" = [1, 2]
"baselines.0.negation" = [true]
"#;

    #[test]
    fn cartesian_product_sets_every_axis() {
        let points = expand_sweep(BASE, Path::new("s.toml")).unwrap();
        assert_eq!(points.len(), 6);
        let ratios: Vec<f64> = points.iter().map(|p| p.experiment.mix.span_ratio).collect();
        assert_eq!(ratios, vec![0.0, 0.0, 0.5, 0.5, 1.0, 1.0]);
        let seeds: Vec<u64> = points.iter().map(|p| p.experiment.experiment.seed).collect();
        assert_eq!(seeds, vec![1, 2, 1, 2, 1, 2]);
        assert!(points.iter().all(|p| p.experiment.sweep.is_empty()));
        assert_eq!(points[3].label(), "baselines.0.negation=true,experiment.seed=2,mix.span_ratio=0.5");
    }

    #[test]
    fn out_of_range_sweep_value_is_rejected_with_its_point() {
        let text = BASE.replace("[0.0, 0.5, 1.0]", "[0.5, 2.0]");
        let err = expand_sweep(&text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.contains("mix.span_ratio"), "{err}");
        assert!(err.contains("must be between 0 and 1"), "{err}");
        assert!(err.contains("mix.span_ratio=2.0"), "{err}");
    }

    #[test]
    fn a_sweep_value_that_breaks_a_limit_is_located_at_its_axis() {
        let text = "[experiment]\nname = \"s\"\n[backbone]\nname = \"tiny\"\n[sweep]\n\"eval.chunk_tokens\" = [1024, 3900]\n";
        let err = expand_sweep(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.starts_with("s.toml:6:23: [eval.chunk_tokens]") && err.contains("at sweep point eval.chunk_tokens=3900"), "{err}");
    }

    #[test]
    fn unknown_sweep_key_is_rejected() {
        let text = BASE.replace("\"mix.span_ratio\"", "\"mix.spam_ratio\"");
        let err = expand_sweep(&text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.contains("spam_ratio"), "{err}");
    }

    /// A tiny-backbone file with three arms (lines 8-17) over a seed axis.
    const ARMS: &str = r#"[experiment]
name = "a"
[backbone]
name = "tiny"
[[expansion]]
kind = "description"

[arms.document_only]
"mix.strategy" = "document_only"

[arms.mixed]
"mix.strategy" = "mixed"
"mix.span_ratio" = 0.5

[arms.tokens]
"mix.strategy" = "document_only"
"train.match_tokens_of" = { strategy = "mixed", span_ratio = 0.5 }

[sweep]
"experiment.seed" = [1, 2]
"#;

    #[test]
    fn arms_are_one_more_axis_and_set_several_keys_each() {
        use crate::config::MixStrategy;
        let points = expand_sweep(ARMS, Path::new("a.toml")).unwrap();
        assert_eq!(points.len(), 6);
        let labels: Vec<String> = points.iter().map(SweepPoint::label).collect();
        assert_eq!(labels[..3], ["arm=document_only,experiment.seed=1", "arm=mixed,experiment.seed=1", "arm=tokens,experiment.seed=1"]);
        assert_eq!(labels[5], "arm=tokens,experiment.seed=2");
        let (only, mixed, tokens) = (&points[0].experiment, &points[1].experiment, &points[2].experiment);
        assert_eq!((only.mix.strategy, only.train.match_tokens_of.as_ref()), (MixStrategy::DocumentOnly, None));
        assert_eq!((mixed.mix.strategy, mixed.mix.span_ratio), (MixStrategy::Mixed, 0.5));
        let reference = tokens.train.match_tokens_of.as_ref().expect("the arm sets it");
        assert_eq!((tokens.mix.strategy, reference.strategy, reference.span_ratio), (MixStrategy::DocumentOnly, MixStrategy::Mixed, 0.5));
        // The rest of [train] is the file's: an arm sets its keys, not whole tables.
        assert_eq!(tokens.train.epochs, only.train.epochs);
        assert_eq!(points[2].arm_keys, ["mix.strategy", "train.match_tokens_of.span_ratio", "train.match_tokens_of.strategy"]);
        assert!(points.iter().all(|p| p.experiment.arms.is_empty() && p.experiment.sweep.is_empty()));
        // Arms alone, without a [sweep], are a sweep of their own.
        let alone = ARMS.replace("[sweep]\n\"experiment.seed\" = [1, 2]\n", "");
        assert_eq!(expand_sweep(&alone, Path::new("a.toml")).unwrap().len(), 3);
    }

    #[test]
    fn a_bad_value_in_an_arm_is_located_at_it() {
        let text = ARMS.replace("{ strategy = \"mixed\", span_ratio = 0.5 }", "{ strategy = \"mixed\", span_ratio = 1.5 }");
        let err = expand_sweep(&text, Path::new("a.toml")).unwrap_err().to_string();
        assert!(err.starts_with("a.toml:17:62: [train.match_tokens_of.span_ratio] must be between 0 and 1, got 1.5"), "{err}");
        assert!(err.contains("at sweep point arm=tokens,experiment.seed=1"), "{err}");
        // A value serde refuses is found too, at the arm key that wrote it.
        let err = expand_sweep(&ARMS.replace("= \"mixed\"\n\"mix.span_ratio\"", "= \"mixd\"\n\"mix.span_ratio\""), Path::new("a.toml")).unwrap_err().to_string();
        assert!(err.starts_with("a.toml:12:18:") && err.contains("unknown variant `mixd`"), "{err}");
        // Token matching needs a schedule a budget can end: not a curriculum.
        let err = expand_sweep(&ARMS.replace("\"mix.strategy\" = \"document_only\"\n\"train", "\"mix.strategy\" = \"curriculum\"\n\"train"), Path::new("a.toml")).unwrap_err().to_string();
        assert!(err.contains("a.toml:16:18: [train.match_tokens_of]") && err.contains("set mix.strategy = \"document_only\", \"span_only\" or \"mixed\""), "{err}");
        // A mixed run may be token-matched; a share of a budget needs the budget.
        assert!(expand_sweep(&ARMS.replace("\"mix.strategy\" = \"document_only\"\n\"train", "\"mix.strategy\" = \"mixed\"\n\"train"), Path::new("a.toml")).is_ok());
        let err = expand_sweep(&ARMS.replace("\"mix.span_ratio\" = 0.5\n", "\"mix.span_ratio\" = 0.5\n\"train.token_fraction\" = 0.2\n"), Path::new("a.toml")).unwrap_err().to_string();
        assert!(err.contains("[train.token_fraction]") && err.contains("set train.match_tokens_of"), "{err}");
    }

    #[test]
    fn arms_are_checked_before_they_are_applied() {
        let clash = ARMS.replace("\"experiment.seed\" = [1, 2]", "\"mix.span_ratio\" = [0.25, 0.5]");
        let err = expand_sweep(&clash, Path::new("a.toml")).unwrap_err().to_string();
        assert!(err.starts_with("a.toml:13:20: [arms.mixed]") && err.contains("and by the sweep axis \"mix.span_ratio\""), "{err}");
        let err = expand_sweep(&ARMS.replace("[arms.mixed]", "[arms.\"mixed 0.5\"]"), Path::new("a.toml")).unwrap_err().to_string();
        assert!(err.contains("[arms.mixed 0.5] name an arm with letters"), "{err}");
        let err = expand_sweep(&ARMS.replace("[arms.mixed]\n\"mix.strategy\" = \"mixed\"\n\"mix.span_ratio\" = 0.5\n", "[arms.mixed]\n"), Path::new("a.toml")).unwrap_err().to_string();
        assert!(err.starts_with("a.toml:11:") && err.contains("sets at least one key"), "{err}");
    }
}
