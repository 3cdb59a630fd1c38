//! MIMIC-III and MIMIC-IV (ICD-9 or ICD-10) in the layout of Edin et al. 2023
//! ("Automated Medical Coding on MIMIC-III and MIMIC-IV: A Critical Review and
//! Replicability Study"): a prepared table (`mimiciv_icd10.feather`: `_id`,
//! `text`, `target`, `icd10_diag`, `icd10_proc`, ...) and a split table
//! (`mimiciv_icd10_split.feather`: `_id`, `split`), read as they are: diagnosis codes
//! in their `reformat_icd10` form (`I10.`, `E11.9`), procedure codes undotted (`0BH17EZ`),
//! text as their `TextPreprocessor` left it, or the original notes joined by `note_id`.

use super::source::{CodeSystem, Input, Source};
use super::{gold_codes, jsonl::LoadReport, table, DataError, Dataset, Document, Split};
use crate::schema::Checker;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use crate::icd::{Code, CodeSet, System};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// A table prepared by the scripts of Edin et al. 2023 (`mimiciv_icd10.feather`,
/// `mimiciv_icd10_split.feather`); column names default to theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimicParams {
    /// The prepared table: `.feather` / `.arrow` (Arrow IPC), `.parquet` or `.csv`.
    pub table: PathBuf,
    /// The split table: id -> `train` / `val` / `test` (feather, parquet or CSV).
    pub splits: PathBuf,
    /// Document id column, in both tables.
    #[serde(default = "default_mimic_id_column")]
    pub id_column: String,
    #[serde(default = "default_mimic_text_column")]
    pub text_column: String,
    /// Diagnoses + procedures (a list of codes), used when `codes = "both"`.
    #[serde(default = "default_mimic_target_column")]
    pub target_column: String,
    /// Diagnosis code list column; default: the one column whose name ends in `_diag` (`icd10_diag`, `icd9_diag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis_column: Option<String>,
    /// Procedure code list column; default: the one column whose name ends in `_proc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure_column: Option<String>,
    /// Split column of the split table.
    #[serde(default = "default_mimic_split_column")]
    pub split_column: String,
    /// Which codes are gold; default `both`, Edin et al.'s `target` (diagnoses + procedures),
    /// which the published MIMIC-IV figures use.
    #[serde(default = "default_mimic_codes")]
    pub codes: CodeSystem,
    /// Drop codes carried by fewer documents than this, counted over all splits as Edin et al. do (0 = keep all).
    #[serde(default)]
    pub min_code_frequency: usize,
    /// Keep only the first this many whitespace words of each document (0 = whole text).
    #[serde(default)]
    pub max_words: usize,
    /// Keep at most this many documents per split, drawn with `seed`, stratified by the rarest code's frequency (0 = all).
    #[serde(default)]
    pub sample: usize,
    #[serde(default = "default_source_seed")]
    pub seed: u64,
    /// MDACE evidence to train beside the table: its training-split notes (with their spans,
    /// for `gold_evidence`) join the training documents; its val/test notes are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdace: Option<super::mdace::MdaceParams>,
    /// With `mdace`: MDACE's test charts become the `evidence` split (their validation
    /// charts stay out), so `eval.splits = ["test", "evidence"]` scores the run's model on
    /// MIMIC-IV's test notes and on MDACE's coder-annotated test charts, evidence included.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub score_mdace_test: bool,
    /// MIMIC-IV-Note `discharge.csv.gz` (or .csv / .parquet): when set, each document's text is
    /// the original note joined by `note_id`, instead of the table's pre-processed text
    /// (lower-cased, no punctuation, no digits). The default keeps the pre-processed text,
    /// which published figures use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<PathBuf>,
    /// The note id column, in the table and in `notes`.
    #[serde(default = "default_note_id_column")]
    pub note_id_column: String,
}

fn default_note_id_column() -> String {
    "note_id".into()
}

fn default_mimic_codes() -> CodeSystem {
    CodeSystem::Both
}
fn default_mimic_id_column() -> String {
    "_id".into()
}
fn default_mimic_text_column() -> String {
    "text".into()
}
fn default_mimic_target_column() -> String {
    "target".into()
}
fn default_mimic_split_column() -> String {
    "split".into()
}
fn default_source_seed() -> u64 {
    2026
}


impl Source for MimicParams {
    fn check(&self, c: &mut Checker, key: &str, base: &Path) {
        if let Some(m) = &self.mdace {
            m.check(c, &format!("{key}.mdace"), base);
        }
        if self.score_mdace_test && self.mdace.is_none() {
            c.fail(&format!("{key}.score_mdace_test"), "the evidence split is MDACE's test charts: add a [data.source.mdace] table");
        }
        for (k, v) in [("id_column", &self.id_column), ("text_column", &self.text_column), ("target_column", &self.target_column), ("split_column", &self.split_column)] {
            if v.trim().is_empty() {
                c.fail(&format!("{key}.{k}"), "name a column of the table");
            }
        }
    }

    fn inputs(&self) -> Vec<Input> {
        let mut inputs = vec![Input::file("data.table", "table", &self.table), Input::file("data.splits", "splits", &self.splits)];
        if let Some(n) = &self.notes {
            inputs.push(Input::file("data.notes", "notes", n));
        }
        if let Some(m) = &self.mdace {
            inputs.extend(m.inputs().into_iter().map(|i| Input { key: format!("mdace.{}", i.key), ..i }));
        }
        inputs
    }

    fn load(&self, base_dir: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
        load(self, base_dir, codes)
    }

    fn origin_of(&self, split: Split) -> String {
        if split == Split::Evidence {
            return match (&self.mdace, self.score_mdace_test) {
                (Some(m), true) => format!("{} (MDACE's test charts)", m.test_ids.display()),
                _ => "data.source.score_mdace_test (not set: MDACE's test charts are the evidence split)".into(),
            };
        }
        format!("{} (split column {:?} of {})", self.table.display(), self.split_column, self.splits.display())
            + &format!(", no {split} rows")
    }

    fn carries_procedures(&self) -> bool {
        self.codes != CodeSystem::Diagnosis
    }
}

/// How a code string of the table's code column is read.
fn system_of(codes: CodeSystem) -> fn(&str) -> Option<System> {
    match codes {
        CodeSystem::Diagnosis => |_| Some(System::Cm),
        CodeSystem::Procedure => |_| Some(System::Pcs),
        // Edin et al.'s `target`: diagnoses are written with a dot (`I10.`, `E11.9`),
        // procedures without (`0BH17EZ`, `B2111ZZ`).
        CodeSystem::Both => |raw| if raw.contains('.') { Some(System::Cm) } else { Some(System::Pcs) },
    }
}

/// Reads the table and its splits into documents with gold codes (no evidence). Only the
/// columns used are read from disk; every gold code is kept (codes the table does not know
/// are counted by reason), and a malformed code is an error naming the row and value.
pub fn load(p: &MimicParams, base: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
    let table_path = base.join(&p.table);
    let split_path = base.join(&p.splits);
    let columns = table::schema_names(&table_path)?;
    let code_column = |given: &Option<String>, suffix: &str, what: &str| -> Result<String, DataError> {
        if let Some(c) = given {
            return Ok(c.clone());
        }
        let found: Vec<&String> = columns.iter().filter(|c| c.ends_with(suffix)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(DataError::file(&table_path, format!("no {what} code column (a column ending in {suffix:?}; columns: {}); set data.source.{what}_column", columns.join(", ")))),
            many => Err(DataError::file(&table_path, format!("several {what} code columns ({}); set data.source.{what}_column", many.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")))),
        }
    };
    let code_col = match p.codes {
        CodeSystem::Diagnosis => code_column(&p.diagnosis_column, "_diag", "diagnosis")?,
        CodeSystem::Procedure => code_column(&p.procedure_column, "_proc", "procedure")?,
        CodeSystem::Both => p.target_column.clone(),
    };
    let text_col = if p.notes.is_some() { &p.note_id_column } else { &p.text_column };
    let df = table::read(&table_path, Some(&[p.id_column.as_str(), text_col.as_str(), code_col.as_str()]))?;
    let ids = table::strings(&df, &p.id_column, &table_path)?;
    let mut texts = table::strings(&df, text_col, &table_path)?;
    let raw_codes = table::code_lists(&df, &code_col, &table_path)?;
    drop(df);
    let mut report = LoadReport::default();
    if let Some(notes) = &p.notes {
        // Original notes by note_id, in place of the pre-processed text.
        let notes_path = base.join(notes);
        let wanted: HashSet<String> = texts.iter().flatten().cloned().collect();
        let by_id = table::texts_by_id(&notes_path, &p.note_id_column, "text", &wanted)?;
        let mut absent = 0;
        for t in texts.iter_mut() {
            let original = t.as_ref().and_then(|id| by_id.get(id)).cloned();
            absent += usize::from(original.is_none());
            *t = original;
        }
        report.notes.push(format!("text: original notes from {} joined by {} ({} of {} rows found)", notes_path.display(), p.note_id_column, texts.len() - absent, texts.len()));
    }

    let split_df = table::read(&split_path, Some(&[p.id_column.as_str(), p.split_column.as_str()]))?;
    let split_ids = table::strings(&split_df, &p.id_column, &split_path)?;
    let split_names = table::strings(&split_df, &p.split_column, &split_path)?;
    let mut split_of: HashMap<String, Split> = HashMap::new();
    for (row, (id, name)) in split_ids.into_iter().zip(split_names).enumerate() {
        let (Some(id), Some(name)) = (id, name) else {
            return Err(DataError::file(&split_path, format!("row {}: empty id or split; every row needs both", row + 1)));
        };
        let split = Split::parse(name.trim()).ok_or_else(|| DataError::file(&split_path, format!("row {}: unknown split {name:?}: use train, val or test", row + 1)))?;
        if let Some(before) = split_of.insert(id.clone(), split) {
            if before != split {
                return Err(DataError::file(&split_path, format!("id {id} is in both {before} and {split}; each id belongs to one split")));
            }
        }
    }

    let mut seen_ids = HashSet::new();
    let mut docs: Vec<Document> = Vec::new();
    let system = system_of(p.codes);
    for (row, ((id, text), raw)) in ids.into_iter().zip(texts).zip(raw_codes).enumerate() {
        let Some(id) = id else {
            report.skip(&format!("no id in column {:?}", p.id_column), "(null)");
            continue;
        };
        if !seen_ids.insert(id.clone()) {
            report.skip("duplicate id (the first row is kept)", id);
            continue;
        }
        let Some(&split) = split_of.get(&id) else {
            report.skip(&format!("not in the split file {}", split_path.display()), id);
            continue;
        };
        let text = text.unwrap_or_default();
        if text.trim().is_empty() {
            report.skip(if p.notes.is_some() { "no original note for its note_id, or an empty one" } else { "empty text" }, id);
            continue;
        }
        let codes = gold_codes(raw.iter().map(String::as_str), system, codes, &mut report)
            .map_err(|e| DataError::file(&table_path, format!("row {} (id {id}), column {code_col:?}: {e}", row + 1)))?;
        docs.push(Document { id, split, text, codes, evidence: Vec::new() });
    }
    let mut missing: Vec<&String> = split_of.keys().filter(|id| !seen_ids.contains(*id)).collect();
    missing.sort();
    for id in missing {
        report.skip(&format!("in the split file but not in {}", table_path.display()), id.clone());
    }

    if p.min_code_frequency > 1 {
        remove_rare_codes(&mut docs, p.min_code_frequency, &mut report);
    }
    let mut kept = Vec::with_capacity(docs.len());
    for d in docs {
        if d.codes.is_empty() {
            report.skip("no gold code (an empty code list, or all below min_code_frequency)", d.id);
        } else {
            kept.push(d);
        }
    }
    let mut docs = kept;
    if p.max_words > 0 {
        let mut truncated = 0;
        for d in &mut docs {
            if let Some(prefix) = truncate_words(&d.text, p.max_words) {
                d.text = prefix.to_string();
                truncated += 1;
            }
        }
        if truncated > 0 {
            report.notes.push(format!("max_words = {}: {truncated} documents truncated to their first {} words", p.max_words, p.max_words));
        }
    }
    if p.sample > 0 {
        docs = sample(docs, p.sample, p.seed);
    }
    if docs.is_empty() {
        return Err(DataError::file(&table_path, "no documents left to use: check the split file and the code columns"));
    }
    let mut name = p.table.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "mimic".into());
    if let Some(m) = &p.mdace {
        let (evidence, r) = super::mdace::load(m, base, codes)?;
        report.merge(r);
        let (train, other): (Vec<Document>, Vec<Document>) = evidence.documents.into_iter().partition(|d| d.split == Split::Train);
        let (test, other): (Vec<Document>, Vec<Document>) = other.into_iter().partition(|d| d.split == Split::Test && p.score_mdace_test);
        if !other.is_empty() {
            let what = if p.score_mdace_test { "val" } else { "val/test" };
            report.notes.push(format!(
                "data.source.mdace: {} MDACE {what} notes left out (scores stay on {name}; score_mdace_test = true makes the test charts the `evidence` split)",
                other.len()
            ));
        }
        docs.extend(train.into_iter().map(|d| Document { id: format!("mdace-{}", d.id), ..d }));
        docs.extend(test.into_iter().map(|d| Document { id: format!("mdace-{}", d.id), split: Split::Evidence, ..d }));
        name.push_str("+mdace");
    }
    docs.sort_by_key(|d| d.split);
    let pool = super::label_space(&docs);
    Ok((Dataset { name, documents: docs, pool, code_space: Vec::new() }, report))
}

/// Drops codes carried by fewer than `min` documents (over all splits, as Edin et al. do).
fn remove_rare_codes(docs: &mut [Document], min: usize, report: &mut LoadReport) {
    let mut freq: HashMap<Code, usize> = HashMap::new();
    for d in docs.iter() {
        for c in &d.codes {
            *freq.entry(c.clone()).or_default() += 1;
        }
    }
    let rare: HashSet<&Code> = freq.iter().filter(|(_, &n)| n < min).map(|(c, _)| c).collect();
    if rare.is_empty() {
        return;
    }
    let occurrences: usize = rare.iter().map(|c| freq[*c]).sum();
    report.notes.push(format!("min_code_frequency = {min}: {} codes ({occurrences} occurrences) removed", rare.len()));
    for d in docs.iter_mut() {
        d.codes.retain(|c| !rare.contains(c));
    }
}

/// The text up to the end of its `n`-th whitespace word, or `None` when it has no more than `n` words.
pub fn truncate_words(text: &str, n: usize) -> Option<&str> {
    let mut words = 0;
    let mut in_word = false;
    for (i, ch) in text.char_indices() {
        if ch.is_whitespace() {
            if in_word {
                words += 1;
                in_word = false;
                if words == n && text[i..].chars().any(|c| !c.is_whitespace()) {
                    return Some(&text[..i]);
                }
            }
        } else {
            in_word = true;
        }
    }
    None
}

/// At most `n` documents per split, seeded. Documents are grouped by the frequency (power of
/// two) of their rarest code and each group keeps its share, so the long tail keeps its weight.
fn sample(docs: Vec<Document>, n: usize, seed: u64) -> Vec<Document> {
    let mut freq: HashMap<&Code, usize> = HashMap::new();
    for d in &docs {
        for c in &d.codes {
            *freq.entry(c).or_default() += 1;
        }
    }
    let mut keep = vec![false; docs.len()];
    for (k, split) in Split::ALL.iter().enumerate() {
        let mut strata: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, d) in docs.iter().enumerate().filter(|(_, d)| d.split == *split) {
            let rarest = d.codes.iter().map(|c| freq.get(c).copied().unwrap_or(1)).min().unwrap_or(1);
            strata.entry(rarest.max(1).ilog2()).or_default().push(i);
        }
        let total: usize = strata.values().map(Vec::len).sum();
        if total <= n {
            for i in strata.values().flatten() {
                keep[*i] = true;
            }
            continue;
        }
        // Largest-remainder shares of n, by stratum size.
        let mut shares: Vec<(u32, usize, usize)> = strata.iter().map(|(s, v)| (*s, v.len() * n / total, (v.len() * n) % total)).collect();
        let mut left = n - shares.iter().map(|s| s.1).sum::<usize>();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|&a, &b| shares[b].2.cmp(&shares[a].2).then(shares[a].0.cmp(&shares[b].0)));
        for i in order {
            if left == 0 {
                break;
            }
            shares[i].1 += 1;
            left -= 1;
        }
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(k as u64));
        for (stratum, take, _) in shares {
            let Some(members) = strata.get_mut(&stratum) else { continue };
            members.shuffle(&mut rng);
            for i in members.iter().take(take) {
                keep[*i] = true;
            }
        }
    }
    docs.into_iter().zip(keep).filter(|(_, k)| *k).map(|(d, _)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_after_the_nth_word() {
        assert_eq!(truncate_words("a bb  ccc\ndd", 2), Some("a bb"));
        assert_eq!(truncate_words("a bb ccc", 3), None);
        assert_eq!(truncate_words("a bb ccc  ", 3), None);
        assert_eq!(truncate_words("é ü ö", 1), Some("é"));
    }
}
