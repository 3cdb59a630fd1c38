//! icdbench: reproduce, ablate and extend LLM-based ICD coding research.
//!
//! Data flows one way:
//! experiment.toml -> [`config`] -> [`plan`] (fingerprinted) -> [`data`] -> systems ([`baselines`])
//! -> predictions -> [`metrics`] -> [`runner`] (record) -> [`report`]; [`cluster`] hands planned
//! runs to Slurm and reads their state back.

pub mod app;
pub mod baselines;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod code_identity;
pub mod config;
pub mod data;
pub mod device;
pub mod expand;
pub mod fingerprint;
pub mod icd;
pub mod metrics;
pub mod mix;
pub mod model;
pub mod plan;
pub mod predict;
pub mod progress;
pub mod prompt;
pub mod report;
pub mod results;
pub mod runner;
pub mod schema;
pub mod store;
pub mod text;
pub mod train;

/// libtorch's random generator is process-wide: unit tests that seed it and draw from it take turns.
#[cfg(test)]
pub(crate) fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
