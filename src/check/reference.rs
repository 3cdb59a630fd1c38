//! The reference file (`baselines/reference/<name>.json`): reading it, and what
//! `--update` writes from the current runs.

use super::config::CheckConfig;
use super::{CheckError, CurrentRun};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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
