//! `[sweep]` axes: `"mix.span_ratio" = [0.0, 0.5, 1.0]` set one key per axis;
//! the cartesian product of all axes becomes one experiment per point.

use super::load::{locate, ConfigError, Problem};
use super::{parse_experiment_with, Experiment};
use std::path::Path;

/// One point of a sweep: the values it set and the experiment they give.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// `key=value` pairs this point set, in axis order (empty without a sweep).
    pub settings: Vec<(String, String)>,
    pub experiment: Experiment,
}

impl SweepPoint {
    /// A short human label, e.g. `mix.span_ratio=0.5`.
    pub fn label(&self) -> String {
        if self.settings.is_empty() {
            return "default".into();
        }
        self.settings.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

/// Expands the experiment file's sweep into validated experiments (one when there is no sweep).
pub fn expand_sweep(text: &str, path: &Path) -> Result<Vec<SweepPoint>, ConfigError> {
    expand_sweep_with(text, path, true)
}

/// As [`expand_sweep`]; with `check_inputs` false, data files need not exist yet.
pub fn expand_sweep_with(text: &str, path: &Path, check_inputs: bool) -> Result<Vec<SweepPoint>, ConfigError> {
    let base = parse_experiment_with(text, path, check_inputs)?;
    if base.sweep.is_empty() {
        let mut experiment = base;
        experiment.sweep.clear();
        return Ok(vec![SweepPoint { settings: Vec::new(), experiment }]);
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
    let mut points = Vec::new();
    let total: usize = axes.iter().map(|(_, v)| v.len()).product();
    for index in 0..total {
        let mut table = toml::Value::Table(raw.clone());
        if let toml::Value::Table(t) = &mut table {
            t.remove("sweep");
        }
        let mut settings = Vec::new();
        let mut rest = index;
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
                        // A problem with a key the sweep sets is located at that axis; others have no line of their own.
                        let axis = p.key.as_deref().filter(|k| base.sweep.contains_key(*k));
                        let (line, column) = axis.map_or((None, None), |k| locate(text, &["sweep", k]));
                        Problem { line, column, message: format!("{} (at sweep point {})", p.message, label(&settings)), ..p }
                    })
                    .collect(),
            },
            other => other,
        })?;
        points.push(SweepPoint { settings, experiment });
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
}
