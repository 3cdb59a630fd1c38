//! Real data-set layouts (MIMIC in the Edin et al. layout, MDACE, CodiEsp / CodiEsp-X),
//! mimicked exactly by small files written here, loaded through the experiment config.

use assert_cmd::Command;
use icdbench::data::jsonl::LoadReport;
use icdbench::data::{self, Dataset, Document, Split};
use icdbench::icd::Code;
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Writes `experiment.toml` with the given `[data.source]` body and loads its data.
fn experiment(dir: &Path, source: &str) -> PathBuf {
    let path = dir.join("experiment.toml");
    let text = format!("[experiment]\nname = \"fixture\"\n\n[data.source]\n{source}\n\n[[baselines]]\nkind = \"dictionary\"\n");
    std::fs::write(&path, text).unwrap();
    path
}

fn load(path: &Path) -> Result<(Dataset, LoadReport), String> {
    let exp = icdbench::config::load_experiment(path).map_err(|e| e.to_string())?;
    let base = path.parent().unwrap();
    let codes = data::code_table(&exp.data, base).map_err(|e| e.to_string())?;
    data::load(&exp.data, base, &codes).map_err(|e| e.to_string())
}

fn doc<'a>(d: &'a Dataset, id: &str) -> &'a Document {
    d.documents.iter().find(|x| x.id == id).unwrap_or_else(|| panic!("no document {id}"))
}

fn codes(list: &[&str]) -> Vec<Code> {
    list.iter().map(|c| Code::parse(c).unwrap()).collect()
}

fn code_set(list: &[&str]) -> BTreeSet<Code> {
    codes(list).into_iter().collect()
}

fn counts(d: &Dataset) -> [usize; 3] {
    [d.count(Split::Train), d.count(Split::Val), d.count(Split::Test)]
}

/// Character offset of `needle` in `text` (what Python's `str.index` gives).
fn char_at(text: &str, needle: &str) -> usize {
    let byte = text.find(needle).unwrap();
    text[..byte].chars().count()
}

// ---------------------------------------------------------------- MIMIC (Edin et al.)

fn list(name: &str, rows: &[&[&str]]) -> Column {
    let series: Vec<Series> = rows.iter().map(|r| if r.is_empty() { Series::new_empty("".into(), &DataType::String) } else { Series::new("".into(), r.to_vec()) }).collect();
    Series::new(name.into(), series).into()
}

const T101: &str = "patient admitted with type 2 diabetes and hypertension. underwent laparoscopic cholecystectomy.";

/// The texts of [`mimic_fixture`]'s rows 101–108.
const MIMIC_TEXTS: [&str; 8] = [T101, "pneumonia and hypertension", "diabetes hypertension hyperlipidemia", "hypertension", "hypertension and reflux", "fever in a diabetic", "", "hypertension"];

/// `mimiciv_icd10.feather` as `prepare_mimiciv.py` writes it, and its split file.
fn mimic_fixture(dir: &Path, ext: &str) -> (PathBuf, PathBuf) {
    mimic_fixture_texts(dir, ext, MIMIC_TEXTS)
}

/// [`mimic_fixture`] with other texts (rows 101–108; 101–103 train, 104 val, 105–107 test).
fn mimic_fixture_texts(dir: &Path, ext: &str, texts: [&str; 8]) -> (PathBuf, PathBuf) {
    let ids = vec![101i64, 102, 103, 104, 105, 106, 107, 108];
    let texts = texts.to_vec();
    let diag: &[&[&str]] = &[&["E11.9", "I10"], &["I10", "J18.9"], &["E11.9", "I10", "E78.5"], &["I10"], &["I10", "K21.9"], &["R50.9", "E11.9"], &["I10"], &["I10"]];
    let proc: &[&[&str]] = &[&["0FT44ZZ"], &[], &[], &[], &["5A1935Z"], &[], &[], &[]];
    let target: Vec<Vec<&str>> = diag.iter().zip(proc).map(|(d, p)| p.iter().chain(d.iter()).copied().collect()).collect();
    let target: Vec<&[&str]> = target.iter().map(|t| t.as_slice()).collect();
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("_id".into(), ids.clone()).into(),
        Series::new("subject_id".into(), vec![1i64, 1, 2, 3, 4, 5, 6, 7]).into(),
        Series::new("text".into(), texts).into(),
        list("icd10_proc", proc),
        list("icd10_diag", diag),
        list("target", &target),
        Series::new("num_words".into(), vec![12i64, 4, 3, 1, 3, 4, 0, 1]).into(),
    ])
    .unwrap();
    // 108 is in no split; 999 is a split id with no document.
    let mut splits = DataFrame::new_infer_height(vec![
        Series::new("_id".into(), vec![101i64, 102, 103, 104, 105, 106, 107, 999]).into(),
        Series::new("split".into(), vec!["train", "train", "train", "val", "test", "test", "test", "train"]).into(),
    ])
    .unwrap();
    let table = dir.join(format!("mimiciv_icd10.{ext}"));
    let split = dir.join(format!("mimiciv_icd10_split.{ext}"));
    for (path, df) in [(&table, &mut df), (&split, &mut splits)] {
        let mut f = std::fs::File::create(path).unwrap();
        match ext {
            "feather" => IpcWriter::new(&mut f).finish(df).unwrap(),
            _ => {
                ParquetWriter::new(&mut f).finish(df).unwrap();
            }
        }
    }
    (table, split)
}

#[test]
fn mimic_feather_reads_splits_codes_and_the_unseen_partition() {
    let dir = tempfile::tempdir().unwrap();
    mimic_fixture(dir.path(), "feather");
    let exp = experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\ncodes = \"diagnosis\"");
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [3, 1, 2]);
    assert_eq!(d.name, "mimiciv_icd10");
    assert_eq!(doc(&d, "101").codes, codes(&["E11.9", "I10"]));
    assert_eq!(doc(&d, "101").text, T101);
    assert_eq!(doc(&d, "106").codes, codes(&["E11.9", "R50.9"]));
    assert_eq!(doc(&d, "104").split, Split::Val);
    assert!(d.documents.iter().all(|x| x.evidence.is_empty()));
    assert_eq!(d.seen_codes(), code_set(&["E11.9", "E78.5", "I10", "J18.9"]));
    assert_eq!(d.unseen_codes(Split::Test), code_set(&["K21.9", "R50.9"]));
    // Diagnoses only: procedure codes are not read, so none is unknown.
    assert!(report.unknown_codes.is_empty());
    assert_eq!(report.skipped["empty text"], vec!["107"]);
    let not_in_split: Vec<&Vec<String>> = report.skipped.iter().filter(|(k, _)| k.starts_with("not in the split file")).map(|(_, v)| v).collect();
    assert_eq!(not_in_split, vec![&vec!["108".to_string()]]);
    let no_doc: Vec<&Vec<String>> = report.skipped.iter().filter(|(k, _)| k.starts_with("in the split file but not in")).map(|(_, v)| v).collect();
    assert_eq!(no_doc, vec![&vec!["999".to_string()]]);
    assert!(report.summary().contains("1 left out: empty text (e.g. 107)"), "{}", report.summary());
}

#[test]
fn mimic_both_code_systems_read_target_with_the_procedure_table() {
    let dir = tempfile::tempdir().unwrap();
    mimic_fixture(dir.path(), "feather");
    // `both` is the default: Edin et al.'s target, diagnoses + procedures.
    let exp = experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"");
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [3, 1, 2]);
    assert_eq!(doc(&d, "105").codes, vec![Code::parse("5A1935Z").unwrap(), Code::parse("I10").unwrap(), Code::parse("K21.9").unwrap()]);
    assert_eq!(doc(&d, "101").codes, codes(&["0FT44ZZ", "E11.9", "I10"]));
    // Both procedure codes are in the builtin ICD-10-PCS table.
    assert!(report.unknown_codes.is_empty(), "{}", report.summary());
}

#[test]
fn mimic_parquet_applies_min_frequency_max_words_and_a_seeded_sample() {
    let dir = tempfile::tempdir().unwrap();
    mimic_fixture(dir.path(), "parquet");
    let base = "kind = \"mimic\"\ntable = \"mimiciv_icd10.parquet\"\nsplits = \"mimiciv_icd10_split.parquet\"\n";
    let exp = experiment(dir.path(), &format!("{base}codes = \"diagnosis\"\nmin_code_frequency = 2\nmax_words = 3"));
    let (d, report) = load(&exp).unwrap();
    // E78.5, J18.9, K21.9 and R50.9 occur in one document each (counted over all splits).
    assert_eq!(doc(&d, "103").codes, codes(&["E11.9", "I10"]));
    assert_eq!(doc(&d, "105").codes, codes(&["I10"]));
    assert_eq!(doc(&d, "106").codes, codes(&["E11.9"]));
    assert!(d.unseen_codes(Split::Test).is_empty());
    assert!(report.notes.iter().any(|n| n == "min_code_frequency = 2: 4 codes (4 occurrences) removed"), "{:?}", report.notes);
    assert_eq!(doc(&d, "101").text, "patient admitted with");
    assert_eq!(doc(&d, "104").text, "hypertension");
    assert!(report.notes.iter().any(|n| n == "max_words = 3: 2 documents truncated to their first 3 words"), "{:?}", report.notes);

    let exp = experiment(dir.path(), &format!("{base}sample = 1\nseed = 5"));
    let (a, _) = load(&exp).unwrap();
    let (b, _) = load(&exp).unwrap();
    assert_eq!(counts(&a), [1, 1, 1]);
    let ids = |d: &Dataset| d.documents.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
}

#[test]
fn mimic_csv_with_python_list_strings_reads_like_feather() {
    let dir = tempfile::tempdir().unwrap();
    mimic_fixture(dir.path(), "feather");
    // The same table as a CSV export: lists written as Python reprs, ids as integers.
    let csv = "_id,text,icd10_diag,icd10_proc\n101,\"a, b\",\"['E11.9', 'I10']\",[]\n104,C.,['I10'],\"['5A1935Z']\"\n105,D.,\"['I10', 'K21.9']\",[]\n";
    std::fs::write(dir.path().join("mimic.csv"), csv).unwrap();
    std::fs::write(dir.path().join("split.csv"), "_id,split\n101,train\n104,val\n105,test\n").unwrap();
    let (d, report) = load(&experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimic.csv\"\nsplits = \"split.csv\"\ncodes = \"diagnosis\"")).unwrap();
    assert_eq!(counts(&d), [1, 1, 1]);
    assert_eq!(doc(&d, "101").text, "a, b");
    assert_eq!(doc(&d, "101").codes, codes(&["E11.9", "I10"]));
    assert_eq!(d.unseen_codes(Split::Test), code_set(&["K21.9"]));
    assert!(report.is_clean(), "{}", report.summary());
}

#[test]
fn mimic_bad_files_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (table, _) = mimic_fixture(dir.path(), "feather");
    let exp = experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\ntext_column = \"TEXT\"");
    let err = load(&exp).unwrap_err();
    assert!(err.contains("mimiciv_icd10.feather: no column \"TEXT\" (columns: _id, subject_id, text,"), "{err}");
    assert_eq!(err.lines().count(), 1);

    // A split file with a split name that is not train/val/test.
    let mut bad = DataFrame::new_infer_height(vec![Series::new("_id".into(), vec![101i64]).into(), Series::new("split".into(), vec!["training"]).into()]).unwrap();
    IpcWriter::new(&mut std::fs::File::create(dir.path().join("bad_split.feather")).unwrap()).finish(&mut bad).unwrap();
    let exp = experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"bad_split.feather\"");
    let err = load(&exp).unwrap_err();
    assert!(err.ends_with("bad_split.feather: row 1: unknown split \"training\": use train, val or test"), "{err}");

    // ICD-9 codes: none is in the ICD-10-CM table, which is an error, not an empty data set.
    let mut icd9 = DataFrame::new_infer_height(vec![
        Series::new("_id".into(), vec![101i64]).into(),
        Series::new("text".into(), vec!["chf"]).into(),
        list("icd9_diag", &[&["428.0", "401.9"]]),
        list("icd9_proc", &[&["39.95"]]),
    ])
    .unwrap();
    IpcWriter::new(&mut std::fs::File::create(dir.path().join("mimiciii_clean.feather")).unwrap()).finish(&mut icd9).unwrap();
    let exp = experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimiciii_clean.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\ncodes = \"diagnosis\"");
    let err = load(&exp).unwrap_err();
    assert!(err.contains("mimiciii_clean.feather: row 1 (id 101), column \"icd9_diag\": malformed ICD-10 code \"428.0\""), "{err}");
    assert_eq!(err.lines().count(), 1);

    // Through the CLI: exit code 2 and one line naming the file.
    let exp = experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\nid_column = \"hadm_id\"");
    let out = Command::cargo_bin("icdbench").unwrap().args(["data", "stats"]).arg(&exp).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}: no column \"hadm_id\"", table.display())), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

// ---------------------------------------------------------------- MDACE

const NOTE_HEADER: &str = "\"ROW_ID\",\"SUBJECT_ID\",\"HADM_ID\",\"CHARTDATE\",\"CHARTTIME\",\"STORETIME\",\"CATEGORY\",\"DESCRIPTION\",\"CGID\",\"ISERROR\",\"TEXT\"\n";
/// A discharge summary with a quoted multi-line text, an escaped quote and a non-ASCII character before the spans.
const N25762: &str = "Admission Date:  [**2150-1-1**]\nTemp 38.5°C, \"stable\".\nBrief Hospital Course:\nRight IPH with intraventricular extension.\nDNR/DNI.\nPMH: DM2, HLD.\n";
const N3001: &str = "Discharge Diagnosis:\nType 2 diabetes mellitus.\n";
const N3002: &str = "Assessment: hypertension, GERD.\n";

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn mdace_fixture(dir: &Path) {
    let mut notes = String::from(NOTE_HEADER);
    for (row, hadm, cat, text) in [(25762, 100197, "Discharge summary", N25762), (25763, 100197, "Radiology", "CT head: hemorrhage."), (3001, 100463, "Discharge summary", N3001), (3002, 101173, "Discharge summary", N3002), (3003, 109999, "Discharge summary", "x")] {
        notes.push_str(&format!("{row},7,{hadm},2150-01-05,,,{},\"Report\",,,{}\n", csv_field(cat), csv_field(text)));
    }
    std::fs::write(dir.join("NOTEEVENTS.csv"), notes).unwrap();
    let data = dir.join("MDACE/data/Inpatient/ICD-10/1.0");
    std::fs::create_dir_all(&data).unwrap();
    let ann = |code: &str, system: &str, text: &str, needle: &str| {
        let b = char_at(text, needle);
        serde_json::json!({"begin": b, "end": b + needle.chars().count(), "code": code, "code_system": system, "description": "", "type": "Human"})
    };
    let charts = [
        serde_json::json!({"hadm_id": 100197, "comment": "", "notes": [
            {"note_id": 25762, "category": "Discharge summary", "description": "Report", "annotations": [
                ann("I61.8", "ICD-10-CM", N25762, "Right IPH"),
                ann("I61.5", "ICD-10-CM", N25762, "intraventricular extension"),
                ann("Z66", "ICD-10-CM", N25762, "DNR"),
                ann("E11.9", "ICD-10-CM", N25762, "DM2"),
                ann("5A1935Z", "ICD-10-PCS", N25762, "stable"),
                {"begin": 5000, "end": 5010, "code": "E78.5", "code_system": "ICD-10-CM", "description": "", "type": "Human"}
            ]},
            {"note_id": 25763, "category": "Radiology", "description": "CT", "annotations": [{"begin": 9, "end": 19, "code": "I61.9", "code_system": "ICD-10-CM", "description": "", "type": "Human"}]}
        ]}),
        serde_json::json!({"hadm_id": 100463, "comment": "", "notes": [{"note_id": 3001, "category": "Discharge summary", "description": "Report", "annotations": [ann("E11.9", "ICD-10-CM", N3001, "Type 2 diabetes mellitus")]}]}),
        serde_json::json!({"hadm_id": 101173, "comment": "", "notes": [{"note_id": 3002, "category": "Discharge summary", "description": "Report", "annotations": [ann("I10", "ICD-10-CM", N3002, "hypertension"), ann("K21.9", "ICD-10-CM", N3002, "GERD")]}]}),
        serde_json::json!({"hadm_id": 109999, "comment": "", "notes": [{"note_id": 3003, "category": "Discharge summary", "description": "Report", "annotations": [{"begin": 0, "end": 1, "code": "R52", "code_system": "ICD-10-CM", "description": "", "type": "Human"}]}]}),
    ];
    for c in &charts {
        std::fs::write(data.join(format!("{}-ICD-10.json", c["hadm_id"])), serde_json::to_string(c).unwrap()).unwrap();
    }
    let splits = dir.join("MDACE/splits/Inpatient");
    std::fs::create_dir_all(&splits).unwrap();
    std::fs::write(splits.join("MDace-ev-train.csv"), "100197\n").unwrap();
    std::fs::write(splits.join("MDace-ev-val.csv"), "100463\n").unwrap();
    // 102000 has no chart file.
    std::fs::write(splits.join("MDace-ev-test.csv"), "101173\n102000\n").unwrap();
}

const MDACE_SOURCE: &str = "kind = \"mdace\"\nannotations = \"MDACE/data/Inpatient/ICD-10/1.0\"\nnotes = \"NOTEEVENTS.csv\"\ntrain_ids = \"MDACE/splits/Inpatient/MDace-ev-train.csv\"\nval_ids = \"MDACE/splits/Inpatient/MDace-ev-val.csv\"\ntest_ids = \"MDACE/splits/Inpatient/MDace-ev-test.csv\"";

#[test]
fn mdace_joins_noteevents_and_keeps_character_offsets() {
    let dir = tempfile::tempdir().unwrap();
    mdace_fixture(dir.path());
    let (d, report) = load(&experiment(dir.path(), MDACE_SOURCE)).unwrap();
    assert_eq!(counts(&d), [1, 1, 1]);
    let ds = doc(&d, "100197_25762");
    assert_eq!(ds.text, N25762);
    // E78.5's span lies past the end of the text, but the coder coded it in this note: it stays gold.
    // 5A1935Z is an ICD-10-PCS code, read with the builtin procedure table.
    assert_eq!(ds.codes, codes(&["5A1935Z", "E11.9", "E78.5", "I61.5", "I61.8", "Z66"]));
    // The degree sign before the spans makes byte offsets differ from character offsets.
    let start = char_at(N25762, "Right IPH");
    assert_eq!(start, 78);
    assert_ne!(N25762.find("Right IPH"), Some(start));
    let spans: Vec<(String, usize, usize, &str)> = ds.evidence.iter().map(|e| (e.code.to_string(), e.start, e.end, e.text.as_str())).collect();
    assert_eq!(
        spans,
        vec![
            ("5A1935Z".to_string(), 46, 52, "stable"),
            ("I61.8".to_string(), 78, 87, "Right IPH"),
            ("I61.5".to_string(), 93, 119, "intraventricular extension"),
            ("Z66".to_string(), 121, 124, "DNR"),
            ("E11.9".to_string(), 135, 138, "DM2"),
        ]
    );
    // Every code is in the tables; the span past the end is reported with its chart and note.
    assert!(report.unknown_codes.is_empty(), "{}", report.summary());
    assert_eq!(report.out_of_range_evidence.len(), 1);
    assert!(report.out_of_range_evidence[0].starts_with("chart 100197 note 25762 ("), "{}", report.out_of_range_evidence[0]);
    assert!(report.out_of_range_evidence[0].ends_with("code E78.5 at 5000..5010: past the end of the text (145 characters)"), "{}", report.out_of_range_evidence[0]);
    assert_eq!(report.skipped["chart in no split file"], vec!["109999"]);
    assert!(report.skipped.iter().any(|(k, v)| k.starts_with("hadm_id in a split file but no chart JSON") && v == &vec!["102000".to_string()]));
    assert!(report.notes.iter().any(|n| n.contains("1 notes of other categories left out")), "{:?}", report.notes);
    assert_eq!(d.unseen_codes(Split::Test), code_set(&["I10", "K21.9"]));
    assert_eq!(doc(&d, "101173_3002").evidence.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(), vec!["hypertension", "GERD"]);

    // NOTEEVENTS.csv.gz as PhysioNet ships it reads the same.
    let plain = std::fs::read(dir.path().join("NOTEEVENTS.csv")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    std::fs::write(dir.path().join("NOTEEVENTS.csv.gz"), gz.finish().unwrap()).unwrap();
    let (again, _) = load(&experiment(dir.path(), &MDACE_SOURCE.replace("NOTEEVENTS.csv", "NOTEEVENTS.csv.gz"))).unwrap();
    assert_eq!(again.documents, d.documents);
}

#[test]
fn mimic_with_mdace_adds_the_mdace_training_notes_and_their_evidence() {
    let dir = tempfile::tempdir().unwrap();
    mimic_fixture(dir.path(), "feather");
    mdace_fixture(dir.path());
    let mdace = MDACE_SOURCE.replace("kind = \"mdace\"\n", "");
    let exp = experiment(dir.path(), &format!("kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\ncodes = \"diagnosis\"\n\n[data.source.mdace]\n{mdace}"));
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [4, 1, 2]);
    assert_eq!(d.name, "mimiciv_icd10+mdace");
    let note = doc(&d, "mdace-100197_25762");
    assert_eq!((note.split, note.evidence.len(), note.evidence[1].start, note.evidence[1].text.as_str()), (Split::Train, 5, 78, "Right IPH"));
    assert!(report.notes.iter().any(|n| n.starts_with("data.source.mdace: 2 MDACE val/test notes left out")), "{:?}", report.notes);
    // The label space is every code a training or validation document carries (never a code only
    // test documents carry); MDACE's codes join the seen codes.
    assert_eq!(d.pool, codes(&["5A1935Z", "E11.9", "E78.5", "I10", "I61.5", "I61.8", "J18.9", "Z66"]));
    assert!(d.seen_codes().contains(&Code::parse("I61.8").unwrap()));
    assert_eq!(d.unseen_codes(Split::Test), code_set(&["K21.9", "R50.9"]));
}

#[test]
fn an_mdace_training_note_that_a_mimic_test_note_repeats_is_found_and_left_out() {
    // The same stay in both: MIMIC-IV's test row 105 holds MDACE training note 25762 as
    // Edin et al.'s preparation writes text (lower case, no punctuation, no standalone numbers).
    let dir = tempfile::tempdir().unwrap();
    let (prepared, _) = icdbench::data::preprocess::edin(N25762);
    let mut texts = MIMIC_TEXTS;
    texts[4] = &prepared;
    mimic_fixture_texts(dir.path(), "feather", texts);
    mdace_fixture(dir.path());
    let mdace = MDACE_SOURCE.replace("kind = \"mdace\"\n", "");
    let source = format!("kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\ncodes = \"diagnosis\"\n\n[data.source.mdace]\n{mdace}");
    let exp = experiment(dir.path(), &source);
    let (d, report) = load(&exp).unwrap();
    // Left out before training: 3 MIMIC training notes remain, the MDACE one is gone with its evidence.
    assert_eq!(counts(&d), [3, 1, 2]);
    assert!(d.documents.iter().all(|x| !x.id.starts_with("mdace-")));
    let leak = report.leakage.as_ref().expect("the check ran");
    assert_eq!(leak.pairs.len(), 1, "{:?}", leak.pairs);
    assert_eq!((leak.pairs[0].0.as_str(), leak.pairs[0].1.as_str()), ("mdace-100197_25762", "105"));
    assert!(leak.pairs[0].2 > 0.95, "punctuation, case and numbers do not hide it: {}", leak.pairs[0].2);
    assert_eq!(report.skipped[icdbench::data::leakage::EXCLUDED], vec!["mdace-100197_25762".to_string()]);
    assert!(report.summary().contains("1 left out: training note near-duplicating a held-out note"), "{}", report.summary());
    // `report` keeps the note and says so; the untouched fixture has no pair.
    std::fs::write(&exp, std::fs::read_to_string(&exp).unwrap() + "\n[data.leakage]\naction = \"report\"\n").unwrap();
    let (kept, report) = load(&exp).unwrap();
    assert_eq!(counts(&kept), [4, 1, 2]);
    assert!(report.summary().contains("near-duplicates kept: 4 training notes against 3 held-out notes"), "{}", report.summary());
    let clean = tempfile::tempdir().unwrap();
    mimic_fixture(clean.path(), "feather");
    mdace_fixture(clean.path());
    let (_, report) = load(&experiment(clean.path(), &source)).unwrap();
    assert_eq!(report.leakage.map(|l| l.pairs.len()), Some(0));
}

#[test]
fn mdace_test_charts_become_the_evidence_split_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    mimic_fixture(dir.path(), "feather");
    mdace_fixture(dir.path());
    let mdace = MDACE_SOURCE.replace("kind = \"mdace\"\n", "");
    let exp = experiment(dir.path(), &format!("kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\ncodes = \"diagnosis\"\nscore_mdace_test = true\n\n[data.source.mdace]\n{mdace}"));
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [4, 1, 2], "MIMIC-IV's splits as before");
    let evidence: Vec<&Document> = d.split(Split::Evidence).collect();
    assert_eq!(evidence.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["mdace-101173_3002"]);
    assert_eq!(evidence[0].evidence.len(), 2);
    assert!(report.notes.iter().any(|n| n.starts_with("data.source.mdace: 1 MDACE val notes left out")), "{:?}", report.notes);
    // Without the MDACE block the key is refused at its line.
    let bad = experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\nscore_mdace_test = true");
    let err = load(&bad).unwrap_err();
    assert!(err.contains("[data.source.score_mdace_test]") && err.contains("add a [data.source.mdace] table"), "{err}");
}

#[test]
fn raw_mdace_notes_beside_prepared_mimic_notes_are_two_styles_until_edin_preprocess() {
    let dir = tempfile::tempdir().unwrap();
    mimic_fixture(dir.path(), "feather");
    mdace_fixture(dir.path());
    let mdace = MDACE_SOURCE.replace("kind = \"mdace\"\n", "");
    let source = format!("kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\ncodes = \"diagnosis\"\n\n[data.source.mdace]\n{mdace}");
    let exp = experiment(dir.path(), &source);
    let (_, report) = load(&exp).unwrap();
    let styles = report.text_styles.as_ref().unwrap();
    // Row 101 keeps a full stop and a standalone "2" (raw), 102 and 103 are prepared, the MDACE note is raw.
    assert_eq!(styles.splits["train"], (2, 2));
    assert_eq!((styles.splits["val"], styles.splits["test"]), ((1, 0), (2, 0)));
    assert!(report.summary().contains("notes in two text styles (test prepared, train mixed (2 prepared, 2 raw), val prepared)"), "{}", report.summary());
    // Edin et al.'s preparation for every note: one style, evidence moved with the text.
    let text = std::fs::read_to_string(&exp).unwrap().replace("[data.source]\n", "[data]\npreprocess = \"edin\"\n\n[data.source]\n");
    std::fs::write(&exp, text).unwrap();
    let (d, report) = load(&exp).unwrap();
    assert_eq!(report.text_styles.as_ref().unwrap().splits["train"], (4, 0));
    assert!(!report.summary().contains("two text styles"), "{}", report.summary());
    let note = doc(&d, "mdace-100197_25762");
    assert!(note.evidence.iter().any(|e| e.text == "right iph"), "{:?}", note.evidence);
}

#[test]
fn mdace_reads_injected_text_without_noteevents_and_checks_covered_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("with_text");
    std::fs::create_dir_all(&data).unwrap();
    let text = "Pt with HTN and fever.";
    let chart = serde_json::json!({"hadm_id": 5, "notes": [{"note_id": 9, "category": "Discharge summary", "text": text, "annotations": [
        {"begin": 8, "end": 11, "code": "I10", "code_system": "ICD-10-CM", "covered_text": "HTN"},
        {"begin": 16, "end": 21, "code": "R50.9", "code_system": "ICD-10-CM", "covered_text": "fevers"}
    ]}]});
    std::fs::write(data.join("5.json"), chart.to_string()).unwrap();
    std::fs::write(dir.path().join("train.csv"), "hadm_id\n5\n").unwrap();
    std::fs::write(dir.path().join("test.csv"), "").unwrap();
    let exp = experiment(dir.path(), "kind = \"mdace\"\nannotations = \"with_text\"\ntrain_ids = \"train.csv\"\ntest_ids = \"test.csv\"");
    // An empty split file is a clear error.
    let err = load(&exp).unwrap_err();
    assert!(err.ends_with("test.csv: no hadm_ids: write one admission id per line"), "{err}");
    std::fs::write(dir.path().join("test.csv"), "6\n").unwrap();
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [1, 0, 0]);
    assert_eq!(doc(&d, "5_9").evidence.iter().map(|e| (e.start, e.end, e.text.as_str())).collect::<Vec<_>>(), vec![(8, 11, "HTN"), (16, 21, "fever")]);
    assert_eq!(report.mismatched_evidence.len(), 1);
    assert!(report.mismatched_evidence[0].contains("chart 5 note 9") && report.mismatched_evidence[0].contains("R50.9"), "{:?}", report.mismatched_evidence);
}

#[test]
fn mdace_note_missing_from_noteevents_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    mdace_fixture(dir.path());
    std::fs::write(dir.path().join("NOTEEVENTS.csv"), format!("{NOTE_HEADER}3001,7,100463,2150-01-05,,,\"Discharge summary\",\"Report\",,,{}\n", csv_field(N3001))).unwrap();
    let err = load(&experiment(dir.path(), MDACE_SOURCE)).unwrap_err();
    assert!(err.contains("NOTEEVENTS.csv: 2 annotated notes are not in this file (ROW_ID 25762, 3002): supply the full MIMIC-III NOTEEVENTS"), "{err}");
    // A NOTEEVENTS without TEXT names the missing column.
    std::fs::write(dir.path().join("NOTEEVENTS.csv"), "\"ROW_ID\",\"HADM_ID\"\n1,2\n").unwrap();
    let err = load(&experiment(dir.path(), MDACE_SOURCE)).unwrap_err();
    assert!(err.contains("NOTEEVENTS.csv: no column \"TEXT\" (columns: ROW_ID, HADM_ID)"), "{err}");
}

// ---------------------------------------------------------------- CodiEsp / CodiEsp-X

const S1: &str = "Varón de 37 años que consulta por dolor testicular izquierdo. Se realizó ecografía escrotal.";
const S2: &str = "Mujer con diabetes mellitus de tipo 2 e hipertensión arterial.";
const S3: &str = "Paciente con hipertensión.";
const S4: &str = "Hipertensión y reflujo gastroesofágico.";
const S5: &str = "Fiebre de origen desconocido.";

fn pos(text: &str, needle: &str) -> String {
    let b = char_at(text, needle);
    format!("{} {}", b, b + needle.chars().count())
}

fn codiesp_fixture(dir: &Path) -> PathBuf {
    let root = dir.join("final_dataset_v4_to_publish");
    let cases: [(&str, &str, &[(&str, &str)]); 3] = [
        ("train", "train", &[("S0004-06142005000500011-1", S1), ("S0211-69952009000500014-1", S2)]),
        ("dev", "dev", &[("S1130-01082008000800019-1", S3)]),
        ("test", "test", &[("S0365-66912004000600008-1", S4), ("S0376-78922009000200011-1", S5)]),
    ];
    for (folder, _, docs) in cases {
        for sub in ["text_files", "text_files_en"] {
            std::fs::create_dir_all(root.join(folder).join(sub)).unwrap();
        }
        for (id, text) in docs {
            std::fs::write(root.join(folder).join("text_files").join(format!("{id}.txt")), text).unwrap();
            std::fs::write(root.join(folder).join("text_files_en").join(format!("{id}.txt")), format!("EN {text}")).unwrap();
        }
    }
    let w = |path: &str, lines: &[String]| std::fs::write(root.join(path), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let (s1, s2, s4) = ("S0004-06142005000500011-1", "S0211-69952009000500014-1", "S0365-66912004000600008-1");
    w("train/trainD.tsv", &[format!("{s1}\tn44.8"), format!("{s1}\tr52"), format!("{s2}\te11.9"), format!("{s2}\ti10")]);
    w("train/trainP.tsv", &[format!("{s1}\tbw03zzz")]);
    w(
        "train/trainX.tsv",
        &[
            format!("{s1}\tDIAGNOSTICO\tn44.8\tdolor testicular\t{}", pos(S1, "dolor testicular")),
            format!("{s1}\tPROCEDIMIENTO\tbw03zzz\tecografía escrotal\t{}", pos(S1, "ecografía escrotal")),
            // A discontinuous mention: two ranges.
            format!("{s2}\tDIAGNOSTICO\te11.9\tdiabetes mellitus tipo 2\t{};{}", pos(S2, "diabetes mellitus"), pos(S2, "tipo 2")),
            format!("{s2}\tDIAGNOSTICO\ti10\thipertensión arterial\t{}", pos(S2, "hipertensión arterial")),
        ],
    );
    w("dev/devD.tsv", &["S1130-01082008000800019-1\ti10".to_string()]);
    w("dev/devP.tsv", &[]);
    w("dev/devX.tsv", &[format!("S1130-01082008000800019-1\tDIAGNOSTICO\ti10\thipertensión\t{}", pos(S3, "hipertensión"))]);
    // The last test case has annotations but no text file.
    w("test/testD.tsv", &[format!("{s4}\ti10"), format!("{s4}\tk21.9"), "S0376-78922009000200011-1\tr50.9".to_string(), "S9999-00000000000000000-1\ti10".to_string()]);
    w("test/testP.tsv", &[]);
    w("test/testX.tsv", &[format!("{s4}\tDIAGNOSTICO\tk21.9\treflujo gastroesofágico\t{}", pos(S4, "reflujo gastroesofágico")), format!("{s4}\tDIAGNOSTICO\ti10\tHipertensión\t400 412")]);
    root
}

#[test]
fn codiesp_reads_texts_codes_and_x_evidence_by_character() {
    let dir = tempfile::tempdir().unwrap();
    codiesp_fixture(dir.path());
    let exp = experiment(dir.path(), "kind = \"codiesp\"\nroot = \"final_dataset_v4_to_publish\"");
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [2, 1, 2]);
    assert_eq!(d.name, "codiesp-es");
    let s1 = doc(&d, "S0004-06142005000500011-1");
    assert_eq!(s1.codes, codes(&["N44.8", "R52"]));
    // "Varón" and "años" precede the span: 34 characters, 36 bytes.
    assert_eq!((char_at(S1, "dolor testicular"), S1.find("dolor testicular").unwrap()), (34, 36));
    assert_eq!(s1.evidence.iter().map(|e| (e.code.to_string(), e.start, e.end, e.text.as_str())).collect::<Vec<_>>(), vec![("N44.8".to_string(), 34, 50, "dolor testicular")]);
    let s2 = doc(&d, "S0211-69952009000500014-1");
    let spans: Vec<(String, usize, usize, &str)> = s2.evidence.iter().map(|e| (e.code.to_string(), e.start, e.end, e.text.as_str())).collect();
    assert_eq!(
        spans,
        vec![("E11.9".to_string(), 10, 27, "diabetes mellitus"), ("E11.9".to_string(), 31, 37, "tipo 2"), ("I10".to_string(), 40, 61, "hipertensión arterial")]
    );
    assert!(report.mismatched_evidence.is_empty(), "{:?}", report.mismatched_evidence);
    assert!(report.unknown_codes.is_empty());
    assert_eq!(report.out_of_range_evidence.len(), 1);
    assert!(report.out_of_range_evidence[0].contains("testX.tsv:2 case S0365-66912004000600008-1 code i10 at 400..412: outside the text (39 characters)"), "{}", report.out_of_range_evidence[0]);
    assert!(report.skipped.iter().any(|(k, v)| k.starts_with("annotated case with no text file") && v == &vec!["S9999-00000000000000000-1".to_string()]));
    assert_eq!(d.unseen_codes(Split::Test), code_set(&["K21.9", "R50.9"]));
    assert_eq!(doc(&d, "S0365-66912004000600008-1").evidence.len(), 1);
}

#[test]
fn codiesp_procedures_are_read_as_pcs_and_english_texts_carry_no_evidence() {
    let dir = tempfile::tempdir().unwrap();
    codiesp_fixture(dir.path());
    let exp = experiment(dir.path(), "kind = \"codiesp\"\nroot = \"final_dataset_v4_to_publish\"\ncodes = \"both\"\nlanguage = \"en\"");
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [2, 1, 2]);
    assert!(report.unknown_codes.is_empty(), "{}", report.summary());
    assert!(d.documents.iter().any(|x| x.codes.contains(&Code::parse_pcs("BW03ZZZ").unwrap())));
    assert!(doc(&d, "S0004-06142005000500011-1").text.starts_with("EN Varón"));
    assert!(d.documents.iter().all(|x| x.evidence.is_empty()));
    assert!(report.notes.iter().any(|n| n.contains("no evidence spans are read")));
    // Procedures only: the one case with a procedure code, its evidence read with the PCS table.
    let exp = experiment(dir.path(), "kind = \"codiesp\"\nroot = \"final_dataset_v4_to_publish\"\ncodes = \"procedure\"");
    let (d, report) = load(&exp).unwrap();
    assert_eq!(d.documents.len(), 1);
    assert_eq!(d.documents[0].evidence.iter().map(|e| (e.code.as_str(), e.text.as_str())).collect::<Vec<_>>(), vec![("BW03ZZZ", "ecografía escrotal")]);
    assert_eq!(report.skipped["no gold code"].len(), 4);
}

#[test]
fn codiesp_latin1_text_and_empty_text_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = codiesp_fixture(dir.path());
    let s3 = root.join("dev/text_files/S1130-01082008000800019-1.txt");
    std::fs::write(&s3, b"Paciente con hipertensi\xf3n.").unwrap();
    let exp = experiment(dir.path(), "kind = \"codiesp\"\nroot = \"final_dataset_v4_to_publish\"");
    let err = load(&exp).unwrap_err();
    assert!(err.contains(&format!("{}: not UTF-8 (invalid byte at 23): CodiEsp texts are UTF-8", s3.display())), "{err}");
    std::fs::write(&s3, "  \n").unwrap();
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [2, 0, 2]);
    assert_eq!(report.skipped["empty text"], vec!["S1130-01082008000800019-1"]);
}

// ---------------------------------------------------------------- data stats

#[test]
fn data_stats_counts_the_mimic_fixture_and_draws_a_png() {
    let dir = tempfile::tempdir().unwrap();
    mimic_fixture(dir.path(), "feather");
    let exp = experiment(dir.path(), "kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\ncodes = \"diagnosis\"");
    let (d, _) = load(&exp).unwrap();
    let s = icdbench::report::data_stats::compute(&d);
    let docs: Vec<(Split, usize)> = s.splits.iter().map(|x| (x.split, x.documents)).collect();
    assert_eq!(docs, vec![(Split::Train, 3), (Split::Val, 1), (Split::Test, 2)]);
    let test = &s.splits[2];
    assert_eq!((test.unseen_codes, test.unseen_occurrences, test.occurrences, test.distinct_codes), (2, 2, 4, 4));
    assert_eq!((s.splits[0].words.min, s.splits[0].words.max, s.splits[0].words.median), (3, 11, 3));
    assert_eq!(s.train_frequency[0], (Code::parse("I10").unwrap(), 3));
    let tail: Vec<(&str, usize)> = s.tail.iter().map(|b| (b.band.as_str(), b.codes)).collect();
    assert_eq!(tail, vec![("0 (unseen)", 2), ("1", 2), ("2-4", 2), ("5-9", 0), ("10-49", 0), ("50-99", 0), ("100+", 0)]);

    let png = dir.path().join("card.png");
    let out = Command::cargo_bin("icdbench").unwrap().args(["data", "stats"]).arg(&exp).arg("--plot").arg(&png).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| test  | 2         |"), "{stdout}");
    assert!(stdout.contains("2 (50.0% of occurrences)"), "{stdout}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 20_000, "{} bytes", bytes.len());
}

#[test]
fn data_stats_counts_evidence_spans_per_code() {
    let dir = tempfile::tempdir().unwrap();
    codiesp_fixture(dir.path());
    let (d, _) = load(&experiment(dir.path(), "kind = \"codiesp\"\nroot = \"final_dataset_v4_to_publish\"")).unwrap();
    let s = icdbench::report::data_stats::compute(&d);
    // N44.8 1, E11.9 2 (two ranges), I10 2 (train, dev), K21.9 1.
    assert_eq!(s.codes_with_evidence, 4);
    assert_eq!((s.spans_per_code.min, s.spans_per_code.max, s.spans_per_code.median), (1, 2, 1));
    assert_eq!(s.splits.iter().map(|x| x.evidence_spans).collect::<Vec<_>>(), vec![4, 1, 1]);
}

// ---------------------------------------------------------------- paper configs

#[test]
fn paper_configs_plan_without_the_data_and_name_what_is_missing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/paper");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let results = tempfile::tempdir().unwrap();
    for f in &files {
        let out = Command::cargo_bin("icdbench").unwrap().arg("plan").arg(f).arg("--results").arg(results.path()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {}{}", f.display(), stdout, String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("Missing inputs"), "{stdout}");
        for key in ["data.source.table:", "data.source.splits:", "backbone.name:"] {
            assert!(stdout.contains(key), "{}: {key} not named in\n{stdout}", f.display());
        }
        // Every span-centric arm names its token budget; the headline one is a fifth of document SFT's.
        assert!(stdout.contains("mixed 0.50 (20% of the tokens of document_only)"), "{stdout}");
        if f.ends_with("mimiciv-mdace-span-vs-document.toml") {
            for arm in ["document_only", "mixed 0.50 (tokens of document_only)", "span_only (20% of the tokens of document_only)", "prior", "dictionary", "fuzzy", "tfidf", "laat"] {
                assert!(stdout.contains(arm), "{arm} not planned in\n{stdout}");
            }
        }
        // `run` still refuses, naming the missing file.
        let run = Command::cargo_bin("icdbench").unwrap().arg("run").arg(f).arg("--results").arg(results.path()).output().unwrap();
        assert_eq!(run.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&run.stderr).contains("[data.source.table] file"), "{}", String::from_utf8_lossy(&run.stderr));
    }
}

// ---------------------------------------------------------------- MIMIC-IV as Edin et al.'s scripts write it

/// The committed fixture made by `scripts/fixtures/make_mimic_fixture.sh` (pandas `to_feather`,
/// lz4; codes through `reformat_icd10`; text through their `TextPreprocessor` steps). The
/// figures asserted here are the hand-checkable ones in tests/fixtures/mimic/README.md.
fn edin_fixture(dir: &Path, extra: &str) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mimic");
    for f in ["mimiciv_icd10.feather", "mimiciv_icd10_split.feather", "discharge.csv.gz"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    // The loader's tests keep every row: the near-duplicate check reports, and its own test below excludes.
    experiment(dir, &format!("kind = \"mimic\"\ntable = \"mimiciv_icd10.feather\"\nsplits = \"mimiciv_icd10_split.feather\"\n{extra}\n\n[data.leakage]\naction = \"report\""))
}

#[test]
fn the_edin_fixture_holds_one_near_duplicate_pair_and_the_default_leaves_its_training_note_out() {
    // The fixture's notes come from templates: training note 21010026 repeats most of test-side
    // note 26232093 (estimated Jaccard 0.86 over word 5-shingles).
    let dir = tempfile::tempdir().unwrap();
    let exp = edin_fixture(dir.path(), "");
    let (_, report) = load(&exp).unwrap();
    let leak = report.leakage.unwrap();
    assert_eq!((leak.training_notes, leak.held_out_notes), (47, 20));
    assert_eq!(leak.pairs.iter().map(|p| (p.0.as_str(), p.1.as_str())).collect::<Vec<_>>(), vec![("21010026", "26232093")]);
    assert!((0.8..0.9).contains(&leak.pairs[0].2), "{}", leak.pairs[0].2);
    assert!(leak.excluded.is_empty());
    std::fs::write(&exp, std::fs::read_to_string(&exp).unwrap().replace("action = \"report\"", "action = \"exclude\"")).unwrap();
    let (d, report) = load(&exp).unwrap();
    assert_eq!(counts(&d), [46, 7, 13]);
    assert_eq!(report.leakage.unwrap().excluded, vec!["21010026".to_string()]);
}

fn occurrences(d: &Dataset) -> usize {
    d.documents.iter().map(|x| x.codes.len()).sum()
}

#[test]
fn edin_fixture_loads_with_no_gold_code_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (d, report) = load(&edin_fixture(dir.path(), "")).unwrap();
    // 67 rows: 47 / 7 / 13; every one of the 385 target codes is a label (30 distinct: 23 diagnoses, 7 procedures).
    assert_eq!(counts(&d), [47, 7, 13]);
    assert_eq!(occurrences(&d), 385);
    let distinct: BTreeSet<&Code> = d.documents.iter().flat_map(|x| x.codes.iter()).collect();
    assert_eq!(distinct.len(), 30);
    assert_eq!(distinct.iter().filter(|c| c.system() == icdbench::icd::System::Pcs).count(), 7);
    // The trailing-dot 3-character codes read as I10, Z66, D62.
    let rows_with = |c: &str| d.documents.iter().filter(|x| x.codes.contains(&Code::parse(c).unwrap())).count();
    assert_eq!((rows_with("I10"), rows_with("Z66"), rows_with("D62")), (40, 11, 10));
    // A letter-section procedure code (imaging) is ICD-10-PCS, not a dotless diagnosis.
    let pcs_rows = |c: &str| d.documents.iter().filter(|x| x.codes.contains(&Code::parse_pcs(c).unwrap())).count();
    assert_eq!((pcs_rows("B2111ZZ"), pcs_rows("BW28ZZZ")), (10, 10));
    assert_eq!(rows_with("B2111ZZ"), 0, "read without its system, B2111ZZ is the diagnosis-shaped B21.11ZZ");
    assert!(distinct.contains(&Code::parse_pcs("B2111ZZ").unwrap()));
    // The retired codes stay labels and are counted by reason; nothing else is unknown.
    assert_eq!(report.unknown_codes.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), vec![("S30.1XXA", 10), ("T81.32XA", 10)]);
    assert_eq!(report.unknown_reasons.len(), 1);
    assert!(report.unknown_reasons.keys().next().unwrap().starts_with("ICD-10-CM code not in the table"));
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let row0 = doc(&d, "29061900");
    assert_eq!(row0.split, Split::Train);
    assert_eq!(row0.codes, codes(&["0BH17EZ", "E78.5", "I10", "J18.9", "J96.01", "N17.9"]));
    assert!(row0.text.starts_with("name unit no admission date discharge date date of birth sex f service medicine"));
    // The data card: documents and code occurrences per split add up to the file's.
    let s = icdbench::report::data_stats::compute(&d);
    assert_eq!(s.splits.iter().map(|x| x.documents).sum::<usize>(), 67);
    assert_eq!(s.splits.iter().map(|x| x.occurrences).sum::<usize>(), 385);
    // The label space holds no code that only test documents carry.
    let train_val: BTreeSet<&Code> = d.documents.iter().filter(|x| x.split != Split::Test).flat_map(|x| x.codes.iter()).collect();
    assert_eq!(d.pool.iter().collect::<BTreeSet<_>>(), train_val);
}

#[test]
fn edin_fixture_diagnosis_only_and_original_notes() {
    let dir = tempfile::tempdir().unwrap();
    let (d, report) = load(&edin_fixture(dir.path(), "codes = \"diagnosis\"")).unwrap();
    // 314 diagnosis codes; the one admission with procedures only has no gold code left and is counted.
    assert_eq!(occurrences(&d), 314);
    assert_eq!(d.documents.len(), 66);
    assert!(d.documents.iter().all(|x| x.codes.iter().all(|c| c.system() == icdbench::icd::System::Cm)));
    assert_eq!(report.skipped.values().flatten().collect::<Vec<_>>(), vec!["24677799"]);

    // The original notes joined by note_id: punctuation, case and digits are back.
    let (raw, report) = load(&edin_fixture(dir.path(), "notes = \"discharge.csv.gz\"")).unwrap();
    assert_eq!(counts(&raw), [47, 7, 13]);
    assert_eq!(occurrences(&raw), 385);
    let row0 = doc(&raw, "29061900");
    assert!(row0.text.contains("Chief Complaint:\nShortness of breath, fever"), "{}", &row0.text[..200]);
    assert!(report.notes.iter().any(|n| n.contains("joined by note_id (67 of 67 rows found)")), "{:?}", report.notes);
}

#[test]
fn procedure_codes_look_up_on_the_command_line() {
    let out = Command::cargo_bin("icdbench").unwrap().args(["data", "code", "0BH17EZ", "b2111zz", "I10."]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0BH17EZ  Insertion of Endotracheal Airway into Trachea, Via Natural or Artificial Opening"), "{stdout}");
    assert!(stdout.contains("block: 0BH  chapter: 100 Medical and Surgical"), "{stdout}");
    assert!(stdout.contains("B2111ZZ  "), "{stdout}");
    assert!(stdout.contains("I10  Essential (primary) hypertension"), "{stdout}");
    let bad = Command::cargo_bin("icdbench").unwrap().args(["data", "code", "0BH17E"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn report_places_published_figures_beside_runs_of_the_same_target_only() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let exp = edin_fixture(dir.path(), "[sweep]\n\"data.source.codes\" = [\"both\", \"diagnosis\"]");
    let run = Command::cargo_bin("icdbench").unwrap().arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let out = dir.path().join("report");
    let rep = Command::cargo_bin("icdbench").unwrap().arg("report").arg(&exp).arg("--results").arg(&results).arg("--out").arg(&out).output().unwrap();
    assert!(rep.status.success(), "{}", String::from_utf8_lossy(&rep.stderr));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    let paper = &md[md.find("## Paper says").expect("a published-figures section")..];
    // Diagnoses + procedures: PLM-ICD's 58.5 beside the run with codes = "both" only.
    let both = &paper[paper.find("target `diagnoses+procedures`").expect("the both-target block")..];
    let both = &both[..both.find("\n\n\n").unwrap_or(both.len())];
    assert!(both.contains("| paper says  | PLM-ICD ") && both.contains("| 58.5 "), "{both}");
    assert!(both.contains("codes=\"both\"") && !both.contains("codes=\"diagnosis\""), "{both}");
    // Diagnosis-only runs get no published figure beside them, and the report says why.
    assert!(paper.contains("Data set `mimic`, target diagnoses: no published figure scores this target"), "{paper}");
    assert!(!paper.contains("ICDAGENT"), "a figure whose target is not stated is placed beside nothing: {paper}");
}

#[test]
fn long_notes_without_evidence_are_truncated_never_windowed() {
    // experiments/mimic-fixture.toml: every training note is longer than its 320-token training
    // length and carries no evidence; training reads each one's beginning with all its codes.
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/mimic-fixture.toml");
    let run = Command::cargo_bin("icdbench").unwrap().arg("run").arg(&exp).arg("--results").arg(&results).arg("--quiet").output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let mut truncated = Vec::new();
    for entry in std::fs::read_dir(results.join("mimic-fixture")).unwrap() {
        let log = std::fs::read_to_string(entry.unwrap().path().join("run.log")).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("long documents:")) {
            truncated.push(line.split("long documents: ").nth(1).unwrap().to_string());
            assert!(log.contains("examples: ") && log.contains(" document windows (0 truncated"), "{log}");
            // One text style: the table's notes are prepared, and so are the description spans.
            assert!(log.contains("spans written as data.preprocess = \"edin\" writes notes (0 left as written"), "{log}");
            assert!(log.contains("leakage: ") && log.contains("(most similar: 21010026 ~ 26232093, 0.86); 1 training notes left out"), "{log}");
            // Test notes are read as training read them, and what neither read is counted.
            assert!(log.contains("test: notes read by their first window: ") && log.contains(" 13 notes cut"), "{log}");
            assert!(!log.contains("test notes are read whole in windows"), "{log}");
        }
    }
    truncated.sort();
    // Diagnoses only: 46 notes (one has procedures only); diagnoses + procedures: all 47; each
    // less the training note that near-duplicates a held-out note (left out by data.leakage).
    assert_eq!(truncated.len(), 2, "{truncated:?}");
    assert!(truncated[0].starts_with("45 truncated to their first 160 tokens") && truncated[1].starts_with("46 truncated to their first 160 tokens"), "{truncated:?}");
}

// ---------------------------------------------------------------- the paper configs, end to end

/// `experiments/paper/` as committed, pointed at the fixtures: the committed Edin-layout
/// MIMIC-IV table and an MDACE chart set with its NOTEEVENTS, the tiny backbone in place of
/// Llama-3.1-8B, a short training, and table spans over the pool in place of every billable
/// code (`coverage = "all"` expands ~150,000 codes). Everything else — arms, budgets, span
/// weights, text style, leakage check, reading policy, derived answer budget, baselines —
/// is the committed files'.
#[test]
fn the_paper_configs_run_end_to_end_on_the_fixtures() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let paper = root.path().join("experiments/paper");
    std::fs::create_dir_all(data.join("mimiciv_icd10")).unwrap();
    std::fs::create_dir_all(paper.join("shared")).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mimic");
    for f in ["mimiciv_icd10.feather", "mimiciv_icd10_split.feather"] {
        std::fs::copy(fixture.join(f), data.join("mimiciv_icd10").join(f)).unwrap();
    }
    mdace_fixture(&data);
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/paper");
    let shared = std::fs::read_to_string(committed.join("shared/mimiciv-mdace.toml")).unwrap();
    let train_at = shared.find("\n[train]\n").unwrap();
    let eval_at = shared.find("\n[eval]\n").unwrap();
    let shared = format!(
        "{}\n[train]\nepochs = 1.0\nbatch_size = 8\nlr = 3e-3\nwarmup_steps = 2\nmax_length = 320\ncheckpoint_every = 50\n{}",
        &shared[..train_at],
        &shared[eval_at..]
    )
    .replace("name = \"../../data/Meta-Llama-3.1-8B-Instruct\"\ndevice = \"auto\"", "name = \"tiny\"\ndevice = \"cpu\"\ntiny = { layers = 2, hidden = 64, heads = 2, kv_heads = 1, intermediate = 128, vocab = 1000 }")
    .replace("../../data/mimiciii/NOTEEVENTS.csv.gz", "../../data/NOTEEVENTS.csv")
    .replace("bootstrap_samples = 1000", "bootstrap_samples = 50");
    assert!(shared.contains("name = \"tiny\"") && shared.contains("NOTEEVENTS.csv\""), "{shared}");
    std::fs::write(paper.join("shared/mimiciv-mdace.toml"), shared).unwrap();
    let mut files = Vec::new();
    for name in ["mimiciv-mdace-span-vs-document.toml", "mimiciv-mdace-expansion-ablation.toml"] {
        let text = std::fs::read_to_string(committed.join(name)).unwrap().replace("coverage = \"all\"", "coverage = \"pool\"");
        std::fs::write(paper.join(name), text).unwrap();
        files.push(paper.join(name));
    }
    let results = root.path().join("results");
    for f in &files {
        let run = Command::cargo_bin("icdbench").unwrap().arg("run").arg(f).arg("--results").arg(&results).arg("--quiet").output().unwrap();
        assert!(run.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&run.stderr));
    }

    // The table: every arm and baseline, beside the published figures of the same target.
    let summary = std::fs::read_to_string(results.join("paper-span-vs-document/summary.md")).unwrap();
    for row in ["[arm=document_sft]", "[arm=span_centric_equal_cost]", "[arm=span_centric_20pct]", "[arm=span_only_20pct]", "| prior ", "| dictionary ", "| fuzzy ", "| tfidf ", "| laat "] {
        assert!(summary.contains(row), "{row} missing from\n{summary}");
    }
    for column in ["unseen codes / notes", "answers cut", "train tokens (span/doc)"] {
        assert!(summary.contains(column), "{column}");
    }
    // MDACE's test chart is the evidence split, scored for every run, evidence F1 included.
    let of_split = |split: &'static str| summary.lines().filter(move |l| l.split('|').nth(2).is_some_and(|c| c.trim() == split));
    assert_eq!((of_split("test").count(), of_split("evidence").count()), (9, 9), "{summary}");
    for line in of_split("evidence") {
        let evidence_cell = line.split('|').nth(11).unwrap().trim();
        assert!(evidence_cell.contains(" / "), "evidence F1 scored: {line}");
    }
    let report = Command::cargo_bin("icdbench").unwrap().arg("report").arg(results.join("paper-span-vs-document")).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let table = std::fs::read_to_string(results.join("paper-span-vs-document/report/results.md")).unwrap();
    assert!(table.contains("PLM-ICD") && table.contains("LAAT"), "{table}");

    // Every model run: the budget it was given, what it read, what the limit cut, the leak left out.
    let mut tokens: BTreeMap<String, (u64, Option<u64>)> = BTreeMap::new();
    let (mut model_runs, mut cut) = (0, 0);
    for exp in ["paper-span-vs-document", "paper-expansion-ablation"] {
        for entry in std::fs::read_dir(results.join(exp)).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(training) = std::fs::read_to_string(dir.join("training.json")) else { continue };
            let training: serde_json::Value = serde_json::from_str(&training).unwrap();
            let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
            let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
            model_runs += 1;
            let test = &metrics["splits"]["test"];
            assert!(test["answers_cut"]["max_new_tokens"].as_u64().unwrap() > 0, "{test}");
            cut += test["answers_cut"]["cut"].as_u64().unwrap();
            assert_eq!(test["reading"]["policy"], "first_window");
            assert!(test["unseen_gold"].is_object());
            assert!(log.contains("1 training notes left out") && log.contains("answers: at most "), "{log}");
            assert!(log.contains("spans written as data.preprocess") || training["mix"]["spans_fed"] == 0, "{log}");
            let arm = log.lines().next().unwrap().split("[arm=").nth(1).map(|a| a.split(']').next().unwrap().to_string());
            if let Some(arm) = arm {
                let read = metrics["cost"]["input_tokens"].as_u64().unwrap();
                tokens.insert(arm, (read, training["mix"]["matched_to"]["tokens"].as_u64()));
            }
        }
    }
    assert_eq!(model_runs, 8, "four arms and four expansion sets");
    assert!(cut > 0, "a tiny model runs some answers to the limit, and they are counted");
    // Budgets: the equal-cost arm reads document SFT's tokens, the 20% arms a fifth of them.
    let doc = tokens["document_sft"].0;
    assert_eq!(tokens["span_centric_equal_cost"].1, Some(doc));
    for arm in ["span_centric_20pct", "span_only_20pct"] {
        assert_eq!(tokens[arm].1, Some((doc as f64 * 0.2).ceil() as u64), "{arm}: {tokens:?}");
        assert!(tokens[arm].0 >= tokens[arm].1.unwrap() && tokens[arm].0 < doc / 2, "{arm}: {tokens:?}");
    }
}
