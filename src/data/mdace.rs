//! MDACE (Cheng et al., ACL 2023): code evidence annotated by professional coders on
//! MIMIC-III notes. One JSON per chart,
//! `{hadm_id, notes: [{note_id, category, annotations: [{begin, end, code, code_system, ...}]}]}`,
//! whose `begin`/`end` are character offsets into the NOTEEVENTS `TEXT` of `note_id`
//! (NOTEEVENTS `ROW_ID`). Each kept note is one document; its gold codes are the
//! codes annotated in it, its evidence the annotated spans. Splits are lists of
//! hadm_ids (MDACE's `splits/Inpatient/MDace-ev-{train,val,test}.csv`).

use super::source::{Input, Source};
use super::{jsonl::LoadReport, slice_chars, table, DataError, Dataset, Document, EvidenceSpan, Split};
use crate::icd::{CodeSet, System};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// MDACE (Cheng et al. 2023) as distributed: one JSON per chart, note text from MIMIC-III.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdaceParams {
    /// Folder of chart JSON files, searched recursively (e.g. `MDACE/data/Inpatient/ICD-10/1.0`).
    pub annotations: PathBuf,
    /// MIMIC-III NOTEEVENTS (`.csv`, `.csv.gz` or `.parquet`; ROW_ID is the note id, TEXT the text).
    /// May be left out when the JSON files carry note text (the output of MDACE's `inject-note-text.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<PathBuf>,
    /// Admission ids (hadm_id), one per line, of each split (MDACE's `splits/Inpatient/MDace-ev-*.csv`).
    pub train_ids: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_ids: Option<PathBuf>,
    pub test_ids: PathBuf,
    /// Note categories to keep, compared without case (empty = every annotated note).
    #[serde(default = "default_mdace_categories")]
    pub categories: Vec<String>,
}

fn default_mdace_categories() -> Vec<String> {
    vec!["Discharge summary".into()]
}


impl Source for MdaceParams {
    fn inputs(&self) -> Vec<Input> {
        let mut inputs = vec![Input::folder(
            "data.mdace.annotations",
            "annotations",
            &self.annotations,
            ": name the folder of MDACE chart JSON files (e.g. MDACE/data/Inpatient/ICD-10/1.0)",
        )];
        if let Some(n) = &self.notes {
            inputs.push(Input::file("data.mdace.notes", "notes", n));
        }
        inputs.push(Input::file("data.mdace.train_ids", "train_ids", &self.train_ids));
        if let Some(v) = &self.val_ids {
            inputs.push(Input::file("data.mdace.val_ids", "val_ids", v));
        }
        inputs.push(Input::file("data.mdace.test_ids", "test_ids", &self.test_ids));
        inputs
    }

    fn load(&self, base_dir: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
        load(self, base_dir, codes)
    }

    fn origin_of(&self, split: Split) -> String {
        let ids = match split {
            Split::Train => Some(&self.train_ids),
            Split::Val => self.val_ids.as_ref(),
            Split::Test | Split::Evidence => Some(&self.test_ids),
        };
        match ids {
            Some(ids) => format!("{} (no annotated {} note of its admissions in {})", ids.display(), self.categories.join(" / "), self.annotations.display()),
            None => "data.source.val_ids (not set)".to_string(),
        }
    }

    fn carries_procedures(&self) -> bool {
        true
    }
}

#[derive(Debug, Deserialize)]
struct Chart {
    hadm_id: Id,
    #[serde(default)]
    notes: Vec<Note>,
}

#[derive(Debug, Deserialize)]
struct Note {
    note_id: Id,
    #[serde(default)]
    category: String,
    /// Present in the output of MDACE's `inject-note-text.py`.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    annotations: Vec<Annotation>,
}

#[derive(Debug, Deserialize)]
struct Annotation {
    begin: i64,
    end: i64,
    code: String,
    /// "ICD-10-CM" or "ICD-10-PCS" in MDACE's files.
    #[serde(default)]
    code_system: Option<String>,
    /// Present in the output of `inject-note-text.py`: the text at `begin..end`.
    #[serde(default)]
    covered_text: Option<String>,
}

/// Ids are numbers in MDACE's files; strings are accepted too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Id {
    Number(u64),
    Text(String),
}

impl Id {
    fn key(&self) -> String {
        match self {
            Id::Number(n) => n.to_string(),
            Id::Text(s) => s.trim().to_string(),
        }
    }
}

/// Reads the charts of the split files, their notes' text, and their evidence.
pub fn load(p: &MdaceParams, base: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
    let mut report = LoadReport::default();
    let mut split_of: HashMap<String, Split> = HashMap::new();
    let files = [(Split::Train, Some(&p.train_ids)), (Split::Val, p.val_ids.as_ref()), (Split::Test, Some(&p.test_ids))];
    for (split, file) in files {
        let Some(file) = file else { continue };
        let path = base.join(file);
        for id in read_ids(&path)? {
            if let Some(before) = split_of.insert(id.clone(), split) {
                if before != split {
                    return Err(DataError::file(&path, format!("hadm_id {id} is also in the {before} split file; each admission belongs to one split")));
                }
            }
        }
    }

    let dir = base.join(&p.annotations);
    if !dir.is_dir() {
        return Err(DataError::file(&dir, "not a folder: data.source.annotations names the folder of MDACE chart JSON files (e.g. MDACE/data/Inpatient/ICD-10/1.0)"));
    }
    let mut json_files = Vec::new();
    collect_json(&dir, &mut json_files)?;
    json_files.sort();
    let categories: Vec<String> = p.categories.iter().map(|c| c.trim().to_lowercase()).collect();
    let mut charts: Vec<(PathBuf, String, Split, Chart)> = Vec::new();
    let mut found = HashSet::new();
    let mut other_category = 0;
    for path in json_files {
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::file(&path, format!("cannot read: {e}")))?;
        let mut chart: Chart = serde_json::from_str(&text).map_err(|e| DataError::file(&path, format!("not an MDACE chart ({{hadm_id, notes: [..]}}): {e}")))?;
        let hadm = chart.hadm_id.key();
        let Some(&split) = split_of.get(&hadm) else {
            report.skip("chart in no split file", hadm);
            continue;
        };
        if !found.insert(hadm.clone()) {
            return Err(DataError::file(&path, format!("hadm_id {hadm} has a second chart file; keep one per admission")));
        }
        let before = chart.notes.len();
        chart.notes.retain(|n| categories.is_empty() || categories.contains(&n.category.trim().to_lowercase()));
        other_category += before - chart.notes.len();
        charts.push((path, hadm, split, chart));
    }
    let mut missing: Vec<&String> = split_of.keys().filter(|id| !found.contains(*id)).collect();
    missing.sort();
    for id in missing {
        report.skip(&format!("hadm_id in a split file but no chart JSON under {}", dir.display()), id.clone());
    }
    if other_category > 0 {
        report.notes.push(format!("categories = {:?}: {other_category} notes of other categories left out", p.categories));
    }

    let texts = note_texts(p, base, &charts)?;
    let mut docs = Vec::new();
    for (path, hadm, split, chart) in charts {
        for note in chart.notes {
            let note_id = note.note_id.key();
            let doc_id = format!("{hadm}_{note_id}");
            let Some(text) = note.text.or_else(|| texts.get(&note_id).cloned()) else {
                return Err(DataError::file(&path, format!("chart {hadm} note {note_id} has no text: set data.source.notes to MIMIC-III NOTEEVENTS")));
            };
            if text.trim().is_empty() {
                report.skip("empty note text", doc_id);
                continue;
            }
            let n_chars = text.chars().count();
            let mut gold = BTreeSet::new();
            let mut evidence = BTreeSet::new();
            for a in note.annotations {
                let system = a.code_system.as_deref().map(|s| if s.to_ascii_uppercase().contains("PCS") { System::Pcs } else { System::Cm });
                let code = super::gold_codes([a.code.as_str()], |_| system, codes, &mut report)
                    .map_err(|e| DataError::file(&path, format!("chart {hadm} note {note_id}: {e}")))?
                    .remove(0);
                gold.insert(code.clone());
                let at = format!("chart {hadm} note {note_id} ({}) code {} at {}..{}", path.display(), a.code, a.begin, a.end);
                if a.begin < 0 || a.end <= a.begin {
                    report.out_of_range_evidence.push(format!("{at}: empty or reversed span"));
                    continue;
                }
                let (start, end) = (a.begin as usize, a.end as usize);
                let Some(actual) = slice_chars(&text, start, end) else {
                    report.out_of_range_evidence.push(format!("{at}: past the end of the text ({n_chars} characters)"));
                    continue;
                };
                if a.covered_text.as_deref().is_some_and(|t| t != actual) {
                    report.mismatched_evidence.push(at);
                }
                evidence.insert(EvidenceSpan::new(code, start, end, actual.to_string()));
            }
            if gold.is_empty() {
                report.skip("no code among the note's annotations", doc_id);
                continue;
            }
            let mut evidence: Vec<EvidenceSpan> = evidence.into_iter().collect();
            evidence.sort_by(|a, b| (a.start, a.end, &a.code).cmp(&(b.start, b.end, &b.code)));
            docs.push(Document { id: doc_id, split, text, codes: gold.into_iter().collect(), evidence });
        }
    }
    if docs.is_empty() {
        return Err(DataError::file(&dir, "no documents: check the split files, the note categories and that the charts carry ICD-10-CM annotations"));
    }
    docs.sort_by_key(|d| d.split);
    let pool = super::label_space(&docs);
    Ok((Dataset { name: "mdace".into(), documents: docs, pool, code_space: Vec::new() }, report))
}

/// Ids, one per line; a first line that is not a number (a header such as `hadm_id`) is skipped.
fn read_ids(path: &Path) -> Result<Vec<String>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::file(path, format!("cannot read: {e}; data.source names one file of hadm_ids per split")))?;
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let id = line.split(',').next().unwrap_or("").trim().trim_matches('"');
        if id.is_empty() {
            continue;
        }
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            if i == 0 {
                continue;
            }
            return Err(DataError::file(path, format!("line {}: {id:?} is not a hadm_id; write one admission id per line", i + 1)));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(DataError::file(path, "no hadm_ids: write one admission id per line"));
    }
    Ok(ids)
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::file(dir, format!("cannot list: {e}")))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::file(dir, format!("cannot list: {e}")))?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// NOTEEVENTS texts of the notes that do not carry their own, by ROW_ID.
fn note_texts(p: &MdaceParams, base: &Path, charts: &[(PathBuf, String, Split, Chart)]) -> Result<HashMap<String, String>, DataError> {
    let wanted: HashSet<String> = charts.iter().flat_map(|c| c.3.notes.iter()).filter(|n| n.text.is_none()).map(|n| n.note_id.key()).collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let Some(notes) = &p.notes else {
        let first = charts.iter().find(|c| c.3.notes.iter().any(|n| n.text.is_none()));
        let (path, hadm) = first.map(|c| (c.0.as_path(), c.1.as_str())).unwrap_or((Path::new("."), "?"));
        return Err(DataError::file(path, format!("chart {hadm}: the notes carry no text; set data.source.notes to MIMIC-III NOTEEVENTS (.csv, .csv.gz or .parquet)")));
    };
    let path = base.join(notes);
    let out = table::texts_by_id(&path, "ROW_ID", "TEXT", &wanted)?;
    let mut absent: Vec<&String> = wanted.iter().filter(|id| !out.contains_key(*id)).collect();
    if !absent.is_empty() {
        absent.sort();
        let some: Vec<&str> = absent.iter().take(3).map(|s| s.as_str()).collect();
        return Err(DataError::file(&path, format!("{} annotated notes are not in this file (ROW_ID {}): supply the full MIMIC-III NOTEEVENTS", absent.len(), some.join(", "))));
    }
    Ok(out)
}
