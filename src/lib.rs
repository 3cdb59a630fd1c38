//! icdbench: reproduce, ablate and extend LLM-based ICD coding research.
//!
//! Data flows one way:
//! experiment.toml -> [`config`] -> [`plan`] (fingerprinted) -> [`data`] -> systems ([`baselines`])
//! -> predictions -> [`metrics`] -> [`runner`] (record) -> [`report`].

pub mod app;
pub mod baselines;
pub mod check;
pub mod cli;
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
pub mod runner;
pub mod store;
pub mod text;
pub mod train;
