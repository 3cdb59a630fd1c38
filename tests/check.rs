//! `icdbench check`, the CI gate: passes on an unchanged run, fails (exit 1, readable
//! message) on one made worse on purpose, exits 2 on bad input.

mod common;

use common::icdbench;
use std::path::{Path, PathBuf};

/// A small synthetic experiment named `gate` with one dictionary baseline (its label is `dictionary`
/// whatever `extra` sets, so a changed run keeps its name).
fn experiment(dir: &Path, extra: &str) -> PathBuf {
    common::small_experiment(dir, "gate", 40, 0, &common::dictionary(extra))
}

/// A CI config beside the experiment; its reference goes to `reference/gate.json`.
fn ci_config(dir: &Path, gates: &str) -> PathBuf {
    let path = dir.join("check.toml");
    std::fs::write(&path, format!("experiments = [\"gate.toml\"]\nreference = \"reference/gate.json\"\n\n{gates}")).unwrap();
    path
}

const GATES: &str = "[[gate]]\nmetric = \"test.overall.micro_f1\"\npoints = 0.5\n\n[[gate]]\nmetric = \"test.overall.macro_f1\"\npoints = 0.5\n";

/// Runs `icdbench check CONFIG --results DIR/results ARGS`.
fn check(dir: &Path, config: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    icdbench().arg("check").arg(config).arg("--results").arg(dir.join("results")).args(args).assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).to_string()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).to_string()
}

fn read_reference(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference/gate.json")).unwrap()).unwrap()
}

#[test]
fn update_writes_a_reference_and_an_unchanged_run_passes() {
    let tmp = tempfile::tempdir().unwrap();
    experiment(tmp.path(), "");
    let config = ci_config(tmp.path(), GATES);
    check(tmp.path(), &config, &["--update"]).success();
    let reference = read_reference(tmp.path());
    let run = &reference["runs"]["gate / dictionary"];
    let micro = run["metrics"]["test.overall.micro_f1"].as_f64().unwrap();
    assert!(micro > 0.3 && micro <= 1.0, "{reference}");
    assert_eq!(run["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(reference["icdbench_version"], env!("CARGO_PKG_VERSION"));
    assert!(reference["git_revision"].as_str().is_some_and(|r| !r.is_empty()));

    let a = check(tmp.path(), &config, &[]).code(0);
    let out = stdout(&a);
    assert!(out.contains("All 2 gated metrics equal the reference"), "{out}");
    assert!(out.contains("ok: 1 runs, nothing regressed"), "{out}");
    // The run was reused, not recomputed.
    assert!(stderr(&a).contains("gate / dictionary reused"), "{}", stderr(&a));
}

#[test]
fn a_run_made_worse_on_purpose_fails_naming_the_run_metric_and_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    experiment(tmp.path(), "");
    let config = ci_config(tmp.path(), GATES);
    check(tmp.path(), &config, &["--update"]).success();
    let before = read_reference(tmp.path())["runs"]["gate / dictionary"]["metrics"]["test.overall.micro_f1"].as_f64().unwrap();

    // Same experiment and run label, but negated mentions are now coded: more false positives.
    experiment(tmp.path(), "negation = false");
    let a = check(tmp.path(), &config, &[]).code(1);
    let out = stdout(&a);
    let line = out.lines().find(|l| l.starts_with("REGRESSED gate / dictionary test.overall.micro_f1: ")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&format!("{:.2} -> ", 100.0 * before)), "{line}");
    assert!(line.contains("tolerance 0.50 pts"), "{line}");
    assert!(out.contains("| REGRESSED |"), "{out}");
    assert!(stderr(&a).contains("check failed against"), "{}", stderr(&a));
    // The reference is left alone by a failing check.
    assert_eq!(read_reference(tmp.path())["runs"]["gate / dictionary"]["metrics"]["test.overall.micro_f1"].as_f64().unwrap(), before);
}

#[test]
fn improvements_over_or_within_tolerance_and_a_drop_within_it_pass() {
    let tmp = tempfile::tempdir().unwrap();
    // The reference is the worse run; the current run is better.
    experiment(tmp.path(), "negation = false");
    let config = ci_config(tmp.path(), GATES);
    check(tmp.path(), &config, &["--update"]).success();
    experiment(tmp.path(), "");
    let out = stdout(&check(tmp.path(), &config, &[]).code(0));
    assert!(out.lines().any(|l| l.starts_with("improved gate / dictionary test.overall.micro_f1: ")), "{out}");

    // With 50 points of tolerance the same improvement is within it: ok.
    let wide = GATES.replace("points = 0.5", "points = 50");
    let config = ci_config(tmp.path(), &wide);
    let out = stdout(&check(tmp.path(), &config, &[]).code(0));
    assert!(out.contains("| ok "), "{out}");
    assert!(!out.contains("improved gate"), "{out}");

    // And a drop within 50 points passes too.
    check(tmp.path(), &config, &["--update"]).success();
    experiment(tmp.path(), "negation = false");
    let out = stdout(&check(tmp.path(), &config, &[]).code(0));
    assert!(out.contains("nothing regressed"), "{out}");
}

#[test]
fn missing_reference_and_malformed_config_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    experiment(tmp.path(), "");
    let config = ci_config(tmp.path(), GATES);
    let a = check(tmp.path(), &config, &[]).code(2);
    let err = stderr(&a);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("reference/gate.json") && err.contains("--update"), "{err}");

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "experiments = [\"gate.toml\"]\nreference = \"reference/gate.json\"\ntolerence = 1\n").unwrap();
    let err = stderr(&check(tmp.path(), &bad, &[]).code(2));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.toml:3:") && err.contains("tolerence"), "{err}");

    std::fs::write(&bad, "experiments = [\"gate.toml\"]\nreference = \"reference/gate.json\"\n[[gate]]\nmetric = \"test.overal.micro_f1\"\npoints = 1\n").unwrap();
    let err = stderr(&check(tmp.path(), &bad, &[]).code(2));
    assert!(err.contains("bad.toml:4:") && err.contains("gate[0].metric") && err.contains("overall, seen, unseen"), "{err}");

    let err = stderr(&check(tmp.path(), &tmp.path().join("nope.toml"), &[]).code(2));
    assert!(err.contains("nope.toml") && !err.contains("panicked"), "{err}");

    // A reference that is not one: exit 2 with the file's line.
    std::fs::create_dir_all(tmp.path().join("reference")).unwrap();
    std::fs::write(tmp.path().join("reference/gate.json"), "{\"runs\": 3}\n").unwrap();
    let err = stderr(&check(tmp.path(), &config, &[]).code(2));
    assert!(err.contains("reference/gate.json:1:") && err.contains("not a reference file"), "{err}");
}

#[test]
fn github_format_prints_error_annotations_and_a_markdown_summary() {
    let tmp = tempfile::tempdir().unwrap();
    experiment(tmp.path(), "");
    let config = ci_config(tmp.path(), GATES);
    check(tmp.path(), &config, &["--update"]).success();
    experiment(tmp.path(), "negation = false");
    let out = stdout(&check(tmp.path(), &config, &["--format", "github"]).code(1));
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("::error title=")).collect();
    assert!(errors.iter().any(|l| l.contains("::REGRESSED gate / dictionary test.overall.micro_f1: ")), "{out}");
    assert!(out.contains("## icdbench check FAILED"), "{out}");
    assert!(out.contains("<details>"), "{out}");

    let md = stdout(&check(tmp.path(), &config, &["--format", "markdown"]).code(1));
    assert!(!md.contains("::error"), "{md}");
    assert!(md.contains("| REGRESSED |"), "{md}");
}

#[test]
fn a_metric_or_run_missing_from_the_current_results_fails() {
    let tmp = tempfile::tempdir().unwrap();
    experiment(tmp.path(), "");
    // The experiment evaluates only `test`; the gate also names `val`.
    let gates = format!("{GATES}\n[[gate]]\nmetric = \"val.overall.micro_f1\"\npoints = 0.5\n");
    let config = ci_config(tmp.path(), &gates);
    check(tmp.path(), &config, &["--update"]).success();
    let path = tmp.path().join("reference/gate.json");
    let mut reference = read_reference(tmp.path());
    assert!(reference["runs"]["gate / dictionary"]["metrics"].get("val.overall.micro_f1").is_none(), "nothing to record without a val split");
    // A reference written when the run was also scored on `val`.
    reference["runs"]["gate / dictionary"]["metrics"]["val.overall.micro_f1"] = serde_json::json!(0.75);
    std::fs::write(&path, serde_json::to_string_pretty(&reference).unwrap()).unwrap();
    let out = stdout(&check(tmp.path(), &config, &[]).code(1));
    assert!(out.contains("MISSING gate / dictionary val.overall.micro_f1: reference 75.00, now missing"), "{out}");

    // A run in the reference that no experiment plans any more fails too.
    reference["runs"]["gate / dictionary"]["metrics"].as_object_mut().unwrap().remove("val.overall.micro_f1");
    let ghost = reference["runs"]["gate / dictionary"].clone();
    reference["runs"]["gate / ghost"] = ghost;
    std::fs::write(&path, serde_json::to_string_pretty(&reference).unwrap()).unwrap();
    let out = stdout(&check(tmp.path(), &config, &[]).code(1));
    assert!(out.lines().any(|l| l.starts_with("MISSING gate / ghost") && l.contains("no experiment")), "{out}");

    // New runs not in the reference are listed and do not fail.
    reference["runs"].as_object_mut().unwrap().remove("gate / ghost");
    reference["runs"].as_object_mut().unwrap().remove("gate / dictionary");
    std::fs::write(&path, serde_json::to_string_pretty(&reference).unwrap()).unwrap();
    let out = stdout(&check(tmp.path(), &config, &[]).code(0));
    assert!(out.contains("| new "), "{out}");
}

#[test]
fn the_sample_ci_config_passes_against_its_checked_in_reference() {
    // What users' CI runs: the dictionary baselines against baselines/reference/quickstart-dictionary.json.
    // If this fails after an intended change to the dictionary or the synthetic data, refresh it:
    //   icdbench check ci/check.toml --update
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let a = icdbench().current_dir(&root).args(["check", "ci/check.toml", "--results"]).arg(tmp.path()).assert().code(0);
    let out = stdout(&a);
    assert!(out.contains("against baselines/reference/quickstart-dictionary.json"), "{out}");
    assert!(out.contains("ok: 4 runs, nothing regressed"), "{out}");
}

/// The backbone gate: each run is judged against the reference backbone's run with the same
/// other settings, in one invocation. A backbone made worse on purpose (`tiny_broken`, a
/// learning rate of 1e-8) regresses against `tiny` and fails the check with exit 1, naming it.
#[test]
fn the_backbone_gate_fails_a_backbone_made_worse_on_purpose() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(common::root().join("tests/fixtures/backbone-gate.toml"), dir.join("backbones.toml")).unwrap();
    let config = dir.join("check.toml");
    std::fs::write(
        &config,
        "experiments = [\"backbones.toml\"]\n\n[backbone_gate]\nkey = \"arm\"\nreference = \"tiny\"\n\n[[gate]]\nmetric = \"test.overall.micro_f1\"\npoints = 5\n",
    )
    .unwrap();
    let out = check(dir, &config, &[]).code(1);
    let text = stdout(&out);
    assert!(text.contains("against the arm = tiny runs"), "{text}");
    assert!(text.contains("tiny_broken") && text.contains("REGRESSED"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("| backbone-gate") && l.contains("[arm=tiny] ")), "the reference backbone's own run is not judged:\n{text}");
    assert!(stderr(&out).contains("regressed"), "{}", stderr(&out));
    // The reference arm really learnt something, so the regression is a real one.
    let m = std::fs::read_dir(dir.join("results/backbone-gate")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("DONE").is_file()).map(|p| {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.join("metrics.json")).unwrap()).unwrap();
        v["splits"]["test"]["sets"]["overall"]["micro"]["f1"].as_f64().unwrap()
    }).fold(0.0f64, f64::max);
    assert!(m > 0.2, "the reference arm scores {m}");
    // Nothing to update for a gate that has no reference file.
    let e = stderr(&check(dir, &config, &["--update"]).code(2));
    assert!(e.contains("no reference file to update"), "{e}");
}
