//! Document-level inference end to end with a tiny random model: windows,
//! batched generation, constrained decoding, aggregation in input order.

use icdbench::data::{Document, Split};
use icdbench::icd::CodeSet;
use icdbench::model::generate::CodeTrie;
use icdbench::model::llama::{tiny_config, CausalLM};
use icdbench::model::tokenizer::TextTokenizer;
use icdbench::predict::{predict_documents, reparse, split_raw, windows, PredictConfig, PredictError};
use icdbench::prompt::{Formatter, Instructions, PromptStyle};

const NOTES: [&str; 3] = [
    "Chest pain at rest. Known hypertension, on lisinopril.\n\nAssessment: type 2 diabetes mellitus without complications. Plan: metformin.",
    "Asthma exacerbation. No fever.",
    "History of gout and chronic kidney disease stage 3. Denies smoking. Follow up in two weeks; recheck creatinine.",
];

/// libtorch's seed is global: tests build their models one at a time so each gets the same weights.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup() -> (tch::nn::VarStore, CausalLM, TextTokenizer, &'static CodeSet, Vec<Document>) {
    let codes = CodeSet::builtin().expect("builtin code set");
    // Code lines make letters, digits and dots tokens, so the random model writes code-like runs.
    let mut corpus: Vec<String> = codes.billable().take(300).map(|e| format!("{} | {}\n", e.code, e.description)).collect();
    corpus.extend(NOTES.iter().map(|n| n.to_string()));
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let tok = TextTokenizer::tiny(&refs, 400).expect("tiny tokenizer");
    let model_guard = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(7);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let model = CausalLM::new(&vs.root(), &tiny_config(tok.vocab_size())).expect("tiny model");
    drop(model_guard);
    let docs = NOTES
        .iter()
        .enumerate()
        .map(|(i, t)| Document { id: format!("note-{i}"), split: Split::Test, text: t.to_string(), codes: Vec::new(), evidence: Vec::new() })
        .collect();
    (vs, model, tok, codes, docs)
}

/// Code-like runs (a capital letter then a digit) before the `|` of a line
/// that are not complete codes. A run that ends the text may be a code the
/// token limit cut off: it only has to be a prefix of one.
fn invalid_codes(text: &str, trie: &CodeTrie) -> Vec<String> {
    let is_code_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.';
    let open_tail = text.ends_with(is_code_char);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let head = line.split('|').next().unwrap_or("");
        let runs: Vec<&str> = head.split(|c: char| !is_code_char(c)).collect();
        for (k, run) in runs.iter().enumerate() {
            let mut cs = run.chars();
            let code_like = matches!((cs.next(), cs.next()), (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_digit());
            let cut_off = open_tail && i + 1 == lines.len() && k + 1 == runs.len() && !line.contains('|');
            let valid = if cut_off { trie.is_prefix(run) } else { trie.is_code(run) };
            if code_like && !valid {
                bad.push(run.to_string());
            }
        }
    }
    bad
}

fn config(constrained: bool) -> PredictConfig {
    PredictConfig { chunk_tokens: 32, chunk_overlap: 8, max_new_tokens: 16, batch_size: 2, constrained, temperature: 1.0, seed: 5, first_window_only: false }
}

/// A short instruction keeps the prompts (and the test) small.
fn formatter(style: PromptStyle) -> Formatter {
    Formatter::new(style).with_instructions(Instructions { doc: "Code the note: CODE | quote.".into(), ..Instructions::default() })
}

#[test]
fn predicts_every_document_in_order_with_only_valid_codes_when_constrained() {
    let (_vs, model, tok, codes, docs) = setup();
    let refs: Vec<&Document> = docs.iter().collect();
    let formatter = formatter(PromptStyle::Chat);
    let cfg = config(true);
    let out = predict_documents(&model, &tok, &formatter, codes, &refs, &cfg, false).expect("prediction runs");

    let ids: Vec<&str> = out.predictions.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["note-0", "note-1", "note-2"]);
    let expected_windows: Vec<usize> = docs.iter().map(|d| windows(&d.text, &tok, cfg.chunk_tokens, cfg.chunk_overlap).len()).collect();
    assert!(expected_windows[0] > 1 && expected_windows[1] == 1, "{expected_windows:?}");
    assert_eq!(out.stats.windows, expected_windows.iter().sum::<usize>());
    assert!(out.stats.constrained);
    assert!(out.throughput.decode_tokens > 0 && out.throughput.prefill_tokens > 0);

    let trie = CodeTrie::new(codes.billable().map(|e| e.code.as_str()));
    for (p, doc) in out.predictions.iter().zip(&docs) {
        assert!(p.codes.iter().all(|c| codes.contains(c)), "{:?}", p.codes);
        assert!(p.codes.windows(2).all(|w| w[0] < w[1]), "codes sorted and unique: {:?}", p.codes);
        for e in &p.evidence {
            assert_eq!(doc.slice_chars(e.start, e.end), Some(e.text.as_str()));
        }
        let raw = p.raw.as_deref().expect("raw output kept");
        let (_, outputs) = split_raw(raw).expect("raw splits into windows");
        for o in &outputs {
            assert!(invalid_codes(o, &trie).is_empty(), "constrained output wrote {:?}: {o:?}", invalid_codes(o, &trie));
        }
        let again = reparse(doc, raw, codes).expect("raw re-parses");
        assert_eq!(&again.0, p, "re-parsing raw gives the same prediction");
    }

    // Unconstrained, the run reports it; that the constraint changes what a model writes is
    // shown in tests/generate.rs, where the unconstrained model is seen to write invalid codes.
    let free = predict_documents(&model, &tok, &formatter, codes, &refs, &config(false), false).expect("prediction runs");
    assert!(!free.stats.constrained);
    assert_eq!(free.predictions.len(), docs.len());
    // What the parser found outside the code set stays in the predictions, to be scored as false positives:
    // each document's invalid strings are the union of its windows' (counted per window in the stats).
    let kept: usize = free.predictions.iter().map(|p| p.invalid.len()).sum();
    assert!(kept <= free.stats.rejected_codes && (kept > 0) == (free.stats.rejected_codes > 0), "{kept} kept, {} found", free.stats.rejected_codes);
    for p in &free.predictions {
        assert!(p.invalid.iter().all(|s| icdbench::icd::Code::parse(s).map_or(true, |c| !codes.contains(&c))), "{:?}", p.invalid);
    }
}

#[test]
fn first_window_reading_reads_one_window_a_note_and_counts_what_it_leaves() {
    let (_vs, model, tok, codes, docs) = setup();
    let refs: Vec<&Document> = docs.iter().collect();
    let formatter = formatter(PromptStyle::Chat);
    // Greedy: a note's answer does not depend on which notes share its batch.
    let cfg = PredictConfig { temperature: 0.0, ..config(true) };
    let whole = predict_documents(&model, &tok, &formatter, codes, &refs, &cfg, false).unwrap();
    let first = predict_documents(&model, &tok, &formatter, codes, &refs, &PredictConfig { first_window_only: true, ..cfg.clone() }, false).unwrap();
    let all: Vec<Vec<icdbench::predict::Window>> = docs.iter().map(|d| windows(&d.text, &tok, cfg.chunk_tokens, cfg.chunk_overlap)).collect();
    let note_tokens: usize = docs.iter().map(|d| icdbench::predict::count_tokens(&tok, &d.text)).sum();
    // Whole: every window read, nothing left; first window: one window a note, the rest counted.
    assert_eq!((whole.stats.note_tokens, whole.stats.unread_tokens, whole.stats.notes_cut), (note_tokens, 0, 0));
    assert_eq!(first.stats.windows, docs.len());
    let long: Vec<usize> = (0..docs.len()).filter(|&i| all[i].len() > 1).collect();
    assert_eq!(first.stats.notes_cut, long.len());
    let unread: usize = long.iter().map(|&i| icdbench::predict::count_tokens(&tok, docs[i].slice_chars(all[i][0].end_char, docs[i].text.chars().count()).unwrap())).sum();
    assert_eq!((first.stats.note_tokens, first.stats.unread_tokens), (note_tokens, unread));
    assert!(unread > 0);
    // A note of one window is read the same way by both.
    let short = (0..docs.len()).find(|&i| all[i].len() == 1).unwrap();
    assert_eq!(first.predictions[short].raw, whole.predictions[short].raw);
}

#[test]
fn a_bad_config_is_refused_with_what_to_change() {
    let (_vs, model, tok, codes, docs) = setup();
    let refs: Vec<&Document> = docs.iter().collect();
    let formatter = formatter(PromptStyle::Plain);
    let bad = PredictConfig { chunk_tokens: 20, chunk_overlap: 15, ..config(true) };
    let err = predict_documents(&model, &tok, &formatter, codes, &refs, &bad, false).expect_err("overlap too large");
    assert!(matches!(err, PredictError::Config(ref m) if m.contains("chunk_overlap")), "{err}");
    let long = PredictConfig { max_new_tokens: 5000, ..config(true) };
    let err = predict_documents(&model, &tok, &formatter, codes, &refs, &long, false).expect_err("beyond the context");
    assert!(err.to_string().contains("max_new_tokens"), "{err}");
    let none = predict_documents(&model, &tok, &formatter, codes, &[], &config(true), false).expect("no documents");
    assert!(none.predictions.is_empty() && none.stats.windows == 0);
}
