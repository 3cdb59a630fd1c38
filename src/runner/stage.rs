//! What every stage of a run shares: its error, the options it runs under, and its log.

use crate::data;
use crate::store::StoreError;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("scoring failed: {0}")]
    Metrics(String),
    #[error("cannot serialise the run's spec: {0}")]
    Spec(String),
    #[error("model run failed: {0}")]
    Model(String),
    #[error("baseline failed: {0}")]
    Baseline(String),
    #[error("{path}: training stopped after {step} optimizer steps; run again to resume from the last checkpoint")]
    Interrupted { path: PathBuf, step: usize },
}

impl RunError {
    /// Whether the user can fix this by changing their input (exit code 2) rather than a failed run (1).
    pub fn is_user_input(&self) -> bool {
        match self {
            RunError::Data(_) => true,
            RunError::Store(e) => e.is_corrupt(),
            _ => false,
        }
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Recompute even when a finished result with the same fingerprint exists.
    pub force: bool,
    /// Show progress bars (they also hide themselves when stderr is not a terminal).
    pub progress: bool,
    /// Stop training after this many optimizer steps, as if killed (to test resuming).
    pub stop_after_steps: Option<usize>,
    /// Leave a run that a live process is computing to that process instead of waiting for it
    /// (a Slurm array task: its run is someone else's already, so it has nothing to do).
    pub leave_busy: bool,
}

/// The run's log, kept in memory and written with the results.
pub(crate) struct RunLog {
    started: Instant,
    pub(crate) text: String,
}

impl RunLog {
    pub(crate) fn new() -> RunLog {
        RunLog { started: Instant::now(), text: String::new() }
    }

    pub(crate) fn line(&mut self, s: String) {
        self.text.push_str(&format!("[{:>8.2}s] {s}\n", self.started.elapsed().as_secs_f64()));
    }
}

