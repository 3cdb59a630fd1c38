//! Helpers shared by the integration tests that drive the command line.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub fn icdbench() -> Command {
    Command::cargo_bin("icdbench").expect("binary builds")
}

/// A run folder's metrics.json without what legitimately differs between two computations
/// of one run: its timings (and peak memory).
pub fn metrics_without_timings(run_dir: &Path) -> serde_json::Value {
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("metrics.json")).unwrap()).unwrap();
    m["seconds"] = serde_json::Value::Null;
    if m["cost"].is_object() {
        for k in ["train_seconds", "tokens_per_second", "peak_rss_bytes"] {
            m["cost"][k] = serde_json::Value::Null;
        }
    }
    m
}

/// A packaged backbone's source (set-up installs them). Without it the test is skipped with a
/// message, except in CI (`CI` or `ICDBENCH_REQUIRE_MODELS` set, as `.ci/run` does), where a
/// missing model is a failure.
pub fn packaged(name: &str) -> Option<icdbench::model::backbone::Source> {
    match icdbench::model::backbone::resolve(name, icdbench::config::WeightFormat::Auto, Path::new(".")) {
        Ok(s) => Some(s),
        Err(e) if std::env::var_os("CI").is_none() && std::env::var_os("ICDBENCH_REQUIRE_MODELS").is_none() => {
            eprintln!("skipped: {e}");
            None
        }
        Err(e) => panic!("{e} (CI or ICDBENCH_REQUIRE_MODELS is set: set-up must have installed it)"),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `<dir>/<name>.toml`: a small synthetic benchmark (60 train / 10 val /
/// `test_docs` test documents over 40 codes of chapters 4 and 9, 8 of them unseen),
/// scored on the test split with `bootstrap` samples, followed by `systems` as is
/// (baselines, a backbone, a sweep). Fast: seconds for dictionary runs.
pub fn small_experiment(dir: &Path, name: &str, test_docs: usize, bootstrap: usize, systems: &str) -> PathBuf {
    let text = format!(
        r#"
[experiment]
name = "{name}"
seed = 5

[data.source]
kind = "synthetic"
train_docs = 60
val_docs = 10
test_docs = {test_docs}
pool_size = 40
unseen_codes = 8
chapters = [4, 9]
# Half of the test mentions in code-table wording, so a dictionary has something to find and to lose.
test_verbatim_fraction = 0.5

[eval]
splits = ["test"]
bootstrap_samples = {bootstrap}

{systems}
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("experiment file written");
    path
}

/// One dictionary baseline, then `extra`.
pub fn dictionary(extra: &str) -> String {
    format!("[[baselines]]\nkind = \"dictionary\"\n{extra}")
}

/// Writes `<dir>/<name>.toml`: a mixed span + document run of a 2-layer, hidden-32 tiny
/// backbone for 12 steps on a 40-document benchmark (seconds), followed by `extra` as is.
pub fn tiny_model_experiment(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[experiment]
name = "{name}"
seed = 11

[backbone]
name = "tiny"
device = "cpu"
tiny = {{ layers = 2, hidden = 32, heads = 2, kv_heads = 1, intermediate = 64, vocab = 600 }}

[data.source]
kind = "synthetic"
train_docs = 40
val_docs = 4
test_docs = 8
pool_size = 30
unseen_codes = 5
chapters = [4, 9]

[[expansion]]
kind = "description"
coverage = "pool"

[mix]
strategy = "mixed"
span_ratio = 0.5

[train]
steps = 12
batch_size = 4
lr = 2e-3
warmup_steps = 2
max_length = 384
checkpoint_every = 5

[eval]
splits = ["test"]
bootstrap_samples = 20
max_new_tokens = 16
batch_size = 8
{extra}"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("experiment file written");
    path
}

/// The 12-hex fingerprints in the first column of `icdbench plan`'s table.
pub fn fingerprints(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("| ").and_then(|r| r.split_whitespace().next()).map(String::from))
        .filter(|f| f.len() == 12 && f.chars().all(|c| c.is_ascii_hexdigit()))
        .collect()
}
