//! The committed FY2026 ICD-10-CM table: facts it must hold, how fast it
//! loads, and (given the source XML) that it rebuilds byte for byte.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use icdbench::icd::{build_table, Code, CodeSet, FY2026_BILLABLE, SOURCE_XML_SHA256};

fn set() -> &'static CodeSet {
    CodeSet::builtin().expect("the builtin table loads")
}

fn code(s: &str) -> Code {
    Code::parse(s).expect("test code is well formed")
}

fn codes(entries: Vec<&icdbench::icd::CodeEntry>) -> Vec<&str> {
    entries.into_iter().map(|e| e.code.as_str()).collect()
}

#[test]
fn counts_match_the_official_release() {
    let set = set();
    assert_eq!(set.billable().count(), FY2026_BILLABLE);
    assert_eq!(
        set.len(),
        98_186,
        "categories + subcategories + billable codes in code-list-April-2026.txt"
    );
    assert_eq!(set.chapters().len(), 22);
    assert_eq!(
        set.entries().iter().filter(|e| e.parent.is_none()).count(),
        1_918
    );
    let terms: usize = set.entries().iter().map(|e| e.inclusion_terms.len()).sum();
    let with_terms = set
        .entries()
        .iter()
        .filter(|e| !e.inclusion_terms.is_empty())
        .count();
    assert_eq!((terms, with_terms), (12_569, 6_805));
    assert_eq!(set.source_sha256(), SOURCE_XML_SHA256);
    assert_eq!(set.source_package(), "simple-icd-10-cm==1.5.0");
    assert_eq!(set.source_file(), "icd10c-tabular-April-1-2026.xml");
}

#[test]
fn hierarchy_facts() {
    let set = set();
    let e119 = set.lookup("e119").unwrap();
    assert!(e119.billable);
    assert_eq!(
        e119.description,
        "Type 2 diabetes mellitus without complications"
    );
    assert_eq!(e119.parent.as_ref().map(Code::as_str), Some("E11"));
    assert_eq!((e119.chapter, e119.block.as_str()), (4, "E08-E13"));
    assert!(codes(set.siblings(&code("E11.9"))).contains(&"E11.8"));
    assert!(!codes(set.siblings(&code("E11.9"))).contains(&"E11.9"));

    let e11 = set.lookup("E11").unwrap();
    assert!(!e11.billable && e11.parent.is_none());
    assert!(set
        .children(&code("E11"))
        .any(|c| c.code.as_str() == "E11.9"));
    // A category's siblings are the other categories of its block.
    assert_eq!(
        codes(set.siblings(&code("E11"))),
        ["E08", "E09", "E10", "E13"]
    );

    let i10 = set.lookup("I10").unwrap();
    assert!(i10.billable && i10.parent.is_none());
    assert_eq!(set.children(&code("I10")).count(), 0);

    let ch4 = set.chapter_of(&code("E11.9")).unwrap();
    assert_eq!((ch4.number, ch4.range.as_str()), (4, "E00-E89"));
    assert_eq!(
        ch4.description,
        "Endocrine, nutritional and metabolic diseases"
    );
    assert_eq!(
        set.chapters().last().map(|c| c.range.as_str()),
        Some("U00-U85")
    );
}

#[test]
fn seventh_character_expansion() {
    let set = set();
    let s = set.lookup("S72.001A").unwrap();
    assert!(s.billable);
    assert!(
        s.description.contains("initial encounter"),
        "{}",
        s.description
    );
    assert_eq!(
        s.description,
        "Fracture of unspecified part of neck of right femur, initial encounter for closed fracture"
    );
    assert_eq!(
        codes(set.ancestors(&code("S72.001A"))),
        ["S72.001", "S72.00", "S72.0", "S72"]
    );
    assert!(!set.lookup("S72.001").unwrap().billable);
    // The 16 fracture extensions of S72 apply to S72.001.
    assert_eq!(set.children(&code("S72.001")).count(), 16);
    // Placeholder X pads a 5-character code to 6 before the 7th character.
    assert_eq!(
        set.lookup("S00.00XA")
            .unwrap()
            .parent
            .as_ref()
            .map(Code::as_str),
        Some("S00.00")
    );
    assert!(set.lookup("T36.0X1A").unwrap().billable);
    // S06 deaths before regaining consciousness take only the initial encounter.
    assert!(set.contains(&code("S06.317A")));
    assert!(!set.contains(&code("S06.317D")));
    assert!(set.contains(&code("S06.319D")));
    // FY2026's new category with a letter in the 2nd position.
    assert!(set.lookup("QA0.0101").unwrap().billable);
    assert_eq!(set.lookup("QA0").unwrap().chapter, 17);
}

#[test]
fn unknown_codes_are_reported_not_dropped() {
    let set = set();
    let err = set.lookup("E11.99").unwrap_err().to_string();
    assert!(err.contains("E11.99"), "{err}");
    let (known, rejected) = set.check_codes(["E11.9", "i10", "E11.99", "R69.X", "S72.001a"]);
    assert_eq!(
        known.iter().map(Code::as_str).collect::<Vec<_>>(),
        ["E11.9", "I10", "S72.001A"]
    );
    assert_eq!(rejected, ["E11.99", "R69.X"]);
    let injuries = set.billable_in_chapters(&[19]);
    assert!(injuries.len() > 30_000 && injuries.iter().all(|e| e.chapter == 19 && e.billable));
    let e11 = set.billable_with_prefixes(&["e11".to_string()]);
    assert!(e11.iter().all(|e| e.code.as_str().starts_with("E11")));
    assert!(e11.len() > 50, "E11 has {} billable codes", e11.len());
}

#[test]
fn loads_fast() {
    let bytes = CodeSet::builtin_bytes();
    let start = Instant::now();
    let set = CodeSet::from_bytes(bytes, "timing").unwrap();
    let elapsed = start.elapsed();
    println!(
        "loaded {} entries from {} gzip bytes in {:.1} ms ({} build)",
        set.len(),
        bytes.len(),
        elapsed.as_secs_f64() * 1e3,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    // Generous: debug builds of this crate are unoptimised.
    let limit_ms = if cfg!(debug_assertions) { 5_000 } else { 1_000 };
    assert!(elapsed.as_millis() < limit_ms, "loading took {elapsed:?}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.tsv.gz");
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(CodeSet::load(&path).unwrap().len(), set.len());
}

/// The tabular XML, when ICDBENCH_ICD_XML points at it.
fn source_xml() -> Option<PathBuf> {
    match std::env::var_os("ICDBENCH_ICD_XML") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("skipped: set ICDBENCH_ICD_XML to icd10c-tabular-April-1-2026.xml to run");
            None
        }
    }
}

#[test]
fn rebuild_is_byte_identical_to_the_committed_table() {
    let Some(xml) = source_xml() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.tsv.gz"), dir.path().join("b.tsv.gz"));
    let summary = build_table(&xml, &a).unwrap();
    build_table(&xml, &b).unwrap();
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap(), "two builds differ");
    // Content, not bytes: the deflate back end (zlib-rs or miniz_oxide, chosen
    // by flate2's features) shapes the compressed bytes.
    assert!(
        gunzip(&bytes) == gunzip(CodeSet::builtin_bytes()),
        "committed table is stale: run scripts/build-codeset.sh"
    );
    if bytes != CodeSet::builtin_bytes() {
        eprintln!("note: same content, different gzip bytes (another deflate back end)");
    }
    assert_eq!(summary.billable, FY2026_BILLABLE);
    println!("{summary:?}");
}

fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// code-list-April-2026.txt (beside the XML in the package) lists chapters,
/// blocks and every code, billable or not, without dots.
#[test]
fn codes_match_the_official_code_list() {
    let Some(xml) = source_xml() else { return };
    let list = xml.with_file_name("code-list-April-2026.txt");
    let Ok(text) = std::fs::read_to_string(&list) else {
        eprintln!("skipped: {} not found", list.display());
        return;
    };
    let official: HashSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('-') && !l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let ours: HashSet<String> = set().entries().iter().map(|e| e.code.compact()).collect();
    let missing: Vec<&&str> = official
        .iter()
        .filter(|c| !ours.contains(**c))
        .take(10)
        .collect();
    let extra: Vec<&String> = ours
        .iter()
        .filter(|c| !official.contains(c.as_str()))
        .take(10)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    // Billable = leaves of the official list.
    let mut sorted: Vec<&str> = official.iter().copied().collect();
    sorted.sort_unstable();
    let leaves = sorted
        .windows(2)
        .filter(|w| !w[1].starts_with(w[0]))
        .count()
        + 1;
    assert_eq!(leaves, FY2026_BILLABLE);
}
