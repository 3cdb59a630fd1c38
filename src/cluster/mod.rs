//! Beyond one machine: planned runs handed to Slurm, one array task per
//! fingerprint, and read back from the results folder.
//!
//! icdbench schedules nothing itself. The results folder (on a filesystem every
//! node shares) is the only meeting point: a task computes its run under the
//! run's lock and publishes it with a rename, exactly as `icdbench run` does in
//! several terminals; a task whose run is finished or held by a live process
//! exits at once. What a submission adds is its record:
//!
//! ```text
//! results/<experiment>/slurm/<batch>/
//!   job.sbatch        the array script (one task per run)
//!   submission.json   job id, experiment, and each task's fingerprint
//!   logs/<job>_<task>.log
//! ```

mod queue;
mod script;
mod status;

pub use queue::{Queue, QueueEntry};
pub use script::{job_script, SlurmOptions, REQUEUE_GRACE_SECONDS};
pub use status::{status, RunState, StatusLine, StatusSummary};

use crate::plan::PlannedRun;
use crate::store::{self, Lock};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Scheduler(String),
}

impl ClusterError {
    pub fn is_user_input(&self) -> bool {
        matches!(self, ClusterError::Input(_))
    }
}

/// `submission.json`: what one `icdbench submit` handed to Slurm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// The batch folder's name: `<UTC time>-<pid>`, so batches sort by time.
    pub batch: String,
    /// The array's job id, as `sbatch --parsable` printed it (without a cluster name).
    pub job_id: String,
    /// Seconds since the Unix epoch.
    pub submitted: u64,
    pub experiment: PathBuf,
    pub results: PathBuf,
    /// libtorch threads the runs were planned with (OMP_NUM_THREADS in the tasks).
    pub threads: u32,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// `SLURM_ARRAY_TASK_ID`.
    pub index: usize,
    pub fingerprint: String,
    pub label: String,
}

impl Submission {
    /// `<job>_<index>`, the array task's id in squeue and sacct.
    pub fn task_id(&self, index: usize) -> String {
        format!("{}_{index}", self.job_id)
    }

    /// The task's log file.
    pub fn log(&self, dir: &Path, index: usize) -> PathBuf {
        dir.join("logs").join(format!("{}.log", self.task_id(index)))
    }
}

/// `results/<experiment>/slurm/` for runs planned under `results/<experiment>/`.
pub fn slurm_dir(runs: &[PlannedRun]) -> Option<PathBuf> {
    runs.first().and_then(|r| r.dir.parent()).map(|d| d.join("slurm"))
}

/// Every recorded submission under `slurm_dir` with its folder, oldest first. A record that
/// does not parse is named, not skipped silently.
pub fn submissions(slurm_dir: &Path) -> Result<Vec<(PathBuf, Submission)>, ClusterError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(slurm_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(store::StoreError::Io { path: slurm_dir.to_path_buf(), source }.into()),
    };
    for entry in entries.flatten() {
        let path = entry.path().join("submission.json");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let sub: Submission = serde_json::from_str(&text)
            .map_err(|e| ClusterError::Input(format!("{}: not a submission record ({e}); delete its folder if it is not one", path.display())))?;
        out.push((entry.path(), sub));
    }
    out.sort_by(|a, b| (a.1.submitted, &a.1.batch).cmp(&(b.1.submitted, &b.1.batch)));
    Ok(out)
}

/// The newest submission that holds a task for `fingerprint`, with that task's index.
pub fn latest_task<'a>(subs: &'a [(PathBuf, Submission)], fingerprint: &str) -> Option<(&'a Path, &'a Submission, usize)> {
    subs.iter().rev().find_map(|(dir, s)| s.tasks.iter().find(|t| t.fingerprint == fingerprint).map(|t| (dir.as_path(), s, t.index)))
}

/// Why a planned run is or is not handed to Slurm.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Finished,
    /// A live process holds its lock (it says who).
    Running(String),
    /// An earlier submission's task for it is still in the queue.
    Queued { task: String, state: String },
    Submit,
}

/// What the results folder and the queue say about a run: the part `submit` and `status` share.
pub(crate) enum Seen<'a> {
    Finished,
    /// A live process holds its lock (it says who).
    Held(String),
    /// Its newest submission's task is in the queue.
    Queued { task: String, state: String },
    /// None of those: its newest submission's task (folder, record, index), if it has one.
    Elsewhere(Option<(&'a Path, &'a Submission, usize)>),
}

pub(crate) fn look<'a>(run: &PlannedRun, subs: &'a [(PathBuf, Submission)], queue: &Queue) -> Result<Seen<'a>, ClusterError> {
    if store::read_finished::<serde_json::Value>(&run.dir, run.fingerprint.as_str())?.is_some() {
        return Ok(Seen::Finished);
    }
    if let Some(holder) = Lock::held_by(&store::lock_path(&run.dir))? {
        return Ok(Seen::Held(holder.describe()));
    }
    let task = latest_task(subs, run.fingerprint.as_str());
    Ok(match task.and_then(|(_, s, i)| queue.get(&s.task_id(i)).map(|e| (s.task_id(i), e))) {
        Some((task, e)) => Seen::Queued { task, state: e.describe() },
        None => Seen::Elsewhere(task),
    })
}

/// What to do with each run: only runs that are unfinished, not running and not queued are submitted,
/// so submitting an experiment twice never queues a run twice.
pub fn decide(runs: &[PlannedRun], subs: &[(PathBuf, Submission)], queue: &Queue) -> Result<Vec<Decision>, ClusterError> {
    runs.iter()
        .map(|run| {
            Ok(match look(run, subs, queue)? {
                Seen::Finished => Decision::Finished,
                Seen::Held(holder) => Decision::Running(holder),
                Seen::Queued { task, state } => Decision::Queued { task, state },
                Seen::Elsewhere(_) => Decision::Submit,
            })
        })
        .collect()
}

/// A new batch's folder name: UTC time to the second and this process's id.
pub fn batch_name() -> String {
    let stamp = store::utc(store::unix_now()).replace([':', '-'], "").replace(' ', "-").trim_end_matches("-UTC").to_string();
    format!("{stamp}-{}", std::process::id())
}

/// Writes the batch folder, submits its script with `sbatch --parsable` and records the job id.
/// Nothing is recorded when sbatch fails (the script stays for a look).
pub fn submit(batch_dir: &Path, script: &str, mut record: Submission) -> Result<Submission, ClusterError> {
    let logs = batch_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| store::StoreError::Io { path: logs.clone(), source })?;
    let script_path = batch_dir.join("job.sbatch");
    store::write_atomic(&script_path, |w| std::io::Write::write_all(w, script.as_bytes()))?;
    let out = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(&script_path)
        .output()
        .map_err(|e| ClusterError::Scheduler(format!("sbatch: {e}; is this a Slurm login node (sbatch on PATH, SLURM_CONF set)?")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(ClusterError::Scheduler(format!("sbatch {} failed: {err}", script_path.display())));
    }
    // `--parsable` prints `<job id>` or `<job id>;<cluster>`.
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let job_id = text.split(';').next().unwrap_or_default().to_string();
    if job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ClusterError::Scheduler(format!("sbatch printed {text:?}, not a job id")));
    }
    record.job_id = job_id;
    store::write_json(&batch_dir.join("submission.json"), &record)?;
    Ok(record)
}
