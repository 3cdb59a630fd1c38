//! Helpers shared by the integration tests that drive the command line.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub fn icdbench() -> Command {
    Command::cargo_bin("icdbench").expect("binary builds")
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
