//! Document-level inference: chunk, generate, aggregate.
//!
//! A note longer than the model's budget is split into overlapping windows on
//! section and sentence boundaries ([`windows`]); every window gets the
//! document-task prompt; all windows of all documents are generated together,
//! sorted by prompt length so batches carry little padding; each window's
//! answer is parsed against the window text and its evidence mapped back to
//! document offsets ([`aggregate`]). A zero-shot run is the same call with a
//! pretrained backbone: the parser reads a chat model's free-text answer too.
//!
//! `Prediction::raw` keeps every window's output under a header line naming the
//! window, so a prediction can be re-parsed without the model ([`reparse`]).

use crate::data::jsonl::Prediction;
use crate::data::{Document, EvidenceSpan};
use crate::icd::{Code, CodeSet};
use crate::model::generate::{generate, CodeConstraint, CodeTrie, GenerationConfig, Throughput};
use crate::model::llama::CausalLM;
use crate::model::tokenizer::TextTokenizer;
use crate::model::ModelError;
use crate::metrics::probe::ProbeItem;
use crate::prompt::{parse_output, parse_span_output, span_notes, Formatter, SpanExample};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

mod windows;

pub use windows::{count_tokens, windows, windows_counted, Window};

/// How documents are chunked and decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictConfig {
    /// Most tokens of document text per window (the prompt's instruction comes on top).
    pub chunk_tokens: usize,
    /// Tokens the next window repeats from the end of the previous one (less than half of `chunk_tokens`).
    pub chunk_overlap: usize,
    pub max_new_tokens: usize,
    /// Windows per generation batch.
    pub batch_size: usize,
    /// Keep every code the model writes inside the billable codes of the code set.
    pub constrained: bool,
    /// 0 = greedy; otherwise the sampling temperature.
    pub temperature: f64,
    /// Seeds sampling (greedy ignores it).
    pub seed: u64,
    /// Read only each note's first window (`eval.read = "first_window"`); the rest is counted, not read.
    pub first_window_only: bool,
}

impl Default for PredictConfig {
    fn default() -> Self {
        PredictConfig { chunk_tokens: 1536, chunk_overlap: 128, max_new_tokens: 256, batch_size: 8, constrained: true, temperature: 0.0, seed: 0, first_window_only: false }
    }
}

/// What parsing the windows' outputs found, summed over windows (and documents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictStats {
    /// Windows generated and parsed.
    pub windows: usize,
    /// Code-like tokens outside the code set (unique per window), summed over windows;
    /// the prediction keeps them in `Prediction::invalid`, scored as false positives.
    pub rejected_codes: usize,
    /// Quotes not found in their window's text; left out of `Prediction::evidence`.
    pub unlocated_evidence: usize,
    /// Windows whose answer was `none`.
    pub said_none: usize,
    /// Windows whose answer lacks its end (no closing line): cut off, or malformed.
    pub unterminated: usize,
    /// Windows whose generation was still writing when `max_new_tokens` ran out: their
    /// answers are cut short, and codes they would have listed next are missing.
    #[serde(default)]
    pub cut_by_limit: usize,
    /// Tokens of the notes' text, and of them the tokens no window read
    /// (`eval.read = "first_window"`), with the notes that lost some.
    #[serde(default)]
    pub note_tokens: usize,
    #[serde(default)]
    pub unread_tokens: usize,
    #[serde(default)]
    pub notes_cut: usize,
    /// Decoding was constrained to the code set.
    pub constrained: bool,
}

impl PredictStats {
    pub fn add(&mut self, other: &PredictStats) {
        self.windows += other.windows;
        self.rejected_codes += other.rejected_codes;
        self.unlocated_evidence += other.unlocated_evidence;
        self.said_none += other.said_none;
        self.unterminated += other.unterminated;
        self.cut_by_limit += other.cut_by_limit;
        self.note_tokens += other.note_tokens;
        self.unread_tokens += other.unread_tokens;
        self.notes_cut += other.notes_cut;
        self.constrained |= other.constrained;
    }
}

/// Predictions in input order, with the cost of producing them.
#[derive(Debug, Clone)]
pub struct PredictOutput {
    pub predictions: Vec<Prediction>,
    pub throughput: Throughput,
    pub stats: PredictStats,
}

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("predict config: {0}")]
    Config(String),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Marks the start of one window's output in `Prediction::raw`.
const WINDOW_HEADER: &str = "<<<window ";
const WINDOW_HEADER_END: &str = ">>>";

fn header(index: usize, w: &Window) -> String {
    format!("{WINDOW_HEADER}{} chars {}..{}{WINDOW_HEADER_END}", index + 1, w.start_char, w.end_char)
}

/// Reads a header line back (`<<<window 2 chars 812..1904>>>`).
fn parse_header(line: &str) -> Option<Window> {
    let inner = line.strip_prefix(WINDOW_HEADER)?.strip_suffix(WINDOW_HEADER_END)?;
    let (_, range) = inner.split_once(" chars ")?;
    let (s, e) = range.split_once("..")?;
    Some(Window { start_char: s.parse().ok()?, end_char: e.parse().ok()? })
}

/// All window outputs as one text: each under its header line, blocks joined
/// by one line break, so [`split_raw`] gives every output back byte for byte.
pub fn join_raw(windows: &[Window], outputs: &[String]) -> String {
    let blocks: Vec<String> = windows.iter().zip(outputs).enumerate().map(|(i, (w, o))| format!("{}\n{o}", header(i, w))).collect();
    blocks.join("\n")
}

/// The windows and their outputs from a [`join_raw`] text; `None` when it does not start with a window header.
pub fn split_raw(raw: &str) -> Option<(Vec<Window>, Vec<String>)> {
    // (header start, header line end, window) for every line that is a header.
    let mut heads = Vec::new();
    let mut pos = 0;
    while pos <= raw.len() {
        let rest = raw.get(pos..)?;
        let line_len = rest.find('\n');
        let line = &rest[..line_len.unwrap_or(rest.len())];
        if let (Some(w), Some(len)) = (parse_header(line), line_len) {
            heads.push((pos, pos + len, w));
        }
        match line_len {
            Some(len) => pos += len + 1,
            None => break,
        }
    }
    if heads.first().map(|h| h.0) != Some(0) {
        return None;
    }
    let mut windows = Vec::new();
    let mut outputs = Vec::new();
    for (i, (_, line_end, w)) in heads.iter().enumerate() {
        let from = line_end + 1;
        let to = heads.get(i + 1).map_or(raw.len(), |next| next.0 - 1);
        windows.push(*w);
        outputs.push(raw.get(from..to.max(from))?.to_string());
    }
    Some((windows, outputs))
}

/// Turns the outputs of one document's windows into its prediction.
///
/// Codes are the union over windows (sorted, unique), and so are the invalid
/// strings (outside the code set, kept to be scored as false positives). Evidence located in a
/// window moves to document offsets (window start + offset in the window) and
/// carries the document's text there; the same code and offsets found by two
/// overlapping windows count once; evidence that could not be located is only
/// counted. `raw` keeps every output (see [`join_raw`]). Windows and outputs
/// are paired in order; extra ones on either side are ignored.
pub fn aggregate(doc: &Document, windows: &[Window], outputs: &[String], codes: &CodeSet) -> (Prediction, PredictStats) {
    let mut stats = PredictStats::default();
    let mut found: BTreeSet<Code> = BTreeSet::new();
    let mut invalid: BTreeSet<String> = BTreeSet::new();
    let mut evidence: BTreeSet<(usize, usize, Code)> = BTreeSet::new();
    for (w, output) in windows.iter().zip(outputs) {
        let window_text = w.text(&doc.text).unwrap_or("");
        let parsed = parse_output(output, Some(window_text), codes);
        stats.windows += 1;
        stats.rejected_codes += parsed.invalid.len();
        stats.unlocated_evidence += parsed.unlocated;
        stats.said_none += usize::from(parsed.said_none);
        stats.unterminated += usize::from(parsed.unterminated);
        found.extend(parsed.codes);
        invalid.extend(parsed.invalid);
        for ev in parsed.evidence {
            let (Some(s), Some(e)) = (ev.start, ev.end) else { continue };
            let (start, end) = (w.start_char + s, w.start_char + e);
            if start < end && end <= w.end_char {
                evidence.insert((start, end, ev.code));
            } else {
                stats.unlocated_evidence += 1;
            }
        }
    }
    let evidence = evidence
        .into_iter()
        .filter_map(|(start, end, code)| {
            let text = doc.slice_chars(start, end)?.to_string();
            Some(EvidenceSpan::new(code, start, end, text))
        })
        .collect();
    let n = windows.len().min(outputs.len());
    let prediction = Prediction {
        id: doc.id.clone(),
        codes: found.into_iter().collect(),
        invalid: invalid.into_iter().collect(),
        evidence,
        scores: BTreeMap::new(),
        raw: Some(join_raw(&windows[..n], &outputs[..n])),
    };
    (prediction, stats)
}

/// Re-parses a prediction's `raw` (as [`aggregate`] wrote it) against its document, without the model.
pub fn reparse(doc: &Document, raw: &str, codes: &CodeSet) -> Option<(Prediction, PredictStats)> {
    let (windows, outputs) = split_raw(raw)?;
    Some(aggregate(doc, &windows, &outputs, codes))
}

/// Codes every document: windows, batched generation, parsing, aggregation.
/// Predictions come back in the order of `docs`.
pub fn predict_documents(
    model: &CausalLM,
    tok: &TextTokenizer,
    formatter: &Formatter,
    codes: &CodeSet,
    docs: &[&Document],
    cfg: &PredictConfig,
    progress: bool,
) -> Result<PredictOutput, PredictError> {
    check(cfg)?;
    // Each note's windows, what it holds, and what first-window reading leaves unread.
    let mut reading = PredictStats::default();
    let mut doc_windows: Vec<Vec<Window>> = Vec::with_capacity(docs.len());
    for d in docs {
        let (mut ws, note_tokens) = windows_counted(&d.text, tok, cfg.chunk_tokens, cfg.chunk_overlap);
        reading.note_tokens += note_tokens;
        if cfg.first_window_only && ws.len() > 1 {
            let end = ws[0].end_char;
            ws.truncate(1);
            reading.notes_cut += 1;
            reading.unread_tokens += d.slice_chars(end, d.text.chars().count()).map_or(0, |rest| count_tokens(tok, rest));
        }
        doc_windows.push(ws);
    }
    let mut prompts = Vec::new();
    for (doc, ws) in docs.iter().zip(&doc_windows) {
        for window in ws {
            let text = window.text(&doc.text).unwrap_or("");
            prompts.push(tok.encode(&formatter.doc_prompt(text, Some(tok)), tok.add_bos_default())?);
        }
    }
    let (texts, cut, throughput) = generate_all(model, tok, formatter, codes, prompts, cfg, progress)?;
    let mut texts = texts.into_iter();
    let mut stats = PredictStats { constrained: cfg.constrained, cut_by_limit: cut.iter().filter(|c| **c).count(), ..reading };
    let mut predictions = Vec::with_capacity(docs.len());
    for (doc, ws) in docs.iter().zip(&doc_windows) {
        let outs: Vec<String> = texts.by_ref().take(ws.len()).collect();
        let (prediction, s) = aggregate(doc, ws, &outs, codes);
        stats.add(&s);
        predictions.push(prediction);
    }
    Ok(PredictOutput { predictions, throughput, stats })
}

/// Generates an answer to every prompt (token ids): longest first, so similar lengths share
/// a batch (little padding) and memory trouble shows at once. Answers in the order of `prompts`.
fn generate_all(
    model: &CausalLM,
    tok: &TextTokenizer,
    formatter: &Formatter,
    codes: &CodeSet,
    prompts: Vec<Vec<u32>>,
    cfg: &PredictConfig,
    progress: bool,
) -> Result<(Vec<String>, Vec<bool>, Throughput), PredictError> {
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let context = model.config.max_position_embeddings;
    if longest + cfg.max_new_tokens > context {
        return Err(PredictError::Config(format!(
            "the longest prompt ({longest} tokens) plus max_new_tokens ({}) exceeds the model's context ({context}): lower chunk_tokens or max_new_tokens",
            cfg.max_new_tokens
        )));
    }
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
    let constraint = cfg
        .constrained
        .then(|| CodeConstraint::new(CodeTrie::new(codes.billable().map(|e| e.code.as_str())), tok, formatter.code_scope()));
    let bar = progress_bar(progress, prompts.len());
    let mut outputs = vec![String::new(); prompts.len()];
    let mut cut = vec![false; prompts.len()];
    let mut throughput = Throughput::default();
    for (b, batch) in order.chunks(cfg.batch_size.max(1)).enumerate() {
        let gen_cfg = GenerationConfig {
            max_new_tokens: cfg.max_new_tokens,
            temperature: cfg.temperature,
            top_p: 1.0,
            seed: cfg.seed.wrapping_add(b as u64),
            stop_strings: formatter.stop_strings(Some(tok)),
            stop_tokens: Vec::new(),
        };
        let batch_prompts: Vec<Vec<u32>> = batch.iter().map(|&i| prompts[i].clone()).collect();
        let generation = generate(model, tok, &batch_prompts, &gen_cfg, constraint.as_ref())?;
        throughput.add(&generation.throughput);
        for ((&i, text), was_cut) in batch.iter().zip(generation.texts).zip(generation.cut) {
            outputs[i] = text;
            cut[i] = was_cut;
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    Ok((outputs, cut, throughput))
}

/// How the span probe puts a mention to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFormat {
    /// The span task's prompt, answered with codes.
    Span,
    /// A one-sentence note through the document task ([`crate::prompt::span_notes`], no negated mention).
    Note,
}

impl ProbeFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeFormat::Span => "span",
            ProbeFormat::Note => "note",
        }
    }
}

/// The codes the model writes for each mention, coded on its own (the span probe).
pub fn probe_mentions(
    model: &CausalLM,
    tok: &TextTokenizer,
    formatter: &Formatter,
    codes: &CodeSet,
    items: &[ProbeItem],
    format: ProbeFormat,
    cfg: &PredictConfig,
) -> Result<(Vec<Vec<Code>>, Throughput), PredictError> {
    let spans: Vec<SpanExample> = items.iter().map(|i| SpanExample { span: i.mention.clone(), context: None, codes: vec![i.code.clone()], source: "probe".into() }).collect();
    let texts: Vec<String> = match format {
        ProbeFormat::Span => spans.iter().map(|s| formatter.span_prompt(s, Some(tok))).collect(),
        ProbeFormat::Note => span_notes(&spans, 0.0, cfg.seed).iter().map(|n| formatter.doc_prompt(&n.text, Some(tok))).collect(),
    };
    let prompts = texts.iter().map(|t| tok.encode(t, tok.add_bos_default())).collect::<Result<Vec<_>, _>>()?;
    let (outputs, _, throughput) = generate_all(model, tok, formatter, codes, prompts, cfg, false)?;
    Ok((outputs.iter().map(|o| parse_span_output(o, codes).codes).collect(), throughput))
}

/// The distinct (mention, code) pairs of the documents' gold evidence, as probe items, in a
/// seeded order cut to `limit`; and how many there were.
pub fn probe_items(docs: &[&Document], seen: &std::collections::HashSet<String>, limit: usize, seed: u64) -> (Vec<ProbeItem>, usize) {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut pairs: BTreeSet<(String, Code)> = BTreeSet::new();
    for d in docs {
        for e in d.evidence.iter().filter(|e| d.codes.contains(&e.code)) {
            let mention = crate::prompt::one_line(&e.text);
            if !mention.is_empty() {
                pairs.insert((mention, e.code.clone()));
            }
        }
    }
    let available = pairs.len();
    let mut items: Vec<ProbeItem> = pairs.into_iter().map(|(mention, code)| ProbeItem { seen: seen.contains(code.as_str()), mention, code }).collect();
    items.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x7072_6f62_655f_7365));
    items.truncate(limit);
    (items, available)
}

fn check(cfg: &PredictConfig) -> Result<(), PredictError> {
    if cfg.chunk_tokens == 0 {
        return Err(PredictError::Config("chunk_tokens is 0: give the tokens of note text per window, e.g. 1536".into()));
    }
    if cfg.chunk_overlap.saturating_mul(2) > cfg.chunk_tokens {
        return Err(PredictError::Config(format!(
            "chunk_overlap ({}) is more than half of chunk_tokens ({}): lower chunk_overlap so every window advances",
            cfg.chunk_overlap, cfg.chunk_tokens
        )));
    }
    if cfg.batch_size == 0 {
        return Err(PredictError::Config("batch_size is 0: give at least 1".into()));
    }
    if !(cfg.temperature >= 0.0 && cfg.temperature.is_finite()) {
        return Err(PredictError::Config(format!("temperature {} is not a finite number >= 0 (0 = greedy)", cfg.temperature)));
    }
    Ok(())
}

fn progress_bar(show: bool, len: usize) -> ProgressBar {
    crate::progress::bar(show, len as u64, "windows", "predict")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{slice_chars, Split};

    fn tok() -> TextTokenizer {
        let notes = sentences(12);
        let corpus = [
            "Patient with hypertension and type 2 diabetes mellitus. Chest pain at rest; no fever.",
            "Assessment: stable. Plan: continue metformin, follow up in two weeks.",
            "History of asthma, gout and chronic kidney disease. Denies smoking.",
            notes.as_str(),
        ];
        TextTokenizer::tiny(&corpus, 400).expect("tiny tokenizer")
    }

    fn tokens(tok: &TextTokenizer, text: &str, w: &Window) -> usize {
        tok.encode(w.text(text).expect("window in range"), false).expect("encodes").len()
    }

    /// A note of `n` varied sentences.
    fn sentences(n: usize) -> String {
        let topics = ["hypertension", "asthma", "gout", "chest pain at rest", "chronic kidney disease", "type 2 diabetes mellitus"];
        (0..n).map(|i| format!("Visit {i}: the patient reports {} and is stable.", topics[i % topics.len()])).collect::<Vec<_>>().join(" ")
    }

    fn char_at(text: &str, i: usize) -> Option<char> {
        text.chars().nth(i)
    }

    /// The text just before `end`, trailing whitespace dropped, ends a sentence (or a line precedes `end`).
    fn ends_sentence(text: &str, end: usize) -> bool {
        let before = slice_chars(text, 0, end).unwrap_or("");
        before.trim_end().ends_with(['.', '!', '?', ';']) || before.trim_end_matches([' ', '\t']).ends_with('\n')
    }

    fn check_cover(text: &str, ws: &[Window], tok: &TextTokenizer, budget: usize) {
        let n = text.chars().count();
        assert_eq!(ws.first().map(|w| w.start_char), Some(0));
        assert_eq!(ws.last().map(|w| w.end_char), Some(n));
        for w in ws {
            assert!(w.start_char < w.end_char, "{w:?}");
            assert!(tokens(tok, text, w) <= budget, "{w:?} has {} tokens", tokens(tok, text, w));
        }
        for pair in ws.windows(2) {
            assert!(pair[1].start_char > pair[0].start_char && pair[1].end_char > pair[0].end_char, "{pair:?}");
            assert!(pair[1].start_char <= pair[0].end_char, "gap between {pair:?}");
        }
    }

    #[test]
    fn a_short_note_is_one_window() {
        let tok = tok();
        let text = "Chest pain at rest. Known hypertension.";
        assert_eq!(windows(text, &tok, 512, 64), [Window { start_char: 0, end_char: text.chars().count() }]);
        assert_eq!(windows("", &tok, 512, 64), [Window { start_char: 0, end_char: 0 }]);
    }

    #[test]
    fn windows_cover_overlap_and_end_on_sentences_within_budget() {
        let tok = tok();
        let text = sentences(40);
        let (budget, overlap) = (60, 20);
        // Every sentence fits in the overlap, so each overlap can start at a sentence.
        let longest = text.split_inclusive(". ").map(|s| tok.encode(s, false).expect("encodes").len()).max();
        assert!(longest.is_some_and(|l| l < overlap), "{longest:?}");
        let ws = windows(&text, &tok, budget, overlap);
        assert!(ws.len() >= 4, "{} windows", ws.len());
        check_cover(&text, &ws, &tok, budget);
        for pair in ws.windows(2) {
            assert!(ends_sentence(&text, pair[0].end_char), "window ends mid-sentence: {:?}", pair[0].text(&text));
            assert!(ends_sentence(&text, pair[1].start_char), "overlap starts mid-sentence: {:?}", pair[1].text(&text));
            let shared = Window { start_char: pair[1].start_char, end_char: pair[0].end_char };
            assert!(shared.start_char < shared.end_char, "no overlap in {pair:?}");
            assert!(tokens(&tok, &text, &shared) <= overlap);
        }
        // Without overlap the windows tile the note.
        let tiled = windows(&text, &tok, budget, 0);
        check_cover(&text, &tiled, &tok, budget);
        assert!(tiled.windows(2).all(|p| p[1].start_char == p[0].end_char));
        assert!(tiled.len() < ws.len());
    }

    #[test]
    fn a_section_break_is_preferred_to_a_later_sentence_end() {
        let tok = tok();
        let first = format!("HPI:\n{}\n\n", sentences(8));
        let second = format!("Assessment:\n{}", sentences(8));
        let text = format!("{first}{second}");
        // Room for the first section and two sentences of the second.
        let room = tok.encode(&format!("{first}Assessment:\n{}", sentences(2)), false).expect("encodes").len();
        let ws = windows(&text, &tok, room, 0);
        assert_eq!(ws[0].end_char, first.chars().count(), "{:?}", ws[0].text(&text));
        check_cover(&text, &ws, &tok, room);
    }

    #[test]
    fn an_over_long_sentence_is_cut_between_words() {
        let tok = tok();
        let text = (0..300).map(|i| ["patient", "reports", "gout", "and", "asthma"][i % 5]).collect::<Vec<_>>().join(" ");
        let ws = windows(&text, &tok, 40, 8);
        check_cover(&text, &ws, &tok, 40);
        assert!(ws.len() > 3);
        for w in &ws[..ws.len() - 1] {
            assert_eq!(char_at(&text, w.end_char - 1), Some(' '), "{w:?}");
            assert_ne!(char_at(&text, w.end_char), Some(' '), "{w:?}");
        }
    }

    #[test]
    fn a_word_longer_than_the_budget_still_gets_covered() {
        let tok = tok();
        let text = format!("Short start. {} end.", "x".repeat(3000));
        let ws = windows(&text, &tok, 50, 10);
        check_cover(&text, &ws, &tok, 50);
    }

    fn code(s: &str) -> Code {
        Code::parse(s).expect("test code")
    }

    fn codes() -> &'static CodeSet {
        CodeSet::builtin().expect("builtin code set")
    }

    /// Two windows sharing the middle sentence.
    fn two_window_doc() -> (Document, Vec<Window>) {
        let s1 = "Chest pain at rest. ";
        let s2 = "Known hypertension. ";
        let s3 = "Type 2 diabetes mellitus, on metformin.";
        let text = format!("{s1}{s2}{s3}");
        let doc = Document { id: "d7".into(), split: Split::Test, text: text.clone(), codes: Vec::new(), evidence: Vec::new() };
        let (a, b) = (s1.chars().count(), s1.chars().count() + s2.chars().count());
        (doc, vec![Window { start_char: 0, end_char: b }, Window { start_char: a, end_char: text.chars().count() }])
    }

    #[test]
    fn evidence_moves_to_document_offsets_and_overlap_duplicates_count_once() {
        let (doc, ws) = two_window_doc();
        let outputs = vec![
            "I10 | hypertension\nR07.9 | Chest pain\n".to_string(),
            "I10 | Hypertension\nE11.9 | type 2 diabetes mellitus ; insulin pump\nR99.99 | nothing\n".to_string(),
        ];
        assert!(codes().get(&code("R99.99")).is_none());
        let (p, stats) = aggregate(&doc, &ws, &outputs, codes());
        assert_eq!(p.id, "d7");
        assert_eq!(p.codes, [code("E11.9"), code("I10"), code("R07.9")]);
        assert_eq!(p.invalid, ["R99.99"], "kept, to be scored as a false positive");
        let found: Vec<(&str, usize, usize, &str)> = p.evidence.iter().map(|e| (e.code.as_str(), e.start, e.end, e.text.as_str())).collect();
        assert_eq!(found, [("R07.9", 0, 10, "Chest pain"), ("I10", 26, 38, "hypertension"), ("E11.9", 40, 64, "Type 2 diabetes mellitus")]);
        for e in &p.evidence {
            assert_eq!(doc.slice_chars(e.start, e.end), Some(e.text.as_str()));
        }
        assert_eq!(stats, PredictStats { windows: 2, rejected_codes: 1, unlocated_evidence: 1, said_none: 0, unterminated: 0, cut_by_limit: 0, note_tokens: 0, unread_tokens: 0, notes_cut: 0, constrained: false });
    }

    #[test]
    fn raw_keeps_every_output_and_reparses_to_the_same_prediction() {
        let (doc, ws) = two_window_doc();
        // The second answer is cut off mid-line, the first says none.
        let outputs = vec!["none\n".to_string(), "E11.9 | Type 2 diab".to_string()];
        let (p, stats) = aggregate(&doc, &ws, &outputs, codes());
        assert_eq!((stats.said_none, stats.unterminated), (1, 1));
        assert_eq!(p.evidence.len(), 1);
        let raw = p.raw.clone().expect("raw kept");
        assert!(raw.starts_with("<<<window 1 chars 0..40>>>\nnone\n"), "{raw}");
        assert_eq!(split_raw(&raw), Some((ws.clone(), outputs.clone())));
        assert_eq!(reparse(&doc, &raw, codes()), Some((p, stats)));
        assert_eq!(split_raw("E11.9 | no header"), None);
        let empty = join_raw(&ws, &[String::new(), String::new()]);
        assert_eq!(split_raw(&empty), Some((ws, vec![String::new(), String::new()])));
    }

    #[test]
    fn a_chat_models_free_text_answer_parses() {
        let (doc, ws) = two_window_doc();
        let outputs = vec![
            "Sure! Here are the ICD-10-CM codes for this note:\n\n1. R07.9 - Chest pain\n".to_string(),
            "- **E11.9**: Type 2 diabetes mellitus\n- I10 (hypertension)\n".to_string(),
        ];
        let (p, _) = aggregate(&doc, &ws, &outputs, codes());
        assert_eq!(p.codes, [code("E11.9"), code("I10"), code("R07.9")]);
        assert!(p.evidence.iter().any(|e| e.code == code("E11.9") && e.start == 40));
    }
}
