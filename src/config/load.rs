//! Reading an experiment file: TOML syntax and schema errors with their line
//! and column, then semantic validation that reports every problem at once.

use super::{Baseline, Coverage, DataSource, Expansion, ExpansionKind, Experiment, MdaceParams, MixStrategy};
use crate::icd::Code;
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with an experiment file, located where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key the problem is about (`train.lr`), when known.
    pub key: Option<String>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read experiment file: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", render(path, problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

fn render(path: &Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let at = match (p.line, p.column) {
                (Some(l), Some(c)) => format!(":{l}:{c}"),
                (Some(l), None) => format!(":{l}"),
                _ => String::new(),
            };
            let key = p.key.as_ref().map(|k| format!(" [{k}]")).unwrap_or_default();
            format!("{}{at}:{key} {}", path.display(), p.message)
        })
        .collect();
    lines.join("\n")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", render(Path::new("<experiment>"), std::slice::from_ref(self)))
    }
}

/// Reads, parses and validates an experiment file.
pub fn load_experiment(path: &Path) -> Result<Experiment, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse_experiment(&text, path)
}

/// Parses and validates experiment text; `path` names it in errors and anchors relative paths.
pub fn parse_experiment(text: &str, path: &Path) -> Result<Experiment, ConfigError> {
    parse_experiment_with(text, path, true)
}

/// As [`parse_experiment`]; with `check_inputs` false, data files and folders need not exist yet
/// (`icdbench plan` on a checkout without the credentialed data).
pub fn parse_experiment_with(text: &str, path: &Path, check_inputs: bool) -> Result<Experiment, ConfigError> {
    let invalid = |problems| ConfigError::Invalid { path: path.to_path_buf(), problems };
    let exp: Experiment = toml::from_str(text).map_err(|e| invalid(vec![from_toml_error(text, &e)]))?;
    let problems = validate(&exp, text, path, check_inputs);
    if problems.is_empty() {
        Ok(exp)
    } else {
        Err(invalid(problems))
    }
}

fn from_toml_error(text: &str, e: &toml::de::Error) -> Problem {
    let (line, column) = match e.span() {
        Some(span) => {
            let (l, c) = line_col(text, span.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let message = e.message().trim().replace('\n', " ");
    let key = key_from_message(&message);
    Problem { line, column, key, message }
}

/// serde's "unknown field `x`" names the key; keep it visible as the key too.
fn key_from_message(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// The 1-based line and column (in characters) of a byte offset into `text`: where a
/// TOML error or a located key points, for `file:line:col` messages.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    // A span may end inside a multi-byte character; count up to the character's start.
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn valid_device(d: &str) -> bool {
    d == "auto" || d == "cpu" || d == "cuda" || d.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok())
}

/// Finds the line and column of a key path such as `["baselines", "0", "min_words"]`:
/// the deepest part of the path that exists in the file.
fn locate(text: &str, path: &[&str]) -> (Option<usize>, Option<usize>) {
    let Ok(doc) = toml_edit::Document::parse(text) else { return (None, None) };
    let mut item: &toml_edit::Item = doc.as_item();
    let mut span = None;
    for part in path {
        let next = match part.parse::<usize>() {
            Ok(i) => item.get(i),
            Err(_) => item.get(*part),
        };
        let Some(next) = next else { break };
        span = next.span().or(span);
        item = next;
    }
    match span {
        Some(s) => {
            let (l, c) = line_col(text, s.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    }
}

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    /// Whether data files must exist (false when planning without the data).
    check_inputs: bool,
}

impl Checker<'_> {
    fn fail(&mut self, key: &str, message: impl Into<String>) {
        let parts: Vec<&str> = key.split('.').collect();
        let (line, column) = locate(self.text, &parts);
        self.problems.push(Problem { line, column, key: Some(key.to_string()), message: message.into() });
    }

    fn range_f(&mut self, key: &str, v: f64, lo: f64, hi: f64) {
        if !(v.is_finite() && v >= lo && v <= hi) {
            self.fail(key, format!("must be between {lo} and {hi}, got {v}"));
        }
    }

    fn positive(&mut self, key: &str, v: usize) {
        if v == 0 {
            self.fail(key, "must be at least 1");
        }
    }

    fn existing_file(&mut self, key: &str, base: &Path, file: &Path) {
        let full = base.join(file);
        if self.check_inputs && !full.is_file() {
            self.fail(key, format!("file {} not found", full.display()));
        }
    }

    fn range_pair(&mut self, key: &str, r: [usize; 2]) {
        if r[0] > r[1] {
            self.fail(key, format!("is a [min, max] range but min {} > max {}", r[0], r[1]));
        }
    }
}

fn validate(exp: &Experiment, text: &str, path: &Path, check_inputs: bool) -> Vec<Problem> {
    let mut c = Checker { text, problems: Vec::new(), check_inputs };
    let name = &exp.experiment.name;
    if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
        c.fail("experiment.name", "use only letters, digits, '-' and '_' (it names the results folder)");
    }
    let base = path.parent().unwrap_or(Path::new("."));
    match &exp.data.source {
        DataSource::Synthetic(p) => {
            for (k, v) in [("train_docs", p.train_docs), ("test_docs", p.test_docs), ("pool_size", p.pool_size)] {
                c.positive(&format!("data.source.{k}"), v);
            }
            if p.unseen_codes >= p.pool_size {
                c.fail("data.source.unseen_codes", format!("must be smaller than pool_size ({})", p.pool_size));
            }
            if p.chapters.is_empty() && p.prefixes.is_empty() {
                c.fail("data.source.chapters", "give chapters (1-22) or prefixes to draw codes from");
            }
            for &ch in &p.chapters {
                if !(1..=22).contains(&ch) {
                    c.fail("data.source.chapters", format!("chapter {ch} does not exist: ICD-10-CM has chapters 1-22"));
                }
            }
            c.range_pair("data.source.codes_per_doc", p.codes_per_doc);
            if p.codes_per_doc[0] == 0 {
                c.fail("data.source.codes_per_doc", "every document needs at least 1 code");
            }
            c.range_pair("data.source.distractors_per_doc", p.distractors_per_doc);
            c.range_pair("data.source.filler_sentences", p.filler_sentences);
            c.range_f("data.source.zipf_exponent", p.zipf_exponent, 0.0, 5.0);
            c.range_f("data.source.reworded_fraction", p.reworded_fraction, 0.0, 1.0);
        }
        DataSource::Jsonl { train, val, test } => {
            let files = [("train", Some(train)), ("val", val.as_ref()), ("test", Some(test))];
            for (k, f) in files {
                if let Some(f) = f {
                    c.existing_file(&format!("data.source.{k}"), base, f);
                }
            }
        }
        DataSource::Mimic(p) => {
            c.existing_file("data.source.table", base, &p.table);
            c.existing_file("data.source.splits", base, &p.splits);
            if let Some(m) = &p.mdace {
                validate_mdace(&mut c, "data.source.mdace", base, m);
            }
            for (k, v) in [("id_column", &p.id_column), ("text_column", &p.text_column), ("target_column", &p.target_column), ("split_column", &p.split_column)] {
                if v.trim().is_empty() {
                    c.fail(&format!("data.source.{k}"), "name a column of the table");
                }
            }
        }
        DataSource::Mdace(p) => validate_mdace(&mut c, "data.source", base, p),
        DataSource::Codiesp(p) => {
            let root = base.join(&p.root);
            if c.check_inputs && (!root.join("train").is_dir() || !root.join("test").is_dir()) {
                c.fail("data.source.root", format!("{} has no train/ and test/ folders: name the CodiEsp folder that holds train/, dev/ and test/ (final_dataset_v4_to_publish)", root.display()));
            }
            if p.language != "es" && p.language != "en" {
                c.fail("data.source.language", format!("unknown language {:?}: use \"es\" (text_files) or \"en\" (text_files_en)", p.language));
            }
        }
    }
    if c.check_inputs && exp.data.code_table != "builtin" && !base.join(&exp.data.code_table).is_file() {
        c.fail("data.code_table", format!("file {} not found (or use \"builtin\")", base.join(&exp.data.code_table).display()));
    }
    for (i, e) in exp.expansion.iter().enumerate() {
        validate_expansion(&mut c, i, e);
    }
    let m = &exp.mix;
    c.range_f("mix.span_ratio", m.span_ratio, 0.0, 1.0);
    let uses_spans = match m.strategy {
        MixStrategy::DocumentOnly => false,
        MixStrategy::SpanOnly => true,
        MixStrategy::Mixed => m.span_ratio > 0.0,
        MixStrategy::Curriculum => m.phases.iter().any(|p| p != "documents"),
    };
    if exp.backbone.is_some() && exp.train.mode == crate::config::TrainMode::Finetune && uses_spans && exp.expansion.is_empty() {
        c.fail("mix.strategy", "this mix trains on span examples, but there is no [[expansion]] entry to make them (e.g. kind = \"description\")");
    }
    if m.strategy == MixStrategy::Curriculum && m.phases.is_empty() {
        c.fail("mix.phases", "curriculum needs phases, e.g. [\"spans\", \"documents\"]");
    }
    for p in &m.phases {
        if p != "spans" && p != "documents" && p != "mixed" {
            c.fail("mix.phases", format!("unknown phase {p:?}: use \"spans\", \"documents\" or \"mixed\""));
        }
    }
    let t = &exp.train;
    c.positive("train.lora_rank", t.lora_rank);
    c.positive("train.batch_size", t.batch_size);
    c.positive("train.grad_accum", t.grad_accum);
    c.positive("train.max_length", t.max_length);
    c.range_f("train.lr", t.lr, 1e-8, 1.0);
    c.range_f("train.lora_dropout", t.lora_dropout, 0.0, 0.9);
    c.range_f("train.epochs", t.epochs, 0.0, 1000.0);
    for target in &t.lora_targets {
        if !["q", "k", "v", "o", "gate", "up", "down"].contains(&target.as_str()) {
            c.fail("train.lora_targets", format!("unknown projection {target:?}: use q, k, v, o, gate, up, down"));
        }
    }
    let e = &exp.eval;
    for s in &e.splits {
        if s != "train" && s != "val" && s != "test" {
            c.fail("eval.splits", format!("unknown split {s:?}: use \"train\", \"val\" or \"test\""));
        }
    }
    if e.splits.is_empty() {
        c.fail("eval.splits", "name at least one split to score, e.g. [\"test\"]");
    }
    if e.chunk_overlap >= e.chunk_tokens {
        c.fail("eval.chunk_overlap", format!("must be smaller than chunk_tokens ({})", e.chunk_tokens));
    }
    for (i, b) in exp.baselines.iter().enumerate() {
        match b {
            Baseline::Dictionary(p) => c.positive(&format!("baselines.{i}.min_words"), p.min_words),
            Baseline::Tfidf(p) => {
                let key = |k: &str| format!("baselines.{i}.{k}");
                if !(1..=3).contains(&p.max_ngram) {
                    c.fail(&key("max_ngram"), format!("must be 1, 2 or 3, got {}", p.max_ngram));
                }
                c.positive(&key("min_df"), p.min_df);
                c.positive(&key("iterations"), p.iterations);
                c.range_f(&key("l2"), p.l2, 1e-8, 10.0);
            }
            Baseline::Laat(p) => {
                let key = |k: &str| format!("baselines.{i}.{k}");
                for (k, v) in [("embedding_dim", p.embedding_dim), ("hidden", p.hidden), ("attention_dim", p.attention_dim), ("kernel", p.kernel), ("epochs", p.epochs), ("batch_size", p.batch_size), ("max_tokens", p.max_tokens), ("min_count", p.min_count)] {
                    c.positive(&key(k), v);
                }
                if p.kernel % 2 == 0 {
                    c.fail(&key("kernel"), format!("must be odd so the convolution keeps the length, got {}", p.kernel));
                }
                c.range_f(&key("lr"), p.lr, 1e-8, 1.0);
                c.range_f(&key("dropout"), p.dropout, 0.0, 0.9);
                c.range_f(&key("weight_decay"), p.weight_decay, 0.0, 1.0);
                if !valid_device(&p.device) {
                    c.fail(&key("device"), format!("unknown device {:?}: use \"cpu\", \"auto\", \"cuda\" or \"cuda:N\"", p.device));
                }
            }
        }
    }
    if exp.backbone.is_none() && exp.baselines.is_empty() {
        c.fail("baselines", "nothing to run: add a [backbone] or at least one [[baselines]] entry");
    }
    if let Some(b) = &exp.backbone {
        let d = &b.device;
        let ok = d == "auto" || d == "cpu" || d == "cuda" || d.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok());
        if !ok {
            c.fail("backbone.device", format!("unknown device {d:?}: use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\""));
        }
    }
    // In file order, so the messages read top to bottom like the file.
    c.problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    c.problems
}

fn validate_mdace(c: &mut Checker, key: &str, base: &Path, p: &MdaceParams) {
    let dir = base.join(&p.annotations);
    if c.check_inputs && !dir.is_dir() {
        c.fail(&format!("{key}.annotations"), format!("folder {} not found: name the folder of MDACE chart JSON files (e.g. MDACE/data/Inpatient/ICD-10/1.0)", dir.display()));
    }
    if let Some(n) = &p.notes {
        c.existing_file(&format!("{key}.notes"), base, n);
    }
    c.existing_file(&format!("{key}.train_ids"), base, &p.train_ids);
    if let Some(v) = &p.val_ids {
        c.existing_file(&format!("{key}.val_ids"), base, v);
    }
    c.existing_file(&format!("{key}.test_ids"), base, &p.test_ids);
}

fn validate_expansion(c: &mut Checker, i: usize, e: &Expansion) {
    let key = |k: &str| format!("expansion.{i}.{k}");
    c.positive(&key("per_code_cap"), e.per_code_cap);
    match &e.coverage {
        Coverage::Chapters(chs) if chs.is_empty() || chs.iter().any(|ch| !(1..=22).contains(ch)) => {
            c.fail(&key("coverage"), "give chapters 1-22, e.g. coverage = { chapters = [9, 10] }");
        }
        Coverage::Codes(codes) => {
            if codes.is_empty() {
                c.fail(&key("coverage"), "give at least one code, e.g. coverage = { codes = [\"I26.09\"] }");
            }
            for raw in codes {
                if let Err(err) = Code::parse(raw) {
                    c.fail(&key("coverage"), err.to_string());
                }
            }
        }
        _ => {}
    }
    for p in e.set_parameters() {
        if !e.kind.parameters().contains(&p) {
            let users: Vec<&str> = ExpansionKind::ALL.iter().filter(|k| k.parameters().contains(&p)).map(|k| k.as_str()).collect();
            let own = match e.kind.parameters() {
                [] => "none".to_string(),
                ps => ps.join(", "),
            };
            c.fail(&key(p), format!("`{p}` is not a parameter of kind \"{}\" (it is one of {}); {} takes: {own}", e.kind, users.join(", "), e.kind));
        }
    }
    for (k, v) in [("variants", e.variants), ("max_ops", e.max_ops), ("min_words", e.min_words), ("n", e.n), ("max_words", e.max_words)] {
        if let Some(v) = v {
            c.positive(&key(k), v);
        }
    }
    if e.ops.as_ref().is_some_and(Vec::is_empty) {
        c.fail(&key("ops"), "name at least one rewrite: drop, invert, typo, shorthand, case");
    }
    if let Some(prompt) = &e.prompt {
        if !prompt.contains("{description}") && !prompt.contains("{code}") {
            c.fail(&key("prompt"), "the prompt must name the code: include {description} or {code}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\nd", 0), (1, 1));
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("a\nbc\nd", 5), (3, 1));
        // Columns count characters, and an offset inside a character does not panic.
        assert_eq!(line_col("é = x", 2), (1, 2));
        assert_eq!(line_col("é", 1), (1, 1));
        assert_eq!(line_col("a", 99), (1, 2));
    }

    #[test]
    fn locate_finds_nested_and_array_keys() {
        let text = "[experiment]\nname = \"x\"\n\n[train]\nlr = 5.0\n\n[[baselines]]\nkind = \"dictionary\"\nmin_words = 0\n";
        assert_eq!(locate(text, &["train", "lr"]), (Some(5), Some(6)));
        assert_eq!(locate(text, &["baselines", "0", "min_words"]), (Some(9), Some(13)));
    }
}
