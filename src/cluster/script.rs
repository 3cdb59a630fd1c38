//! The job-array script: one task per planned run, each running
//! `icdbench run EXPERIMENT.toml --only <fingerprint>`.

use super::{ClusterError, Submission};
use std::path::Path;

/// Seconds before the time limit at which Slurm signals the batch script (`--signal=B:USR1@…`):
/// the run checkpoints, and the script requeues the task.
pub const REQUEUE_GRACE_SECONDS: u32 = 120;

/// What `icdbench submit` asks Slurm for, per task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub gpus_per_task: Option<u32>,
    /// Also the runs' libtorch threads (OMP_NUM_THREADS).
    pub cpus_per_task: u32,
    pub mem: Option<String>,
    pub time: Option<String>,
    pub account: Option<String>,
    pub max_parallel: Option<u32>,
    /// Extra header lines, each starting with `#SBATCH`.
    pub extra: Vec<String>,
}

fn quote(s: &str) -> Result<String, ClusterError> {
    shlex::try_quote(s).map(|q| q.into_owned()).map_err(|e| ClusterError::Input(format!("{s:?} cannot go into a shell script: {e}")))
}

fn quote_path(p: &Path) -> Result<String, ClusterError> {
    quote(&p.to_string_lossy())
}

/// An sbatch option value must not carry a newline (it would end the header).
fn header_value(name: &str, v: &str) -> Result<String, ClusterError> {
    if v.is_empty() || v.contains(['\n', '\r']) {
        return Err(ClusterError::Input(format!("--{name} {v:?}: give one value on one line")));
    }
    Ok(v.to_string())
}

/// The batch script for `record`'s tasks. `binary` is the icdbench every task runs, `workdir`
/// where it runs (both must be visible from the compute nodes).
pub fn job_script(record: &Submission, batch_dir: &Path, opts: &SlurmOptions, binary: &Path, workdir: &Path) -> Result<String, ClusterError> {
    let n = record.tasks.len();
    if n == 0 {
        return Err(ClusterError::Input("nothing to submit".into()));
    }
    // results/<experiment>/slurm/<batch>: the job is named after the experiment.
    let experiment = batch_dir.parent().and_then(Path::parent).and_then(Path::file_name).map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let name = header_value("job-name", &format!("icdbench-{experiment}"))?;
    let mut array = format!("0-{}", n - 1);
    if let Some(k) = opts.max_parallel {
        if k == 0 {
            return Err(ClusterError::Input("--max-parallel 0: give at least 1".into()));
        }
        array.push_str(&format!("%{k}"));
    }
    let logs = batch_dir.join("logs");
    let mut h = vec![
        "#!/bin/bash".to_string(),
        format!("# icdbench batch {}: {n} run(s) of {}, one array task each.", record.batch, record.experiment.display()),
        format!("#SBATCH --job-name={name}"),
        format!("#SBATCH --array={array}"),
        format!("#SBATCH --output={}", logs.join("%A_%a.log").display()),
        "#SBATCH --open-mode=append".into(),
        "#SBATCH --requeue".into(),
        format!("#SBATCH --signal=B:USR1@{REQUEUE_GRACE_SECONDS}"),
        format!("#SBATCH --chdir={}", workdir.display()),
        format!("#SBATCH --cpus-per-task={}", opts.cpus_per_task.max(1)),
    ];
    let optional: [(&str, Option<String>); 5] = [
        ("partition", opts.partition.clone()),
        ("gpus-per-task", opts.gpus_per_task.map(|g| g.to_string())),
        ("mem", opts.mem.clone()),
        ("time", opts.time.clone()),
        ("account", opts.account.clone()),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            h.push(format!("#SBATCH --{key}={}", header_value(key, &v)?));
        }
    }
    for line in &opts.extra {
        if !line.starts_with("#SBATCH ") || line.contains(['\n', '\r']) {
            return Err(ClusterError::Input(format!("--extra {line:?}: give one header line starting with \"#SBATCH \"")));
        }
        h.push(line.clone());
    }
    if [&logs, workdir, binary, &record.experiment, &record.results].iter().any(|p| p.to_string_lossy().contains(['\n', '\r'])) {
        return Err(ClusterError::Input("a path with a line break cannot go into a batch script".into()));
    }
    let fingerprints: Vec<String> = record.tasks.iter().map(|t| t.fingerprint.clone()).collect();
    let body = format!(
        r#"
set -uo pipefail
# Task i computes run i; the fingerprints were planned with {threads} libtorch thread(s).
fingerprints=({fps})
fp="${{fingerprints[$SLURM_ARRAY_TASK_ID]}}"
export OMP_NUM_THREADS={threads}
task="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
echo "[icdbench] task $task: run $fp on $(hostname), attempt $(( ${{SLURM_RESTART_COUNT:-0}} + 1 )), $(date -u '+%F %T UTC')"

{bin} run {exp} --results {results} --only "$fp" --quiet &
child=$!
# scancel and preemption signal every process of the job: icdbench checkpoints and stops by itself.
trap 'true' TERM
# {grace} s before the time limit Slurm signals only this script: pass it on, then requeue the task.
requeue=0
trap 'requeue=1; kill -TERM "$child" 2>/dev/null' USR1
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
if [[ $requeue == 1 ]]; then
  echo "[icdbench] task $task: time limit near; requeued (it resumes from its checkpoint)"
  scontrol requeue "$task"
fi
echo "[icdbench] task $task: exit $status, $(date -u '+%F %T UTC')"
exit "$status"
"#,
        threads = record.threads,
        fps = fingerprints.join(" "),
        bin = quote_path(binary)?,
        exp = quote_path(&record.experiment)?,
        results = quote_path(&record.results)?,
        grace = REQUEUE_GRACE_SECONDS,
    );
    Ok(h.join("\n") + "\n" + &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Task;
    use std::path::PathBuf;

    fn record(tasks: usize) -> Submission {
        Submission {
            batch: "20261128-101500-42".into(),
            job_id: String::new(),
            submitted: 0,
            experiment: PathBuf::from("/shared/exp/sweep one.toml"),
            results: PathBuf::from("/shared/results"),
            threads: 4,
            tasks: (0..tasks).map(|i| Task { index: i, fingerprint: format!("{i:064x}"), label: format!("run {i}") }).collect(),
        }
    }

    #[test]
    fn the_script_runs_one_fingerprint_per_task_with_the_planned_threads() {
        let opts = SlurmOptions { cpus_per_task: 4, max_parallel: Some(2), mem: Some("8G".into()), extra: vec!["#SBATCH --qos=high".into()], ..Default::default() };
        let s = job_script(&record(3), Path::new("/shared/results/sweep/slurm/b"), &opts, Path::new("/opt/icdbench"), Path::new("/home/u")).unwrap();
        assert!(s.starts_with("#!/bin/bash\n"), "{s}");
        for line in ["#SBATCH --array=0-2%2", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G", "#SBATCH --qos=high", "#SBATCH --requeue", "export OMP_NUM_THREADS=4"] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
        assert!(s.contains("#SBATCH --output=/shared/results/sweep/slurm/b/logs/%A_%a.log"));
        assert!(!s.contains("--partition") && !s.contains("--time"), "unset options stay out");
        // The path with a space is quoted once, so the task runs the file that was planned.
        assert!(s.contains("/opt/icdbench run '/shared/exp/sweep one.toml' --results /shared/results --only \"$fp\""), "{s}");
        let fps = s.lines().find(|l| l.starts_with("fingerprints=(")).unwrap();
        assert_eq!(fps.matches(' ').count(), 2, "{fps}");
        // Header lines all come before the first command: sbatch stops reading them there.
        let first_command = s.lines().position(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
        assert!(s.lines().skip(first_command).all(|l| !l.starts_with("#SBATCH")));
    }

    #[test]
    fn bad_options_are_named() {
        let opts = |o: SlurmOptions| job_script(&record(1), Path::new("/b"), &o, Path::new("/bin/icdbench"), Path::new("/")).unwrap_err().to_string();
        assert!(opts(SlurmOptions { extra: vec!["--qos=high".into()], ..Default::default() }).contains("#SBATCH"));
        assert!(opts(SlurmOptions { mem: Some("8G\n#SBATCH --x".into()), ..Default::default() }).contains("--mem"));
        assert!(opts(SlurmOptions { max_parallel: Some(0), ..Default::default() }).contains("at least 1"));
        assert!(job_script(&record(0), Path::new("/b"), &SlurmOptions::default(), Path::new("/i"), Path::new("/")).is_err());
    }
}
