//! The registry of baseline kinds: what each `[[baselines]]` kind of the experiment
//! schema (`config::Baseline`) runs as. Adding a baseline is its parameters in
//! `config/baselines.rs`, one file here implementing [`BaselineKind`] for them, and one arm
//! below; the runner fits and predicts every kind the same way.

use super::kind::BaselineKind;
use crate::config::Baseline;

/// The kind behind a baseline's parameters.
pub fn kind(baseline: &Baseline) -> &dyn BaselineKind {
    match baseline {
        Baseline::Dictionary(p) => p,
        Baseline::Fuzzy(p) => p,
        Baseline::Tfidf(p) => p,
        Baseline::Laat(p) => p,
        Baseline::Prior(p) => p,
    }
}
