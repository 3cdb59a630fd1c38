//! The code identity: sha256 over the content of the sources that can change a
//! result, and nothing else (README, tests, experiments and docs are left out).
//! `build.rs` includes this file to bake the identities of the tree being built
//! into the binary; the library exposes the same functions so tests can check
//! what they cover.
//!
//! There is one identity for the whole tree and one per stage. A stage's
//! identity covers the modules its entry modules reach through their imports
//! (read from the sources: `crate::`, `super::`, `self::` and child-module
//! paths outside comments, string literals and `#[cfg(test)]` modules), so an
//! edit to a plot recomputes nothing and an edit to a metric rescores without
//! retraining. [`STAGES`] names each stage's entry modules; the module lists
//! are derived.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each cached stage and the modules it enters through; what they reach is derived.
/// `data`: the documents. `train`: a model's trained weights. `fit`: a baseline's
/// fitted state. `predict`: a split's predictions. `run`: a run's scores and record
/// (the runner sequences every stage, so this covers every stage but the report).
pub const STAGES: &[(&str, &[&str])] = &[
    ("data", &["data"]),
    ("train", &["expand", "mix", "train", "runner::train"]),
    ("fit", &["baselines", "runner::fit"]),
    ("predict", &["predict", "runner::predict"]),
    ("run", &["runner"]),
];

/// Files outside `src/` that every identity covers: the build script and the locked dependencies.
const SHARED: [&str; 2] = ["build.rs", "Cargo.lock"];

/// Relative paths (with `/`) of the files that make up the identity of the tree at `root`, sorted.
pub fn identity_files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("src"), root, &mut files);
    for f in SHARED {
        if root.join(f).is_file() {
            files.push(f.to_string());
        }
    }
    files.sort();
    files
}

/// Hex sha256 over each file's relative path, length and content, in path order.
fn hash_files<'a>(root: &Path, files: impl IntoIterator<Item = &'a String>) -> String {
    let mut hasher = Sha256::new();
    for rel in files {
        let bytes = std::fs::read(root.join(rel)).unwrap_or_default();
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    hex::encode(hasher.finalize())
}

/// The identity of the whole tree at `root`.
pub fn code_identity_of(root: &Path) -> String {
    hash_files(root, &identity_files(root))
}

/// Each stage of [`STAGES`] with the identity of the files it reaches (plus `build.rs` and `Cargo.lock`).
pub fn stage_identities_of(root: &Path) -> BTreeMap<String, String> {
    let graph = ModuleGraph::read(root);
    STAGES
        .iter()
        .map(|(stage, entries)| {
            let mut files: Vec<String> = graph.closure(entries).iter().filter_map(|m| graph.files.get(m).cloned()).collect();
            files.extend(SHARED.iter().filter(|f| root.join(f).is_file()).map(|f| f.to_string()));
            files.sort();
            (stage.to_string(), hash_files(root, &files))
        })
        .collect()
}

/// The modules of `src/` (`metrics::sets` for `src/metrics/sets.rs`, `metrics` for
/// `src/metrics/mod.rs`, `lib` and `main` for the crate roots) and what each one's code refers to.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Module → its file, relative to the root.
    pub files: BTreeMap<String, String>,
    /// Module → the modules its non-test code names.
    pub edges: BTreeMap<String, BTreeSet<String>>,
}

impl ModuleGraph {
    /// Reads every `.rs` file under `root/src`.
    pub fn read(root: &Path) -> ModuleGraph {
        let mut graph = ModuleGraph::default();
        for rel in identity_files(root).into_iter().filter(|f| f.starts_with("src/") && f.ends_with(".rs")) {
            graph.files.insert(module_of(&rel), rel);
        }
        let modules: BTreeSet<String> = graph.files.keys().cloned().collect();
        for (module, rel) in &graph.files {
            let text = std::fs::read_to_string(root.join(rel)).unwrap_or_default();
            graph.edges.insert(module.clone(), references(&text, module, &modules));
        }
        graph
    }

    /// Builds a graph from (module, source text) pairs (for tests).
    pub fn from_sources(sources: &[(&str, &str)]) -> ModuleGraph {
        let modules: BTreeSet<String> = sources.iter().map(|(m, _)| m.to_string()).collect();
        let mut graph = ModuleGraph::default();
        for (module, text) in sources {
            graph.files.insert(module.to_string(), format!("{module}.rs"));
            graph.edges.insert(module.to_string(), references(text, module, &modules));
        }
        graph
    }

    /// Every module in or below `entries`, and every module they reach.
    pub fn closure(&self, entries: &[&str]) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = self.files.keys().filter(|m| entries.iter().any(|e| within(m, e))).cloned().collect();
        let mut todo: Vec<String> = seen.iter().cloned().collect();
        while let Some(m) = todo.pop() {
            for next in self.edges.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    }

    /// The import loops: groups of two or more modules that reach each other, leaving out
    /// a folder's `mod.rs` and its own files (a folder's front door and its rooms).
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let edges: BTreeMap<&str, Vec<&str>> = self
            .edges
            .iter()
            .map(|(a, bs)| (a.as_str(), bs.iter().map(String::as_str).filter(|b| parent(b) != Some(a.as_str()) && parent(a) != Some(*b)).collect()))
            .collect();
        let reach = |from: &str| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from];
            while let Some(m) = todo.pop() {
                for &n in edges.get(m).into_iter().flatten() {
                    if seen.insert(n) {
                        todo.push(n);
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&str, BTreeSet<&str>> = edges.keys().map(|m| (*m, reach(m))).collect();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut loops = Vec::new();
        for (m, r) in &reaches {
            if done.contains(*m) || !r.contains(m) {
                continue;
            }
            let group: Vec<String> = r.iter().filter(|n| reaches.get(**n).is_some_and(|rn| rn.contains(m))).map(|n| n.to_string()).collect();
            done.extend(group.iter().cloned());
            loops.push(group);
        }
        loops
    }
}

/// `a::b` is within `a` and within `a::b`; `ab` is not within `a`.
fn within(module: &str, entry: &str) -> bool {
    module == entry || module.strip_prefix(entry).is_some_and(|rest| rest.starts_with("::"))
}

fn parent(module: &str) -> Option<&str> {
    module.rsplit_once("::").map(|(p, _)| p)
}

/// `src/metrics/sets.rs` → `metrics::sets`; `src/metrics/mod.rs` → `metrics`; `src/lib.rs` → `lib`.
fn module_of(rel: &str) -> String {
    let path = rel.trim_start_matches("src/").trim_end_matches(".rs");
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 1 && parts.last() == Some(&"mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The modules that `text` (the source of `module`) names, other than itself.
fn references(text: &str, module: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code = without_test_modules(&strip_comments_and_strings(text));
    let bytes = code.as_bytes();
    let here: Vec<&str> = if module == "lib" || module == "main" { Vec::new() } else { module.split("::").collect() };
    let mut found = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        if !starts_word || !(bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
            i += 1;
            continue;
        }
        let (first, after) = ident(bytes, i);
        if !code[after..].starts_with("::") {
            i = after;
            continue;
        }
        // The path's base: the crate root, this module, an ancestor, or one of this module's children.
        let mut base: Vec<String> = match first {
            "crate" => Vec::new(),
            "self" => here.iter().map(|s| s.to_string()).collect(),
            "super" => here[..here.len().saturating_sub(1)].iter().map(|s| s.to_string()).collect(),
            name if modules.contains(&join(&here, name)) => {
                let mut b: Vec<String> = here.iter().map(|s| s.to_string()).collect();
                b.push(name.to_string());
                b
            }
            _ => {
                i = after;
                continue;
            }
        };
        let mut j = after + 2;
        // More `super::` segments climb further.
        while code[j..].starts_with("super::") {
            base.pop();
            j += "super::".len();
        }
        let mut paths = Vec::new();
        let end = path_tree(&code, j, base, &mut paths);
        for p in paths {
            if let Some(m) = longest_module(&p, modules) {
                if m != module && m != "lib" {
                    found.insert(m);
                }
            }
        }
        i = end.max(after);
    }
    found
}

fn join(here: &[&str], name: &str) -> String {
    if here.is_empty() {
        name.to_string()
    } else {
        format!("{}::{name}", here.join("::"))
    }
}

/// An identifier starting at `i`, and the index after it.
fn ident(bytes: &[u8], i: usize) -> (&str, usize) {
    let mut j = i;
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    (std::str::from_utf8(&bytes[i..j]).unwrap_or(""), j)
}

/// Reads `a::b::{c, d::e}` from `at` (after a base), pushing every full path; returns the end.
fn path_tree(code: &str, at: usize, base: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let bytes = code.as_bytes();
    let skip_ws = |mut k: usize| {
        while k < bytes.len() && bytes[k].is_ascii_whitespace() {
            k += 1;
        }
        k
    };
    let mut path = base;
    let mut k = skip_ws(at);
    loop {
        if k < bytes.len() && bytes[k] == b'{' {
            k += 1;
            loop {
                k = skip_ws(k);
                if k >= bytes.len() {
                    return k;
                }
                if bytes[k] == b'}' {
                    return k + 1;
                }
                if bytes[k] == b',' {
                    k += 1;
                    continue;
                }
                let before = k;
                k = path_tree(code, k, path.clone(), out);
                // Skip `as alias` and anything else up to the next separator.
                while k < bytes.len() && bytes[k] != b',' && bytes[k] != b'}' {
                    k += 1;
                }
                if k == before {
                    k += 1;
                }
            }
        }
        if k < bytes.len() && (bytes[k].is_ascii_alphabetic() || bytes[k] == b'_') {
            let (name, after) = ident(bytes, k);
            path.push(name.to_string());
            k = after;
            if code[k..].starts_with("::") {
                k = skip_ws(k + 2);
                continue;
            }
        }
        out.push(path);
        return k;
    }
}

/// The longest leading part of `path` that names a module (`lib` for the crate root's own items).
fn longest_module(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| modules.contains(m)).or_else(|| (!path.is_empty()).then(|| "lib".to_string()))
}

/// The source with comments removed and string and character literals emptied, so that
/// neither a doc link nor a message names a module.
fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) => {
                // A raw string: r"..." or r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                out.extend_from_slice(b"\"\"");
                i = (j + close.len()).min(b.len());
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                out.extend_from_slice(b"\"\"");
                i = (j + 1).min(b.len());
            }
            b'\'' => {
                // A character literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    let mut j = i + 2;
                    while j < b.len() && b[j] != b'\'' {
                        j += 1;
                    }
                    out.extend_from_slice(b"' '");
                    i = (j + 1).min(b.len());
                } else if let Some(len) = text[i + 1..].chars().next().map(char::len_utf8).filter(|l| b.get(i + 1 + l) == Some(&b'\'')) {
                    out.extend_from_slice(b"' '");
                    i += 2 + len;
                } else {
                    out.push(b'\'');
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The code with every `#[cfg(test)] mod name { ... }` block removed.
fn without_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let is_module = after.starts_with("mod ") || after.starts_with("pub mod ") || after.starts_with("pub(crate) mod ");
        match (is_module, after.find('{')) {
            (true, Some(open)) if !after[..open].contains(';') => {
                let mut depth = 0;
                let mut end = after.len();
                for (k, c) in after.char_indices().skip_while(|(k, _)| *k < open) {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            _ => {
                out.push_str("#[cfg(test)]");
                rest = &rest[at + "#[cfg(test)]".len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(graph: &ModuleGraph, module: &str) -> Vec<String> {
        graph.edges[module].iter().cloned().collect()
    }

    #[test]
    fn paths_are_read_from_code_not_from_comments_strings_or_test_modules() {
        let a = r#"
//! Links to [`crate::report`] do not count.
use crate::{data::{self, Document}, icd::Code as C};
use super::sibling;
/* crate::cli in a block comment */
fn f() -> &'static str { let _ = crate::metrics::sets::score; let c = 'x'; "crate::app in a string" }
#[cfg(test)]
mod tests {
    use crate::check;
}
fn g() { child::h(); }
"#;
        let g = ModuleGraph::from_sources(&[
            ("stage::a", a),
            ("stage::a::child", ""),
            ("stage::sibling", ""),
            ("stage", ""),
            ("data", ""),
            ("icd", ""),
            ("metrics", ""),
            ("metrics::sets", ""),
            ("report", ""),
            ("cli", ""),
            ("app", ""),
            ("check", ""),
        ]);
        assert_eq!(edges(&g, "stage::a"), ["data", "icd", "metrics::sets", "stage::a::child", "stage::sibling"]);
    }

    #[test]
    fn the_closure_follows_imports_and_loops_are_found_but_a_folder_and_its_files_are_not_one() {
        let g = ModuleGraph::from_sources(&[
            ("train", "use self::adamw::AdamW; use crate::model::Llama;"),
            ("train::adamw", "use super::Options;"),
            ("model", "use crate::config::Config;"),
            ("config", ""),
            ("report", "use crate::train;"),
            ("a", "use crate::b::X;"),
            ("b", "use crate::a::Y;"),
        ]);
        let reach: Vec<String> = g.closure(&["train"]).into_iter().collect();
        assert_eq!(reach, ["config", "model", "train", "train::adamw"]);
        assert_eq!(g.cycles(), vec![vec!["a".to_string(), "b".to_string()]]);
    }

    #[test]
    fn module_names_follow_the_files() {
        assert_eq!(module_of("src/metrics/sets.rs"), "metrics::sets");
        assert_eq!(module_of("src/metrics/mod.rs"), "metrics");
        assert_eq!(module_of("src/lib.rs"), "lib");
        assert_eq!(module_of("src/model/gguf/container.rs"), "model::gguf::container");
    }
}
