//! Reading an experiment file: TOML syntax and schema errors with their line
//! and column, then semantic validation that reports every problem at once.

use super::{Backbone, Baseline, ComparePair, Coverage, Expansion, ExpansionKind, Experiment, FuzzyUnit, Mix, MixStrategy, TinyModel, TrainMode, WeightFormat, PACKAGED_CONTEXT, PROMPT_OVERHEAD_TOKENS};
use crate::icd::Code;
pub use crate::schema::{line_col, locate, Problem};
use crate::schema::{is_set, Checker};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

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
    let table: toml::Table = toml::from_str(text).map_err(|e| invalid(vec![from_toml_error(text, &e)]))?;
    if !table.contains_key(INCLUDE) {
        let mut exp: Experiment = toml::from_str(text).map_err(|e| invalid(vec![from_toml_error(text, &e)]))?;
        exp.resolve_defaults();
        let problems = validate(&exp, text, path, check_inputs);
        return if problems.is_empty() { Ok(exp) } else { Err(invalid(problems)) };
    }
    // `include = "base.toml"` (or a list): the included files' keys, merged key by key,
    // the including file winning; errors point at the file that holds the key.
    let mut files: Vec<(PathBuf, String)> = vec![(path.to_path_buf(), text.to_string())];
    let merged = resolve_includes(table, path, &mut files, 0)?;
    let mut exp = match Experiment::deserialize(toml::Value::Table(merged)) {
        Ok(exp) => exp,
        Err(e) => {
            // Deserialising from a value has no positions: find the file whose own text gives this error.
            let message = e.message().trim().replace('\n', " ");
            for (file, file_text) in &files {
                if let Err(own) = toml::from_str::<Experiment>(file_text) {
                    if own.message().trim().replace('\n', " ") == message {
                        return Err(ConfigError::Invalid { path: file.clone(), problems: vec![from_toml_error(file_text, &own)] });
                    }
                }
            }
            return Err(invalid(vec![Problem { line: None, column: None, key: key_from_message(&message), message }]));
        }
    };
    exp.resolve_defaults();
    let problems = validate(&exp, text, path, check_inputs);
    if problems.is_empty() {
        return Ok(exp);
    }
    // A problem not located in the including file is looked for in the included ones.
    for (file, file_text) in files.iter().skip(1) {
        let here: Vec<Problem> = problems
            .iter()
            .filter(|p| p.line.is_none())
            .filter_map(|p| {
                let key = p.key.as_deref()?;
                let (line, column) = locate(file_text, &key.split('.').collect::<Vec<_>>());
                line.map(|_| Problem { line, column, ..p.clone() })
            })
            .collect();
        if !here.is_empty() {
            return Err(ConfigError::Invalid { path: file.clone(), problems: here });
        }
    }
    Err(invalid(problems))
}

/// The top-level key that names files to include.
const INCLUDE: &str = "include";

/// Merges the files `table` includes under it (recursively, at most 8 deep), `table`'s keys
/// winning; tables merge key by key, any other value is replaced whole. Each file read is
/// appended to `files`, for locating errors.
fn resolve_includes(mut table: toml::Table, path: &Path, files: &mut Vec<(PathBuf, String)>, depth: usize) -> Result<toml::Table, ConfigError> {
    let at = |message: String| ConfigError::Invalid { path: path.to_path_buf(), problems: vec![Problem { line: None, column: None, key: Some(INCLUDE.into()), message }] };
    let Some(include) = table.remove(INCLUDE) else { return Ok(table) };
    if depth >= 8 {
        return Err(at("includes nest more than 8 deep (a file including itself?)".into()));
    }
    let names: Vec<String> = match include {
        toml::Value::String(s) => vec![s],
        toml::Value::Array(a) => a.into_iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| at("include takes a file name or a list of file names".into()))).collect::<Result<_, _>>()?,
        _ => return Err(at("include takes a file name or a list of file names (relative to this file)".into())),
    };
    let mut base = toml::Table::new();
    for name in names {
        let file = path.parent().unwrap_or(Path::new(".")).join(&name);
        let text = std::fs::read_to_string(&file).map_err(|e| at(format!("cannot read included file {}: {e}", file.display())))?;
        let included: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Invalid { path: file.clone(), problems: vec![from_toml_error(&text, &e)] })?;
        files.push((file.clone(), text));
        let included = resolve_includes(included, &file, files, depth + 1)?;
        merge_into(&mut base, included);
    }
    merge_into(&mut base, table);
    Ok(base)
}

/// Writes `over` into `base`: tables merge key by key, other values replace.
fn merge_into(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_into(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

fn from_toml_error(text: &str, e: &toml::de::Error) -> Problem {
    let mut message = e.message().trim().replace('\n', " ");
    let key = key_from_message(&message);
    let (line, column) = match e.span() {
        Some(span) => {
            let (l, c) = line_col(text, span.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let Some(k) = key.clone() else { return Problem { line, column, key, message } };
    // serde names an unknown key without its path, and at the table where the table is read
    // through a tagged enum (`[data.source]`, `[[expansion]]`): find the table that sets it.
    let located = unknown_key_at(text, &k, &message);
    message.push_str(&expansion_hint(&k, &message));
    match located {
        Some((path, at)) => {
            let (l, c) = line_col(text, at);
            Problem { line: Some(l), column: Some(c), key: Some(path), message }
        }
        None => Problem { line, column, key, message },
    }
}

/// The dotted path and byte offset of an unknown `key`: in the first table of `text` that
/// sets it beside only keys serde's `message` lists as expected (and `kind`, the tag).
fn unknown_key_at(text: &str, key: &str, message: &str) -> Option<(String, usize)> {
    let expected: Vec<&str> = message.split("expected one of ").nth(1)?.split(", ").map(|k| k.trim_matches(|c: char| c == '`' || c.is_whitespace())).collect();
    let doc = toml_edit::Document::parse(text).ok()?;
    fn visit(table: &dyn toml_edit::TableLike, path: &mut Vec<String>, key: &str, expected: &[&str]) -> Option<(String, usize)> {
        if let Some(k) = table.key(key) {
            if table.iter().all(|(other, _)| other == key || other == "kind" || expected.contains(&other)) {
                path.push(key.to_string());
                return Some((path.join("."), k.span()?.start));
            }
        }
        for (name, item) in table.iter() {
            let found = match item {
                toml_edit::Item::ArrayOfTables(tables) => tables.iter().enumerate().find_map(|(i, t)| {
                    path.extend([name.to_string(), i.to_string()]);
                    let found = visit(t, path, key, expected);
                    path.truncate(path.len() - 2);
                    found
                }),
                other => other.as_table_like().and_then(|t| {
                    path.push(name.to_string());
                    let found = visit(t, path, key, expected);
                    path.pop();
                    found
                }),
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    visit(doc.as_table(), &mut Vec::new(), key, &expected)
}

/// An `[[expansion]]` key that another kind takes: say which kinds take it.
fn expansion_hint(key: &str, message: &str) -> String {
    if !message.contains("`per_code_cap`") {
        return String::new();
    }
    let takers: Vec<&str> = ExpansionKind::ALL.iter().filter(|k| Expansion::parameters(**k).contains(&key)).map(|k| k.as_str()).collect();
    if takers.is_empty() {
        return String::new();
    }
    format!(" (`{key}` is a parameter of kind {})", takers.join(", "))
}

/// serde's "unknown field `x`" names the key; keep it visible as the key too.
fn key_from_message(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}


fn check_device(c: &mut Checker, key: &str, d: &str) {
    if !crate::device::is_valid_name(d) {
        c.fail(key, crate::device::invalid_name_message(d));
    }
}



fn validate(exp: &Experiment, text: &str, path: &Path, check_inputs: bool) -> Vec<Problem> {
    let mut c = Checker { text, problems: Vec::new(), check_inputs };
    let name = &exp.experiment.name;
    if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
        c.fail("experiment.name", "use only letters, digits, '-' and '_' (it names the results folder)");
    }
    validate_compare(&mut c, exp);
    let base = path.parent().unwrap_or(Path::new("."));
    exp.data.check(&mut c, base);
    for (i, e) in exp.expansion.iter().enumerate() {
        validate_expansion(&mut c, i, e);
    }
    let finetunes = exp.backbone.is_some() && exp.train.mode == TrainMode::Finetune;
    validate_mix(&mut c, "mix", &exp.mix, finetunes && exp.expansion.is_empty());
    if let Some(reference) = &exp.train.match_tokens_of {
        validate_mix(&mut c, "train.match_tokens_of", reference, finetunes && exp.expansion.is_empty());
        if !matches!(exp.mix.strategy, MixStrategy::DocumentOnly | MixStrategy::SpanOnly) {
            c.fail_at_set(
                "train.match_tokens_of",
                &["mix.strategy", "train.match_tokens_of"],
                "a token-matched run feeds one kind of example until it has read the tokens of the `match_tokens_of` schedule: set mix.strategy = \"document_only\" (or \"span_only\")",
            );
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
    if exp.backbone.is_some() && t.mode == TrainMode::Finetune && t.steps == 0 && t.epochs <= 0.0 {
        c.fail_at_set("train.epochs", &["train.epochs", "train.steps"], "train.steps is 0, so the run trains for `epochs`: give epochs > 0 or steps >= 1");
    }
    c.non_negative("train.weight_decay", t.weight_decay);
    c.non_negative("train.max_grad_norm", t.max_grad_norm);
    c.non_negative("train.lora_alpha", t.lora_alpha);
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
    for (i, s) in e.splits.iter().enumerate() {
        if e.splits[..i].contains(s) {
            c.fail("eval.splits", format!("{s:?} is named twice: a split is scored once"));
        }
    }
    c.positive("eval.chunk_tokens", e.chunk_tokens());
    c.positive("eval.batch_size", e.batch_size);
    // Each window repeats at most half of the one before, so every window advances (predict::windows).
    if e.chunk_overlap().saturating_mul(2) > e.chunk_tokens() {
        c.fail("eval.chunk_overlap", format!("{} is more than half of chunk_tokens ({}): lower it to at most {} so every window advances", e.chunk_overlap(), e.chunk_tokens(), e.chunk_tokens() / 2));
    }
    for (i, b) in exp.baselines.iter().enumerate() {
        match b {
            Baseline::Dictionary(p) => c.positive(&format!("baselines.{i}.min_words"), p.min_words),
            Baseline::Prior(p) => c.positive(&format!("baselines.{i}.max_k"), p.max_k),
            Baseline::Fuzzy(p) => {
                let key = |k: &str| format!("baselines.{i}.{k}");
                let [lo, hi] = p.ngram_range;
                if !(1 <= lo && lo <= hi && hi <= 8) {
                    c.fail(&key("ngram_range"), format!("must be [shortest, longest] with 1 <= shortest <= longest <= 8, got [{lo}, {hi}]"));
                }
                if !(1..=64).contains(&p.window_words) {
                    c.fail(&key("window_words"), format!("must be between 1 and 64, got {}", p.window_words));
                }
                if p.unit == FuzzyUnit::Sentence && is_set(c.text, &key("window_words")) {
                    c.fail(&key("window_words"), "applies to unit = \"window\" only: remove it, or set unit = \"window\"");
                }
                c.range_f(&key("min_similarity"), p.min_similarity, 0.0, 0.99);
                c.positive(&key("top_k"), p.top_k);
            }
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
                check_device(&mut c, &key("device"), &p.device);
            }
        }
    }
    if exp.backbone.is_none() && exp.baselines.is_empty() {
        c.fail("baselines", "nothing to run: add a [backbone] or at least one [[baselines]] entry");
    }
    if let Some(b) = &exp.backbone {
        check_device(&mut c, "backbone.device", &b.device);
        if b.is_tiny() {
            validate_tiny(&mut c, &b.tiny);
        }
        validate_model_budget(&mut c, exp, b, base);
        validate_generator(&mut c, exp, b);
    }
    // In file order, so the messages read top to bottom like the file.
    c.problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    c.problems
}

/// A mix (`[mix]`, or the one `train.match_tokens_of` names) at `key`; `no_spans`: there is
/// no [[expansion]] entry to make span examples in a run that trains.
/// Each `[[compare]]` side names an arm or a value of a sweep axis, and the two sides differ.
fn validate_compare(c: &mut Checker, exp: &Experiment) {
    for (i, pair) in exp.compare.iter().enumerate() {
        for (side, text) in [("a", &pair.a), ("b", &pair.b)] {
            let key = format!("compare.{i}.{side}");
            let Some((k, v)) = ComparePair::setting(text) else {
                c.fail(&key, format!("{text:?}: write a sweep setting as run labels show it, e.g. \"arm=mixed\" or \"mix.strategy=mixed\""));
                continue;
            };
            let known = if k == crate::config::BASELINE_KEY {
                exp.baselines.iter().any(|b| b.name() == v)
            } else if k == crate::config::ARM_KEY {
                exp.arms.contains_key(v)
            } else {
                exp.sweep.get(k).is_some_and(|values| values.iter().any(|x| x.to_string().trim_matches('"') == v))
            };
            if !known {
                let arms: Vec<String> = exp.arms.keys().map(|a| format!("arm={a}")).collect();
                let axes: Vec<String> = exp.sweep.iter().flat_map(|(k, vs)| vs.iter().map(move |x| format!("{k}={}", x.to_string().trim_matches('"')))).collect();
                let baselines: Vec<String> = exp.baselines.iter().map(|b| format!("baseline={}", b.name())).collect();
                let choices = [arms, axes, baselines].concat();
                let hint = if choices.is_empty() { "the experiment has no [sweep] or [arms.<name>] to compare".to_string() } else { format!("use one of {}", choices.join(", ")) };
                c.fail(&key, format!("{text:?} names no arm, sweep value or baseline: {hint}"));
            }
        }
        if ComparePair::setting(&pair.a) == ComparePair::setting(&pair.b) {
            c.fail(&format!("compare.{i}.b"), "the two sides are the same runs; name another arm or sweep value");
        }
    }
}

fn validate_mix(c: &mut Checker, key: &str, m: &Mix, no_spans: bool) {
    c.range_f(&format!("{key}.span_ratio"), m.span_ratio, 0.0, 1.0);
    c.range_f(&format!("{key}.note_negated"), m.note_negated, 0.0, 1.0);
    c.range_f(&format!("{key}.sampling_power"), m.sampling_power, 0.0, 2.0);
    if no_spans && m.uses_spans() {
        c.fail(&format!("{key}.strategy"), "this mix trains on span examples, but there is no [[expansion]] entry to make them (e.g. kind = \"description\")");
    }
    if m.strategy == MixStrategy::Curriculum && m.phases.is_empty() {
        c.fail(&format!("{key}.phases"), "curriculum needs phases, e.g. [\"spans\", \"documents\"]");
    }
    for p in &m.phases {
        if p != "spans" && p != "documents" && p != "mixed" {
            c.fail(&format!("{key}.phases"), format!("unknown phase {p:?}: use \"spans\", \"documents\" or \"mixed\""));
        }
    }
}

/// The tiny model's shape, as the model code checks it when it builds the model.
fn validate_tiny(c: &mut Checker, t: &TinyModel) {
    for (k, v) in [("layers", t.layers), ("hidden", t.hidden), ("heads", t.heads), ("kv_heads", t.kv_heads), ("intermediate", t.intermediate), ("vocab", t.vocab)] {
        c.positive(&format!("backbone.tiny.{k}"), v);
    }
    if t.heads > 0 && t.kv_heads > 0 && t.heads % t.kv_heads != 0 {
        c.fail("backbone.tiny.kv_heads", format!("heads ({}) must be a multiple of kv_heads ({})", t.heads, t.kv_heads));
    }
    if t.heads > 0 && t.hidden % t.heads != 0 {
        c.fail("backbone.tiny.hidden", format!("{} is not divisible by heads ({})", t.hidden, t.heads));
    } else if t.heads > 0 && (t.hidden / t.heads) % 2 != 0 {
        c.fail("backbone.tiny.hidden", format!("hidden / heads = {} must be even for rotary position embeddings", t.hidden / t.heads));
    }
    if t.pretrain_steps > 0 {
        c.range_f("backbone.tiny.pretrain_lr", t.pretrain_lr, 1e-8, 1.0);
    }
}

/// The backbone's context window in tokens, and what says so, where the experiment alone tells:
/// the tiny model's, a packaged backbone's, or a Hugging Face folder's config.json (a GGUF file
/// is read when the model loads).
fn backbone_context(b: &Backbone, base: &Path, check_inputs: bool) -> Option<(usize, String)> {
    if b.is_tiny() {
        return Some((TinyModel::CONTEXT, "the tiny backbone".into()));
    }
    if let Some((name, n)) = PACKAGED_CONTEXT.iter().find(|(n, _)| *n == b.name) {
        return Some((*n, format!("backbone {name:?}")));
    }
    if !check_inputs || b.format == WeightFormat::Gguf {
        return None;
    }
    let config = base.join(&b.name).join("config.json");
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).ok()?).ok()?;
    let n = value.get("max_position_embeddings")?.as_u64()?;
    Some((usize::try_from(n).ok()?, config.display().to_string()))
}

/// Prompts and answers must fit the model: a window of note text, the prompt around it and the
/// answer at predict time, and the longest training example. Predict measures the real prompts
/// too, but only after training; this catches what the numbers alone decide, before it.
fn validate_model_budget(c: &mut Checker, exp: &Experiment, b: &Backbone, base: &Path) {
    let Some((context, source)) = backbone_context(b, base, c.check_inputs) else { return };
    let e = &exp.eval;
    let t = &exp.train;
    let needed = e.chunk_tokens().saturating_add(e.max_new_tokens).saturating_add(PROMPT_OVERHEAD_TOKENS);
    // A window derived from a training length that is itself too long is reported once, there.
    let derived_from_too_long = !is_set(c.text, "eval.chunk_tokens") && t.mode == TrainMode::Finetune && t.max_length > context;
    if needed > context && !derived_from_too_long {
        let room = context.saturating_sub(PROMPT_OVERHEAD_TOKENS);
        c.fail_at_set(
            "eval.chunk_tokens",
            &["eval.chunk_tokens", "eval.max_new_tokens", "backbone.name"],
            format!(
                "chunk_tokens ({}) + max_new_tokens ({}) + the prompt around a window (up to {PROMPT_OVERHEAD_TOKENS}) = {needed} tokens, more than the {context}-token context of {source}: keep chunk_tokens + max_new_tokens <= {room}",
                e.chunk_tokens(), e.max_new_tokens
            ),
        );
    }
    if t.mode == TrainMode::Finetune && t.max_length > context {
        c.fail_at_set("train.max_length", &["train.max_length", "backbone.name"], format!("{} tokens is longer than the {context}-token context of {source}: lower it to at most {context}", t.max_length));
    }
}

/// `synthesize` asks an LLM for phrasings; the tiny backbone has random weights and writes noise.
fn validate_generator(c: &mut Checker, exp: &Experiment, b: &Backbone) {
    for (i, e) in exp.expansion.iter().enumerate() {
        let Expansion::Synthesize(e) = e else { continue };
        let tiny = match &e.generator {
            Some(g) => g == "tiny",
            None => b.is_tiny(),
        };
        if tiny {
            let key = format!("expansion.{i}.generator");
            let kind = format!("expansion.{i}.kind");
            let why = if e.generator.is_some() { "generator \"tiny\" is" } else { "without a generator it uses the backbone, and the tiny backbone is" };
            c.fail_at_set(
                &key,
                &[key.as_str(), kind.as_str()],
                format!("synthesize needs a pretrained LLM to write phrasings, but {why} a random model: set generator = \"smollm2-135m\" (or a checkpoint path) on this entry"),
            );
        }
    }
}

fn validate_expansion(c: &mut Checker, i: usize, e: &Expansion) {
    let key = |k: &str| format!("expansion.{i}.{k}");
    c.positive(&key("per_code_cap"), e.per_code_cap());
    match e.coverage() {
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
    let counts: &[(&str, usize)] = match e {
        Expansion::Perturb(p) => &[("variants", p.variants), ("max_ops", p.max_ops)],
        Expansion::Paraphrase(p) => &[("variants", p.variants)],
        Expansion::Silver(p) => &[("min_words", p.min_words)],
        Expansion::Synthesize(p) => &[("n", p.n), ("max_words", p.max_words)],
        _ => &[],
    };
    for &(k, v) in counts {
        c.positive(&key(k), v);
    }
    if let Expansion::Perturb(p) = e {
        if p.ops.is_empty() {
            c.fail(&key("ops"), "name at least one rewrite: drop, invert, typo, shorthand, case");
        }
    }
    if let Expansion::Synthesize(p) = e {
        if !p.prompt.contains("{description}") && !p.prompt.contains("{code}") {
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
        assert!(is_set(text, "baselines.0.min_words") && !is_set(text, "baselines.0.negation") && !is_set(text, "eval.splits"));
    }

    /// A tiny-backbone experiment (lines 1-7), then `extra` from line 8 on.
    fn tiny(extra: &str) -> String {
        format!("[experiment]\nname = \"t\"\n\n[backbone]\nname = \"tiny\"\ndevice = \"cpu\"\n\n{extra}")
    }

    /// The problems of `text` as (line, column, key, message).
    fn problems(text: &str) -> Vec<(Option<usize>, Option<usize>, String, String)> {
        match parse_experiment_with(text, Path::new("t.toml"), false) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => problems.into_iter().map(|p| (p.line, p.column, p.key.unwrap_or_default(), p.message)).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    fn only(text: &str) -> (Option<usize>, Option<usize>, String, String) {
        let mut found = problems(text);
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    #[test]
    fn compare_sides_name_arms_or_sweep_values_and_pair_runs_by_the_rest() {
        let arms = "[arms.doc]\n\"mix.strategy\" = \"document_only\"\n[arms.mixed]\n\"mix.strategy\" = \"mixed\"\n[sweep]\n\"experiment.seed\" = [1, 2]\n";
        assert!(problems(&tiny(&format!("{arms}[[compare]]\na = \"arm=doc\"\nb = \"arm=mixed\"\n"))).is_empty());
        // A sweep value, with or without the quotes run labels show.
        let sweep = "[sweep]\n\"mix.strategy\" = [\"document_only\", \"mixed\"]\n";
        assert!(problems(&tiny(&format!("{sweep}[[compare]]\na = \"mix.strategy=document_only\"\nb = 'mix.strategy=\"mixed\"'\n"))).is_empty());
        let (_, _, key, message) = only(&tiny(&format!("{arms}[[compare]]\na = \"arm=doc\"\nb = \"arm=mixd\"\n")));
        assert_eq!(key, "compare.0.b");
        assert!(message.contains("\"arm=mixd\" names no arm") && message.contains("arm=mixed") && message.contains("experiment.seed=2"), "{message}");
        let found = problems(&tiny("[[compare]]\na = \"x=1\"\nb = \"doc\"\n"));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].3.contains("no [sweep] or [arms.<name>]") && found[1].3.contains("write a sweep setting"), "{found:?}");
        let (_, _, key, message) = only(&tiny(&format!("{arms}[[compare]]\na = \"arm=doc\"\nb = \"arm=doc\"\n")));
        assert!(key == "compare.0.b" && message.contains("the same runs"), "{message}");

        // Runs pair by every setting but the compared key: seed 2 with seed 2.
        let pair = ComparePair { a: "arm=doc".into(), b: "arm=mixed".into() };
        let run = |arm: &str, seed: &str| vec![("arm".to_string(), arm.to_string()), ("experiment.seed".to_string(), seed.to_string())];
        assert!(ComparePair::selects(&pair.a, &run("doc", "2")) && !ComparePair::selects(&pair.b, &run("doc", "2")));
        assert_eq!(pair.rest(&run("doc", "2")), pair.rest(&run("mixed", "2")));
        assert_ne!(pair.rest(&run("doc", "2")), pair.rest(&run("mixed", "1")));
    }

    #[test]
    fn test_windows_default_to_the_training_window_and_resolve_before_hashing() {
        let parse = |text: &str| parse_experiment(text, Path::new("t.toml")).unwrap();
        let unset = parse(&tiny("[train]\nmax_length = 224\n"));
        assert_eq!(unset.eval.chunk_tokens, Some(64));
        // Written out or left to the default: one experiment, so one key.
        assert_eq!(unset, parse(&tiny("[train]\nmax_length = 224\n[eval]\nchunk_tokens = 64\n")));
        assert_eq!(parse(&tiny("[train]\nmax_length = 224\n[eval]\nchunk_tokens = 96\n")).eval.chunk_tokens, Some(96));
        // Nothing trained: the default window.
        assert_eq!(parse(&tiny("[train]\nmode = \"zero_shot\"\n")).eval.chunk_tokens, Some(super::super::DEFAULT_CHUNK_TOKENS));
        let baselines = parse("[experiment]\nname = \"b\"\n[[baselines]]\nkind = \"prior\"\n");
        assert_eq!(baselines.eval.chunk_tokens, Some(1024));
    }

    #[test]
    fn a_window_overlap_over_half_its_length_is_rejected_where_written() {
        let (line, col, key, message) = only(&tiny("[eval]\nchunk_tokens = 100\nchunk_overlap = 51\n"));
        assert_eq!((line, col, key.as_str()), (Some(10), Some(17), "eval.chunk_overlap"));
        assert!(message.contains("at most 50"), "{message}");
        assert!(problems(&tiny("[eval]\nchunk_tokens = 100\nchunk_overlap = 50\n")).is_empty());
    }

    #[test]
    fn prompt_and_answer_must_fit_the_tiny_context() {
        // 3584 + 256 + the 256-token prompt allowance is exactly the 4096-token context.
        assert!(problems(&tiny("[eval]\nchunk_tokens = 3584\nmax_new_tokens = 256\n")).is_empty());
        let (line, col, key, message) = only(&tiny("[eval]\nchunk_tokens = 3585\nmax_new_tokens = 256\n"));
        assert_eq!((line, col, key.as_str()), (Some(9), Some(16), "eval.chunk_tokens"));
        assert!(message.contains("4097 tokens") && message.contains("4096-token context of the tiny backbone") && message.contains("<= 3840"), "{message}");
        // Only max_new_tokens is written: the message points there.
        let (line, col, key, _) = only(&tiny("[eval]\nmax_new_tokens = 3000\n"));
        assert_eq!((line, col, key.as_str()), (Some(9), Some(18), "eval.chunk_tokens"));
    }

    #[test]
    fn training_length_must_fit_the_context() {
        let (line, col, key, message) = only(&tiny("[train]\nmax_length = 5000\n"));
        assert_eq!((line, col, key.as_str()), (Some(9), Some(14), "train.max_length"));
        assert!(message.contains("at most 4096"), "{message}");
        // Zero-shot runs do not train, so their max_length is never used.
        assert!(problems(&tiny("[train]\nmax_length = 5000\nmode = \"zero_shot\"\n")).is_empty());
    }

    #[test]
    fn packaged_and_folder_backbones_bring_their_context() {
        let packaged = "[experiment]\nname = \"p\"\n[backbone]\nname = \"smollm2-135m\"\n[eval]\nchunk_tokens = 7800\n";
        let (line, _, key, message) = only(packaged);
        assert_eq!((line, key.as_str()), (Some(6), "eval.chunk_tokens"));
        assert!(message.contains("8192-token context of backbone \"smollm2-135m\""), "{message}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ckpt")).unwrap();
        std::fs::write(dir.path().join("ckpt/config.json"), r#"{"max_position_embeddings": 512}"#).unwrap();
        let text = "[experiment]\nname = \"f\"\n[backbone]\nname = \"ckpt\"\n";
        let err = parse_experiment(text, &dir.path().join("f.toml")).unwrap_err().to_string();
        // The default training length (1024) overflows a 512-token model; nothing in [train] is
        // written, so the backbone is named. The test window derives from it and is not
        // reported a second time.
        assert!(err.contains("f.toml:4:8: [train.max_length]") && err.contains("at most 512"), "{err}");
        assert!(!err.contains("[eval.chunk_tokens]"), "{err}");
        let text = "[experiment]\nname = \"f\"\n[backbone]\nname = \"ckpt\"\n[train]\nmax_length = 512\n[eval]\nmax_new_tokens = 200\n";
        let err = parse_experiment(text, &dir.path().join("f.toml")).unwrap_err().to_string();
        // 352 + 200 + 256 > 512: the window the training length gives leaves no room for this answer.
        assert!(err.contains("f.toml:8:18: [eval.chunk_tokens]") && err.contains("512-token context of"), "{err}");
    }

    #[test]
    fn synthesize_with_the_tiny_model_as_generator_is_rejected() {
        let entry = "[mix]\nstrategy = \"span_only\"\n\n[[expansion]]\nkind = \"synthesize\"\n";
        // No generator: it would be the tiny backbone. The kind's line is named.
        let (line, col, key, message) = only(&tiny(entry));
        assert_eq!((line, col, key.as_str()), (Some(12), Some(8), "expansion.0.generator"));
        assert!(message.contains("set generator = \"smollm2-135m\""), "{message}");
        let (line, col, _, _) = only(&tiny(&format!("{entry}generator = \"tiny\"\n")));
        assert_eq!((line, col), (Some(13), Some(13)));
        assert!(problems(&tiny(&format!("{entry}generator = \"smollm2-135m\"\n"))).is_empty());
    }

    #[test]
    fn splits_are_known_and_named_once() {
        let found = problems(&tiny("[eval]\nsplits = [\"test\", \"dev\", \"test\"]\n"));
        let messages: Vec<&str> = found.iter().map(|p| p.3.as_str()).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|p| p.0 == Some(9) && p.2 == "eval.splits"), "{found:?}");
        assert!(messages[0].contains("unknown split \"dev\"") && messages[1].contains("\"test\" is named twice"), "{messages:?}");
    }

    #[test]
    fn the_tiny_shape_is_checked_before_a_model_is_built() {
        let (line, col, key, message) = only(&tiny("tiny = { hidden = 48, heads = 3, kv_heads = 2 }\n").replace("\n\ntiny", "\ntiny"));
        assert_eq!((line, col, key.as_str()), (Some(7), Some(45), "backbone.tiny.kv_heads"));
        assert!(message.contains("multiple of kv_heads"), "{message}");
        // 36 / 4 = 9 dimensions per head: rotary embeddings need an even number.
        let (_, _, key, message) = only(&tiny("tiny = { hidden = 36, heads = 4, kv_heads = 2 }\n").replace("\n\ntiny", "\ntiny"));
        assert_eq!(key, "backbone.tiny.hidden");
        assert!(message.contains("must be even"), "{message}");
    }

    #[test]
    fn training_settings_the_trainer_rejects_are_rejected_at_load() {
        let (line, _, key, message) = only(&tiny("[train]\nepochs = 0.0\n"));
        assert_eq!((line, key.as_str()), (Some(9), "train.epochs"));
        assert!(message.contains("steps >= 1"), "{message}");
        assert!(problems(&tiny("[train]\nepochs = 0.0\nsteps = 5\n")).is_empty());
        let (_, _, key, _) = only(&tiny("[train]\nweight_decay = -0.1\n"));
        assert_eq!(key, "train.weight_decay");
        let (_, _, key, _) = only(&tiny("[eval]\nbatch_size = 0\n"));
        assert_eq!(key, "eval.batch_size");
    }

    #[test]
    fn document_sampling_reads_its_kind_and_power_is_bounded() {
        assert!(problems(&tiny("[mix]\ndocument_sampling = \"code_balanced\"\nsampling_power = 1.0\n")).is_empty());
        let (line, _, key, message) = only(&tiny("[mix]\ndocument_sampling = \"code_balanced\"\nsampling_power = 3.0\n"));
        assert_eq!((line, key.as_str()), (Some(10), "mix.sampling_power"));
        assert!(message.contains("between 0 and 2"), "{message}");
    }
}
