//! The command line as a user meets it: exit codes, messages, caching, fingerprints.

mod common;

use common::{fingerprints, icdbench, root};
use predicates::prelude::*;
use std::path::{Path, PathBuf};

/// A small synthetic experiment (fast) with one dictionary baseline, written into `dir`.
fn small_experiment(dir: &Path, name: &str, extra: &str) -> PathBuf {
    common::small_experiment(dir, name, 40, 50, &common::dictionary(extra))
}

#[test]
fn quickstart_plans_with_fingerprints() {
    let tmp = tempfile::tempdir().unwrap();
    let out = icdbench()
        .current_dir(root())
        .args(["plan", "experiments/quickstart.toml", "--results"])
        .arg(tmp.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut fps = fingerprints(&out);
    // Two training arms (document_only, mixed) and three baselines (prior, dictionary, fuzzy).
    assert_eq!(fps.len(), 5, "{}", String::from_utf8_lossy(&out));
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 5, "every run has its own fingerprint");
}

#[test]
fn second_run_reuses_the_first_and_force_recomputes() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = small_experiment(tmp.path(), "cache", "");
    let results = tmp.path().join("results");
    let first = icdbench().arg("run").arg(&exp).arg("--results").arg(&results).assert().success();
    let first_err = String::from_utf8_lossy(&first.get_output().stderr).to_string();
    assert!(first_err.contains("computed"), "{first_err}");
    let run_dirs: Vec<PathBuf> = std::fs::read_dir(results.join("cache")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    assert_eq!(run_dirs.len(), 1);
    let dir = &run_dirs[0];
    for f in ["spec.json", "manifest.json", "metrics.json", "predictions-test.jsonl", "run.log", "DONE"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(results.join("cache/summary.md").is_file());
    let metrics_before = std::fs::read_to_string(dir.join("metrics.json")).unwrap();

    let second = icdbench().arg("run").arg(&exp).arg("--results").arg(&results).assert().success();
    let err = String::from_utf8_lossy(&second.get_output().stderr).to_string();
    assert!(err.contains("reused"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("metrics.json")).unwrap(), metrics_before);

    let forced = icdbench().arg("run").arg(&exp).arg("--results").arg(&results).arg("--force").assert().success();
    let err = String::from_utf8_lossy(&forced.get_output().stderr).to_string();
    assert!(err.contains("computed"), "{err}");
    // Same fingerprint, same numbers: only the timing may differ.
    let strip = |s: &str| s.lines().filter(|l| !l.contains("\"seconds\"")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()), strip(&metrics_before));
}

#[test]
fn an_interrupted_run_leaves_no_finished_looking_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = small_experiment(tmp.path(), "partial", "");
    let results = tmp.path().join("results");
    let out = icdbench().arg("plan").arg(&exp).arg("--results").arg(&results).assert().success().get_output().stdout.clone();
    let fp = fingerprints(&out).remove(0);
    // What a killed run leaves: a .partial folder without DONE.
    let partial = results.join("partial").join(format!(".{fp}.partial"));
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("metrics.json"), "{half").unwrap();
    icdbench().arg("plan").arg(&exp).arg("--results").arg(&results).assert().success().stdout(predicate::str::contains("to run"));
    let run = icdbench().arg("run").arg(&exp).arg("--results").arg(&results).assert().success();
    assert!(String::from_utf8_lossy(&run.get_output().stderr).contains("computed"));
    assert!(!partial.exists());
    assert!(results.join("partial").join(&fp).join("DONE").is_file());
}

#[test]
fn malformed_toml_exits_2_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, "[experiment]\nname = \"x\"\nseed = \n").unwrap();
    icdbench()
        .arg("plan")
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml:3:"))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn unknown_key_wrong_type_and_out_of_range_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let unknown = small_experiment(tmp.path(), "unknown", "negatoin = true");
    icdbench()
        .arg("run")
        .arg(&unknown)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown.toml:"))
        .stderr(predicate::str::contains("negatoin"));

    let wrong_type = tmp.path().join("wrong.toml");
    std::fs::write(&wrong_type, "[experiment]\nname = \"w\"\nseed = \"seventeen\"\n\n[[baselines]]\nkind = \"dictionary\"\n").unwrap();
    icdbench().arg("plan").arg(&wrong_type).assert().code(2).stderr(predicate::str::contains("wrong.toml:3:"));

    let range = tmp.path().join("range.toml");
    std::fs::write(&range, "[experiment]\nname = \"r\"\n\n[mix]\nspan_ratio = 1.5\n\n[[baselines]]\nkind = \"dictionary\"\n").unwrap();
    icdbench()
        .arg("plan")
        .arg(&range)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("range.toml:5:"))
        .stderr(predicate::str::contains("mix.span_ratio"))
        .stderr(predicate::str::contains("between 0 and 1"));
}

#[test]
fn missing_files_exit_2() {
    icdbench().args(["run", "no/such/experiment.toml"]).assert().code(2).stderr(predicate::str::contains("no/such/experiment.toml"));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("jsonl.toml");
    std::fs::write(
        &path,
        "[experiment]\nname = \"j\"\n\n[data.source]\nkind = \"jsonl\"\ntrain = \"train.jsonl\"\ntest = \"test.jsonl\"\n\n[[baselines]]\nkind = \"dictionary\"\n",
    )
    .unwrap();
    icdbench().arg("run").arg(&path).arg("--results").arg(tmp.path()).assert().code(2).stderr(predicate::str::contains("train.jsonl not found"));
    // `plan` plans without the data and names what is missing.
    icdbench()
        .arg("plan")
        .arg(&path)
        .arg("--results")
        .arg(tmp.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("Missing inputs"))
        .stdout(predicate::str::contains("data.source.train: file"))
        .stdout(predicate::str::contains("train.jsonl not found"));
}

#[test]
fn changing_one_byte_of_an_input_changes_the_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = |id: &str, split: &str, text: &str, code: &str| format!("{{\"id\":\"{id}\",\"split\":\"{split}\",\"text\":\"{text}\",\"codes\":[\"{code}\"]}}\n");
    std::fs::write(tmp.path().join("train.jsonl"), doc("a", "train", "Essential hypertension.", "I10")).unwrap();
    std::fs::write(tmp.path().join("test.jsonl"), doc("b", "test", "Type 2 diabetes mellitus without complications.", "E11.9")).unwrap();
    let exp = tmp.path().join("j.toml");
    std::fs::write(
        &exp,
        "[experiment]\nname = \"j\"\n\n[data.source]\nkind = \"jsonl\"\ntrain = \"train.jsonl\"\ntest = \"test.jsonl\"\n\n[eval]\nbootstrap_samples = 0\n\n[[baselines]]\nkind = \"dictionary\"\n",
    )
    .unwrap();
    let plan = || fingerprints(&icdbench().arg("plan").arg(&exp).assert().success().get_output().stdout.clone());
    let a = plan();
    assert_eq!(a, plan(), "same inputs, same fingerprint across processes");
    std::fs::write(tmp.path().join("test.jsonl"), doc("b", "test", "Type 2 diabetes mellitus without complications!", "E11.9")).unwrap();
    assert_ne!(a, plan());

    // The baseline finds the code in the JSONL document, and unknown codes are reported, not dropped silently.
    let results = tmp.path().join("results");
    std::fs::write(tmp.path().join("test.jsonl"), doc("b", "test", "Type 2 diabetes mellitus without complications.", "E11.9") + &doc("c", "test", "Nothing here.", "X99.999")).unwrap();
    let out = icdbench().arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("| dictionary | test  | 2 "), "{stdout}");
    let dir = std::fs::read_dir(results.join("j")).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["data_report"]["unknown_codes"]["X99.999"], 1);
    // X99.999 is not in the table but stays a gold label: a false negative no system can find here.
    assert_eq!(metrics["splits"]["test"]["sets"]["overall"]["tp"], 1);
    assert_eq!(metrics["splits"]["test"]["sets"]["overall"]["fn"], 1);
    assert!((metrics["splits"]["test"]["sets"]["unseen"]["micro"]["f1"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
}

/// Writes gold and prediction JSONL files into a temporary folder.
fn score_files(gold: &str, pred: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (g, p) = (tmp.path().join("gold.jsonl"), tmp.path().join("pred.jsonl"));
    std::fs::write(&g, gold).unwrap();
    std::fs::write(&p, pred).unwrap();
    (tmp, g, p)
}

/// What a successful `icdbench score` without bootstrap prints.
fn score_stdout(gold: &Path, pred: &Path, extra: &[&str]) -> Vec<u8> {
    let out = icdbench().arg("score").arg("--gold").arg(gold).arg("--pred").arg(pred).args(["--bootstrap", "0"]).args(extra).assert().success();
    out.get_output().stdout.clone()
}

/// The split's metrics as a run writes them (`--json`).
fn score_json(gold: &Path, pred: &Path) -> serde_json::Value {
    serde_json::from_slice(&score_stdout(gold, pred, &["--json"])).unwrap()
}

/// The printed tables.
fn score_text(gold: &Path, pred: &Path) -> String {
    String::from_utf8_lossy(&score_stdout(gold, pred, &[])).to_string()
}

fn close(actual: &serde_json::Value, expected: f64) {
    let a = actual.as_f64().unwrap_or(f64::NAN);
    assert!((a - expected).abs() < 1e-9, "got {actual}, expected {expected}");
}

#[test]
fn score_reads_jsonl_from_other_tools() {
    let (tmp, gold, pred) = score_files(
        concat!(
            "{\"id\":\"t\",\"split\":\"train\",\"text\":\"x\",\"codes\":[\"I10\"]}\n",
            "{\"id\":\"1\",\"split\":\"test\",\"text\":\"x\",\"codes\":[\"I10\",\"E11.9\"]}\n",
            "{\"id\":\"2\",\"split\":\"test\",\"text\":\"y\",\"codes\":[\"J45.909\"]}\n"
        ),
        // Lower case and no dots are normalised; doc 2 has no prediction.
        "{\"id\":\"1\",\"codes\":[\"i10\",\"E119\",\"K21.9\"]}\n",
    );
    let scored = score_json(&gold, &pred);
    let report = &scored["sets"];
    // TP 2, FP 1, FN 1 -> micro F1 = 2 / (2 + 1) = 0.6667
    assert_eq!(report["overall"]["tp"], 2);
    assert!((report["overall"]["micro"]["f1"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    // Seen = {I10} from the train line: seen micro F1 = 1.
    assert_eq!(report["seen"]["micro"]["f1"], 1.0);
    assert_eq!(scored["n_docs"], 2);
    assert_eq!(scored["invalid_predictions"]["count"], 0);

    icdbench().arg("score").arg("--gold").arg(&gold).arg("--pred").arg(tmp.path().join("nope.jsonl")).assert().code(2).stderr(predicate::str::contains("nope.jsonl"));
    std::fs::write(&pred, "{\"id\":\"1\",\"codes\":[\"I10\"]}\nnot json\n").unwrap();
    icdbench().arg("score").arg("--gold").arg(&gold).arg("--pred").arg(&pred).assert().code(2).stderr(predicate::str::contains("pred.jsonl:2:"));
}

#[test]
fn export_is_byte_identical_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = small_experiment(tmp.path(), "export", "");
    let export = |out: &str| {
        icdbench().args(["data", "export"]).arg(&exp).arg("--out").arg(tmp.path().join(out)).args(["--format", "both"]).assert().success();
    };
    export("a");
    export("b");
    for f in ["train.jsonl", "val.jsonl", "test.jsonl", "test.parquet", "dataset.json"] {
        let a = std::fs::read(tmp.path().join("a").join(f)).unwrap();
        let b = std::fs::read(tmp.path().join("b").join(f)).unwrap();
        assert!(!a.is_empty(), "{f} empty");
        assert_eq!(a, b, "{f} differs between two exports");
    }
}

#[test]
fn score_reports_ranking_metrics_when_predictions_carry_scores() {
    // Doc 1 ranks its gold code first, doc 2 second: P@8 = (1 + 1) / 16.
    let (_tmp, gold, pred) = score_files(
        concat!(
            "{\"id\":\"1\",\"split\":\"test\",\"text\":\"x\",\"codes\":[\"I10\"]}\n",
            "{\"id\":\"2\",\"split\":\"test\",\"text\":\"y\",\"codes\":[\"E11.9\"]}\n"
        ),
        concat!(
            "{\"id\":\"1\",\"codes\":[\"I10\"],\"scores\":{\"I10\":0.9,\"E11.9\":0.2}}\n",
            "{\"id\":\"2\",\"codes\":[\"I10\"],\"scores\":{\"I10\":0.8,\"E11.9\":0.7}}\n"
        ),
    );
    let text = score_text(&gold, &pred);
    assert!(text.contains("| P@8         | 12.50"), "{text}");
    assert!(text.contains("| R@8         | 100.00"), "{text}");
}

#[test]
fn score_counts_made_up_codes_as_false_positives() {
    let (_tmp, gold, pred) = score_files(
        concat!(
            "{\"id\":\"1\",\"text\":\"x\",\"codes\":[\"I10\",\"E11.9\"]}\n",
            "{\"id\":\"2\",\"text\":\"y\",\"codes\":[\"J45.909\"]}\n"
        ),
        // Z99.999 is well-formed but not in the table (written undotted, lower case); NOTACODE is no code at all.
        concat!("{\"id\":\"1\",\"codes\":[\"I10\",\"z99999\",\"NOTACODE\"]}\n", "{\"id\":\"2\",\"codes\":[\"J45.909\"]}\n"),
    );
    let scored = score_json(&gold, &pred);
    let o = &scored["sets"]["overall"];
    // TP 2 (I10, J45.909), FP 2 (the made-up codes), FN 1 (E11.9): P = 2/4, R = 2/3, F1 = 2 / (2 + 3/2) = 4/7.
    assert_eq!((o["tp"].as_u64(), o["fp"].as_u64(), o["fn"].as_u64()), (Some(2), Some(2), Some(1)));
    close(&o["micro"]["precision"], 0.5);
    close(&o["micro"]["recall"], 2.0 / 3.0);
    close(&o["micro"]["f1"], 4.0 / 7.0);
    // Over codes with TP+FP+FN > 0: I10 and J45.909 (F1 1), E11.9, Z99.999, NOTACODE (F1 0) -> 2/5.
    assert_eq!(o["macro_nonzero"]["n_codes"], 5);
    close(&o["macro_nonzero"]["f1"], 0.4);
    let invalid = &scored["invalid_predictions"];
    assert_eq!((invalid["count"].as_u64(), invalid["predicted"].as_u64()), (Some(2), Some(4)));
    close(&invalid["rate"], 0.5);
    assert_eq!(invalid["examples"], serde_json::json!({"NOTACODE": 1, "Z99.999": 1}));
    let text = score_text(&gold, &pred);
    assert!(text.contains("| overall | 50.00   | 66.67   | 57.14"), "{text}");
    assert!(text.contains("Invalid predictions: 2 of 4 predicted codes (50.00%)"), "{text}");
}

#[test]
fn score_shows_evidence_f1_when_both_sides_carry_evidence() {
    // "Essential hypertension" is characters 0..22, "Type 2 diabetes" 24..39.
    let gold_line = concat!(
        "{\"id\":\"1\",\"text\":\"Essential hypertension. Type 2 diabetes.\",\"codes\":[\"I10\",\"E11.9\"],",
        "\"evidence\":[{\"code\":\"I10\",\"start\":0,\"end\":22},{\"code\":\"E11.9\",\"start\":24,\"end\":39}]}\n"
    );
    // I10's span is exact; E11.9's covers only "Type 2" (24..30).
    let (_tmp, gold, pred) = score_files(
        gold_line,
        "{\"id\":\"1\",\"codes\":[\"I10\",\"E11.9\"],\"evidence\":[{\"code\":\"I10\",\"start\":0,\"end\":22},{\"code\":\"E11.9\",\"start\":24,\"end\":30}]}\n",
    );
    let scored = score_json(&gold, &pred);
    let ev = &scored["evidence"];
    // Exact: 1 of 2 predicted spans matches 1 of 2 gold spans -> P = R = F1 = 1/2.
    close(&ev["exact"]["f1"], 0.5);
    // Overlap: 22 + 6 characters predicted, all inside gold's 22 + 15 -> P = 1, R = 28/37, F1 = 56/65.
    close(&ev["overlap"]["precision"], 1.0);
    close(&ev["overlap"]["recall"], 28.0 / 37.0);
    close(&ev["overlap"]["f1"], 56.0 / 65.0);
    let text = score_text(&gold, &pred);
    assert!(text.contains("| exact spans            | 50.00     | 50.00  | 50.00 | 1 / 2 / 2 spans"), "{text}");
    assert!(text.contains("| overlapping characters | 100.00    | 75.68  | 86.15 | 28 / 28 / 37 chars"), "{text}");

    // Predictions without any evidence are not scored on it.
    std::fs::write(&pred, "{\"id\":\"1\",\"codes\":[\"I10\"]}\n").unwrap();
    let scored = score_json(&gold, &pred);
    assert!(scored.get("evidence").is_none(), "{scored}");
    assert_eq!(scored["sets"]["overall"]["tp"], 1);
}

#[test]
fn score_reads_gold_without_text() {
    // Evidence offsets cannot be checked without the text: they are taken as given.
    let (_tmp, gold, pred) = score_files(
        concat!(
            "{\"id\":\"1\",\"codes\":[\"I10\"]}\n",
            "{\"id\":\"2\",\"codes\":[\"E11.9\"],\"evidence\":[{\"code\":\"E11.9\",\"start\":500,\"end\":520}]}\n"
        ),
        concat!(
            "{\"id\":\"1\",\"codes\":[\"I10\"]}\n",
            "{\"id\":\"2\",\"codes\":[\"E11.9\",\"J45.909\"],\"evidence\":[{\"code\":\"E11.9\",\"start\":500,\"end\":520}]}\n"
        ),
    );
    let scored = score_json(&gold, &pred);
    // TP 2, FP 1, FN 0: micro F1 = 2 / (2 + 1/2) = 0.8.
    close(&scored["sets"]["overall"]["micro"]["f1"], 0.8);
    assert_eq!(scored["evidence"]["exact"]["n_matched"], 1);
    close(&scored["evidence"]["exact"]["f1"], 1.0);
}

#[test]
fn score_refuses_duplicate_ids_naming_the_line() {
    let gold_lines = "{\"id\":\"a\",\"codes\":[\"I10\"]}\n{\"id\":\"b\",\"codes\":[\"I10\"]}\n";
    let (_tmp, gold, pred) = score_files(
        &format!("{gold_lines}{{\"id\":\"a\",\"codes\":[\"E11.9\"]}}\n"),
        "{\"id\":\"a\",\"codes\":[\"I10\"]}\n",
    );
    let score = || icdbench().arg("score").arg("--gold").arg(&gold).arg("--pred").arg(&pred).assert();
    score().code(2).stderr(predicate::str::contains("gold.jsonl:3:")).stderr(predicate::str::contains("\"a\"")).stderr(predicate::str::contains("line 1"));
    std::fs::write(&gold, gold_lines).unwrap();
    std::fs::write(&pred, "{\"id\":\"b\",\"codes\":[\"I10\"]}\n{\"id\":\"a\",\"codes\":[]}\n{\"id\":\"b\",\"codes\":[\"E11.9\"]}\n").unwrap();
    score().code(2).stderr(predicate::str::contains("pred.jsonl:3:")).stderr(predicate::str::contains("\"b\"")).stderr(predicate::str::contains("line 1"));
}

#[test]
fn score_refuses_predictions_that_match_no_gold_document() {
    let (_tmp, gold, pred) = score_files(
        "{\"id\":\"1\",\"split\":\"test\",\"codes\":[\"I10\"]}\n{\"id\":\"t\",\"split\":\"train\",\"codes\":[\"I10\"]}\n",
        "{\"id\":\"t\",\"codes\":[\"I10\"]}\n{\"id\":\"x\",\"codes\":[\"I10\"]}\n",
    );
    let score = || icdbench().arg("score").arg("--gold").arg(&gold).arg("--pred").arg(&pred).assert();
    // "t" is a training document: none of the predictions is for the test split.
    score().code(2).stderr(predicate::str::contains("pred.jsonl: none of its 2 predictions")).stderr(predicate::str::contains("gold.jsonl"));
    // One match is enough; the rest are warned about and ignored.
    std::fs::write(&pred, "{\"id\":\"1\",\"codes\":[\"I10\"]}\n{\"id\":\"x\",\"codes\":[\"I10\"]}\n").unwrap();
    score().success().stderr(predicate::str::contains("1 predictions name documents not in the test split"));
    // An empty split is refused too.
    icdbench().arg("score").arg("--gold").arg(&gold).arg("--pred").arg(&pred).args(["--split", "val"]).assert().code(2).stderr(predicate::str::contains("no documents of split val"));
}
