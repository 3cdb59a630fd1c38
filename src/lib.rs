//! icdbench: reproduce, ablate and extend LLM-based ICD coding research.
//!
//! Data flows one way:
//! experiment.toml -> [`config`] -> [`plan`] (fingerprinted) -> [`data`] -> [`baselines`] / model
//! -> [`predict`] -> [`metrics`] -> [`runner`] (record) -> [`report`].

pub mod icd;
pub mod metrics;
