//! `icdbench status`: where each planned run is, read from the results folder
//! (finished runs, run locks, training progress), the submissions recorded
//! beside them, and the Slurm queue.

use super::queue::{self, Queue};
use super::{latest_task, look, submissions, ClusterError, Seen};
use crate::plan::PlannedRun;
use crate::train::Progress;
use std::path::{Path, PathBuf};

/// Where one run is.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Done,
    /// A live process holds the run's lock.
    Running { holder: String, progress: Option<Progress>, task: Option<String> },
    /// Its newest array task is in the queue (pending, or running but not yet at the run's lock).
    Queued { task: String, state: String },
    /// Its newest task has left the queue and the run is not finished.
    Failed { task: String, state: Option<String>, checkpoint_step: Option<usize>, log: PathBuf, tail: Vec<String> },
    /// Submitted, but the queue could not be read.
    Submitted { task: String, why: String },
    NotSubmitted { checkpoint_step: Option<usize> },
}

impl RunState {
    fn word(&self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Running { .. } => "running",
            RunState::Queued { .. } => "queued",
            RunState::Failed { .. } => "failed",
            RunState::Submitted { .. } => "submitted",
            RunState::NotSubmitted { .. } => "not submitted",
        }
    }

    /// Still in Slurm's hands: a later look may find it done.
    pub fn in_flight(&self) -> bool {
        matches!(self, RunState::Running { .. } | RunState::Queued { .. } | RunState::Submitted { .. })
    }
}

fn resumes(step: Option<usize>) -> String {
    step.map(|s| format!(" · checkpoint at step {s}: a resubmission resumes there")).unwrap_or_default()
}


/// One run's line (and, for a failed run, its log's last lines).
#[derive(Debug, Clone)]
pub struct StatusLine {
    pub fingerprint: String,
    pub label: String,
    pub state: RunState,
}

impl std::fmt::Display for StatusLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = &self.fingerprint[..self.fingerprint.len().min(12)];
        write!(f, "{short}  {:<13}  {}", self.state.word(), self.label)?;
        match &self.state {
            RunState::Done | RunState::NotSubmitted { checkpoint_step: None } => Ok(()),
            RunState::NotSubmitted { checkpoint_step } => write!(f, "{}", resumes(*checkpoint_step)),
            RunState::Running { holder, progress, task } => {
                write!(f, " · {holder}")?;
                if let Some(p) = progress {
                    write!(f, " · step {}/{}, loss {:.4} ({} s ago)", p.step, p.total, p.loss, crate::store::unix_now().saturating_sub(p.updated))?;
                }
                if let Some(t) = task {
                    write!(f, " · task {t}")?;
                }
                Ok(())
            }
            RunState::Queued { task, state } => write!(f, " · task {task} {state}"),
            RunState::Submitted { task, why } => write!(f, " · task {task} (queue unknown: {why})"),
            RunState::Failed { task, state, checkpoint_step, log, tail } => {
                write!(f, " · task {task} {}{} · log {}", state.as_deref().unwrap_or("ended"), resumes(*checkpoint_step), log.display())?;
                for line in tail {
                    write!(f, "\n      | {line}")?;
                }
                Ok(())
            }
        }
    }
}

/// Counts by state; `done` of `total`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusSummary {
    pub total: usize,
    pub done: usize,
    pub running: usize,
    pub queued: usize,
    pub failed: usize,
    pub not_submitted: usize,
    /// The queue could not be read (why), so queued and failed tasks are not told apart.
    pub queue_unknown: Option<String>,
}

impl StatusSummary {
    pub fn of(lines: &[StatusLine], queue_unknown: Option<String>) -> StatusSummary {
        let count = |w: &str| lines.iter().filter(|l| l.state.word() == w).count();
        StatusSummary {
            total: lines.len(),
            done: count("done"),
            running: count("running"),
            queued: count("queued") + count("submitted"),
            failed: count("failed"),
            not_submitted: count("not submitted"),
            queue_unknown,
        }
    }

    pub fn all_done(&self) -> bool {
        self.done == self.total
    }

    pub fn in_flight(&self) -> bool {
        self.running + self.queued > 0
    }
}

impl std::fmt::Display for StatusSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs: {} done, {} running, {} queued, {} failed, {} not submitted",
            self.total, self.done, self.running, self.queued, self.failed, self.not_submitted
        )?;
        if let Some(why) = &self.queue_unknown {
            write!(f, " (queue unknown: {why})")?;
        }
        Ok(())
    }
}

/// The training progress a model run's train stage records.
fn progress(run: &PlannedRun) -> Option<Progress> {
    Progress::read(&run.paths().train_dir().join("checkpoint"))
}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| l.to_string()).collect()
}

/// Where each of `runs` is, with `log_lines` lines of a failed task's log.
pub fn status(runs: &[PlannedRun], queue: &Queue, log_lines: usize) -> Result<Vec<StatusLine>, ClusterError> {
    let subs = match super::slurm_dir(runs) {
        Some(dir) => submissions(&dir)?,
        None => Vec::new(),
    };
    // sacct is asked once, and only when some submitted task has left the queue.
    let mut sacct: Option<Option<std::collections::HashMap<String, queue::QueueEntry>>> = None;
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        let fp = run.fingerprint.as_str();
        let state = match look(run, &subs, queue)? {
            Seen::Finished => RunState::Done,
            Seen::Held(holder) => {
                RunState::Running { holder, progress: progress(run), task: latest_task(&subs, fp).map(|(_, s, i)| s.task_id(i)) }
            }
            Seen::Queued { task, state } => RunState::Queued { task, state },
            Seen::Elsewhere(None) => RunState::NotSubmitted { checkpoint_step: progress(run).and_then(|p| p.checkpoint_step) },
            Seen::Elsewhere(Some((dir, sub, index))) => {
                let id = sub.task_id(index);
                if queue.tasks.is_none() {
                    RunState::Submitted { task: id, why: queue.unknown.clone().unwrap_or_default() }
                } else {
                    let ended = sacct.get_or_insert_with(|| {
                        let mut ids: Vec<&str> = subs.iter().map(|(_, s)| s.job_id.as_str()).collect();
                        ids.dedup();
                        queue::ended(&ids)
                    });
                    let state = ended.as_ref().and_then(|m| m.get(&id)).map(|e| e.describe());
                    let log = sub.log(dir, index);
                    RunState::Failed { task: id, state, checkpoint_step: progress(run).and_then(|p| p.checkpoint_step), tail: tail(&log, log_lines), log }
                }
            }
        };
        out.push(StatusLine { fingerprint: fp.to_string(), label: run.label(), state });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_summary_read_as_documented() {
        let line = |state| StatusLine { fingerprint: "0123456789abcdef".repeat(4), label: "mixed [seed=2]".into(), state };
        let p = Progress { step: 37, total: 80, loss: 1.25, checkpoint_step: Some(35), updated: crate::store::unix_now() };
        let lines = vec![
            line(RunState::Done),
            line(RunState::Running { holder: "pid 7 on host n1 since x (2 min ago)".into(), progress: Some(p), task: Some("9_1".into()) }),
            line(RunState::Queued { task: "9_2".into(), state: "PENDING (Resources)".into() }),
            line(RunState::Failed { task: "9_3".into(), state: None, checkpoint_step: Some(40), log: "l/9_3.log".into(), tail: vec!["error: boom".into()] }),
        ];
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(text[0], "0123456789ab  done           mixed [seed=2]");
        assert!(text[1].contains("step 37/80, loss 1.2500 (0 s ago) · task 9_1"), "{}", text[1]);
        assert!(text[2].ends_with("task 9_2 PENDING (Resources)"));
        assert!(text[3].contains("task 9_3 ended · checkpoint at step 40") && text[3].ends_with("\n      | error: boom"), "{}", text[3]);
        let s = StatusSummary::of(&lines, None);
        assert_eq!(s.to_string(), "4 runs: 1 done, 1 running, 1 queued, 1 failed, 0 not submitted");
        assert!(!s.all_done() && s.in_flight());
    }
}
