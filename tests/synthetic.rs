//! The synthetic benchmark's promises, checked on generated data.

use icdbench::baselines::DictionaryCoder;
use icdbench::config::DictionaryParams;
use icdbench::data::synthetic::SyntheticParams;
use icdbench::data::synthetic::generate;
use icdbench::data::paraphrase::{held_out_markers, shared_markers};
use icdbench::data::{jsonl::write_documents, Document, Family, Split, Wording};
use icdbench::text::rewrite::find_phrase;
use icdbench::icd::CodeSet;
use std::collections::{BTreeMap, BTreeSet};

fn params() -> SyntheticParams {
    SyntheticParams { train_docs: 300, val_docs: 30, test_docs: 120, pool_size: 80, unseen_codes: 16, ..Default::default() }
}

#[test]
fn same_parameters_give_byte_identical_documents_and_another_seed_does_not() {
    let codes = CodeSet::builtin().unwrap();
    let bytes = |p: &SyntheticParams| {
        let d = generate(p, codes).unwrap();
        let mut out = Vec::new();
        write_documents(&mut out, &d.documents).unwrap();
        out
    };
    let a = bytes(&params());
    assert_eq!(a, bytes(&params()));
    assert_ne!(a, bytes(&SyntheticParams { seed: 7, ..params() }));
}

#[test]
fn evidence_offsets_are_exact_and_every_gold_code_has_evidence() {
    let codes = CodeSet::builtin().unwrap();
    let d = generate(&params(), codes).unwrap();
    assert_eq!(d.documents.len(), 450);
    for doc in &d.documents {
        assert!(!doc.codes.is_empty());
        for ev in &doc.evidence {
            assert_eq!(doc.slice_chars(ev.start, ev.end), Some(ev.text.as_str()), "{}", doc.id);
            assert!(doc.codes.contains(&ev.code));
        }
        let with_evidence: BTreeSet<_> = doc.evidence.iter().map(|e| &e.code).collect();
        assert_eq!(with_evidence.len(), doc.codes.len(), "{}: a gold code without evidence", doc.id);
        for section in ["HISTORY OF PRESENT ILLNESS:", "HOSPITAL COURSE:", "ASSESSMENT:", "PLAN:", "DISCHARGE MEDICATIONS:"] {
            assert!(doc.text.contains(section), "{} lacks {section}", doc.id);
        }
        assert!(doc.codes.iter().all(|c| codes.get(c).is_some_and(|e| e.billable)));
    }
}

#[test]
fn unseen_codes_occur_only_in_test_documents_and_all_of_them_occur() {
    let codes = CodeSet::builtin().unwrap();
    let p = params();
    let d = generate(&p, codes).unwrap();
    let seen = d.seen_codes();
    let val: BTreeSet<_> = d.split(Split::Val).flat_map(|x| x.codes.iter().cloned()).collect();
    assert!(val.is_subset(&seen.iter().cloned().chain(val.iter().cloned()).collect()));
    let unseen = d.unseen_codes(Split::Test);
    assert!(unseen.len() >= p.unseen_codes, "{} unseen codes in test", unseen.len());
    assert!(d.split(Split::Train).all(|doc| doc.codes.iter().all(|c| !unseen.contains(c))));
    assert_eq!(d.pool.len(), p.pool_size);
}

#[test]
fn frequencies_have_a_long_tail() {
    let codes = CodeSet::builtin().unwrap();
    let d = generate(&SyntheticParams { train_docs: 1000, ..params() }, codes).unwrap();
    let mut freq: BTreeMap<_, usize> = BTreeMap::new();
    for doc in d.split(Split::Train) {
        for c in &doc.codes {
            *freq.entry(c.clone()).or_default() += 1;
        }
    }
    let mut counts: Vec<usize> = freq.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let total: usize = counts.iter().sum();
    let head: usize = counts.iter().take(counts.len() / 10).sum();
    // Zipf(1) over 64 codes: the top 10% of codes carry well over a third of the mentions.
    assert!(head as f64 / total as f64 > 0.35, "head share {}", head as f64 / total as f64);
    assert!(counts.last().copied().unwrap_or(0) <= 10, "tail too heavy: {counts:?}");
}

#[test]
fn version_1_distractors_fool_a_matcher_without_negation_and_rewording_fools_every_matcher() {
    let codes = CodeSet::builtin().unwrap();
    let d = generate(&SyntheticParams { distractors_per_doc: [2, 2], version: 1, ..params() }, codes).unwrap();
    assert_eq!(d.name, "synthetic-v1");
    assert!(d.documents.iter().flat_map(|doc| &doc.evidence).all(|e| e.kind.is_none()));
    let score = |negation: bool, split: Split| {
        let coder = DictionaryCoder::build(codes, Some(&d.pool), &DictionaryParams { negation, ..Default::default() });
        let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
        for doc in d.split(split) {
            let pred = coder.predict(doc);
            tp += pred.codes.iter().filter(|c| doc.codes.contains(c)).count();
            fp += pred.codes.iter().filter(|c| !doc.codes.contains(c)).count();
            fn_ += doc.codes.iter().filter(|c| !pred.codes.contains(c)).count();
        }
        (tp as f64 / (tp + fp).max(1) as f64, tp as f64 / (tp + fn_).max(1) as f64)
    };
    let (p_neg, r_train) = score(true, Split::Train);
    let (p_plain, _) = score(false, Split::Train);
    assert!(p_neg > 0.95, "negation-aware precision {p_neg}");
    assert!(p_plain < p_neg - 0.1, "distractors should cost the plain matcher precision: {p_plain} vs {p_neg}");
    assert!(r_train > 0.95, "table phrasings in training documents: recall {r_train}");
    let (_, r_test) = score(true, Split::Test);
    assert!(r_test < r_train - 0.15, "held-out rewordings should lower test recall: {r_test} vs {r_train}");
}

/// Gold (document, code) pairs of `split` by the wording of their mentions, and how many the dictionary finds.
fn dictionary_recall_by_wording(d: &icdbench::data::Dataset, split: Split, codes: &CodeSet) -> BTreeMap<Wording, (usize, usize)> {
    let coder = DictionaryCoder::build(codes, Some(&d.code_space), &DictionaryParams::default());
    let mut out: BTreeMap<Wording, (usize, usize)> = BTreeMap::new();
    for doc in d.split(split) {
        let pred = coder.predict(doc);
        for code in &doc.codes {
            let kind = doc.evidence.iter().find(|e| &e.code == code).and_then(|e| e.kind.clone()).expect("version 2 records kinds");
            let entry = out.entry(kind.wording).or_default();
            entry.0 += 1;
            entry.1 += pred.codes.contains(code) as usize;
        }
    }
    out
}

#[test]
fn a_dictionary_of_the_code_table_finds_no_paraphrased_test_mention() {
    let codes = CodeSet::builtin().unwrap();
    let d = generate(&params(), codes).unwrap();
    assert_eq!(d.name, "synthetic-v2");
    let test = dictionary_recall_by_wording(&d, Split::Test, codes);
    // test_verbatim_fraction = 0: table wording only where no paraphrase could hide it (recorded as verbatim).
    let total: usize = test.values().map(|v| v.0).sum();
    assert!(test.get(&Wording::Verbatim).map_or(0, |v| v.0) * 100 <= total, "{test:?}");
    for wording in [Wording::Shared, Wording::HeldOut] {
        let (n, found) = test[&wording];
        assert!(n > 30, "{wording:?}: {n} mentions");
        assert!((found as f64) < 0.02 * n as f64, "the dictionary found {found} of {n} {wording:?} test mentions");
    }
    // The same matcher finds table wording where the training notes use it.
    let (n, found) = dictionary_recall_by_wording(&d, Split::Train, codes)[&Wording::Verbatim];
    assert!(found as f64 > 0.9 * n as f64, "verbatim training mentions: {found} of {n}");
    // Table wording in test notes comes back at the configured rate.
    let d = generate(&SyntheticParams { test_verbatim_fraction: 1.0, ..params() }, codes).unwrap();
    let (n, found) = dictionary_recall_by_wording(&d, Split::Test, codes)[&Wording::Verbatim];
    assert!(found as f64 > 0.9 * n as f64, "verbatim test mentions: {found} of {n}");
}

fn mentions<'a>(docs: impl Iterator<Item = &'a Document>) -> Vec<(&'a str, &'a icdbench::data::MentionKind)> {
    docs.flat_map(|d| d.evidence.iter().map(|e| (e.text.as_str(), e.kind.as_ref().expect("kind recorded")))).collect()
}

#[test]
fn held_out_wording_reaches_only_test_notes_and_shared_wording_is_in_training_notes() {
    let codes = CodeSet::builtin().unwrap();
    let d = generate(&params(), codes).unwrap();
    let held_out = held_out_markers();
    for doc in d.documents.iter().filter(|doc| doc.split != Split::Test) {
        let lower = doc.text.to_lowercase();
        for m in &held_out {
            assert!(!lower.contains(m.as_str()) || (!m.starts_with('(') && find_phrase(&lower, m).is_empty()), "{}: held-out {m:?} in a {} note", doc.id, doc.split);
        }
    }
    let train_text: String = d.split(Split::Train).map(|doc| doc.text.to_lowercase()).collect::<Vec<_>>().join("\n");
    let used = shared_markers().iter().filter(|m| !find_phrase(&train_text, m).is_empty()).count();
    assert!(used >= 15, "only {used} shared rewrites occur in training notes");
    // Mention kinds: every family occurs in test notes, held-out mentions at about the configured share.
    let test = mentions(d.split(Split::Test));
    for family in [Family::Synonym, Family::Abbreviation, Family::Misspelling, Family::ModifierMove, Family::Hedge, Family::Reorder] {
        assert!(test.iter().any(|(_, k)| k.families.contains(&family)), "no {family} mention in test notes");
    }
    let share = test.iter().filter(|(_, k)| k.wording == Wording::HeldOut).count() as f64 / test.len() as f64;
    assert!((0.15..0.45).contains(&share), "held-out share {share}");
    let multi = test.iter().filter(|(_, k)| k.families.iter().filter(|f| **f != Family::Hedge).count() >= 2).count() as f64 / test.len() as f64;
    assert!(multi > 0.5, "most test mentions combine two or more rewording families: {multi}");
    assert!(mentions(d.split(Split::Train)).iter().all(|(_, k)| k.wording != Wording::HeldOut));
    // Problem lists: several mentions in one line, each with exact offsets.
    assert!(d.documents.iter().any(|doc| doc.text.contains("PMH: ")));
}
