//! Reading an experiment file: TOML syntax and schema errors with their line
//! and column, then semantic validation that reports every problem at once.

use super::validate::validate;
use super::{Expansion, ExpansionKind, Experiment};
pub use crate::schema::{line_col, locate, Problem};
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


#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ComparePair;
    use crate::schema::is_set;

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
