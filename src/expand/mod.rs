//! Code-centric data expansion: span -> code examples over the code space,
//! including codes no training document carries (the unseen codes).
//!
//! Each `[[expansion]]` entry of an experiment names a strategy (one file
//! here each), the codes it covers and a per-code cap. [`expand`] runs them in
//! order and returns the examples with their provenance plus a report of how
//! many examples and codes (seen / unseen) each strategy contributed.
//!
//! Every random choice draws from a generator seeded by (experiment seed,
//! strategy, code), so a code's examples do not change when the coverage
//! around it does, and the same inputs give the same examples in the same
//! order. An example (span, context, code) is kept once: the first strategy
//! that writes it owns it.
//!
//! Rewriting strategies (`abbreviation`, `perturb`) use their own rule tables;
//! `paraphrase` uses the shared lexicon of the synthetic benchmark's grammar.
//! None uses its held-out lexicon, so test phrasings never leak into training.

mod abbreviation;
mod description;
mod gold_evidence;
mod hierarchy;
mod inclusion_terms;
pub mod llm;
mod paraphrase;
mod perturb;
mod silver;
mod synthesize;

pub use abbreviation::ABBREVIATIONS;
pub use synthesize::{cache_key, render_prompt, SpanWriter, CACHE_FILE};

use crate::config::{Coverage, Expansion, ExpansionKind};
use crate::data::Dataset;
use crate::icd::{Code, CodeEntry, CodeSet};
use crate::text::note_form;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error("expansion {index} ({kind}): coverage names {code}, which is not in the code table; check for a typo or a code from another release")]
    UnknownCode { index: usize, kind: ExpansionKind, code: String },
    #[error("expansion {index} ({kind}): {message}")]
    MalformedCode { index: usize, kind: ExpansionKind, message: String },
    #[error("expansion {index} ({kind}): coverage = \"pool\" needs the data's code pool, but this data source has none; use coverage = \"training_codes\", \"all\", {{ chapters = [..] }} or {{ codes = [..] }}")]
    NoPool { index: usize, kind: ExpansionKind },
    #[error("expansion {index} ({kind}): coverage = \"benchmark\" needs the data's code space, which only synthetic data has; use coverage = \"training_codes\", \"all\", {{ chapters = [..] }} or {{ codes = [..] }}")]
    NoCodeSpace { index: usize, kind: ExpansionKind },
    #[error("expansion {index} (synthesize): no span writer (LLM) was given; configure a [backbone] or remove the synthesize entry")]
    NoWriter { index: usize },
    #[error("span writer {generator} failed on {code}: {message}")]
    Writer { generator: String, code: Code, message: String },
    #[error("cannot read the synthesize cache {}: {source}; delete it to regenerate", path.display())]
    CacheRead { path: PathBuf, source: std::io::Error },
    #[error("the synthesize cache {} is corrupt ({message}); delete it to regenerate", path.display())]
    CacheCorrupt { path: PathBuf, message: String },
    #[error("cannot write the synthesize cache {}: {source}; check the folder exists and is writable", path.display())]
    CacheWrite { path: PathBuf, source: std::io::Error },
}

/// Where an expanded example came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Source {
    /// The code table entry of `code`; `detail` says which part and how it was rewritten.
    Table { code: Code, detail: String },
    /// Characters `start..end` of a training document.
    Document { id: String, start: usize, end: usize },
    /// A span writer's output; `key` is the cache fingerprint of the request.
    Generated { generator: String, key: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Table { code, detail } => write!(f, "table:{code} ({detail})"),
            Source::Document { id, start, end } => write!(f, "doc:{id}[{start}..{end}]"),
            Source::Generated { generator, key } => write!(f, "generated:{generator}#{}", &key[..12.min(key.len())]),
        }
    }
}

/// One span -> code training example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpandedSpan {
    /// The evidence text the model reads.
    pub span: String,
    /// Extra text shown beside the span (parent category, contrasted sibling, sentence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub code: Code,
    pub strategy: ExpansionKind,
    pub source: Source,
}

/// What [`expand`] reads besides the specs.
pub struct ExpandContext<'a> {
    pub codes: &'a CodeSet,
    pub dataset: &'a Dataset,
    /// The experiment seed.
    pub seed: u64,
    /// Where `synthesize` keeps its cache (`synthesize-cache.json`); `None` = no cache.
    pub cache_dir: Option<PathBuf>,
    /// The LLM behind `synthesize`; only needed for codes missing from the cache.
    pub writer: Option<&'a mut dyn SpanWriter>,
}

/// Counts of examples and of the codes they cover, split by whether training documents carry the code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub examples: usize,
    pub examples_seen: usize,
    pub examples_unseen: usize,
    pub codes: usize,
    pub codes_seen: usize,
    pub codes_unseen: usize,
}

impl Counts {
    fn of<'e>(examples: impl Iterator<Item = &'e ExpandedSpan>, seen: &BTreeSet<Code>) -> Counts {
        let mut c = Counts::default();
        let mut codes = BTreeSet::new();
        for e in examples {
            c.examples += 1;
            if seen.contains(&e.code) { c.examples_seen += 1 } else { c.examples_unseen += 1 }
            codes.insert(&e.code);
        }
        c.codes = codes.len();
        c.codes_seen = codes.iter().filter(|k| seen.contains(**k)).count();
        c.codes_unseen = c.codes - c.codes_seen;
        c
    }
}

/// One `[[expansion]]` entry's contribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyReport {
    /// Position in the experiment's `[[expansion]]` list.
    pub index: usize,
    pub kind: ExpansionKind,
    pub coverage: Coverage,
    pub per_code_cap: usize,
    /// Codes the coverage selected.
    pub codes_targeted: usize,
    /// Of those, codes no training document carries.
    pub codes_targeted_unseen: usize,
    /// Examples kept.
    #[serde(flatten)]
    pub counts: Counts,
    /// Candidates dropped because an earlier strategy (or this one) already wrote them.
    pub duplicates: usize,
    /// Candidates dropped by the per-code cap.
    pub capped: usize,
    /// Strategy-specific tallies (cache hits, matches rejected, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, usize>,
    /// Codes the coverage named that the code table does not hold (retired codes kept as
    /// labels): nothing to expand them from, so they are left out here and counted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub codes_not_in_table: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpansionReport {
    pub seed: u64,
    pub strategies: Vec<StrategyReport>,
    pub total: Counts,
}

impl ExpansionReport {
    /// A plain-text table, one row per strategy and a total.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<3} {:<16} {:>9} {:>8} {:>10} {:>6} {:>6} {:>8}\n",
            "#", "strategy", "examples", "unseen", "codes", "seen", "unseen", "targeted"
        );
        for s in &self.strategies {
            out.push_str(&format!(
                "{:<3} {:<16} {:>9} {:>8} {:>10} {:>6} {:>6} {:>8}\n",
                s.index, s.kind.as_str(), s.counts.examples, s.counts.examples_unseen, s.counts.codes, s.counts.codes_seen, s.counts.codes_unseen, s.codes_targeted
            ));
        }
        let t = &self.total;
        out.push_str(&format!(
            "{:<3} {:<16} {:>9} {:>8} {:>10} {:>6} {:>6}\n",
            "", "total", t.examples, t.examples_unseen, t.codes, t.codes_seen, t.codes_unseen
        ));
        out
    }
}

pub struct ExpansionOutput {
    pub examples: Vec<ExpandedSpan>,
    pub report: ExpansionReport,
}

/// What a strategy sees while expanding one code.
pub struct Env<'e> {
    pub codes: &'e CodeSet,
    /// The codes this entry's coverage selected.
    pub covered: &'e BTreeSet<Code>,
    pub writer: Option<&'e mut dyn SpanWriter>,
}

/// One expansion strategy, built for one `[[expansion]]` entry.
pub trait Strategy {
    /// Candidate examples for `entry`, best first; the driver de-duplicates and caps them.
    /// Examples may carry another code (a contrasted sibling); the cap is per example code.
    fn expand_code(&mut self, entry: &CodeEntry, env: &mut Env<'_>, rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError>;

    /// Called once after the last code (flush caches).
    fn finish(&mut self) -> Result<(), ExpandError> {
        Ok(())
    }

    /// Strategy-specific tallies for the report.
    fn details(&self) -> BTreeMap<String, usize> {
        BTreeMap::new()
    }
}

fn build(index: usize, spec: &Expansion, ctx: &ExpandContext<'_>) -> Result<Box<dyn Strategy>, ExpandError> {
    Ok(match spec {
        Expansion::Description(p) => Box::new(description::Description::new(p)),
        Expansion::InclusionTerms(p) => Box::new(inclusion_terms::InclusionTerms::new(p)),
        Expansion::Hierarchy(p) => Box::new(hierarchy::Hierarchy::new(p)),
        Expansion::Abbreviation(p) => Box::new(abbreviation::Abbreviation::new(p)),
        Expansion::Perturb(p) => Box::new(perturb::Perturb::new(p)),
        Expansion::Paraphrase(p) => Box::new(paraphrase::Paraphrase::new(p)),
        Expansion::Silver(p) => Box::new(silver::Silver::new(p, ctx.codes, ctx.dataset)),
        Expansion::GoldEvidence(p) => Box::new(gold_evidence::GoldEvidence::new(p, ctx.dataset)),
        Expansion::Synthesize(p) => Box::new(synthesize::Synthesize::new(index, p, ctx.cache_dir.as_deref())?),
    })
}

/// Runs the expansion specs in order over the data and code set.
pub fn expand(specs: &[Expansion], ctx: &mut ExpandContext<'_>) -> Result<ExpansionOutput, ExpandError> {
    let codes = ctx.codes;
    let seen = ctx.dataset.seen_codes();
    let mut taken: HashSet<(String, Option<String>, Code)> = HashSet::new();
    let mut examples: Vec<ExpandedSpan> = Vec::new();
    let mut reports = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let (targets, codes_not_in_table) = resolve_coverage(index, spec, codes, ctx.dataset, &seen)?;
        let covered: BTreeSet<Code> = targets.iter().map(|e| e.code.clone()).collect();
        let mut strategy = build(index, spec, ctx)?;
        let first = examples.len();
        let mut per_code: HashMap<Code, usize> = HashMap::new();
        let (mut duplicates, mut capped) = (0, 0);
        for entry in &targets {
            let mut rng = StdRng::seed_from_u64(derive_seed(ctx.seed, spec.kind().as_str(), entry.code.as_str()));
            let mut env = Env { codes, covered: &covered, writer: ctx.writer.as_deref_mut().map(|w| w as &mut dyn SpanWriter) };
            for candidate in strategy.expand_code(entry, &mut env, &mut rng)? {
                let key = (dedup_key(&candidate.span), candidate.context.clone(), candidate.code.clone());
                if taken.contains(&key) {
                    duplicates += 1;
                    continue;
                }
                let count = per_code.entry(candidate.code.clone()).or_default();
                if *count >= spec.per_code_cap() {
                    capped += 1;
                    continue;
                }
                *count += 1;
                taken.insert(key);
                examples.push(candidate);
            }
        }
        strategy.finish()?;
        reports.push(StrategyReport {
            index,
            kind: spec.kind(),
            coverage: spec.coverage().clone(),
            per_code_cap: spec.per_code_cap(),
            codes_targeted: covered.len(),
            codes_targeted_unseen: covered.iter().filter(|c| !seen.contains(*c)).count(),
            counts: Counts::of(examples[first..].iter(), &seen),
            duplicates,
            capped,
            details: strategy.details(),
            codes_not_in_table,
        });
    }
    let total = Counts::of(examples.iter(), &seen);
    Ok(ExpansionOutput { examples, report: ExpansionReport { seed: ctx.seed, strategies: reports, total } })
}

/// The codes an entry expands, sorted by code, and how many codes of the data it
/// named are not in the code table (labels kept from the data, left out here).
fn resolve_coverage<'c>(
    index: usize,
    spec: &Expansion,
    codes: &'c CodeSet,
    dataset: &Dataset,
    seen: &BTreeSet<Code>,
) -> Result<(Vec<&'c CodeEntry>, usize), ExpandError> {
    let kind = spec.kind();
    let lookup = |code: &Code| codes.get(code).ok_or_else(|| ExpandError::UnknownCode { index, kind, code: code.to_string() });
    let space = || dataset.code_space.iter().map(lookup).collect::<Result<Vec<_>, _>>();
    // Labels of the data may be codes the table lacks (retired codes, kept as labels).
    let mut not_in_table = 0;
    let mut of_data = |data_codes: &mut dyn Iterator<Item = &Code>| -> Vec<&'c CodeEntry> {
        data_codes
            .filter_map(|c| {
                let e = codes.get(c);
                not_in_table += usize::from(e.is_none());
                e
            })
            .collect()
    };
    let mut entries: Vec<&CodeEntry> = match spec.coverage() {
        Coverage::Auto if !dataset.code_space.is_empty() => space()?,
        Coverage::Auto | Coverage::TrainingCodes => of_data(&mut seen.iter()),
        Coverage::Benchmark => {
            if dataset.code_space.is_empty() {
                return Err(ExpandError::NoCodeSpace { index, kind });
            }
            space()?
        }
        Coverage::Pool => {
            if dataset.pool.is_empty() {
                return Err(ExpandError::NoPool { index, kind });
            }
            of_data(&mut dataset.pool.iter())
        }
        Coverage::All => codes.billable().collect(),
        Coverage::Chapters(chapters) => codes.billable_in_chapters(chapters),
        Coverage::Codes(raw) => {
            let mut out = Vec::new();
            for r in raw {
                let code = Code::parse(r).map_err(|e| ExpandError::MalformedCode { index, kind, message: e.to_string() })?;
                out.push(lookup(&code)?);
            }
            out
        }
    };
    entries.sort_by(|a, b| a.code.cmp(&b.code));
    entries.dedup_by(|a, b| a.code == b.code);
    Ok((entries, not_in_table))
}

/// A seed for one (strategy, code): independent of which other codes are covered.
pub fn derive_seed(seed: u64, strategy: &str, code: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(strategy.as_bytes());
    h.update([0]);
    h.update(code.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// Spans that differ only in spacing or a sentence-initial capital are the same example.
pub fn dedup_key(span: &str) -> String {
    let joined = span.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cs = joined.chars();
    match cs.next() {
        Some(first) => first.to_lowercase().chain(cs).collect(),
        None => String::new(),
    }
}

/// The description and inclusion terms as they read in a note, distinct and non-empty.
/// Returned with what each one is ("description", "inclusion term 2").
fn table_forms(entry: &CodeEntry, with_inclusion_terms: bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |form: String, what: String| {
        if !form.is_empty() && !out.iter().any(|(f, _)| f.eq_ignore_ascii_case(&form)) {
            out.push((form, what));
        }
    };
    push(note_form(&entry.description), "description".into());
    if with_inclusion_terms {
        for (i, t) in entry.inclusion_terms.iter().enumerate() {
            push(note_form(t), format!("inclusion term {}", i + 1));
        }
    }
    out
}

/// Lower-cased table forms: a rewrite equal to one of these is not new.
fn known_forms(entry: &CodeEntry) -> HashSet<String> {
    table_forms(entry, true).into_iter().map(|(f, _)| f.to_lowercase()).collect()
}

fn table_example(entry: &CodeEntry, span: String, context: Option<String>, kind: ExpansionKind, detail: String) -> ExpandedSpan {
    ExpandedSpan { span, context, code: entry.code.clone(), strategy: kind, source: Source::Table { code: entry.code.clone(), detail } }
}

/// The sentence (by `.`, `!`, `?`, `;`, line breaks) around characters `start..end` of `text`, trimmed.
fn sentence_around(text: &str, start: usize, end: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_end = |c: char| matches!(c, '.' | '!' | '?' | ';' | '\n');
    let from = chars[..start.min(chars.len())].iter().rposition(|&c| is_end(c)).map(|p| p + 1).unwrap_or(0);
    let to = chars[end.min(chars.len())..].iter().position(|&c| is_end(c)).map(|p| end + p + 1).unwrap_or(chars.len());
    chars[from..to.min(chars.len())].iter().collect::<String>().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_key_ignores_spacing_and_a_leading_capital_only() {
        assert_eq!(dedup_key("  Atrial  fibrillation "), "atrial fibrillation");
        assert_eq!(dedup_key("atrial fibrillation"), "atrial fibrillation");
        assert_ne!(dedup_key("ATRIAL FIBRILLATION"), "atrial fibrillation");
    }

    #[test]
    fn derived_seeds_differ_by_strategy_and_code_and_are_stable() {
        let a = derive_seed(17, "perturb", "E11.9");
        assert_eq!(a, derive_seed(17, "perturb", "E11.9"));
        assert_ne!(a, derive_seed(18, "perturb", "E11.9"));
        assert_ne!(a, derive_seed(17, "abbreviation", "E11.9"));
        assert_ne!(a, derive_seed(17, "perturb", "E11.8"));
    }

    #[test]
    fn sentence_around_stops_at_sentence_ends() {
        let t = "Stable. The patient presented with atrial fibrillation. Seen daily.";
        let start = t.find("atrial").unwrap();
        assert_eq!(sentence_around(t, start, start + 19), "The patient presented with atrial fibrillation.");
        assert_eq!(sentence_around("no end here", 3, 6), "no end here");
    }
}
