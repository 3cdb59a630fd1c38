//! `icdbench report` and `icdbench compare` on tiny finished runs: the files written, the
//! numbers in them against metrics.json, best-in-column marks, and the paired test's answers.

mod common;

use common::icdbench;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

/// A small synthetic experiment with two dictionary baselines (fast), repeated over two seeds.
fn small_experiment(dir: &Path, name: &str, test_docs: usize, extra: &str) -> PathBuf {
    let no_negation = format!("\n[[baselines]]\nkind = \"dictionary\"\nname = \"dictionary-no-negation\"\nnegation = false\n{extra}");
    common::small_experiment(dir, name, test_docs, 50, &common::dictionary(&no_negation))
}

fn run(exp: &Path, results: &Path) {
    icdbench().arg("run").arg(exp).arg("--results").arg(results).arg("--quiet").assert().success();
}

/// Finished run folders of an experiment, by fingerprint prefix.
fn run_dirs(results: &Path, name: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results.join(name)).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("DONE").is_file()).collect();
    dirs.sort();
    dirs
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

fn micro(dir: &Path) -> f64 {
    metrics(dir)["splits"]["test"]["sets"]["overall"]["micro"]["f1"].as_f64().unwrap()
}

fn system(dir: &Path) -> String {
    metrics(dir)["system"].as_str().unwrap().to_string()
}

/// CSV rows as header -> cell maps (the test CSV has no quoted commas).
fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(String::from)).collect()).collect()
}

/// The cells of results.md's headline table (header first), up to its footnote.
fn headline_table(md: &str) -> Vec<Vec<String>> {
    md.lines().take_while(|l| !l.starts_with("Percent.")).filter(|l| l.starts_with("| ")).map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect()).collect()
}

#[test]
fn report_writes_tables_plots_and_page_with_metrics_json_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let exp = small_experiment(tmp.path(), "rep", 40, "[sweep]\n\"experiment.seed\" = [1, 2]\n");
    run(&exp, &results);
    let dirs = run_dirs(&results, "rep");
    assert_eq!(dirs.len(), 4, "2 baselines x 2 seeds");

    icdbench().arg("report").arg(results.join("rep")).assert().success().stdout(predicate::str::contains("micro-F1 [95% CI]"));
    let out = results.join("rep").join("report");
    for f in ["results.md", "results.csv", "index.html", "f1.png", "f1.svg", "seen-unseen.png", "seen-unseen.svg", "mention-kinds.png", "mention-kinds.svg"] {
        let p = out.join(f);
        assert!(p.is_file() && std::fs::metadata(&p).unwrap().len() > 200, "{} missing or empty", p.display());
    }
    // Baselines have no training cost or loss curve, so those plots are not drawn.
    assert!(!out.join("loss.png").exists() && !out.join("f1-vs-cost.png").exists());

    // One CSV row per run (one split), with metrics.json's numbers to full precision.
    let rows = csv_rows(&out.join("results.csv"));
    assert_eq!(rows.len(), 4);
    for dir in &dirs {
        let fp = dir.file_name().unwrap().to_string_lossy().to_string();
        let row = rows.iter().find(|r| r["fingerprint"].starts_with(&fp)).expect("a row per run");
        let m = metrics(dir);
        let overall = &m["splits"]["test"]["sets"]["overall"];
        assert_eq!(row["split"], "test");
        assert_eq!(row["micro_f1"].parse::<f64>().unwrap(), overall["micro"]["f1"].as_f64().unwrap());
        assert_eq!(row["macro_f1"].parse::<f64>().unwrap(), overall["macro_gold"]["f1"].as_f64().unwrap());
        assert_eq!(row["micro_f1_ci_low"].parse::<f64>().unwrap(), overall["ci"]["micro_f1"]["lower"].as_f64().unwrap());
        let unseen = m["splits"]["test"]["sets"]["unseen"]["macro_gold"]["f1"].as_f64().unwrap();
        assert_eq!(row["unseen_macro_f1"].parse::<f64>().unwrap(), unseen);
        assert_eq!(row["n_docs"], "40");
        assert_eq!(row["train_tokens"], "", "baselines have no training cost");
    }

    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("Over seeds"), "runs repeated over seeds get mean ± t-interval rows");
    assert!(md.contains("No published figures for data set `synthetic`"));
    assert!(md.contains("codes present in the split's gold labels"), "the macro convention is named");

    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<table>") && html.matches("<svg").count() == 3, "tables and the three plots inline (F1, seen/unseen, mention kinds)");
    assert!(!html.contains("src=\"http") && !html.contains(".png\""), "self-contained");
    let svg = std::fs::read_to_string(out.join("f1.svg")).unwrap();
    for dir in &dirs {
        assert!(svg.contains(&*dir.file_name().unwrap().to_string_lossy()), "the figure names every run's fingerprint");
    }
}

#[test]
fn best_value_per_column_is_bold() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let exp = small_experiment(tmp.path(), "best", 40, "");
    run(&exp, &results);
    let out = tmp.path().join("out");
    icdbench().arg("report").arg(&exp).arg("--results").arg(&results).arg("--out").arg(&out).assert().success();
    let dirs = run_dirs(&results, "best");
    assert_eq!(dirs.len(), 2);
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    let table = headline_table(&md);
    let col = table[0].iter().position(|h| h == "micro-F1 [95% CI]").unwrap();
    let fp_col = table[0].iter().position(|h| h == "fingerprint").unwrap();
    let best = dirs.iter().map(|d| micro(d)).fold(f64::MIN, f64::max);
    assert!(dirs.iter().map(|d| micro(d)).any(|m| m < best), "the two baselines differ");
    for row in &table[2..] {
        let dir = dirs.iter().find(|d| d.file_name().unwrap().to_string_lossy() == row[fp_col]).unwrap();
        assert_eq!(row[col].starts_with("**"), micro(dir) == best, "row {row:?}");
    }
}

#[test]
fn compare_a_run_with_itself_finds_no_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let exp = small_experiment(tmp.path(), "same", 40, "");
    run(&exp, &results);
    let dir = run_dirs(&results, "same")[0].clone();
    let out = icdbench().arg("compare").arg(&dir).arg(&dir).arg("--samples").arg("300").arg("--json").assert().success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let rows = v["report"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "micro and macro F1, overall/seen/unseen");
    for r in rows {
        assert_eq!(r["difference"].as_f64().unwrap(), 0.0);
        assert_eq!(r["p_value"].as_f64().unwrap(), 1.0);
    }
}

#[test]
fn compare_two_runs_gives_their_exact_difference_and_a_p_value() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let exp = small_experiment(tmp.path(), "two", 40, "");
    run(&exp, &results);
    let dirs = run_dirs(&results, "two");
    let (a, b) = if system(&dirs[0]) == "dictionary" { (&dirs[0], &dirs[1]) } else { (&dirs[1], &dirs[0]) };
    // B given by fingerprint prefix under --results, A by folder.
    let b_prefix = b.file_name().unwrap().to_string_lossy()[..8].to_string();
    let args = |json: bool| {
        let mut c = icdbench();
        c.arg("compare").arg(a).arg(&b_prefix).arg("--results").arg(&results).arg("--samples").arg("500").arg("--seed").arg("3");
        if json {
            c.arg("--json");
        }
        c
    };
    let out = args(true).assert().success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let rows = v["report"]["rows"].as_array().unwrap();
    let overall = rows.iter().find(|r| r["metric"] == "micro-F1" && r["part"] == "overall").unwrap();
    assert_eq!(overall["a"].as_f64().unwrap(), micro(a));
    assert_eq!(overall["difference"].as_f64().unwrap(), micro(b) - micro(a));
    assert_ne!(micro(a), micro(b));
    for r in rows {
        let p = r["p_value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{p}");
        let (lo, hi) = (r["ci"]["lower"].as_f64().unwrap(), r["ci"]["upper"].as_f64().unwrap());
        assert!(lo <= hi);
    }
    // Seeded: the same call gives the same answer.
    let again: serde_json::Value = serde_json::from_slice(&args(true).assert().success().get_output().stdout).unwrap();
    assert_eq!(v, again);
    args(false).assert().success().stdout(predicate::str::contains("p-value").and(predicate::str::contains("B − A")));
}

#[test]
fn compare_runs_on_different_documents_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let e1 = small_experiment(tmp.path(), "docs40", 40, "");
    let e2 = small_experiment(tmp.path(), "docs30", 30, "");
    run(&e1, &results);
    run(&e2, &results);
    let a = run_dirs(&results, "docs40")[0].clone();
    let b = run_dirs(&results, "docs30")[0].clone();
    icdbench().arg("compare").arg(&a).arg(&b).assert().code(2).stderr(predicate::str::contains("not on the same documents"));
    icdbench().arg("compare").arg(&a).arg("ffffffff").arg("--results").arg(&results).assert().code(2).stderr(predicate::str::contains("no finished run"));
}

#[test]
fn report_without_finished_runs_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    icdbench().arg("report").arg(tmp.path()).assert().code(2).stderr(predicate::str::contains("no finished runs"));
    icdbench().arg("report").arg(tmp.path().join("missing")).assert().code(2).stderr(predicate::str::contains("no such results folder"));
}

#[test]
fn report_of_a_tiny_span_ratio_sweep_plots_cost_ratio_and_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let exp = common::tiny_model_experiment(tmp.path(), "sweep", "\n[sweep]\n\"mix.span_ratio\" = [0.25, 0.75]\n");
    run(&exp, &results);
    let out = tmp.path().join("out");
    icdbench().arg("report").arg(&exp).arg("--results").arg(&results).arg("--out").arg(&out).assert().success();
    for f in ["f1-vs-cost", "span-ratio", "loss"] {
        for ext in ["png", "svg"] {
            assert!(out.join(format!("{f}.{ext}")).is_file(), "{f}.{ext}");
        }
    }
    let rows = csv_rows(&out.join("results.csv"));
    assert_eq!(rows.len(), 2);
    let mut ratios: Vec<f64> = rows.iter().map(|r| r["span_ratio"].parse().unwrap()).collect();
    ratios.sort_by(f64::total_cmp);
    assert_eq!(ratios, vec![0.25, 0.75]);
    assert!(rows.iter().all(|r| r["train_tokens"].parse::<u64>().unwrap() > 0));
    assert_eq!(std::fs::read_to_string(out.join("index.html")).unwrap().matches("<svg").count(), 6);
    assert!(!out.join("backbones.png").exists(), "no backbone figure without a backbone sweep");
}

/// Reads, edits and writes back a JSON file of a run folder.
fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Sets the modification time of a run's DONE marker: when the run finished, for the report.
fn finished_at(dir: &Path, seconds_ago: u64) {
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds_ago);
    std::fs::File::options().write(true).open(dir.join("DONE")).unwrap().set_modified(when).unwrap();
}

/// A copy of the finished run `src` under a new fingerprint starting with `tag` (hex), as the same
/// spec computed again: by the code identity `code` (None: the same code as `src`), finished
/// `seconds_ago`, with its test micro-F1 set to `micro` when given. Returns its folder.
fn rerun(src: &Path, tag: &str, code: Option<&str>, seconds_ago: u64, micro: Option<f64>) -> PathBuf {
    let fingerprint = format!("{tag}{}", "0".repeat(64 - tag.len()));
    let dir = src.parent().unwrap().join(&fingerprint[..12]);
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.join("DONE"), format!("{fingerprint}\n")).unwrap();
    edit_json(&dir.join("metrics.json"), |m| {
        m["fingerprint"] = fingerprint.clone().into();
        if let Some(f1) = micro {
            m["splits"]["test"]["sets"]["overall"]["micro"]["f1"] = f1.into();
        }
    });
    if let Some(code) = code {
        edit_json(&dir.join("manifest.json"), |m| {
            let key = m.as_object_mut().unwrap().entry("key").or_insert_with(|| serde_json::json!({}));
            let versions = key.as_object_mut().unwrap().entry("versions").or_insert_with(|| serde_json::json!({}));
            versions["code"] = code.into();
        });
    }
    finished_at(&dir, seconds_ago);
    dir
}

fn hex(c: char) -> String {
    c.to_string().repeat(64)
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).to_string()
}

#[test]
fn report_keeps_the_newest_code_of_each_spec_unless_all_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let exp = small_experiment(tmp.path(), "ver", 40, "");
    run(&exp, &results);
    let dirs = run_dirs(&results, "ver");
    let dictionary = dirs.iter().find(|d| system(d) == "dictionary").unwrap().clone();
    let no_negation = dirs.iter().find(|d| system(d) == "dictionary-no-negation").unwrap().clone();
    // The dictionary spec was computed by three code identities; b's run finished last, though c
    // has more runs. The no-negation spec was computed by one identity only, d.
    let original = rerun(&dictionary, "a1", Some(&hex('a')), 1000, None);
    let newest = rerun(&original, "b1", Some(&hex('b')), 100, Some(0.61));
    rerun(&original, "c1", Some(&hex('c')), 300, None);
    rerun(&original, "c2", Some(&hex('c')), 200, None);
    let no_negation_d = rerun(&no_negation, "d1", Some(&hex('d')), 900, None);
    std::fs::remove_dir_all(&dictionary).unwrap();
    std::fs::remove_dir_all(&no_negation).unwrap();

    let out = tmp.path().join("out");
    let a = icdbench().arg("report").arg(results.join("ver")).arg("--out").arg(&out).assert().success();
    let rows = csv_rows(&out.join("results.csv"));
    let mut kept: Vec<String> = rows.iter().map(|r| r["dir"].clone()).collect();
    kept.sort();
    let mut expected = vec![newest.display().to_string(), no_negation_d.display().to_string()];
    expected.sort();
    assert_eq!(kept, expected);
    let warning = "3 runs computed by older code are left out (aaaaaaaa: 1, cccccccc: 2)";
    assert!(stderr_of(&a).contains(warning), "{}", stderr_of(&a));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("## Left out") && md.contains(warning) && md.contains("--all-versions"), "{md}");
    // The two runs kept come from different code (b and d): each is labelled with its own.
    let labels: Vec<&str> = rows.iter().map(|r| r["run"].as_str()).collect();
    assert!(labels.contains(&"dictionary [code=bbbbbbbb]") && labels.contains(&"dictionary-no-negation [code=dddddddd]"), "{labels:?}");

    icdbench().arg("report").arg(results.join("ver")).arg("--out").arg(&out).arg("--all-versions").assert().success().stderr(predicate::str::contains("left out").not());
    let rows = csv_rows(&out.join("results.csv"));
    assert_eq!(rows.len(), 5);
    let mut labels: Vec<String> = rows.iter().map(|r| r["run"].clone()).collect();
    labels.sort();
    let expected = ["dictionary [code=aaaaaaaa]", "dictionary [code=bbbbbbbb]", "dictionary [code=cccccccc]", "dictionary [code=cccccccc]", "dictionary-no-negation [code=dddddddd]"];
    assert_eq!(labels, expected);
}

#[test]
fn over_seeds_averages_one_run_per_seed_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let exp = small_experiment(tmp.path(), "seeds", 40, "[sweep]\n\"experiment.seed\" = [1, 2]\n");
    run(&exp, &results);
    let dirs = run_dirs(&results, "seeds");
    let seed = |d: &Path| -> u64 {
        let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("spec.json")).unwrap()).unwrap();
        spec["seed"].as_u64().unwrap()
    };
    let of = |s: u64| dirs.iter().find(|d| system(d) == "dictionary" && seed(d) == s).unwrap().clone();
    let (one, two) = (of(1), of(2));
    for d in &dirs {
        finished_at(d, 500);
    }
    // Seed 1 computed again (same code): the newer run's 0.2 replaces the older one's, and the
    // older one counts neither as a third seed nor in the mean.
    rerun(&one, "d1", None, 10, Some(0.2));
    let older = rerun(&one, "e1", None, 1000, Some(0.9));

    let out = tmp.path().join("out");
    icdbench().arg("report").arg(results.join("seeds")).arg("--out").arg(&out).assert().success();
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    let seeds = &md[md.find("## Over seeds").expect("a seeds table")..];
    let row: Vec<&str> = seeds.lines().find(|l| l.starts_with("| dictionary ")).unwrap().trim_matches('|').split(" | ").map(str::trim).collect();
    assert_eq!(row[2], "2", "{row:?}");
    let mean = (0.2 + micro(&two)) / 2.0;
    assert!(row[3].starts_with(&format!("{:.1} ± ", 100.0 * mean)), "{row:?} vs mean {mean}");
    let left_out = [older.file_name().unwrap().to_string_lossy().to_string(), one.file_name().unwrap().to_string_lossy().to_string()];
    assert!(seeds.contains("2 runs left out") && left_out.iter().all(|f| seeds.contains(f.as_str())), "{seeds}");
}

#[test]
fn best_in_column_is_decided_within_one_data_set() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let exp = small_experiment(tmp.path(), "sets", 40, "");
    run(&exp, &results);
    let dirs = run_dirs(&results, "sets");
    // The same two systems on another data set, where one scores higher than anything on the first.
    let other: Vec<PathBuf> = dirs
        .iter()
        .zip([("f1", 0.99), ("f2", 0.01)])
        .map(|(d, (tag, f1))| {
            let dir = rerun(d, tag, None, 10, Some(f1));
            edit_json(&dir.join("spec.json"), |s| s["data"]["source"] = serde_json::json!({"kind": "jsonl", "train": "train.jsonl", "val": null, "test": "test.jsonl"}));
            dir
        })
        .collect();
    let out = tmp.path().join("out");
    icdbench().arg("report").arg(results.join("sets")).arg("--out").arg(&out).assert().success();
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    let table = headline_table(&md);
    let col = table[0].iter().position(|h| h == "micro-F1 [95% CI]").unwrap();
    let fp_col = table[0].iter().position(|h| h == "fingerprint").unwrap();
    let bold = |dir: &Path| {
        let fp = dir.file_name().unwrap().to_string_lossy().to_string();
        table[2..].iter().find(|r| r[fp_col] == fp).unwrap()[col].starts_with("**")
    };
    let synthetic_best = dirs.iter().map(|d| micro(d)).fold(f64::MIN, f64::max);
    assert!(micro(&other[0]) > synthetic_best);
    for d in &dirs {
        assert_eq!(bold(d), micro(d) == synthetic_best, "the best synthetic run is bold although a jsonl run scores higher");
    }
    assert!(bold(&other[0]) && !bold(&other[1]));
}
