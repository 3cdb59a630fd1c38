//! CodiEsp and CodiEsp-X (CLEF eHealth 2020) as distributed
//! (`final_dataset_v4_to_publish/`): per split (`train`, `dev`, `test`) a folder of
//! UTF-8 text files, one per clinical case (`text_files/` in Spanish,
//! `text_files_en/` machine-translated), and tab-separated annotations without a
//! header: `<split>D.tsv` / `<split>P.tsv` (`case<TAB>code`) and `<split>X.tsv`
//! (`case<TAB>label<TAB>code<TAB>reference<TAB>"start end"`, several ranges joined
//! by `;`). Codes are written lower-case and dotted (`n44.8`); procedure codes are
//! ICD-10-PCS (`bw03zzz`), read with the builtin procedure table.

use super::source::{CodeSystem, Input, Source};
use super::{jsonl::LoadReport, slice_chars, table, DataError, Dataset, Document, EvidenceSpan, Split};
use crate::schema::Checker;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use crate::icd::{Code, CodeSet, System};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SPLITS: [(&str, Split); 3] = [("train", Split::Train), ("dev", Split::Val), ("test", Split::Test)];

/// CodiEsp / CodiEsp-X (CLEF eHealth 2020) as distributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodiespParams {
    /// The folder that holds `train/`, `dev/` and `test/` (`final_dataset_v4_to_publish`).
    pub root: PathBuf,
    /// `es` (the original, `text_files/`) or `en` (the machine translation, `text_files_en/`).
    #[serde(default = "default_codiesp_language")]
    pub language: String,
    /// Diagnosis codes (`*D.tsv`), procedure codes (`*P.tsv`) or both.
    #[serde(default)]
    pub codes: CodeSystem,
    /// Read CodiEsp-X evidence (`*X.tsv`); its positions index the Spanish text, so `language = "en"` reads none.
    #[serde(default = "default_true")]
    pub evidence: bool,
}

fn default_codiesp_language() -> String {
    "es".into()
}
fn default_true() -> bool {
    true
}

impl Source for CodiespParams {
    fn check(&self, c: &mut Checker, key: &str, base: &Path) {
        let root = base.join(&self.root);
        if c.check_inputs && root.is_dir() && (!root.join("train").is_dir() || !root.join("test").is_dir()) {
            c.fail(&format!("{key}.root"), format!("{} has no train/ and test/ folders: name the CodiEsp folder that holds train/, dev/ and test/ (final_dataset_v4_to_publish)", root.display()));
        }
        if self.language != "es" && self.language != "en" {
            c.fail(&format!("{key}.language"), format!("unknown language {:?}: use \"es\" (text_files) or \"en\" (text_files_en)", self.language));
        }
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::folder("data.root", "root", &self.root, ": name the CodiEsp folder that holds train/, dev/ and test/ (final_dataset_v4_to_publish)")]
    }

    fn load(&self, base_dir: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
        load(self, base_dir, codes)
    }

    fn origin_of(&self, split: Split) -> String {
        let folder = SPLITS.iter().find(|(_, s)| *s == split).map_or("?", |(f, _)| f);
        format!("{}", self.root.join(folder).display())
    }

    fn carries_procedures(&self) -> bool {
        self.codes != CodeSystem::Diagnosis
    }
}

/// Reads the three splits.
pub fn load(p: &CodiespParams, base: &Path, codes: &CodeSet) -> Result<(Dataset, LoadReport), DataError> {
    let root = base.join(&p.root);
    let text_folder = match p.language.as_str() {
        "es" => "text_files",
        "en" => "text_files_en",
        other => return Err(DataError::file(&root, format!("unknown language {other:?}: use \"es\" or \"en\""))),
    };
    let mut report = LoadReport::default();
    let mut docs = Vec::new();
    let with_evidence = p.evidence && p.language == "es";
    if p.evidence && p.language == "en" {
        report.notes.push("language = \"en\": CodiEsp-X positions index the Spanish texts, so no evidence spans are read".into());
    }
    for (name, split) in SPLITS {
        let dir = root.join(name);
        if !dir.is_dir() {
            if split == Split::Val {
                report.notes.push(format!("{}: no dev folder; no validation split", dir.display()));
                continue;
            }
            return Err(DataError::file(&dir, format!("no {name} folder: data.source.root names the folder holding train/, dev/ and test/ (final_dataset_v4_to_publish)")));
        }
        docs.extend(load_split(p, &dir, name, split, text_folder, with_evidence, codes, &mut report)?);
    }
    if docs.is_empty() {
        return Err(DataError::file(&root, "no documents: check the text folders and the annotation TSVs"));
    }
    let pool = super::label_space(&docs);
    Ok((Dataset { name: format!("codiesp-{}", p.language), documents: docs, pool, code_space: Vec::new() }, report))
}

#[allow(clippy::too_many_arguments)]
fn load_split(p: &CodiespParams, dir: &Path, name: &str, split: Split, text_folder: &str, with_evidence: bool, codes: &CodeSet, report: &mut LoadReport) -> Result<Vec<Document>, DataError> {
    let texts_dir = dir.join(text_folder);
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let entries = std::fs::read_dir(&texts_dir).map_err(|e| DataError::file(&texts_dir, format!("cannot list the text files: {e}")))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::file(&texts_dir, format!("cannot list: {e}")))?.path();
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| DataError::file(&path, format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            DataError::file(&path, format!("not UTF-8 (invalid byte at {}): CodiEsp texts are UTF-8; re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8", e.utf8_error().valid_up_to()))
        })?;
        let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        texts.insert(id, text);
    }

    let mut gold: BTreeMap<String, BTreeSet<Code>> = BTreeMap::new();
    let tables: &[(&str, &str)] = match p.codes {
        CodeSystem::Diagnosis => &[("D", "diagnosis")],
        CodeSystem::Procedure => &[("P", "procedure")],
        CodeSystem::Both => &[("D", "diagnosis"), ("P", "procedure")],
    };
    for (letter, _) in tables {
        let path = dir.join(format!("{name}{letter}.tsv"));
        let system = if *letter == "P" { System::Pcs } else { System::Cm };
        for (line, row) in table::read_tsv(&path)?.into_iter().enumerate() {
            let [case, code] = row.as_slice() else {
                return Err(DataError::file(&path, format!("line {}: expected 2 tab-separated fields (case id, code), found {}", line + 1, row.len())));
            };
            let entry = gold.entry(case.trim().to_string()).or_default();
            let kept = super::gold_codes([code.as_str()], |_| Some(system), codes, report).map_err(|e| DataError::file(&path, format!("line {}: {e}", line + 1)))?;
            entry.extend(kept);
        }
    }

    let mut evidence: BTreeMap<String, BTreeSet<EvidenceSpan>> = BTreeMap::new();
    if with_evidence {
        let path = dir.join(format!("{name}X.tsv"));
        let wanted: Vec<&str> = tables.iter().map(|(l, _)| if *l == "D" { "DIAGNOSTICO" } else { "PROCEDIMIENTO" }).collect();
        for (line, row) in table::read_tsv(&path)?.into_iter().enumerate() {
            let x = parse_x_row(&row).map_err(|m| DataError::file(&path, format!("line {}: {m}", line + 1)))?;
            if !wanted.contains(&x.label.as_str()) {
                continue;
            }
            // Codes outside the table were counted once, from the D/P file.
            let system = if x.label == "PROCEDIMIENTO" { System::Pcs } else { System::Cm };
            let Ok(code) = Code::parse_in(system, &x.code).or_else(|_| codes.resolve(&x.code)) else {
                return Err(DataError::file(&path, format!("line {}: malformed code {:?}", line + 1, x.code)));
            };
            let at = format!("{}:{} case {} code {}", path.display(), line + 1, x.case, x.code);
            let Some(text) = texts.get(&x.case) else {
                report.skip(&format!("evidence for a case with no text file in {}", texts_dir.display()), at);
                continue;
            };
            if !gold.get(&x.case).is_some_and(|g| g.contains(&code)) {
                report.skip(&format!("evidence for a code that {name}D.tsv / {name}P.tsv do not give the case"), at);
                continue;
            }
            let mut pieces = Vec::new();
            for &(start, end) in &x.ranges {
                match slice_chars(text, start, end) {
                    Some(s) if end > start => pieces.push((start, end, s.to_string())),
                    _ => report.out_of_range_evidence.push(format!("{at} at {start}..{end}: outside the text ({} characters)", text.chars().count())),
                }
            }
            let matches = match pieces.as_slice() {
                [(_, _, only)] => *only == x.reference,
                many => many.iter().all(|(_, _, s)| x.reference.contains(s.as_str())),
            };
            if !pieces.is_empty() && !matches {
                report.mismatched_evidence.push(at);
            }
            let spans = evidence.entry(x.case.clone()).or_default();
            for (start, end, s) in pieces {
                spans.insert(EvidenceSpan::new(code.clone(), start, end, s));
            }
        }
    }

    for case in gold.keys().filter(|c| !texts.contains_key(*c)) {
        report.skip(&format!("annotated case with no text file in {}", texts_dir.display()), case.clone());
    }
    let mut docs = Vec::new();
    for (id, text) in texts {
        let codes: Vec<Code> = gold.remove(&id).unwrap_or_default().into_iter().collect();
        if text.trim().is_empty() {
            report.skip("empty text", id);
            continue;
        }
        if codes.is_empty() {
            report.skip("no gold code", id);
            continue;
        }
        let mut spans: Vec<EvidenceSpan> = evidence.remove(&id).unwrap_or_default().into_iter().collect();
        spans.sort_by(|a, b| (a.start, a.end, &a.code).cmp(&(b.start, b.end, &b.code)));
        docs.push(Document { id, split, text, codes, evidence: spans });
    }
    Ok(docs)
}

/// One CodiEsp-X line.
#[derive(Debug, PartialEq)]
struct XRow {
    case: String,
    label: String,
    code: String,
    reference: String,
    ranges: Vec<(usize, usize)>,
}

/// Reads a CodiEsp-X row. The distributed order is `case, label, code, reference, position`;
/// the position field is found by its shape, so files with it elsewhere read too.
fn parse_x_row(row: &[String]) -> Result<XRow, String> {
    if row.len() != 5 {
        return Err(format!("expected 5 tab-separated fields (case, label, code, reference, position), found {}", row.len()));
    }
    let label_at = row.iter().position(|f| matches!(f.trim(), "DIAGNOSTICO" | "PROCEDIMIENTO")).ok_or("no label field (DIAGNOSTICO or PROCEDIMIENTO)")?;
    let position_at = (1..5).find(|&i| i != label_at && parse_ranges(&row[i]).is_some()).ok_or("no position field (\"start end\", ranges joined by ';')")?;
    let rest: Vec<usize> = (1..5).filter(|&i| i != label_at && i != position_at).collect();
    let (code_at, reference_at) = match rest.as_slice() {
        [a, b] => (*a, *b),
        _ => return Err("cannot tell the code from the reference text".into()),
    };
    Ok(XRow {
        case: row[0].trim().to_string(),
        label: row[label_at].trim().to_string(),
        code: row[code_at].trim().to_string(),
        reference: row[reference_at].clone(),
        ranges: parse_ranges(&row[position_at]).unwrap_or_default(),
    })
}

/// `"12 20"` or `"12 20;25 31"` -> ranges.
fn parse_ranges(s: &str) -> Option<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    for part in s.trim().split(';') {
        let mut nums = part.split_whitespace().map(|n| n.parse::<usize>());
        let (Some(Ok(a)), Some(Ok(b)), None) = (nums.next(), nums.next(), nums.next()) else { return None };
        out.push((a, b));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn reads_x_rows_in_either_field_order() {
        let want = XRow { case: "S1".into(), label: "DIAGNOSTICO".into(), code: "n44.8".into(), reference: "dolor testicular".into(), ranges: vec![(10, 15), (20, 30)] };
        assert_eq!(parse_x_row(&row(&["S1", "DIAGNOSTICO", "n44.8", "dolor testicular", "10 15;20 30"])), Ok(want));
        let moved = parse_x_row(&row(&["S1", "10 15", "PROCEDIMIENTO", "bw03zzz", "rx"])).map(|x| (x.code, x.ranges));
        assert_eq!(moved, Ok(("bw03zzz".to_string(), vec![(10, 15)])));
        assert!(parse_x_row(&row(&["S1", "DIAGNOSTICO", "n44.8", "dolor"])).is_err());
        assert_eq!(parse_ranges("1 2;3"), None);
    }
}
