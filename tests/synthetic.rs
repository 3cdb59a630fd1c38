//! The synthetic benchmark's promises, checked on generated data.

use icdbench::baselines::DictionaryCoder;
use icdbench::config::{DictionaryParams, SyntheticParams};
use icdbench::data::synthetic::generate;
use icdbench::data::{jsonl::write_documents, Split};
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
fn distractors_fool_a_matcher_without_negation_and_rewording_fools_every_matcher() {
    let codes = CodeSet::builtin().unwrap();
    let d = generate(&SyntheticParams { distractors_per_doc: [2, 2], ..params() }, codes).unwrap();
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
