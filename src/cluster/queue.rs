//! What Slurm says about array tasks: `squeue` for the ones still queued or
//! running, `sacct` for the ones that ended (where accounting is on).

use std::collections::HashMap;
use std::process::Command;

/// One array task as squeue or sacct lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    /// PENDING, RUNNING, COMPLETING, REQUEUED, ... (squeue); COMPLETED, FAILED, CANCELLED, TIMEOUT, ... (sacct).
    pub state: String,
    /// squeue's reason (`Resources`, `Priority`, ...) or sacct's exit code.
    pub detail: String,
}

impl QueueEntry {
    /// `PENDING (Resources)`
    pub fn describe(&self) -> String {
        if self.detail.is_empty() || self.detail == "None" {
            self.state.clone()
        } else {
            format!("{} ({})", self.state, self.detail)
        }
    }
}

/// This user's tasks in the queue, by `<job>_<index>`; `None` where squeue could not be asked.
#[derive(Debug, Default)]
pub struct Queue {
    pub tasks: Option<HashMap<String, QueueEntry>>,
    /// Why the queue is unknown (squeue missing or failing).
    pub unknown: Option<String>,
}

impl Queue {
    /// Asks `squeue --me`, one line per array task.
    pub fn read() -> Queue {
        match run(Command::new("squeue").args(["--me", "-h", "-r", "-o", "%i|%T|%r"])) {
            Ok(text) => Queue { tasks: Some(parse(&text)), unknown: None },
            Err(why) => Queue { tasks: None, unknown: Some(why) },
        }
    }

    pub fn get(&self, task: &str) -> Option<&QueueEntry> {
        self.tasks.as_ref()?.get(task)
    }
}

/// Final states of ended tasks from `sacct` (None where accounting is off or sacct is missing).
pub fn ended(job_ids: &[&str]) -> Option<HashMap<String, QueueEntry>> {
    if job_ids.is_empty() {
        return Some(HashMap::new());
    }
    let text = run(Command::new("sacct").args(["-n", "-P", "-X", "-o", "JobID,State,ExitCode", "-j", &job_ids.join(",")])).ok()?;
    Some(parse(&text))
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let name = cmd.get_program().to_string_lossy().to_string();
    let out = cmd.output().map_err(|e| format!("{name}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{name}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `123_4|PENDING|Resources` lines. sacct writes `CANCELLED by 1000`; the first word is the state.
fn parse(text: &str) -> HashMap<String, QueueEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split('|');
            let id = f.next()?.trim();
            let state = f.next()?.split_whitespace().next()?.to_string();
            let detail = f.next().unwrap_or("").trim().to_string();
            (!id.is_empty()).then(|| (id.to_string(), QueueEntry { state, detail }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_and_sacct_lines_parse() {
        let q = parse("812_0|RUNNING|None\n812_3|PENDING|Resources\n\n");
        assert_eq!(q["812_0"].describe(), "RUNNING");
        assert_eq!(q["812_3"].describe(), "PENDING (Resources)");
        let s = parse("812_1|CANCELLED by 1000|0:15\n812_2|FAILED|1:0\n");
        assert_eq!(s["812_1"].state, "CANCELLED");
        assert_eq!(s["812_2"].describe(), "FAILED (1:0)");
        assert_eq!(q.len() + s.len(), 4);
    }
}
