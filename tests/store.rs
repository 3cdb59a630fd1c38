//! The results store as users lean on it: fingerprints that follow content (not
//! paths, not commits), stages reused when only evaluation changes, runs shared
//! by processes started together, SIGKILL and corrupt folders recovered.

mod common;

use common::{fingerprints, icdbench, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn plan(cwd: &Path, exp: &Path, results: &Path) -> Vec<String> {
    let out = icdbench().current_dir(cwd).arg("plan").arg(exp).arg("--results").arg(results).assert().success();
    fingerprints(&out.get_output().stdout)
}

fn run(exp: &Path, results: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    icdbench().arg("run").arg(exp).arg("--results").arg(results).arg("--quiet").args(extra).assert()
}

/// Finished run folders of `experiment` under `results`.
fn run_dirs(results: &Path, experiment: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results.join(experiment)).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("DONE").is_file()).collect();
    dirs.sort();
    dirs
}

fn metrics(dir: &Path) -> serde_json::Value {
    common::metrics_without_timings(dir)
}

fn all_metrics(results: &Path, experiment: &str) -> Vec<(String, serde_json::Value)> {
    run_dirs(results, experiment).iter().map(|d| (d.file_name().unwrap().to_string_lossy().to_string(), metrics(d))).collect()
}

#[test]
fn one_fingerprint_whatever_the_path_to_the_experiment_or_the_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let repo = root();
    let from_root = plan(&repo, Path::new("experiments/quickstart.toml"), &results);
    let from_experiments = plan(&repo.join("experiments"), Path::new("quickstart.toml"), &results);
    let absolute = plan(tmp.path(), &repo.join("experiments/quickstart.toml"), &results);
    assert_eq!(from_root.len(), 5, "two training arms and three baselines");
    assert_eq!(from_root, from_experiments);
    assert_eq!(from_root, absolute);

    // A project with its own data files, copied to another folder: same contents, same runs.
    let a = tmp.path().join("a");
    std::fs::create_dir_all(a.join("data")).unwrap();
    for (split, n) in [("train", 6), ("test", 3)] {
        let lines: Vec<String> = (0..n).map(|i| format!("{{\"id\": \"{split}{i}\", \"text\": \"type 2 diabetes mellitus without complications\", \"codes\": [\"E11.9\"]}}")).collect();
        std::fs::write(a.join("data").join(format!("{split}.jsonl")), lines.join("\n") + "\n").unwrap();
    }
    std::fs::write(
        a.join("exp.toml"),
        "[experiment]\nname = \"own\"\n[data.source]\nkind = \"jsonl\"\ntrain = \"data/train.jsonl\"\ntest = \"data/test.jsonl\"\n[eval]\nbootstrap_samples = 0\n[[baselines]]\nkind = \"dictionary\"\n",
    )
    .unwrap();
    let b = tmp.path().join("elsewhere").join("b");
    std::fs::create_dir_all(b.join("data")).unwrap();
    for f in ["exp.toml", "data/train.jsonl", "data/test.jsonl"] {
        std::fs::copy(a.join(f), b.join(f)).unwrap();
    }
    let fa = plan(&a, Path::new("exp.toml"), &results);
    assert_eq!(fa.len(), 1);
    assert_eq!(fa, plan(tmp.path(), &b.join("exp.toml"), &results));
    assert_eq!(fa, plan(&b.join("data"), Path::new("../exp.toml"), &results));
    // A changed byte of an input is another run.
    std::fs::write(b.join("data/test.jsonl"), std::fs::read_to_string(a.join("data/test.jsonl")).unwrap().replace("test2", "test9")).unwrap();
    assert_ne!(fa, plan(&b, Path::new("exp.toml"), &results));
}

#[test]
fn the_code_identity_covers_sources_not_docs_tests_or_experiments() {
    use icdbench::code_identity::code_identity_of;
    let repo = root();
    // The identity baked in at build time is the one of this tree's sources.
    assert_eq!(code_identity_of(&repo), icdbench::fingerprint::code_identity());

    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("checkout");
    let files = icdbench::code_identity::identity_files(&repo);
    assert!(files.iter().any(|f| f == "src/metrics/mod.rs") && files.iter().any(|f| f == "Cargo.lock") && files.iter().any(|f| f == "build.rs"));
    assert!(!files.iter().any(|f| f.starts_with("tests/") || f.starts_with("experiments/") || f == "README.md"));
    for f in files.iter().map(String::as_str).chain(["README.md", "tests/store.rs", "experiments/quickstart.toml"]) {
        let to = copy.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(f), &to).unwrap();
    }
    // A copy in another folder (no git at all, so nothing committed) has the same identity.
    let before = code_identity_of(&copy);
    assert_eq!(before, icdbench::fingerprint::code_identity());
    for f in ["README.md", "tests/store.rs", "experiments/quickstart.toml"] {
        let mut text = std::fs::read_to_string(copy.join(f)).unwrap();
        text.push_str("\n# edited\n");
        std::fs::write(copy.join(f), text).unwrap();
        assert_eq!(code_identity_of(&copy), before, "{f} is not code");
    }
    let metrics = copy.join("src/metrics/mod.rs");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("// one more line\n");
    std::fs::write(&metrics, text).unwrap();
    assert_ne!(code_identity_of(&copy), before, "an edit in src/metrics changes the identity");
}

/// A copy of this tree's code (sources, build script, lock file) in a fresh folder.
fn copy_of_the_code(into: &Path) -> PathBuf {
    let repo = root();
    let copy = into.join("checkout");
    for f in icdbench::code_identity::identity_files(&repo) {
        let to = copy.join(&f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(&f), &to).unwrap();
    }
    copy
}

fn append(file: &Path, line: &str) {
    let mut text = std::fs::read_to_string(file).unwrap();
    text.push_str(line);
    std::fs::write(file, text).unwrap();
}

#[test]
fn each_stage_key_covers_the_code_that_stage_runs() {
    use icdbench::code_identity::stage_identities_of;
    use icdbench::fingerprint::{stage_identity, Stage};
    let tmp = tempfile::tempdir().unwrap();
    let copy = copy_of_the_code(tmp.path());
    let before = stage_identities_of(&copy);
    // The build baked in the same identities this tree gives.
    for stage in Stage::ALL {
        assert_eq!(before[stage.name()], stage_identity(stage), "{}", stage.name());
    }
    let changed = |now: &std::collections::BTreeMap<String, String>| -> Vec<String> {
        before.iter().filter(|(s, id)| now[s.as_str()] != **id).map(|(s, _)| s.clone()).collect()
    };

    // A plot, a table and a help text: nothing recomputes.
    for f in ["src/report/plot.rs", "src/report/table.rs", "src/cli.rs", "src/app.rs", "src/check/render.rs"] {
        append(&copy.join(f), "// edited\n");
    }
    assert_eq!(changed(&stage_identities_of(&copy)), Vec::<String>::new());

    // A metric: runs rescore (and baselines, which tune thresholds on it, refit); no training, no predictions.
    append(&copy.join("src/metrics/sets.rs"), "// edited\n");
    let after_metrics = stage_identities_of(&copy);
    assert_eq!(changed(&after_metrics), ["fit", "run"]);

    // The trainer: models retrain (and so predict again), the documents and the baselines stay.
    let before_train = after_metrics;
    append(&copy.join("src/train/adamw.rs"), "// edited\n");
    let now = stage_identities_of(&copy);
    let moved: Vec<&str> = before_train.iter().filter(|(s, id)| now[s.as_str()] != **id).map(|(s, _)| s.as_str()).collect();
    assert_eq!(moved, ["predict", "run", "train"]);

    // The data sources: everything downstream.
    append(&copy.join("src/data/synthetic/generate.rs"), "// edited\n");
    let after_data = stage_identities_of(&copy);
    assert!(now.iter().all(|(s, id)| after_data[s.as_str()] != *id), "{now:?} -> {after_data:?}");
}

#[test]
fn the_thread_count_is_in_the_fingerprint_and_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::small_experiment(tmp.path(), "threads", 20, 0, &common::dictionary(""));
    let results = tmp.path().join("results");
    let planned = |threads: &str| {
        let out = icdbench().env("OMP_NUM_THREADS", threads).arg("plan").arg(&exp).arg("--results").arg(&results).arg("--json").assert().success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        (fingerprints(text.as_bytes()), text)
    };
    let (one, text_one) = planned("1");
    let (two, text_two) = planned("2");
    assert_eq!(one.len(), 1);
    assert_ne!(one, two, "runs on 1 and 2 threads are not claimed to be the same run");
    assert!(text_one.contains(" 1 threads\"") && text_one.contains("\"threads\": 1"), "{text_one}");
    assert!(text_two.contains(" 2 threads\"") && text_two.contains("\"threads\": 2"), "{text_two}");

    // A run folder written on 2 threads, compared with the run this process (1 thread) would compute.
    icdbench().env("OMP_NUM_THREADS", "2").arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").assert().success();
    let out = icdbench().env("OMP_NUM_THREADS", "1").arg("plan").arg(&exp).arg("--results").arg(&results).args(["--explain", &one[0], &two[0]]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].trim().starts_with("device: cpu ") && lines[0].contains(" 1 threads -> cpu ") && lines[0].ends_with(" 2 threads"), "{text}");
}

#[test]
fn evaluation_changes_reuse_the_trained_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::tiny_model_experiment(tmp.path(), "stages", "");
    let results = tmp.path().join("results");
    let t0 = Instant::now();
    run(&exp, &results, &[]).success();
    let first_wall = t0.elapsed();
    let first = run_dirs(&results, "stages");
    assert_eq!(first.len(), 1);
    let first_log = std::fs::read_to_string(first[0].join("run.log")).unwrap();
    assert!(first_log.contains("train ") && first_log.contains("(to compute), predict 0 of 1 splits cached"), "{first_log}");

    // More bootstrap samples: re-scored from cached predictions, no model built.
    let text = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(&exp, text.replace("bootstrap_samples = 20", "bootstrap_samples = 30")).unwrap();
    let t1 = Instant::now();
    run(&exp, &results, &[]).success();
    let rescore_wall = t1.elapsed();
    let dirs = run_dirs(&results, "stages");
    assert_eq!(dirs.len(), 2, "a new run folder");
    let new = dirs.iter().find(|d| **d != first[0]).unwrap();
    let log = std::fs::read_to_string(new.join("run.log")).unwrap();
    assert!(log.contains("(cached), predict 1 of 1 splits cached") && log.contains("reused from the cache"), "{log}");
    assert!(!log.contains("backbone tiny"), "no model was built: {log}");
    // The documents too come from their stage, written by the first process.
    assert!(!first_log.contains("read from the data stage") && log.contains("data: read from the data stage"), "{log}");
    let stored = std::fs::read_dir(results.join(".cache/data")).unwrap().filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.')).count();
    assert_eq!(stored, 1, "one data stage for runs on the same documents");
    assert_eq!(metrics(&first[0])["cost"], metrics(new)["cost"], "the training record is the cached one");
    assert!(rescore_wall < first_wall, "re-scoring ({rescore_wall:?}) is faster than training ({first_wall:?})");
    let (a, b) = (metrics(&first[0]), metrics(new));
    assert_eq!(a["splits"]["test"]["sets"]["overall"]["micro"]["f1"], b["splits"]["test"]["sets"]["overall"]["micro"]["f1"]);

    // Another decoding budget: predicts again from the trained weights, trains nothing.
    let text = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(&exp, text.replace("max_new_tokens = 16", "max_new_tokens = 12")).unwrap();
    run(&exp, &results, &[]).success();
    let dirs = run_dirs(&results, "stages");
    assert_eq!(dirs.len(), 3);
    let newest = dirs.iter().find(|d| !first.contains(d) && *d != new).unwrap();
    let log = std::fs::read_to_string(newest.join("run.log")).unwrap();
    assert!(log.contains("(cached), predict 0 of 1 splits cached") && log.contains("reloaded from the train stage"), "{log}");
    assert_eq!(metrics(&first[0])["cost"], metrics(newest)["cost"]);
}

/// A 4-run tiny sweep.
fn sweep(dir: &Path, name: &str) -> PathBuf {
    let exp = common::tiny_model_experiment(dir, name, "\n[sweep]\n\"experiment.seed\" = [1, 2]\n\"mix.strategy\" = [\"document_only\", \"mixed\"]\n");
    let text = std::fs::read_to_string(&exp).unwrap().replace("steps = 12\n", "steps = 6\n");
    std::fs::write(&exp, text).unwrap();
    exp
}

#[test]
fn two_processes_on_one_sweep_compute_each_run_once() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = sweep(tmp.path(), "shared");
    let single = tmp.path().join("single");
    run(&exp, &single, &[]).success();
    let expected = all_metrics(&single, "shared");
    assert_eq!(expected.len(), 4);

    let results = tmp.path().join("results");
    let bin = assert_cmd::cargo::cargo_bin("icdbench");
    let spawn = || Command::new(&bin).arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ea, eb) = (String::from_utf8_lossy(&a.stderr).to_string(), String::from_utf8_lossy(&b.stderr).to_string());
    assert!(a.status.success() && b.status.success(), "{ea}\n---\n{eb}");
    assert_eq!(all_metrics(&results, "shared"), expected, "same numbers as one process");
    for (fp, _) in &expected {
        let computed = ea.lines().chain(eb.lines()).filter(|l| l.contains(fp.as_str()) && l.ends_with(" computed")).count();
        assert_eq!(computed, 1, "run {fp} computed once:\n{ea}\n---\n{eb}");
    }
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(results.join("shared")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n.ends_with(".partial") || n.ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sigkill_during_training_then_rerun_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::tiny_model_experiment(tmp.path(), "killed", "");
    let text = std::fs::read_to_string(&exp).unwrap().replace("steps = 12\n", "steps = 80\n").replace("checkpoint_every = 5", "checkpoint_every = 4");
    std::fs::write(&exp, text).unwrap();
    let straight = tmp.path().join("straight");
    run(&exp, &straight, &[]).success();

    let results = tmp.path().join("results");
    let bin = assert_cmd::cargo::cargo_bin("icdbench");
    let mut child = Command::new(&bin).arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let train_cache = results.join(".cache").join("train");
    let deadline = Instant::now() + Duration::from_secs(300);
    let checkpoint = loop {
        let found = std::fs::read_dir(&train_cache).ok().into_iter().flatten().flatten().map(|e| e.path().join("checkpoint")).find(|c| {
            std::fs::read_dir(c).map(|mut r| r.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("step-")))).unwrap_or(false)
        });
        if let Some(c) = found {
            break c;
        }
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL: no handler runs, the lock is released by the kernel.
    child.wait().unwrap();
    assert!(run_dirs(&results, "killed").is_empty(), "a killed run is not finished");
    // Its lock file still names the dead process, but nobody holds the lock.
    let planned = icdbench().arg("plan").arg(&exp).arg("--results").arg(&results).assert().success();
    let table = String::from_utf8_lossy(&planned.get_output().stdout).to_string();
    assert!(table.contains("to run") && !table.contains("running"), "{table}");
    assert!(checkpoint.is_dir());

    let rerun = run(&exp, &results, &[]).success();
    let err = String::from_utf8_lossy(&rerun.get_output().stderr).to_string();
    assert!(err.contains("computed"), "{err}");
    let dirs = run_dirs(&results, "killed");
    assert_eq!(dirs.len(), 1);
    let training: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dirs[0].join("training.json")).unwrap()).unwrap();
    assert!(training["training"]["resumed_from_step"].as_u64().is_some_and(|s| s > 0 && s < 80), "resumed mid-way: {}", training["training"]);
    assert_eq!(all_metrics(&results, "killed"), all_metrics(&straight, "killed"));
}

#[test]
fn a_corrupt_run_folder_exits_2_with_the_fix_and_force_recovers_it() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::small_experiment(tmp.path(), "corrupt", 20, 0, &common::dictionary(""));
    let results = tmp.path().join("results");
    run(&exp, &results, &[]).success();
    let dir = run_dirs(&results, "corrupt").remove(0);
    let good = metrics(&dir);
    let text = std::fs::read_to_string(dir.join("metrics.json")).unwrap();

    for (what, damage) in [("truncated metrics.json", 0), ("DONE without metrics.json", 1)] {
        match damage {
            0 => std::fs::write(dir.join("metrics.json"), &text[..text.len() / 2]).unwrap(),
            _ => std::fs::remove_file(dir.join("metrics.json")).unwrap(),
        }
        let out = run(&exp, &results, &[]).code(2);
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains("corrupt") && err.contains("--force") && err.contains(&dir.display().to_string()), "{what}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        icdbench().arg("plan").arg(&exp).arg("--results").arg(&results).assert().success().stdout(predicates::str::contains("corrupt"));
        run(&exp, &results, &["--force"]).success();
        assert_eq!(metrics(&dir), good, "{what}: recovered");
    }
}
