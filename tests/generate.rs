//! Generation with a tiny random model: batching with left padding, seeded
//! sampling, stop strings, and constrained decoding to the code set.

use icdbench::icd::CodeSet;
use icdbench::model::generate::{generate, CodeConstraint, CodeTrie, GenerationConfig, Scope};
use icdbench::model::llama::{tiny_config, CausalLM};
use icdbench::model::tokenizer::TextTokenizer;

/// libtorch's seed is global: tests in this file build models one at a time so each gets the same weights.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny() -> (tch::nn::VarStore, CausalLM, TextTokenizer) {
    // Code-heavy text so the tokenizer has letters, digits and dots as tokens.
    let corpus: Vec<String> = CodeSet::builtin()
        .unwrap()
        .billable()
        .take(400)
        .map(|e| format!("{} {}\n", e.code, e.description))
        .collect();
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let tok = TextTokenizer::tiny(&refs, 300).unwrap();
    let _guard = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(3);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let model = CausalLM::new(&vs.root(), &tiny_config(tok.vocab_size())).unwrap();
    (vs, model, tok)
}

#[test]
fn batched_left_padded_greedy_equals_one_by_one() {
    let (_vs, model, tok) = tiny();
    let prompts = vec![tok.encode("E11.9 Type 2 diabetes", false).unwrap(), tok.encode("I10", false).unwrap()];
    assert_ne!(prompts[0].len(), prompts[1].len());
    let cfg = GenerationConfig { max_new_tokens: 12, ..Default::default() };
    let batched = generate(&model, &tok, &prompts, &cfg, None).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let single = generate(&model, &tok, std::slice::from_ref(p), &cfg, None).unwrap();
        assert_eq!(batched.tokens[i], single.tokens[0], "row {i}");
    }
    assert!(batched.throughput.decode_tokens > 0);
    assert_eq!(batched.throughput.prefill_tokens, prompts[0].len() + prompts[1].len());
}

#[test]
fn sampling_is_seeded_and_stop_strings_cut() {
    let (_vs, model, tok) = tiny();
    let prompt = vec![tok.encode("J45", false).unwrap()];
    let cfg = |seed| GenerationConfig { max_new_tokens: 20, temperature: 1.0, seed, ..Default::default() };
    let a = generate(&model, &tok, &prompt, &cfg(1), None).unwrap();
    assert_eq!(a.tokens, generate(&model, &tok, &prompt, &cfg(1), None).unwrap().tokens);
    assert_ne!(a.tokens, generate(&model, &tok, &prompt, &cfg(2), None).unwrap().tokens);
    // Stop at the first character the sampled text contains: the result is empty.
    let first = a.texts[0].chars().next().unwrap().to_string();
    let cut = generate(&model, &tok, &prompt, &GenerationConfig { stop_strings: vec![first], ..cfg(1) }, None).unwrap();
    assert_eq!(cut.texts[0], "");
}

#[test]
fn rows_still_writing_when_the_limit_runs_out_are_marked_cut() {
    let (_vs, model, tok) = tiny();
    let prompts = vec![tok.encode("E11.9 Type 2 diabetes", false).unwrap(), tok.encode("I10", false).unwrap()];
    let cfg = GenerationConfig { max_new_tokens: 12, ..Default::default() };
    let free = generate(&model, &tok, &prompts, &cfg, None).unwrap();
    // Greedy rows of a random model run to the limit: both are cut.
    assert_eq!(free.cut, vec![true, true], "{:?}", free.tokens);
    assert!(free.tokens.iter().all(|t| t.len() == 12));
    // Row 0's third token as a stop token: row 0 ends after two tokens and is not cut.
    let stop = free.tokens[0][2];
    let stopped = generate(&model, &tok, &prompts, &GenerationConfig { stop_tokens: vec![stop], ..cfg.clone() }, None).unwrap();
    assert_eq!(stopped.tokens[0], free.tokens[0][..2]);
    assert!(!stopped.cut[0]);
    for (t, cut) in stopped.tokens.iter().zip(&stopped.cut) {
        assert_eq!(*cut, t.len() == 12, "a row is cut exactly when it wrote the limit's tokens without stopping");
    }
}

/// Every run that starts like a code (letter, digit) is a complete valid code.
fn invalid_codes(text: &str, trie: &CodeTrie) -> Vec<String> {
    let mut bad = Vec::new();
    for run in text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.')) {
        let mut cs = run.chars();
        let code_like = matches!((cs.next(), cs.next()), (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_digit());
        if code_like && !trie.is_code(run) {
            bad.push(run.to_string());
        }
    }
    bad
}

#[test]
fn constrained_decoding_writes_only_existing_codes() {
    let (_vs, model, tok) = tiny();
    let codes = CodeSet::builtin().unwrap();
    let billable = || codes.billable().map(|e| e.code.as_str());
    let prompts: Vec<Vec<u32>> = ["E", "K21", "Codes: I", "S72.0"].iter().map(|p| tok.encode(p, false).unwrap()).collect();
    let trie = CodeTrie::new(billable());
    // Unconstrained, some seed makes the random model write an invalid code (so the check below can fail).
    let free_bad: usize = (0..8u64)
        .map(|seed| {
            let cfg = GenerationConfig { max_new_tokens: 40, temperature: 1.0, seed, ..Default::default() };
            let free = generate(&model, &tok, &prompts, &cfg, None).unwrap();
            free.texts.iter().zip(["E", "K21", "Codes: I", "S72.0"]).map(|(t, p)| invalid_codes(&format!("{p}{t}"), &trie).len()).sum::<usize>()
        })
        .sum();
    assert!(free_bad > 0, "a random model writes invalid codes when unconstrained");
    let cfg = GenerationConfig { max_new_tokens: 40, temperature: 1.0, seed: 11, ..Default::default() };

    let constraint = CodeConstraint::new(CodeTrie::new(billable()), &tok, Scope::Anywhere);
    let held = generate(&model, &tok, &prompts, &cfg, Some(&constraint)).unwrap();
    for (p, t) in ["E", "K21", "Codes: I", "S72.0"].iter().zip(&held.texts) {
        // The prompt's unfinished code continues into the output.
        let whole = format!("{p}{t}");
        let last_run_unfinished = whole.ends_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.');
        let mut bad = invalid_codes(&whole, &trie);
        if last_run_unfinished {
            // A code cut off by max_new_tokens must still be a valid prefix.
            let tail = CodeConstraint::run_of(&whole);
            bad.retain(|r| *r != tail);
            assert!(tail.is_empty() || trie.is_prefix(&tail) || !tail.chars().nth(1).is_some_and(|c| c.is_ascii_digit()), "{whole:?}");
        }
        assert!(bad.is_empty(), "invalid codes {bad:?} in {whole:?}");
    }
}
