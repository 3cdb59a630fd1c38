//! Sweeps on a real Slurm cluster: `icdbench submit --slurm` hands a tiny sweep to
//! Slurm as a job array, `icdbench status` follows it, and a task cancelled or
//! requeued mid-training resumes from its checkpoint to the numbers of an
//! uninterrupted run.
//!
//! The cluster tests need a running cluster: `scripts/slurm-local.sh start` brings up
//! a single-node one (`.ci/run` does, and sets ICDBENCH_REQUIRE_SLURM=1 so that they
//! fail rather than skip there). Without one they skip with a message. The batch
//! script's time-limit path (USR1, checkpoint, requeue) is tested without Slurm.

mod common;

use common::icdbench;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One cluster test at a time: they share the node's two cores.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether a cluster answers (`sinfo` under this environment's SLURM_CONF).
fn cluster() -> Option<std::sync::MutexGuard<'static, ()>> {
    let up = Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var_os("ICDBENCH_REQUIRE_SLURM").is_none(),
            "ICDBENCH_REQUIRE_SLURM is set but no Slurm cluster answers: start one with scripts/slurm-local.sh start and eval \"$(scripts/slurm-local.sh env)\""
        );
        eprintln!("skipped: no Slurm cluster (scripts/slurm-local.sh start, then eval \"$(scripts/slurm-local.sh env)\")");
        return None;
    }
    Some(CLUSTER.lock().unwrap_or_else(|e| e.into_inner()))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `icdbench submit --slurm` with one core and 600 MB per task; stdout.
fn submit(exp: &Path, results: &Path) -> String {
    let out = icdbench().arg("submit").arg("--slurm").arg(exp).arg("--results").arg(results).args(["--cpus-per-task", "1", "--mem", "600M"]).output().unwrap();
    assert!(out.status.success(), "submit failed: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// `icdbench status` (with the tasks' one thread, for runs no submission recorded): exit code and stdout.
fn status(exp: &Path, results: &Path) -> (i32, String) {
    let out = icdbench().env("OMP_NUM_THREADS", "1").arg("status").arg(exp).arg("--results").arg(results).output().unwrap();
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

/// Polls `what` every second until it returns Some, or fails naming `waiting_for`.
fn wait<T>(limit: Duration, waiting_for: &str, mut what: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = what() {
            return t;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {waiting_for}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn wait_done(exp: &Path, results: &Path, limit: Duration) -> String {
    wait(limit, "every run to be done", || {
        let (code, out) = status(exp, results);
        assert!(code == 0 || code == 3, "status says a run failed:\n{out}");
        (code == 0).then_some(out)
    })
}

/// The running line's step once training has gone `min_step` steps (from `status`).
fn wait_training(exp: &Path, results: &Path, min_step: usize) -> String {
    wait(Duration::from_secs(180), "training to start", || {
        let (_, out) = status(exp, results);
        let line = out.lines().find(|l| l.contains(" running "))?.to_string();
        let step: usize = line.split(" · step ").nth(1)?.split('/').next()?.parse().ok()?;
        (step >= min_step).then_some(line)
    })
}

/// The array's job id from submit's "submitted job N" line.
fn job_id(submitted: &str) -> String {
    submitted.lines().find_map(|l| l.strip_prefix("submitted job ")).and_then(|r| r.split_whitespace().next()).expect("a job id").to_string()
}

/// A tiny model trained for `steps` steps: long enough to interrupt, with no periodic
/// checkpoint, so only the one written on SIGTERM can be resumed from.
fn long_experiment(dir: &Path, name: &str, seed: u64, steps: usize) -> PathBuf {
    let exp = common::tiny_model_experiment(dir, name, "");
    let t = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("seed = 11\n", &format!("seed = {seed}\n"))
        .replace("steps = 12\n", &format!("steps = {steps}\n"))
        .replace("checkpoint_every = 5\n", "checkpoint_every = 1000000\n");
    std::fs::write(&exp, t).unwrap();
    exp
}

/// The one finished run folder under `results/<name>/`.
fn finished_dir(results: &Path, name: &str) -> PathBuf {
    std::fs::read_dir(results.join(name)).unwrap().map(|e| e.unwrap().path()).find(|p| p.join("DONE").is_file()).expect("a finished run")
}

/// metrics.json of the one finished run under `results/<name>/`, timings blanked.
fn metrics(results: &Path, name: &str) -> serde_json::Value {
    common::metrics_without_timings(&finished_dir(results, name))
}

fn run_log(results: &Path, name: &str) -> String {
    std::fs::read_to_string(finished_dir(results, name).join("run.log")).unwrap()
}

/// Every task log of every batch of `results/<name>/slurm/`, concatenated.
fn task_logs(results: &Path, name: &str) -> String {
    let mut all = String::new();
    for batch in std::fs::read_dir(results.join(name).join("slurm")).unwrap() {
        for log in std::fs::read_dir(batch.unwrap().path().join("logs")).unwrap() {
            all.push_str(&std::fs::read_to_string(log.unwrap().path()).unwrap());
        }
    }
    all
}

/// An uninterrupted run of `exp` in this process's environment with one thread, as the tasks run.
fn straight_run(exp: &Path, results: &Path) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("icdbench"))
        .env("OMP_NUM_THREADS", "1")
        .arg("run")
        .arg(exp)
        .arg("--results")
        .arg(results)
        .arg("--quiet")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_sweep_runs_as_an_array_each_run_once_and_is_reported() {
    let Some(_cluster) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::tiny_model_experiment(tmp.path(), "slurm-sweep", "\n[sweep]\n\"mix.span_ratio\" = [0.25, 0.5, 0.75, 1.0]\n");
    let results = tmp.path().join("results");

    let first = submit(&exp, &results);
    assert_eq!(first.lines().filter(|l| l.trim_end().ends_with(|c: char| c.is_ascii_digit()) && l.contains(" task ")).count(), 4, "{first}");
    job_id(&first);
    // Submitted again while the array is queued or running: nothing new is queued.
    let second = submit(&exp, &results);
    assert!(second.contains("nothing to submit") && !second.contains("submitted job"), "{second}");
    assert_eq!(second.lines().filter(|l| l.contains("queued as task") || l.contains("running in") || l.contains("finished")).count(), 4, "{second}");

    let done = wait_done(&exp, &results, Duration::from_secs(600));
    assert!(done.contains("4 runs: 4 done, 0 running, 0 queued, 0 failed, 0 not submitted"), "{done}");
    assert_eq!(std::fs::read_dir(results.join("slurm-sweep").join("slurm")).unwrap().count(), 1, "one batch: the second submission wrote none");

    // Each run computed exactly once, by one task, and no task failed.
    let logs = task_logs(&results, "slurm-sweep");
    let computed: Vec<&str> = logs.lines().filter(|l| l.contains(" -> ") && l.trim_end().ends_with(" computed")).collect();
    assert_eq!(computed.len(), 4, "{logs}");
    let mut fps: Vec<&str> = computed.iter().filter_map(|l| l.split_whitespace().next()).collect();
    fps.dedup();
    assert_eq!(fps.len(), 4, "{computed:?}");
    assert_eq!(logs.matches(": exit 0,").count(), 4, "{logs}");

    // The results folder's form: it gathers finished runs whatever threads this process would plan with.
    let report = icdbench().arg("report").arg(results.join("slurm-sweep")).output().unwrap();
    assert!(report.status.success(), "{}", text(&report.stderr));
    let table = text(&report.stdout);
    for ratio in ["0.25", "0.5", "0.75", "1.0"] {
        assert!(table.contains(&format!("[mix.span_ratio={ratio}]")), "report lacks span ratio {ratio}:\n{table}");
    }
    for fp in fps {
        assert!(table.contains(fp), "report lacks run {fp}:\n{table}");
    }
}

#[test]
fn a_cancelled_task_resumes_from_its_checkpoint_to_the_uninterrupted_numbers() {
    let Some(_cluster) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let exp = long_experiment(tmp.path(), "slurm-cancel", 11, 3000);
    let results = tmp.path().join("results");
    let straight_results = tmp.path().join("straight");
    let mut straight = straight_run(&exp, &straight_results);

    let submitted = submit(&exp, &results);
    let job = job_id(&submitted);
    let running = wait_training(&exp, &results, 20);
    assert!(running.contains(&format!("task {job}_0")), "{running}");

    // While it runs: the run's own command leaves it to the holder, and a second submission queues nothing.
    let fp = submitted.lines().find(|l| l.trim_end().ends_with("task 0")).and_then(|l| l.split_whitespace().next()).unwrap().to_string();
    let started = Instant::now();
    let dup = icdbench().env("OMP_NUM_THREADS", "1").arg("run").arg(&exp).arg("--results").arg(&results).args(["--only", &fp, "--quiet"]).output().unwrap();
    assert!(dup.status.success() && text(&dup.stderr).contains("left to it"), "{}", text(&dup.stderr));
    assert!(started.elapsed() < Duration::from_secs(30), "a duplicate task waited for the run: {:?}", started.elapsed());
    let again = submit(&exp, &results);
    assert!(again.contains("running in pid") && again.contains("nothing to submit"), "{again}");

    assert!(Command::new("scancel").arg(&job).status().unwrap().success());
    wait(Duration::from_secs(90), "the cancelled task to leave the queue", || {
        let q = Command::new("squeue").args(["-h", "-j", &job]).output().ok()?;
        text(&q.stdout).trim().is_empty().then_some(())
    });
    let (code, after) = status(&exp, &results);
    assert_eq!(code, 1, "{after}");
    let failed = after.lines().find(|l| l.contains(" failed ")).unwrap_or_else(|| panic!("{after}"));
    let step: usize = failed.split("checkpoint at step ").nth(1).and_then(|r| r.split(':').next()).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{after}"));
    assert!((20..3000).contains(&step), "{after}");
    assert!(after.contains("SIGTERM received: training stopped after step"), "the log's last lines are shown:\n{after}");

    let resubmitted = submit(&exp, &results);
    assert!(resubmitted.contains("submitted job"), "{resubmitted}");
    wait_done(&exp, &results, Duration::from_secs(300));
    assert!(run_log(&results, "slurm-cancel").contains(&format!("training resumed from the checkpoint at step {step}")));

    assert!(straight.wait().unwrap().success());
    let (a, b) = (metrics(&straight_results, "slurm-cancel"), metrics(&results, "slurm-cancel"));
    assert_eq!(a["fingerprint"], b["fingerprint"], "the tasks plan the run as a one-thread local run does");
    assert_eq!(a, b, "the resumed run's metrics differ from the uninterrupted run's");
}

#[test]
fn a_requeued_task_continues_by_itself() {
    let Some(_cluster) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let exp = long_experiment(tmp.path(), "slurm-requeue", 12, 2000);
    let results = tmp.path().join("results");
    let job = job_id(&submit(&exp, &results));
    wait_training(&exp, &results, 20);

    // As on preemption: Slurm signals the task, and puts it back in the queue.
    let task = format!("{job}_0");
    assert!(Command::new("scontrol").args(["requeue", &task]).status().unwrap().success());
    // A requeued job waits ~2 min before it is eligible again; let it go now.
    wait(Duration::from_secs(60), "the task to be requeued", || {
        let q = Command::new("squeue").args(["-h", "-j", &task, "-o", "%T"]).output().ok()?;
        (text(&q.stdout).trim() == "PENDING").then_some(())
    });
    assert!(Command::new("scontrol").args(["update", &format!("JobId={task}"), "StartTime=now"]).status().unwrap().success());

    wait_done(&exp, &results, Duration::from_secs(300));
    let logs = task_logs(&results, "slurm-requeue");
    assert!(logs.contains("attempt 2,") && logs.contains("SIGTERM received"), "{logs}");
    assert!(run_log(&results, "slurm-requeue").contains("training resumed from the checkpoint at step"));
}

/// Near the time limit Slurm signals the batch script (USR1); it passes SIGTERM on, the run
/// checkpoints, and the script requeues its own task. Run here with bash and a stand-in scontrol.
#[test]
fn the_batch_script_checkpoints_and_requeues_near_the_time_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = long_experiment(tmp.path(), "slurm-usr1", 13, 3000);
    let results = tmp.path().join("results");
    let dry = icdbench().arg("submit").arg("--slurm").arg(&exp).arg("--results").arg(&results).args(["--cpus-per-task", "1", "--dry-run"]).output().unwrap();
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let out = text(&dry.stdout);
    let script = &out[out.find("#!/bin/bash").expect("the script is printed")..];
    assert!(!results.join("slurm-usr1").join("slurm").exists(), "a dry run writes nothing");

    let fake = tmp.path().join("bin");
    std::fs::create_dir_all(&fake).unwrap();
    let calls = tmp.path().join("scontrol.calls");
    std::fs::write(fake.join("scontrol"), format!("#!/bin/sh\necho \"$@\" >> '{}'\n", calls.display())).unwrap();
    Command::new("chmod").arg("+x").arg(fake.join("scontrol")).status().unwrap();
    let script_path = tmp.path().join("job.sbatch");
    std::fs::write(&script_path, script).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default());
    let bash = Command::new("bash")
        .arg(&script_path)
        .env("PATH", path)
        .env("SLURM_ARRAY_JOB_ID", "77")
        .env("SLURM_ARRAY_TASK_ID", "0")
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_training(&exp, &results, 20);
    assert!(Command::new("kill").args(["-USR1", &bash.id().to_string()]).status().unwrap().success());
    let start = Instant::now();
    let done = bash.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(30), "the script did not stop promptly");
    let log = text(&done.stdout) + &text(&done.stderr);
    assert!(log.contains("SIGTERM received: training stopped after step") && log.contains("requeued"), "{log}");
    assert_eq!(std::fs::read_to_string(&calls).unwrap().trim(), "requeue 77_0");
    let (_, after) = status(&exp, &results);
    assert!(after.contains("not submitted") && after.contains("checkpoint at step"), "{after}");
}
