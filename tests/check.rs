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

    // A floor: with `floor = "prior"` every gated backbone must beat the prior of its
    // experiment; without a prior run beside them the gate refuses the input.
    let floored = dir.join("floored.toml");
    std::fs::write(&floored, "experiments = [\"backbones.toml\"]\n\n[backbone_gate]\nkey = \"arm\"\nreference = \"tiny\"\nfloor = \"prior\"\n\n[[gate]]\nmetric = \"test.overall.micro_f1\"\npoints = 5\n").unwrap();
    let e = stderr(&check(dir, &floored, &[]).code(2));
    assert!(e.contains("add [[baselines]] kind = \"prior\""), "{e}");
    let mut experiment = std::fs::read_to_string(dir.join("backbones.toml")).unwrap();
    experiment.push_str("\n[[baselines]]\nkind = \"prior\"\n");
    std::fs::write(dir.join("backbones.toml"), experiment).unwrap();
    let out = check(dir, &floored, &[]).code(1);
    let text = stdout(&out);
    // Each run's micro-F1, by the arm it was swept with (the prior sets none).
    let micro = |arm: Option<&str>| -> f64 {
        let dir = std::fs::read_dir(dir.join("results/backbone-gate")).unwrap().map(|e| e.unwrap().path()).find(|p| {
            let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.join("spec.json")).unwrap_or_else(|_| "{}".into())).unwrap();
            let swept = spec["sweep"].as_array().and_then(|s| s.iter().find(|kv| kv[0] == "arm")).map(|kv| kv[1].as_str().unwrap().trim_matches('"').to_string());
            p.join("DONE").is_file() && swept.as_deref() == arm
        });
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.unwrap_or_else(|| panic!("{arm:?} run")).join("metrics.json")).unwrap()).unwrap();
        v["splits"]["test"]["sets"]["overall"]["micro"]["f1"].as_f64().unwrap()
    };
    let prior = micro(None);
    // The reference backbone is held to the floor too; each floor row follows the numbers.
    let floor_line = |arm: &str| text.lines().find(|l| l.contains(&format!("[arm={arm}]")) && l.contains("(floor: prior)")).map(str::to_string);
    for arm in ["tiny", "tiny_broken"] {
        let line = floor_line(arm).unwrap_or_else(|| panic!("a floor row for {arm}:\n{text}"));
        assert_eq!(line.contains("BELOW FLOOR"), micro(Some(arm)) <= prior + 1e-9, "{arm} ({}) against the prior ({prior}): {line}", micro(Some(arm)));
    }
    // The broken arm learns nothing: it is below the prior.
    assert!(micro(Some("tiny_broken")) < prior, "{text}");
    let below = ["tiny", "tiny_broken"].iter().filter(|a| micro(Some(a)) <= prior + 1e-9).count();
    assert!(text.contains(&format!("{below} below the floor")), "{text}");
}

/// What CI runs for backbones: `icdbench check ci/backbones.toml` trains and scores the tiny
/// model, SmolLM2-135M and Gemma 3 270M on one small benchmark (~6 min on 2 cores) and judges
/// Gemma against SmolLM2's run. Its verdict is checked against the runs' own metrics.json
/// (the tolerances of ci/backbones.toml), then `report` draws the backbone comparison from
/// those runs. Skipped without the packaged models, except in CI.
#[test]
fn the_backbone_gate_runs_on_the_packaged_backbones_and_report_draws_them() {
    if common::packaged("smollm2-135m").is_none() || common::packaged("gemma3-270m").is_none() {
        return;
    }
    let root = common::root();
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let a = icdbench().current_dir(&root).args(["check", "ci/backbones.toml", "--format", "markdown", "--results"]).arg(&results).assert();
    let out = stdout(&a);
    assert!(out.contains("against `the backbone.name = smollm2-135m runs`"), "{out}");
    // Every gated value is listed in the summary's details: the 2 gates for Gemma, none for
    // the reference backbone's own run or the tiny floor.
    let details = &out[out.find("<details>").expect("the folded table of every gated value")..];
    let rows = |name: &str| details.lines().filter(|l| l.starts_with("| backbones / ") && l.contains(&format!("[backbone.name=\"{name}\"]"))).count();
    assert_eq!((rows("gemma3-270m"), rows("smollm2-135m"), rows("tiny")), (2, 0, 0), "{out}");

    // The verdict follows from the runs' numbers: Gemma regresses when a gated metric is more
    // than 10 points below SmolLM2's.
    let run_of = |name: &str| -> serde_json::Value {
        let dir = std::fs::read_dir(results.join("backbones")).unwrap().map(|e| e.unwrap().path()).find(|p| {
            p.join("DONE").is_file() && std::fs::read_to_string(p.join("metrics.json")).unwrap().contains(&format!("\"system\": \"{name} "))
        });
        serde_json::from_str(&std::fs::read_to_string(dir.unwrap_or_else(|| panic!("{name} run")).join("metrics.json")).unwrap()).unwrap()
    };
    let (gemma, smollm2) = (run_of("gemma3-270m"), run_of("smollm2-135m"));
    let f1 = |m: &serde_json::Value, kind: &str| 100.0 * m["splits"]["test"]["sets"]["overall"][kind]["f1"].as_f64().unwrap();
    let regressed = ["micro", "macro_gold"].iter().any(|k| f1(&gemma, k) < f1(&smollm2, k) - 10.0 - 1e-9);
    assert_eq!(a.get_output().status.code(), Some(if regressed { 1 } else { 0 }), "{out}\n{}", stderr(&a));
    assert_eq!(out.contains("REGRESSED"), regressed, "{out}");
    assert!(out.contains(if regressed { "check failed against" } else { "ok: 4 runs, nothing regressed" }), "{out}");

    let report = tmp.path().join("report");
    icdbench().arg("report").arg(results.join("backbones")).arg("--out").arg(&report).assert().success();
    let svg = std::fs::read_to_string(report.join("backbones.svg")).unwrap();
    assert!(report.join("backbones.png").is_file());
    // Each backbone's bars are labelled with its name and what its training cost (metrics.json).
    let runs = std::fs::read_dir(results.join("backbones")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("DONE").is_file());
    let mut labelled = 0;
    for run in runs {
        let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
        if m["system"] == "prior" {
            continue; // the floor, shown beside the backbones
        }
        let seconds = m["cost"]["train_seconds"].as_f64().unwrap();
        let name = ["tiny", "smollm2-135m", "gemma3-270m"].into_iter().find(|n| m["system"].as_str().unwrap().starts_with(n)).unwrap();
        assert!(svg.contains(&format!("{name} ({seconds:.0} s, ")), "{name} ({seconds:.0} s, …) in backbones.svg");
        labelled += 1;
    }
    assert_eq!(labelled, 3);
    for series in ["micro-F1", "macro-F1", "seen macro-F1", "unseen macro-F1"] {
        assert!(svg.contains(series), "legend {series}");
    }
}
