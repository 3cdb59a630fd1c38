//! Settings that would fail only at predict or report time are refused when the experiment is
//! loaded: `icdbench plan` and `icdbench run` exit 2 naming file:line:col and the fix, before
//! any data is generated or any model is trained.

mod common;

use common::icdbench;
use predicates::prelude::*;
use std::path::Path;

/// 1-based line of the first line of `path` that starts with `text`.
fn line_of(path: &Path, text: &str) -> usize {
    let file = std::fs::read_to_string(path).unwrap();
    file.lines().position(|l| l.starts_with(text)).expect("the line is in the file") + 1
}

/// `plan` and `run` both exit 2 with `at` in their message, and `run` leaves no results behind.
fn refused(dir: &Path, exp: &Path, at: &str, fix: &str) {
    icdbench().current_dir(dir).arg("plan").arg(exp).assert().code(2).stderr(predicate::str::contains(at).and(predicate::str::contains(fix)));
    let results = dir.join("results");
    icdbench().arg("run").arg(exp).arg("--results").arg(&results).arg("--quiet").assert().code(2).stderr(predicate::str::contains(at));
    let computed = std::fs::read_dir(&results).map(|d| d.count()).unwrap_or(0);
    assert_eq!(computed, 0, "nothing may be computed before the file is valid");
}

#[test]
fn a_window_and_answer_longer_than_the_tiny_context_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Appended to [eval]: 3900 + 16 new tokens + the prompt do not fit 4096 positions.
    let exp = common::tiny_model_experiment(tmp.path(), "long", "chunk_tokens = 3900\n");
    let at = format!("{}:{}:16: [eval.chunk_tokens]", exp.display(), line_of(&exp, "chunk_tokens = 3900"));
    refused(tmp.path(), &exp, &at, "chunk_tokens + max_new_tokens <= 3840");
}

#[test]
fn synthesize_without_a_pretrained_generator_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::tiny_model_experiment(tmp.path(), "synth", "\n[[expansion]]\nkind = \"synthesize\"\ncoverage = \"pool\"\n");
    let at = format!("{}:{}:8: [expansion.1.generator]", exp.display(), line_of(&exp, "kind = \"synthesize\""));
    refused(tmp.path(), &exp, &at, "set generator = \"smollm2-135m\"");
}

#[test]
fn an_overlap_over_half_the_window_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // No chunk_tokens: test windows are the training window, 384 - 160 = 224 tokens.
    let exp = common::tiny_model_experiment(tmp.path(), "overlap", "chunk_overlap = 600\n");
    let at = format!("{}:{}:17: [eval.chunk_overlap]", exp.display(), line_of(&exp, "chunk_overlap = 600"));
    refused(tmp.path(), &exp, &at, "than half of chunk_tokens (224): lower it to at most 112");
}

#[test]
fn an_unknown_split_is_refused_for_baselines_too() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::small_experiment(tmp.path(), "splits", 10, 0, &common::dictionary(""));
    let text = std::fs::read_to_string(&exp).unwrap().replace("splits = [\"test\"]", "splits = [\"test\", \"dev\"]");
    std::fs::write(&exp, text).unwrap();
    let at = format!("{}:{}:10: [eval.splits]", exp.display(), line_of(&exp, "splits = "));
    refused(tmp.path(), &exp, &at, "use \"train\", \"val\", \"test\" or \"evidence\"");
}

/// The three equal-exposure arms of experiments/span-vs-document.toml, on the tiny experiment.
const ARMS: &str = r#"
[arms.document_only]
"mix.strategy" = "document_only"

[arms.mixed]
"mix.strategy" = "mixed"
"mix.span_ratio" = 0.5

[arms.tokens]
"mix.strategy" = "document_only"
"train.match_tokens_of" = { strategy = "mixed", span_ratio = 0.5 }

[sweep]
"experiment.seed" = [1, 2]
"#;

#[test]
fn named_arms_expand_to_one_labelled_run_per_arm_and_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::tiny_model_experiment(tmp.path(), "arms", ARMS);
    let out = icdbench().current_dir(tmp.path()).arg("plan").arg(&exp).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let mut prints = common::fingerprints(&out.get_output().stdout);
    assert_eq!(prints.len(), 6, "{stdout}");
    prints.sort();
    prints.dedup();
    assert_eq!(prints.len(), 6, "every arm and seed is a run of its own: {stdout}");
    for seed in [1, 2] {
        for label in [
            format!("tiny document_only [arm=document_only,experiment.seed={seed}]"),
            // The fixture's spans cover the pool, which holds the test labels: the name says so.
            format!("tiny mixed 0.50{} [arm=mixed,experiment.seed={seed}]", icdbench::plan::POOL_LEAK),
            format!("tiny document_only (tokens of mixed 0.50) [arm=tokens,experiment.seed={seed}]"),
        ] {
            assert!(stdout.contains(&label), "{label} missing from\n{stdout}");
        }
    }
}

#[test]
fn a_bad_token_match_in_an_arm_is_refused_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::tiny_model_experiment(tmp.path(), "badarm", &ARMS.replace("span_ratio = 0.5 }", "span_ratio = 1.5 }"));
    let at = format!("{}:{}:62: [train.match_tokens_of.span_ratio]", exp.display(), line_of(&exp, "\"train.match_tokens_of\""));
    refused(tmp.path(), &exp, &at, "must be between 0 and 1, got 1.5 (at sweep point arm=tokens,experiment.seed=1)");
}

#[test]
fn a_share_of_a_token_budget_without_the_budget_is_refused_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = common::tiny_model_experiment(tmp.path(), "fraction", "");
    let text = std::fs::read_to_string(&exp).unwrap().replace("steps = 12\n", "steps = 12\ntoken_fraction = 0.2\n");
    std::fs::write(&exp, text).unwrap();
    let at = format!("{}:{}:", exp.display(), line_of(&exp, "token_fraction = 0.2"));
    refused(tmp.path(), &exp, &at, "[train.token_fraction] a share of which budget? set train.match_tokens_of");
}

#[test]
fn included_files_merge_key_by_key_and_errors_point_at_the_file_that_holds_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.toml");
    std::fs::write(&base, "[data.source]\nkind = \"synthetic\"\ntrain_docs = 40\ntest_docs = 20\n\n[train]\nlr = 1e-3\nbatch_size = 4\n\n[[baselines]]\nkind = \"dictionary\"\n").unwrap();
    let exp = tmp.path().join("exp.toml");
    std::fs::write(&exp, "include = \"base.toml\"\n\n[experiment]\nname = \"inc\"\n\n[train]\nbatch_size = 2\n").unwrap();
    let e = icdbench::config::load_experiment(&exp).unwrap();
    // The including file wins key by key; the rest comes from the base.
    assert_eq!((e.train.batch_size, e.train.lr), (2, 1e-3));
    assert_eq!(e.baselines.len(), 1);
    let icdbench::data::DataSource::Synthetic(s) = &e.data.source else { panic!("synthetic") };
    assert_eq!((s.train_docs, s.test_docs), (40, 20));

    // A wrong type in the base is reported at its line in the base.
    std::fs::write(&base, "[train]\nlr = \"fast\"\n\n[[baselines]]\nkind = \"dictionary\"\n").unwrap();
    let err = icdbench::config::load_experiment(&exp).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:2:", base.display())), "{err}");
    // An invalid value in the base is located there too; one in the including file, there.
    std::fs::write(&base, "[train]\nbatch_size = 0\n\n[[baselines]]\nkind = \"dictionary\"\n").unwrap();
    std::fs::write(&exp, "include = \"base.toml\"\n\n[experiment]\nname = \"inc\"\n").unwrap();
    let err = icdbench::config::load_experiment(&exp).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:2:", base.display())) && err.contains("[train.batch_size]"), "{err}");
    std::fs::write(&exp, "include = \"base.toml\"\n\n[experiment]\nname = \"inc\"\n\n[train]\nbatch_size = 0\n").unwrap();
    let err = icdbench::config::load_experiment(&exp).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:7:", exp.display())), "{err}");
    // A missing include names the file; a file including itself stops.
    std::fs::write(&exp, "include = \"nope.toml\"\n[experiment]\nname = \"inc\"\n").unwrap();
    let err = icdbench::config::load_experiment(&exp).unwrap_err().to_string();
    assert!(err.contains("cannot read included file") && err.contains("nope.toml"), "{err}");
    std::fs::write(&exp, "include = \"exp.toml\"\n[experiment]\nname = \"inc\"\n").unwrap();
    let err = icdbench::config::load_experiment(&exp).unwrap_err().to_string();
    assert!(err.contains("more than 8 deep"), "{err}");
}
