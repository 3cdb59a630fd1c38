//! `synthesize`: new phrasings of each code written by a generator (an LLM),
//! prompted once per code, cleaned, filtered and cached.
//!
//! The cache (`synthesize-cache.json` in the cache folder) maps a sha256 of
//! (generator identity, code, n, seed, prompt) to the generator's raw outputs,
//! so a rerun with the same settings never calls the generator again, and
//! changing only the filters (`max_words`) needs no regeneration.

use super::{dedup_key, known_forms, Env, ExpandError, ExpandedSpan, Source, Strategy};
use crate::config::{ExpansionKind, SynthesizeParams};
use crate::icd::{Code, CodeEntry};
use crate::text::note_form;
use rand::rngs::StdRng;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The cache file's name inside the cache folder.
pub const CACHE_FILE: &str = "synthesize-cache.json";

/// Writes new phrasings of a code: the LLM backbone in a real run, a fake in tests.
pub trait SpanWriter {
    /// Names the generator and every setting that changes its output (model, weights, sampling);
    /// part of the cache key, so a different generator never reuses another's phrasings.
    fn identity(&self) -> String;

    /// Up to `n` phrasings of `code`, answering `prompt`, sampled with `seed`.
    fn write(&mut self, code: &CodeEntry, prompt: &str, n: usize, seed: u64) -> Result<Vec<String>, ExpandError>;
}

/// Unsaved entries after which the cache is written, so an interrupted run keeps its work.
const SAVE_EVERY: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CacheEntry {
    generator: String,
    code: Code,
    n: usize,
    seed: u64,
    prompt: String,
    outputs: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, CacheEntry>,
}

const CACHE_VERSION: u32 = 1;

pub struct Synthesize {
    index: usize,
    n: usize,
    prompt: String,
    max_words: usize,
    path: Option<PathBuf>,
    cache: CacheFile,
    unsaved: usize,
    tally: BTreeMap<String, usize>,
}

impl Synthesize {
    pub fn new(index: usize, spec: &SynthesizeParams, cache_dir: Option<&Path>) -> Result<Synthesize, ExpandError> {
        let path = cache_dir.map(|d| d.join(CACHE_FILE));
        let cache = match &path {
            Some(p) if p.is_file() => load(p)?,
            _ => CacheFile { version: CACHE_VERSION, entries: BTreeMap::new() },
        };
        let tally = ["codes", "cache_hits", "generated", "outputs", "kept", "dropped_empty", "dropped_too_long", "dropped_table_form", "dropped_names_code", "dropped_duplicate"]
            .into_iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        Ok(Synthesize { index, n: spec.n, prompt: spec.prompt.clone(), max_words: spec.max_words, path, cache, unsaved: 0, tally })
    }

    fn count(&mut self, key: &str) {
        *self.tally.entry(key.to_string()).or_default() += 1;
    }

    fn save(&mut self) -> Result<(), ExpandError> {
        let Some(path) = &self.path else { return Ok(()) };
        // Written beside under a unique name, then renamed: an interrupted save never leaves half a cache.
        crate::store::write_json(path, &self.cache).map_err(|e| ExpandError::CacheWrite { path: path.clone(), source: std::io::Error::other(e.to_string()) })?;
        self.unsaved = 0;
        Ok(())
    }
}

fn load(path: &Path) -> Result<CacheFile, ExpandError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExpandError::CacheRead { path: path.to_path_buf(), source })?;
    let cache: CacheFile =
        serde_json::from_str(&text).map_err(|e| ExpandError::CacheCorrupt { path: path.to_path_buf(), message: e.to_string() })?;
    if cache.version != CACHE_VERSION {
        return Err(ExpandError::CacheCorrupt { path: path.to_path_buf(), message: format!("version {} is not {CACHE_VERSION}", cache.version) });
    }
    Ok(cache)
}

/// Fills the prompt template for one code.
pub fn render_prompt(template: &str, entry: &CodeEntry, parent: Option<&CodeEntry>, n: usize) -> String {
    let terms: Vec<String> = entry.inclusion_terms.iter().map(|t| note_form(t)).collect();
    let terms = if terms.is_empty() { "none".to_string() } else { terms.join("; ") };
    template
        .replace("{code}", entry.code.as_str())
        .replace("{description}", &entry.description)
        .replace("{inclusion_terms}", &terms)
        .replace("{parent}", &parent.map(|p| p.description.clone()).unwrap_or_else(|| "none".into()))
        .replace("{n}", &n.to_string())
}

/// The cache key: sha256 over the canonical JSON of everything that determines the outputs.
pub fn cache_key(generator: &str, code: &Code, n: usize, seed: u64, prompt: &str) -> String {
    let canonical = serde_json::json!({ "generator": generator, "code": code.as_str(), "n": n, "seed": seed, "prompt": prompt });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// One generated line without list markers, quotes or a final full stop.
pub fn clean(raw: &str) -> String {
    let mut s = raw.trim();
    s = s.trim_start_matches(['-', '*', '•', '·']).trim_start();
    // "1." / "2)" / "(3)" numbering.
    let digits = s.trim_start_matches('(').trim_start_matches(|c: char| c.is_ascii_digit());
    if digits.len() < s.trim_start_matches('(').len() {
        if let Some(rest) = digits.strip_prefix(['.', ')', ':']) {
            s = rest.trim_start();
        }
    }
    s.trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c.is_whitespace()).trim_end_matches('.').trim().to_string()
}

impl Strategy for Synthesize {
    fn expand_code(&mut self, entry: &CodeEntry, env: &mut Env<'_>, rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        self.count("codes");
        let Some(writer) = env.writer.as_deref_mut() else {
            return Err(ExpandError::NoWriter { index: self.index });
        };
        let generator = writer.identity();
        let seed: u64 = rng.random();
        let prompt = render_prompt(&self.prompt, entry, env.codes.parent(&entry.code), self.n);
        let key = cache_key(&generator, &entry.code, self.n, seed, &prompt);
        let outputs = match self.cache.entries.get(&key).map(|hit| hit.outputs.clone()) {
            Some(outputs) => {
                self.count("cache_hits");
                outputs
            }
            None => {
                self.count("generated");
                let outputs = writer.write(entry, &prompt, self.n, seed)?;
                let cached = CacheEntry { generator: generator.clone(), code: entry.code.clone(), n: self.n, seed, prompt, outputs: outputs.clone() };
                self.cache.entries.insert(key.clone(), cached);
                self.unsaved += 1;
                if self.unsaved >= SAVE_EVERY {
                    self.save()?;
                }
                outputs
            }
        };
        let known = known_forms(entry);
        let code_forms = [entry.code.as_str().to_lowercase(), entry.code.compact().to_lowercase()];
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for line in outputs.iter().flat_map(|o| o.split('\n')) {
            self.count("outputs");
            let text = clean(line);
            let lower = text.to_lowercase();
            let verdict = if text.is_empty() {
                "dropped_empty"
            } else if text.split_whitespace().count() > self.max_words {
                "dropped_too_long"
            } else if known.contains(&lower) || lower == entry.description.to_lowercase() {
                "dropped_table_form"
            } else if code_forms.iter().any(|c| lower.contains(c.as_str())) {
                "dropped_names_code"
            } else if !seen.insert(dedup_key(&text)) {
                "dropped_duplicate"
            } else {
                "kept"
            };
            self.count(verdict);
            if verdict == "kept" {
                out.push(ExpandedSpan {
                    span: text,
                    context: None,
                    code: entry.code.clone(),
                    strategy: ExpansionKind::Synthesize,
                    source: Source::Generated { generator: generator.clone(), key: key.clone() },
                });
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<(), ExpandError> {
        if self.unsaved > 0 {
            self.save()?;
        }
        Ok(())
    }

    fn details(&self) -> BTreeMap<String, usize> {
        self.tally.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_markers_quotes_and_full_stops() {
        assert_eq!(clean("1. Afib with RVR."), "Afib with RVR");
        assert_eq!(clean("  - \"new onset a-fib\" "), "new onset a-fib");
        assert_eq!(clean("(2) irregularly irregular rhythm"), "irregularly irregular rhythm");
        assert_eq!(clean("3) x"), "x");
        assert_eq!(clean("2 diabetes"), "2 diabetes");
        assert_eq!(clean("   "), "");
    }

    #[test]
    fn cache_key_changes_with_every_input() {
        let c = Code::parse("I48.91").unwrap();
        let k = cache_key("g", &c, 8, 1, "p");
        assert_eq!(k.len(), 64);
        assert_eq!(k, cache_key("g", &c, 8, 1, "p"));
        for other in [cache_key("h", &c, 8, 1, "p"), cache_key("g", &Code::parse("I48.0").unwrap(), 8, 1, "p"), cache_key("g", &c, 9, 1, "p"), cache_key("g", &c, 8, 2, "p"), cache_key("g", &c, 8, 1, "q")] {
            assert_ne!(k, other);
        }
    }
}
