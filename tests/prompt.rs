//! The prompt formats and the answer parser, against the builtin code set and synthetic documents.

use icdbench::data::synthetic::SyntheticParams;
use icdbench::data::synthetic::generate;
use icdbench::data::{slice_chars, Document, EvidenceSpan, Split};
use icdbench::icd::{Code, CodeSet};
use icdbench::model::tokenizer::TextTokenizer;
use icdbench::prompt::{
    parse_output, parse_span_output, AnswerOrder, DocExample, Formatter, Instructions, MatchKind, PromptStyle, SpanExample,
    DOC_INSTRUCTION, SPAN_INSTRUCTION,
};

fn codes() -> &'static CodeSet {
    CodeSet::builtin().expect("builtin code set")
}

fn code(s: &str) -> Code {
    Code::parse(s).expect("test code")
}

/// A note with three coded conditions, one of them mentioned twice, and a distractor.
fn three_code_doc() -> Document {
    let text = "HISTORY: The patient has type 2 diabetes mellitus and essential hypertension.\n\
                No evidence of pneumonia.\n\
                COURSE: Gout of the right foot flared.\n\
                ASSESSMENT: essential hypertension, controlled."
        .to_string();
    let mut evidence = Vec::new();
    for (c, quote, nth) in [
        ("E11.9", "type 2 diabetes mellitus", 0),
        ("I10", "essential hypertension", 0),
        ("I10", "essential hypertension", 1),
        ("M10.9", "Gout", 0),
    ] {
        let byte = text.match_indices(quote).nth(nth).map(|(b, _)| b).expect("quote in note");
        let start = text[..byte].chars().count();
        let end = start + quote.chars().count();
        evidence.push(EvidenceSpan::new(code(c), start, end, quote.to_string()));
    }
    evidence.sort();
    Document { id: "doc-1".into(), split: Split::Train, text, codes: vec![code("E11.9"), code("I10"), code("M10.9")], evidence }
}

#[test]
fn formatted_targets_parse_back_to_the_gold_codes_and_offsets() {
    let doc = three_code_doc();
    let ex = DocExample::from_document(&doc);
    let code_first = Formatter::new(PromptStyle::Plain)
        .with_order(AnswerOrder::CodeFirst)
        .doc_target(&ex.targets);
    assert_eq!(code_first, "E11.9 | type 2 diabetes mellitus\nI10 | essential hypertension ; essential hypertension\nM10.9 | Gout\n");
    let target = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::EvidenceFirst).doc_target(&ex.targets);
    assert_eq!(target, "type 2 diabetes mellitus => E11.9\nessential hypertension ; essential hypertension => I10\nGout => M10.9\n");
    assert_eq!(
        parse_output(&code_first, Some(&doc.text), codes()),
        parse_output(&target, Some(&doc.text), codes())
    );
    let parsed = parse_output(&target, Some(&doc.text), codes());
    assert_eq!(parsed.codes, doc.codes);
    assert!(parsed.invalid.is_empty() && !parsed.unterminated && !parsed.said_none);
    assert_eq!(parsed.unlocated, 0);
    let mut located: Vec<(Code, usize, usize)> = parsed
        .evidence
        .iter()
        .map(|e| {
            assert_eq!(e.how, MatchKind::Exact, "{e:?}");
            (e.code.clone(), e.start.unwrap_or(usize::MAX), e.end.unwrap_or(usize::MAX))
        })
        .collect();
    located.sort();
    let mut gold: Vec<(Code, usize, usize)> = doc.evidence.iter().map(|e| (e.code.clone(), e.start, e.end)).collect();
    gold.sort();
    assert_eq!(located, gold);
}

#[test]
fn synthetic_documents_round_trip_through_pairs_of_both_styles() {
    let params = SyntheticParams { train_docs: 60, val_docs: 0, test_docs: 60, pool_size: 80, unseen_codes: 10, ..Default::default() };
    let data = generate(&params, codes()).expect("synthetic data");
    let corpus: Vec<&str> = data.documents.iter().map(|d| d.text.as_str()).collect();
    let tok = TextTokenizer::tiny(&corpus, 400).expect("tiny tokenizer");
    let (mut spans, mut exact_at_gold) = (0usize, 0usize);
    for (style, order) in [
        (PromptStyle::Chat, AnswerOrder::EvidenceFirst),
        (PromptStyle::Plain, AnswerOrder::CodeFirst),
    ] {
        let f = Formatter::new(style).with_order(order);
        for doc in &data.documents {
            let pair = f.doc_pair(&DocExample::from_document(doc), Some(&tok));
            let parsed = parse_output(&pair.target, Some(&doc.text), codes());
            assert_eq!(parsed.codes, doc.codes, "{}", doc.id);
            assert_eq!((parsed.unlocated, parsed.invalid.len(), parsed.unterminated), (0, 0, false), "{}", doc.id);
            for e in &parsed.evidence {
                spans += 1;
                let at_gold = doc.evidence.iter().any(|g| g.code == e.code && Some(g.start) == e.start && Some(g.end) == e.end);
                exact_at_gold += usize::from(at_gold && e.how == MatchKind::Exact);
            }
        }
    }
    assert_eq!(spans, 2 * data.documents.iter().map(|d| d.evidence.len()).sum::<usize>());
    // A quote can also occur inside another condition's mention earlier in the note; that must stay rare.
    assert!(exact_at_gold as f64 >= 0.97 * spans as f64, "{exact_at_gold} of {spans} quotes at their gold offsets");
}

#[test]
fn doc_targets_of_synthetic_documents_are_short() {
    let params = SyntheticParams { train_docs: 100, val_docs: 0, test_docs: 0, pool_size: 60, unseen_codes: 0, ..Default::default() };
    let data = generate(&params, codes()).expect("synthetic data");
    let corpus: Vec<&str> = data.documents.iter().map(|d| d.text.as_str()).collect();
    let tok = TextTokenizer::tiny(&corpus, 600).expect("tiny tokenizer");
    let (mut target_tokens, mut doc_tokens) = (0usize, 0usize);
    for doc in &data.documents {
        let target =
            Formatter::new(PromptStyle::Plain).doc_target(&DocExample::from_document(doc).targets);
        let quoted: usize = doc.evidence.iter().map(|e| e.text.chars().count()).sum();
        // Overhead beyond the quotes themselves: at most the code, " | " and "\n" per code, " ; " per extra quote.
        let overhead = target.chars().count().saturating_sub(quoted);
        assert!(overhead <= 12 * doc.codes.len() + 3 * doc.evidence.len(), "{}: {target:?}", doc.id);
        target_tokens += tok.encode(&target, false).expect("encodes").len();
        doc_tokens += tok.encode(&doc.text, false).expect("encodes").len();
    }
    // Measured: about 95 tokens per target, 29% of the note (mostly the quotes themselves).
    let mean = target_tokens as f64 / data.documents.len() as f64;
    assert!(mean < 120.0, "mean target length {mean:.1} tokens");
    assert!((target_tokens as f64) < 0.35 * doc_tokens as f64, "targets {target_tokens} vs documents {doc_tokens} tokens");
}

/// (what the model wrote, the codes expected, the quotes expected for the first code)
const TOLERATED: &[(&str, &[&str], &[&str])] = &[
    ("E11.9 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("   E11.9   |    type 2 diabetes   \n\n\n", &["E11.9"], &["type 2 diabetes"]),
    ("- E11.9 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("* E11.9 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("• E11.9 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("1. E11.9 | type 2 diabetes\n2. I10 | hypertension\n", &["E11.9", "I10"], &["type 2 diabetes"]),
    ("1) E11.9 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("e11.9 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("e119 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("E119: type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("E11.9 - type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("E11.9 — type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("E11.9 | \"type 2 diabetes\"\n", &["E11.9"], &["type 2 diabetes"]),
    ("E11.9 | type 2 diabetes;T2DM ;  \n", &["E11.9"], &["type 2 diabetes", "T2DM"]),
    ("E11.9.\n", &["E11.9"], &[]),
    ("E11.9,\n", &["E11.9"], &[]),
    ("**E11.9** | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("E11.9 (type 2 diabetes)\n", &["E11.9"], &[]),
    ("E11.9 type 2 diabetes mellitus, stable\n", &["E11.9"], &[]),
    ("E11.9, I10\n", &["E11.9", "I10"], &[]),
    ("E11.9; I10 | type 2 diabetes\n", &["E11.9", "I10"], &["type 2 diabetes"]),
    ("E11.9 and I10\n", &["E11.9", "I10"], &[]),
    ("Codes: E11.9, I10\n", &["E11.9", "I10"], &[]),
    ("Code E11.9 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("ICD-10-CM: E11.9 | type 2 diabetes\n", &["E11.9"], &["type 2 diabetes"]),
    ("E11.9 | type 2 diabetes\r\nI10 | hypertension\r\n", &["E11.9", "I10"], &["type 2 diabetes"]),
    ("<answer>\nE11.9 | type 2 diabetes\n</answer>", &["E11.9"], &["type 2 diabetes"]),
    ("E11.9 | type 2 diabetes\n<|im_end|>\nI10 | after the end\n", &["E11.9"], &["type 2 diabetes"]),
    ("I10 | hypertension\nI10 | hypertension\n", &["I10"], &["hypertension", "hypertension"]),
    ("none\n", &[], &[]),
    ("None.\n", &[], &[]),
    ("Diagnosis: hypertension\nthe patient is doing well\n", &[], &[]),
    ("", &[], &[]),
];

#[test]
fn the_parser_tolerates_what_models_write() {
    for (raw, want, quotes) in TOLERATED {
        let p = parse_output(raw, None, codes());
        let got: Vec<&str> = p.codes.iter().map(Code::as_str).collect();
        assert_eq!(&got, want, "codes of {raw:?}");
        assert!(p.invalid.is_empty(), "{raw:?} invalid {:?}", p.invalid);
        if let Some(first) = want.first() {
            let first_quotes: Vec<&str> = p.evidence.iter().filter(|e| e.code.as_str() == *first).map(|e| e.text.as_str()).collect();
            assert_eq!(&first_quotes, quotes, "quotes of {raw:?}");
        }
        // No note given: nothing can be located, and every quote says so.
        assert_eq!(p.unlocated, p.evidence.len());
        assert!(p.evidence.iter().all(|e| e.how == MatchKind::NotFound && e.start.is_none()));
    }
    assert!(parse_output("none\n", None, codes()).said_none);
    assert!(!parse_output("I10\n", None, codes()).said_none);
}

#[test]
fn codes_outside_the_code_set_are_listed_as_invalid() {
    let raw = "E11.99999 | type 2 diabetes\nZ99.999 | something\nI10 | hypertension\nE11.99999\nz99999\nQ1 | not code-like\n";
    let p = parse_output(raw, Some("hypertension"), codes());
    assert_eq!(p.codes, [code("I10")]);
    // A well-formed unknown code is normalised (so `z99999` is the same Z99.999); a malformed one stays as written.
    assert_eq!(p.invalid, ["E11.99999", "Z99.999"]);
    // Quotes of invalid codes are dropped, not attached to anything.
    assert_eq!(p.evidence.len(), 1);
    assert_eq!((p.evidence[0].start, p.evidence[0].end), (Some(0), Some(12)));
}

#[test]
fn quotes_are_located_through_case_whitespace_and_punctuation_differences() {
    let note = "ASSESSMENT:\nType-2   Diabetes,\nMellitus (uncontrolled).  ESSENTIAL hypertension.";
    let cases = [
        ("E11.9 | type-2   diabetes,\n", MatchKind::CaseInsensitive, "Type-2   Diabetes,"),
        ("E11.9 | type 2 diabetes mellitus\n", MatchKind::Normalised, "Type-2   Diabetes,\nMellitus"),
        ("E11.9 | Type 2 Diabetes - Mellitus (uncontrolled\n", MatchKind::Normalised, "Type-2   Diabetes,\nMellitus (uncontrolled"),
        ("I10 | essential hypertension.\n", MatchKind::CaseInsensitive, "ESSENTIAL hypertension."),
        ("I10 | essential hypertension\n", MatchKind::CaseInsensitive, "ESSENTIAL hypertension"),
        ("I10 | hypertension\n", MatchKind::Exact, "hypertension"),
    ];
    for (raw, how, slice) in cases {
        let p = parse_output(raw, Some(note), codes());
        let e = p.evidence.first().expect("one quote");
        assert_eq!(e.how, how, "{raw:?}");
        let (start, end) = (e.start.expect("located"), e.end.expect("located"));
        assert_eq!(slice_chars(note, start, end), Some(slice), "{raw:?}");
    }
    let p = parse_output("I10 | malignant hyperthermia\n", Some(note), codes());
    assert_eq!((p.unlocated, p.evidence[0].how), (1, MatchKind::NotFound));
}

#[test]
fn offsets_count_characters_in_unicode_notes() {
    let note = "Patiënt (👩‍⚕️ review): Crohn’s disease of ileum — flare. Naïve to biologics. Type 2 DIABÈTES.";
    let raw = "K50.00 | Crohn’s disease of ileum ; crohns disease of ileum\nE11.9 | type 2 diabètes\n";
    let p = parse_output(raw, Some(note), codes());
    assert_eq!(p.codes, [code("E11.9"), code("K50.00")]);
    let found: Vec<(MatchKind, Option<&str>)> = p
        .evidence
        .iter()
        .map(|e| (e.how, slice_chars(note, e.start.unwrap_or(0), e.end.unwrap_or(0))))
        .collect();
    assert_eq!(
        found,
        [
            (MatchKind::Exact, Some("Crohn’s disease of ileum")),
            (MatchKind::Normalised, Some("Crohn’s disease of ileum")),
            (MatchKind::CaseInsensitive, Some("Type 2 DIABÈTES")),
        ]
    );
    let start = p.evidence[0].start.expect("located");
    assert_eq!(start, note.chars().position(|c| c == 'C').expect("C in note"));
    assert_ne!(start, note.find('C').expect("C in note"), "a byte offset would differ here");
}

#[test]
fn a_cut_off_last_line_keeps_what_is_complete() {
    let note = "type 2 diabetes mellitus and essential hypertension";
    // A billable code is a leaf: cut off or not, it is complete.
    let p = parse_output("I10 | essential hypertension\nE11.9", Some(note), codes());
    assert_eq!((p.codes.clone(), p.unterminated), (vec![code("E11.9"), code("I10")], true));
    // "E11" may be the start of "E11.9": dropped, and not held against the model.
    let p = parse_output("I10 | essential hypertension\nE11", Some(note), codes());
    assert_eq!((p.codes.clone(), p.invalid.len()), (vec![code("I10")], 0));
    let p = parse_output("I10 | essential hypertension\nE11.", Some(note), codes());
    assert_eq!((p.codes.clone(), p.invalid.len()), (vec![code("I10")], 0));
    // A quote cut mid-word still points at the right place.
    let p = parse_output("I10 | essential hypertension\nE11.9 | type 2 diab", Some(note), codes());
    assert_eq!(p.codes, [code("E11.9"), code("I10")]);
    let last = p.evidence.last().expect("quote");
    assert_eq!((last.start, last.end, last.how), (Some(0), Some(11), MatchKind::Exact));
    // With the line finished, or the answer terminated, a written category is taken as written.
    for raw in ["I10\nE11\n", "I10\nE11</answer>", "I10\nE11<|im_end|>"] {
        let p = parse_output(raw, None, codes());
        assert_eq!((p.codes.clone(), p.unterminated), (vec![code("E11"), code("I10")], false), "{raw:?}");
    }
}

#[test]
fn span_answers_are_one_line_per_code() {
    let ex = SpanExample {
        span: "T2DM without complications".into(),
        context: Some("The patient has\nT2DM without complications, on metformin.".into()),
        codes: vec![code("E11.9"), code("I10")],
        source: "inclusion_terms".into(),
    };
    let code_first = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::CodeFirst);
    assert_eq!(code_first.span_target(&ex), "E11.9\nI10\n");
    let evidence_first = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::EvidenceFirst);
    assert_eq!(
        evidence_first.span_target(&ex),
        "T2DM without complications => E11.9\nT2DM without complications => I10\n"
    );
    assert_eq!(
        parse_span_output(&evidence_first.span_target(&ex), codes()).codes,
        [code("E11.9"), code("I10")]
    );
    let plain = Formatter::new(PromptStyle::Plain).span_prompt(&ex, None);
    assert!(plain.ends_with("Span: T2DM without complications\nContext: The patient has T2DM without complications, on metformin.\n\n<answer>\n"), "{plain}");
    let p = parse_span_output("e119 | T2DM\nI10\nZ99.999\n", codes());
    assert_eq!((p.codes, p.evidence.len(), p.unlocated, p.invalid), (vec![code("E11.9"), code("I10")], 0, 0, vec!["Z99.999".to_string()]));
    let none = SpanExample { codes: vec![], ..ex };
    assert_eq!(evidence_first.span_target(&none), "none\n");
}

#[test]
fn chat_prompts_use_the_template_and_end_targets_with_the_turn_end_token() {
    let doc = three_code_doc();
    let corpus = [doc.text.as_str(), DOC_INSTRUCTION, SPAN_INSTRUCTION];
    let tok = TextTokenizer::tiny(&corpus, 300).expect("tiny tokenizer");
    let ex = DocExample::from_document(&doc);

    let chat = Formatter::new(PromptStyle::Chat).with_order(AnswerOrder::CodeFirst);
    let pair = chat.doc_pair(&ex, Some(&tok));
    assert!(pair.prompt.starts_with(&format!("<|im_start|>system\n{DOC_INSTRUCTION}<|im_end|>\n<|im_start|>user\nNote:\n")), "{}", pair.prompt);
    assert!(pair.prompt.ends_with("<|im_end|>\n<|im_start|>assistant\n"));
    assert!(pair.target.ends_with("M10.9 | Gout\n<|im_end|>"));
    let ids = tok.encode(&pair.target, false).expect("encodes");
    assert_eq!(ids.last(), Some(&tok.turn_end_id()));
    assert_eq!(ids.iter().filter(|&&i| i == tok.turn_end_id()).count(), 1);
    assert!(chat.stop_strings(Some(&tok)).is_empty());
    assert_eq!(parse_output(&pair.target, Some(&doc.text), codes()).codes, doc.codes);

    let plain = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::CodeFirst);
    let pair = plain.doc_pair(&ex, Some(&tok));
    assert!(!pair.prompt.contains("<|im_start|>"));
    assert!(pair.prompt.starts_with(DOC_INSTRUCTION) && pair.prompt.ends_with("controlled.\n\n<answer>\n"));
    assert!(pair.target.ends_with("M10.9 | Gout\n</answer>"));
    assert_eq!(plain.stop_strings(Some(&tok)), ["</answer>"]);
    // Chat style without a tokenizer has no template to use: it is the plain template.
    assert_eq!(chat.doc_pair(&ex, None), plain.doc_pair(&ex, None));

    let custom = Formatter::new(PromptStyle::Chat).with_instructions(Instructions { doc: "Code this note.".into(), ..Default::default() });
    assert!(custom.doc_prompt(&doc.text, Some(&tok)).starts_with("<|im_start|>system\nCode this note.<|im_end|>"));
}

#[test]
fn garbage_never_panics() {
    use rand::rngs::StdRng;
    use rand::seq::IndexedRandom;
    use rand::{RngExt, SeedableRng};
    let note = "İ Crohn’s 👩‍⚕️ type 2 diabetes";
    let fixed = ["|||", ":", "-", "—", "1.", "(", "()", "<answer>", "</answer>", "\u{0}", "E", "E1", "E11.", ".E11", "e11.9 |", "| E11.9", "none | I10", ";;;", "E11.9 | ;", "1) 2) 3)"];
    for raw in fixed {
        let p = parse_output(raw, Some(note), codes());
        assert!(p.codes.iter().all(|c| codes().contains(c)), "{raw:?}");
    }
    let pieces = ["E11.9", "e119", "I10", "Z99.999", " | ", ":", "-", "—", ";", ",", "\n", " ", "İ", "’", "👩‍⚕️", "type 2", "none", "1.", "*", "</answer>", "<|im_end|>", "E11"];
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..2000 {
        let n = rng.random_range(0..12);
        let raw: String = (0..n).filter_map(|_| pieces.choose(&mut rng).copied()).collect();
        let p = parse_output(&raw, Some(note), codes());
        assert!(p.codes.windows(2).all(|w| w[0] < w[1]), "{raw:?}");
        for e in &p.evidence {
            if let (Some(s), Some(t)) = (e.start, e.end) {
                assert!(slice_chars(note, s, t).is_some(), "{raw:?} -> {e:?}");
            }
        }
        let _ = parse_span_output(&raw, codes());
    }
}
