//! Model runs end to end on a tiny from-scratch backbone: training cost is
//! recorded, and a run killed during training resumes from its checkpoint and
//! ends with the same numbers as an uninterrupted run.

mod common;

use common::icdbench;
use std::path::{Path, PathBuf};

fn experiment(dir: &Path) -> PathBuf {
    common::tiny_model_experiment(dir, "resume", "")
}

fn run(exp: &Path, results: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    icdbench().arg("run").arg(exp).arg("--results").arg(results).arg("--quiet").args(extra).assert()
}

fn metrics(results: &Path) -> serde_json::Value {
    let dir = std::fs::read_dir(results.join("resume")).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir() && p.join("DONE").is_file()).unwrap();
    // Timings differ between runs; everything else must not.
    common::metrics_without_timings(&dir)
}

#[test]
fn killed_training_resumes_to_the_same_metrics_and_cost_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path());
    let straight = tmp.path().join("straight");
    run(&exp, &straight, &[]).success();

    let resumed = tmp.path().join("resumed");
    let killed = run(&exp, &resumed, &["--stop-after-steps", "7"]).code(1);
    let err = String::from_utf8_lossy(&killed.get_output().stderr).to_string();
    assert!(err.contains("run again to resume"), "{err}");
    let stage = std::fs::read_dir(resumed.join(".cache").join("train")).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    assert!(stage.join("checkpoint").is_dir(), "a checkpoint survives the kill in the train stage");
    run(&exp, &resumed, &[]).success();

    let (a, b) = (metrics(&straight), metrics(&resumed));
    assert_eq!(a, b, "resumed run differs from the uninterrupted one");
    let cost = &a["cost"];
    assert_eq!(cost["optimizer_steps"], 12);
    assert_eq!(cost["examples"], 48);
    assert!(cost["span_tokens"].as_u64().unwrap() > 0 && cost["document_tokens"].as_u64().unwrap() > cost["span_tokens"].as_u64().unwrap());
    assert!(cost["padded_tokens"].as_u64().unwrap() >= cost["input_tokens"].as_u64().unwrap());
    assert!(cost["estimated_flops"].as_f64().unwrap() > 0.0);
}

/// The reading-pretrained tiny backbone is computed once and shared by every
/// run over the same notes, whatever the experiment seed or the mix.
#[test]
fn tiny_reading_pretraining_is_done_once_and_shared_across_seeds_and_mixes() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(experiment(tmp.path())).unwrap()
        .replace("vocab = 600 }", "vocab = 600, pretrain_steps = 6 }")
        .replace("steps = 12\n", "steps = 3\n")
        + "\n[sweep]\n\"experiment.seed\" = [3, 4]\n\"mix.strategy\" = [\"document_only\", \"mixed\"]\n";
    let exp = tmp.path().join("pretrain.toml");
    std::fs::write(&exp, text).unwrap();
    let results = tmp.path().join("results");
    let out = run(&exp, &results, &[]).success();
    let table = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(table.contains("Over seeds:"), "{table}");

    let mut keys = Vec::new();
    let mut computed = 0;
    for entry in std::fs::read_dir(results.join("resume")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("DONE").is_file() {
            continue;
        }
        let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("training.json")).unwrap()).unwrap();
        let p = &record["pretraining"];
        assert_eq!(p["steps"], 6);
        computed += usize::from(p["reused"] == false);
        keys.push(p["key"].as_str().unwrap().to_string());
        let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
        assert!(log.contains("reading-pretrained tiny weights reused") || log.contains("tiny pretrained on the reading task, 6 steps"), "{log}");
    }
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert_eq!(computed, 1, "pretrained once, reused three times");
    let cached = results.join(".cache").join("backbones").join(format!("tiny-{}", &keys[0][..16]));
    assert!(cached.join("weights.safetensors").is_file() && !cached.join("checkpoint").exists());

    // A damaged cache is named, with what to do, and is not silently retrained over.
    std::fs::write(cached.join("weights.safetensors"), b"not a safetensors file").unwrap();
    let out = run(&exp, &results, &["--force"]).code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("weights.safetensors: cached file is unreadable") && err.contains("delete it and run again"), "{err}");
}

/// The equal-exposure arms trained for real (one pass over 40 documents): the mixed run
/// reads document_only's documents and as many spans on top; the run token-matched to it
/// reads as many tokens as it, to within one example; and the log says so.
#[test]
fn equal_exposure_arms_feed_what_they_promise() {
    equal_exposure_arms("span");
}

/// With spans written as notes, the token-matched run counts the notes' tokens, not the span task's.
#[test]
fn equal_exposure_arms_feed_what_they_promise_with_span_notes() {
    equal_exposure_arms("note");
}

fn equal_exposure_arms(span_format: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let arms = format!("\n[arms.document_only]\n\"mix.strategy\" = \"document_only\"\n\n[arms.mixed]\n\"mix.strategy\" = \"mixed\"\n\n[arms.tokens]\n\"mix.strategy\" = \"document_only\"\n\"train.match_tokens_of\" = {{ strategy = \"mixed\", span_ratio = 0.5, span_format = \"{span_format}\" }}\n");
    let exp = common::tiny_model_experiment(tmp.path(), "exposure", &arms);
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("steps = 12\n", "steps = 0\nepochs = 1.0\n")
        .replace("span_ratio = 0.5\n", &format!("span_ratio = 0.5\nspan_format = \"{span_format}\"\n"));
    std::fs::write(&exp, text).unwrap();
    let results = tmp.path().join("results");
    icdbench().arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").assert().success();

    let mut arms = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(results.join("exposure")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("DONE").is_file() {
            continue;
        }
        let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("training.json")).unwrap()).unwrap();
        let name = match (record["mix"]["strategy"].as_str().unwrap(), record["mix"].get("matched_to").is_some()) {
            ("mixed", _) => "mixed",
            (_, true) => "tokens",
            _ => "document_only",
        };
        arms.insert(name, (record, std::fs::read_to_string(dir.join("run.log")).unwrap()));
    }
    assert_eq!(arms.len(), 3);
    let n = |arm: &str, path: &str| arms[arm].0.pointer(path).and_then(serde_json::Value::as_u64).unwrap_or_else(|| panic!("{arm}: no {path}"));
    let docs = n("document_only", "/mix/documents_fed");
    // One pass: every document window once; the trainer read exactly what the mix scheduled.
    assert_eq!(docs, n("document_only", "/document_examples"));
    for arm in ["document_only", "mixed", "tokens"] {
        assert_eq!(n(arm, "/training/examples_seen/document"), n(arm, "/mix/documents_fed"), "{arm}");
        assert_eq!(n(arm, "/training/examples_seen/span"), n(arm, "/mix/spans_fed"), "{arm}");
        assert_eq!(n(arm, "/training/input_tokens/span") + n(arm, "/training/input_tokens/document"), n(arm, "/mix/span_tokens") + n(arm, "/mix/document_tokens"), "{arm}");
    }
    // Mixed by epochs: the same documents (so the same document tokens), spans on top.
    assert_eq!(n("mixed", "/mix/documents_fed"), docs);
    assert_eq!(n("mixed", "/training/input_tokens/document"), n("document_only", "/training/input_tokens/document"));
    assert_eq!(n("mixed", "/mix/spans_fed"), docs);
    // Token-matched: the mixed run's tokens, recomputed by the run itself, read to within one example.
    let budget = n("mixed", "/training/input_tokens/span") + n("mixed", "/training/input_tokens/document");
    assert_eq!(n("tokens", "/mix/matched_to/tokens"), budget);
    let read = n("tokens", "/training/input_tokens/document");
    assert_eq!(n("tokens", "/training/input_tokens/span"), 0);
    assert!(read >= budget && read - budget < 384, "{read} tokens read against {budget}: more than one example (max_length 384) over");
    assert!(n("tokens", "/mix/documents_fed") > docs);
    assert!(arms["tokens"].1.contains(&format!("token-matched to mixed 0.50, whose schedule feeds {docs} span + {docs} document examples, a budget of {budget} tokens")), "{}", arms["tokens"].1);
}

/// Activation checkpointing recomputes exactly what it drops: the same fingerprint
/// (it is not a result-changing setting) and, on CPU, the same numbers.
#[test]
fn checkpointing_is_the_same_run_with_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path());
    let ckpt_dir = tmp.path().join("ckpt");
    std::fs::create_dir_all(&ckpt_dir).unwrap();
    let text = std::fs::read_to_string(&exp).unwrap();
    assert!(text.contains("checkpoint_every = 5"));
    let ckpt = ckpt_dir.join("resume.toml");
    std::fs::write(&ckpt, text.replace("checkpoint_every = 5", "checkpoint_every = 5\ncheckpointing = true")).unwrap();
    let plan = |e: &Path| common::fingerprints(&icdbench().arg("plan").arg(e).assert().success().get_output().stdout);
    assert_eq!(plan(&exp), plan(&ckpt));

    let (plain_results, ckpt_results) = (tmp.path().join("plain"), tmp.path().join("ckpt-results"));
    run(&exp, &plain_results, &[]).success();
    run(&ckpt, &ckpt_results, &[]).success();
    assert_eq!(metrics(&plain_results), metrics(&ckpt_results));
}

/// Span examples as short notes, the prior baseline and the span probe, end to end: the mixed
/// run trains on notes through the document task and probes in that format, every unseen gold
/// pair lands in exactly one error class, and the prior writes its k codes for every note.
#[test]
fn span_notes_the_prior_and_the_probe_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = "\n[[baselines]]\nkind = \"prior\"\n\n[[compare]]\na = \"baseline=prior\"\nb = \"mix.strategy=mixed\"\n\n[sweep]\n\"mix.strategy\" = [\"document_only\", \"mixed\"]\n";
    let exp = common::tiny_model_experiment(tmp.path(), "notes", extra);
    let text = std::fs::read_to_string(&exp).unwrap().replace("span_ratio = 0.5\n", "span_ratio = 0.5\nspan_format = \"note\"\nnote_negated = 0.5\n");
    std::fs::write(&exp, text).unwrap();
    let results = tmp.path().join("results");
    let out = icdbench().arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();

    let mut runs = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(results.join("notes")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("DONE").is_file() {
            let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
            let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("spec.json")).unwrap()).unwrap();
            let name = match spec.pointer("/system/mix/strategy").and_then(|s| s.as_str()) {
                Some(s) => s.to_string(),
                None => metrics["system"].as_str().unwrap().to_string(),
            };
            runs.insert(name, (dir, metrics, spec));
        }
    }
    assert_eq!(runs.keys().map(String::as_str).collect::<Vec<_>>(), ["document_only", "mixed", "prior"]);

    // The prior: the same k most frequent training codes for every test note, k from validation.
    let (prior_dir, prior_metrics, _) = &runs["prior"];
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(prior_dir.join("baseline.json")).unwrap()).unwrap();
    let k = record.pointer("/prior/k").and_then(|v| v.as_u64()).unwrap_or_else(|| panic!("no prior.k in {record}")) as usize;
    let curve = record.pointer("/prior/curve").and_then(|v| v.as_array()).unwrap();
    assert_eq!(curve.len(), 21, "k = 0..=20 tried on validation");
    let preds: Vec<serde_json::Value> = std::fs::read_to_string(prior_dir.join("predictions-test.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(preds.len(), 8);
    assert!(preds.iter().all(|p| p["codes"] == preds[0]["codes"] && p["codes"].as_array().unwrap().len() == k), "{preds:?}");
    assert_eq!(prior_metrics.pointer("/splits/test/unseen_errors/found").and_then(|v| v.as_u64()), Some(0), "the prior never writes an unseen code");

    // The mixed run trained on span notes and probes in the note format; document_only probes
    // through the document task too (it trained on no span task).
    let (mixed_dir, mixed, _) = &runs["mixed"];
    let log = std::fs::read_to_string(mixed_dir.join("run.log")).unwrap();
    assert!(log.contains("span probe (note)"), "{log}");
    for arm in ["document_only", "mixed"] {
        let m = &runs[arm].1;
        let probe = m.pointer("/splits/test/probe").unwrap_or_else(|| panic!("{arm}: no probe in metrics.json"));
        assert_eq!(probe["format"], "note");
        let asked = probe["seen"]["n"].as_u64().unwrap() + probe["unseen"]["n"].as_u64().unwrap();
        assert_eq!(asked, probe["probed"].as_u64().unwrap());
        assert!(asked > 0 && asked <= probe["available"].as_u64().unwrap());
        assert!(probe["unseen"]["n"].as_u64().unwrap() > 0, "unseen codes' mentions are probed: {probe}");
        let u = m.pointer("/splits/test/unseen_errors").unwrap();
        let n = |k: &str| u[k].as_u64().unwrap();
        assert_eq!(n("found") + n("sibling") + n("other_code") + n("nothing"), n("gold_pairs"), "{arm}: {u}");
        assert!(n("gold_pairs") >= 5, "every unseen code is in a test note: {u}");
    }
    let training: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(mixed_dir.join("training.json")).unwrap()).unwrap();
    assert!(training["span_examples"].as_u64().unwrap() > 0);
    // The tables show the prior row, the diagnostics and the prior-vs-mixed comparison.
    assert!(stdout.contains("| prior "), "{stdout}");
    assert!(stdout.contains("Unseen codes and the span probe"), "{stdout}");
    assert!(stdout.contains("Is mix.strategy=mixed better than baseline=prior?"), "{stdout}");
    assert!(mixed.pointer("/splits/test/sets").is_some());
}
