//! What a finished run records, as the report reads it: its scores (`metrics.json`), what
//! training cost, and the run with its outcome. The runner writes these; the report, the
//! CI gate and `compare` read them and nothing else of the runner.

use crate::data::jsonl::LoadReport;
use crate::metrics::split::SplitMetrics;
use crate::plan::PlannedRun;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `metrics.json` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub fingerprint: String,
    pub system: String,
    pub splits: BTreeMap<String, SplitMetrics>,
    /// Unknown codes and mismatched evidence found while loading the data.
    pub data_report: LoadReport,
    /// Training cost of a model run or a trained baseline (None for the matching baselines and zero-shot runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    pub seconds: f64,
}

/// What training cost: read off any run's metrics.json to compare supervision schemes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub optimizer_steps: usize,
    pub examples: u64,
    pub span_examples: u64,
    pub document_examples: u64,
    pub input_tokens: u64,
    pub span_tokens: u64,
    pub document_tokens: u64,
    pub padded_tokens: u64,
    pub estimated_flops: f64,
    pub train_seconds: f64,
    pub tokens_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
    pub peak_gpu_memory_bytes: Option<u64>,
}

/// What happened to one planned run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run: PlannedRun,
    pub reused: bool,
    pub metrics: RunMetrics,
}
