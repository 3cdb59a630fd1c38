//! The text the model reads and writes: the two task formats of span-centric
//! learning, and the parser that turns what the model writes back into codes
//! and located evidence.
//!
//! Two tasks share one answer format, so span training reinforces exactly the
//! lines the document task emits:
//!
//! - span -> code: a short evidence span (optionally with a little context).
//! - document -> evidence + codes: a note (or a window of one); the answer
//!   pairs every code with the evidence quoted from the note.
//!
//! The answer format, one line per code, every line ending in `\n`, comes in
//! two orders ([`AnswerOrder`]). Code first, the default:
//!
//! ```text
//! E11.9 | type 2 diabetes mellitus ; T2DM
//! I10 | essential hypertension
//! ```
//!
//! with span answers the code alone (`E11.9`); or evidence first
//! (`type 2 diabetes mellitus ; T2DM => E11.9`), with span answers echoing
//! their span (`T2DM => E11.9`), so both tasks end every line with the same
//! step from quoted text to code. Evidence first makes the model find and copy
//! the mention before it codes it; a model that cannot yet copy from its
//! context (the tiny from-scratch backbone) writes memorised phrasings of
//! training codes instead and never reaches an unseen code, while code first
//! lets it decide the code from the note directly, where span training helps.
//! `experiments/ablations/answer_order.toml` measures both.
//!
//! Codes are written with their dot; several quotes for one code are joined by
//! ` ; `; a code without evidence is written alone (`E11.9`); a note with
//! nothing to code gets the single line `none`. After the last line comes the
//! terminator (see [`Formatter::terminator`]): the chat format's end-of-turn
//! token, or `</answer>` for the plain template. Training computes the loss on
//! the target only, terminator included, so the model learns to stop; the
//! trailing `\n` on every line lets [`parse_output`] tell a finished last line
//! from one cut off by the token limit.

mod locate;
mod note;
mod parse;

pub use locate::{LocatedEvidence, MatchKind};
pub use note::span_notes;
pub use parse::{parse_output, parse_span_output, ParsedOutput, TERMINATORS};

pub use crate::config::AnswerOrder;
use crate::data::{slice_chars, Document};
use crate::icd::Code;
use crate::model::generate::Scope;
use crate::model::tokenizer::TextTokenizer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default instruction of the span task (override with [`Instructions`]).
pub const SPAN_INSTRUCTION: &str =
    "Assign the ICD-10-CM code(s) that the clinical text span supports. Answer with one code per line.";

/// Default instruction of the document task, code-first answers.
pub const DOC_INSTRUCTION: &str = "Find the evidence in the clinical note for every condition to code, then list each ICD-10-CM code with its evidence, one per line: CODE | quote ; quote. Write none if nothing is codable.";

/// Default instruction of the span task, evidence-first answers.
pub const SPAN_INSTRUCTION_EVIDENCE_FIRST: &str =
    "Assign the ICD-10-CM code(s) that the clinical text span supports, one per line: span => CODE.";

/// Default instruction of the document task, evidence-first answers.
pub const DOC_INSTRUCTION_EVIDENCE_FIRST: &str = "Quote the evidence in the clinical note for every condition to code, each followed by its ICD-10-CM code, one per line: quote ; quote => CODE. Write none if nothing is codable.";

/// Opens the answer in the plain template; the model writes after it.
pub const PLAIN_ANSWER_OPEN: &str = "<answer>\n";

/// Closes the answer in the plain template (pass it as a generation stop string).
pub const PLAIN_ANSWER_CLOSE: &str = "</answer>";

/// The line a target holds when nothing is codable.
pub const NONE_LINE: &str = "none";

/// Joins a code to its evidence (code-first answers).
pub const CODE_SEPARATOR: &str = " | ";

/// Joins evidence to its code (evidence-first answers).
pub const ARROW: &str = " => ";

/// Joins several quotes for one code.
pub const EVIDENCE_SEPARATOR: &str = " ; ";

/// A span -> code training example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanExample {
    /// The evidence text, a few words.
    pub span: String,
    /// A little surrounding text, when the strategy has one.
    pub context: Option<String>,
    /// The code(s) the span supports.
    pub codes: Vec<Code>,
    /// Provenance: the expansion strategy (or "gold") that produced it.
    pub source: String,
}

/// A document -> evidence + codes example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocExample {
    pub doc_id: String,
    pub text: String,
    /// Every code with the quotes that support it, in the order the answer lists them.
    pub targets: Vec<(Code, Vec<String>)>,
}

impl DocExample {
    /// Targets from gold evidence. Codes are listed in the order their first
    /// evidence appears in the note (the order a reader meets them), each with
    /// all its quotes in note order, repeats included (the parser maps a
    /// repeated quote to the next unused occurrence). A gold code without
    /// evidence is kept, with no quotes, after the others: dropping it would
    /// teach the model to miss it. Evidence for a code that is not gold is ignored.
    pub fn from_document(doc: &Document) -> DocExample {
        DocExample { doc_id: doc.id.clone(), text: doc.text.clone(), targets: gold_targets(doc, None) }
    }

    /// The note's first `end` characters, answered with every gold code (a note longer
    /// than the model's context, truncated as document-level coding usually is).
    /// `None` when out of range.
    pub fn truncated(doc: &Document, end: usize) -> Option<DocExample> {
        let text = slice_chars(&doc.text, 0, end)?.to_string();
        Some(DocExample { doc_id: doc.id.clone(), text, targets: gold_targets(doc, None) })
    }

    /// The example for the character window `[start, end)` of `doc` (a note
    /// longer than the model's context): only codes with evidence wholly inside
    /// the window, so a window without any gets the `none` answer. `None` when
    /// the window is out of range.
    pub fn from_window(doc: &Document, start: usize, end: usize) -> Option<DocExample> {
        let text = slice_chars(&doc.text, start, end)?.to_string();
        Some(DocExample {
            doc_id: format!("{}@{start}-{end}", doc.id),
            text,
            targets: gold_targets(doc, Some((start, end))),
        })
    }
}

/// Groups gold evidence by code, ordered as [`DocExample::from_document`] documents.
fn gold_targets(doc: &Document, window: Option<(usize, usize)>) -> Vec<(Code, Vec<String>)> {
    let mut spans = doc.evidence.iter().filter(|e| doc.codes.contains(&e.code)).collect::<Vec<_>>();
    if let Some((start, end)) = window {
        spans.retain(|e| e.start >= start && e.end <= end);
    }
    spans.sort_by_key(|e| (e.start, e.end));
    let mut order: Vec<Code> = Vec::new();
    let mut quotes: BTreeMap<&Code, Vec<String>> = BTreeMap::new();
    for e in &spans {
        if !quotes.contains_key(&e.code) {
            order.push(e.code.clone());
        }
        quotes.entry(&e.code).or_default().push(e.text.clone());
    }
    let mut targets: Vec<(Code, Vec<String>)> =
        order.iter().map(|c| (c.clone(), quotes.get(c).cloned().unwrap_or_default())).collect();
    if window.is_none() {
        for code in &doc.codes {
            if !quotes.contains_key(code) {
                targets.push((code.clone(), Vec::new()));
            }
        }
    }
    targets
}

/// How a prompt is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// The model's own chat template (instruction as the system turn, input as
    /// the user turn); without a tokenizer it falls back to the plain template.
    #[default]
    Chat,
    /// A fixed template for base or from-scratch models: instruction, input, `<answer>`.
    Plain,
}

/// The instruction texts, so experiments can override them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Instructions {
    pub span: String,
    pub doc: String,
}

impl Default for Instructions {
    fn default() -> Self {
        Instructions::for_order(AnswerOrder::default())
    }
}

impl Instructions {
    /// The default instructions, which describe the answer layout of `order`.
    pub fn for_order(order: AnswerOrder) -> Instructions {
        let (span, doc) = match order {
            AnswerOrder::EvidenceFirst => (
                SPAN_INSTRUCTION_EVIDENCE_FIRST,
                DOC_INSTRUCTION_EVIDENCE_FIRST,
            ),
            AnswerOrder::CodeFirst => (SPAN_INSTRUCTION, DOC_INSTRUCTION),
        };
        Instructions {
            span: span.to_string(),
            doc: doc.to_string(),
        }
    }
}

/// A prompt and the text the model should answer with (loss on `target` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingPair {
    pub prompt: String,
    /// The answer lines followed by the terminator.
    pub target: String,
}

/// Renders prompts and targets in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatter {
    style: PromptStyle,
    order: AnswerOrder,
    instructions: Instructions,
}

impl Formatter {
    /// Code-first answers with the default instructions.
    pub fn new(style: PromptStyle) -> Formatter {
        Formatter {
            style,
            order: AnswerOrder::default(),
            instructions: Instructions::default(),
        }
    }

    /// Sets the answer order, and the default instructions that describe it
    /// (call [`Formatter::with_instructions`] after this to override them).
    pub fn with_order(mut self, order: AnswerOrder) -> Formatter {
        self.order = order;
        self.instructions = Instructions::for_order(order);
        self
    }

    pub fn order(&self) -> AnswerOrder {
        self.order
    }

    pub fn with_instructions(mut self, instructions: Instructions) -> Formatter {
        self.instructions = instructions;
        self
    }

    pub fn style(&self) -> PromptStyle {
        self.style
    }

    pub fn instructions(&self) -> &Instructions {
        &self.instructions
    }

    /// The prompt of the span task, ending where the answer starts.
    pub fn span_prompt(&self, ex: &SpanExample, tok: Option<&TextTokenizer>) -> String {
        let mut input = format!("Span: {}", one_line(&ex.span));
        if let Some(context) = ex.context.as_deref().map(one_line).filter(|c| !c.is_empty()) {
            input.push_str(&format!("\nContext: {context}"));
        }
        self.wrap(&self.instructions.span, &input, tok)
    }

    /// The prompt of the document task for `text` (a whole note or a window), ending where the answer starts.
    pub fn doc_prompt(&self, text: &str, tok: Option<&TextTokenizer>) -> String {
        self.wrap(&self.instructions.doc, &format!("Note:\n{}", text.trim_end()), tok)
    }

    /// The answer of the span task, one line per code (`none` when there is
    /// none): the span quoted before each code when evidence comes first, the
    /// code alone otherwise.
    pub fn span_target(&self, ex: &SpanExample) -> String {
        let quotes = match self.order {
            AnswerOrder::EvidenceFirst => vec![ex.span.clone()],
            AnswerOrder::CodeFirst => Vec::new(),
        };
        let targets: Vec<(Code, Vec<String>)> = ex
            .codes
            .iter()
            .map(|c| (c.clone(), quotes.clone()))
            .collect();
        self.doc_target(&targets)
    }

    /// The answer of the document task, one line per code in the given order,
    /// every line ending in `\n`: `quote ; quote => CODE` or `CODE | quote ;
    /// quote` by [`AnswerOrder`], the code alone when it has no quote; `none\n`
    /// when `targets` is empty. Quotes are put on one line (whitespace runs become one space).
    pub fn doc_target(&self, targets: &[(Code, Vec<String>)]) -> String {
        if targets.is_empty() {
            return format!("{NONE_LINE}\n");
        }
        let mut out = String::new();
        for (code, quotes) in targets {
            let quotes: Vec<String> = quotes
                .iter()
                .map(|q| one_line(q))
                .filter(|q| !q.is_empty())
                .collect();
            let line = match (quotes.is_empty(), self.order) {
                (true, _) => code.as_str().to_string(),
                (false, AnswerOrder::EvidenceFirst) => {
                    format!("{}{ARROW}{code}", quotes.join(EVIDENCE_SEPARATOR))
                }
                (false, AnswerOrder::CodeFirst) => {
                    format!("{code}{CODE_SEPARATOR}{}", quotes.join(EVIDENCE_SEPARATOR))
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    pub fn span_pair(&self, ex: &SpanExample, tok: Option<&TextTokenizer>) -> TrainingPair {
        TrainingPair {
            prompt: self.span_prompt(ex, tok),
            target: self.span_target(ex) + &self.terminator(tok),
        }
    }

    pub fn doc_pair(&self, ex: &DocExample, tok: Option<&TextTokenizer>) -> TrainingPair {
        TrainingPair {
            prompt: self.doc_prompt(&ex.text, tok),
            target: self.doc_target(&ex.targets) + &self.terminator(tok),
        }
    }

    /// What closes an answer: the text of the tokenizer's end-of-turn token in
    /// chat style (it encodes back to that one id, which generation stops at),
    /// `</answer>` in plain style or without a tokenizer.
    pub fn terminator(&self, tok: Option<&TextTokenizer>) -> String {
        match self.chat_tokenizer(tok) {
            Some(t) => t.piece(t.turn_end_id()),
            None => PLAIN_ANSWER_CLOSE.to_string(),
        }
    }

    /// Stop strings generation needs on top of the tokenizer's EOS ids (plain style: `</answer>`).
    pub fn stop_strings(&self, tok: Option<&TextTokenizer>) -> Vec<String> {
        match self.chat_tokenizer(tok) {
            Some(_) => Vec::new(),
            None => vec![PLAIN_ANSWER_CLOSE.to_string()],
        }
    }

    /// Where codes sit in an answer line, for constrained decoding.
    pub fn code_scope(&self) -> Scope {
        match self.order {
            AnswerOrder::EvidenceFirst => Scope::AfterArrow,
            AnswerOrder::CodeFirst => Scope::BeforeBar,
        }
    }

    fn chat_tokenizer<'t>(&self, tok: Option<&'t TextTokenizer>) -> Option<&'t TextTokenizer> {
        tok.filter(|_| self.style == PromptStyle::Chat)
    }

    fn wrap(&self, instruction: &str, input: &str, tok: Option<&TextTokenizer>) -> String {
        match self.chat_tokenizer(tok) {
            Some(t) => t.chat_prompt(Some(instruction), input),
            None => format!("{instruction}\n\n{input}\n\n{PLAIN_ANSWER_OPEN}"),
        }
    }
}

/// Collapses every whitespace run (line breaks included) to one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{EvidenceSpan, Split};

    fn code(s: &str) -> Code {
        Code::parse(s).expect("test code")
    }

    fn doc() -> Document {
        let text = "HPI: hypertension and gout. Assessment: hypertension.".to_string();
        let ev = |c: &str, start: usize, end: usize| EvidenceSpan::new(code(c), start, end, slice_chars(&text, start, end).unwrap_or_default().to_string());
        let evidence = vec![ev("M10.9", 22, 26), ev("I10", 40, 52), ev("I10", 5, 17)];
        Document { id: "d1".into(), split: Split::Train, text: text.clone(), codes: vec![code("E11.9"), code("I10"), code("M10.9")], evidence }
    }

    #[test]
    fn targets_follow_note_order_and_keep_codes_without_evidence_last() {
        let ex = DocExample::from_document(&doc());
        let order: Vec<&str> = ex.targets.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(order, ["I10", "M10.9", "E11.9"]);
        assert_eq!(ex.targets[0].1, ["hypertension", "hypertension"]);
        let code_first = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::CodeFirst);
        assert_eq!(
            code_first.doc_target(&ex.targets),
            "I10 | hypertension ; hypertension\nM10.9 | gout\nE11.9\n"
        );
        let evidence_first = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::EvidenceFirst);
        assert_eq!(
            evidence_first.doc_target(&ex.targets),
            "hypertension ; hypertension => I10\ngout => M10.9\nE11.9\n"
        );
    }

    #[test]
    fn a_truncated_note_keeps_every_gold_code() {
        // A note without evidence (MIMIC-IV) cut to the training length answers with all its
        // codes, never `none`; the text is the note's beginning.
        let mut d = doc();
        d.evidence.clear();
        let t = DocExample::truncated(&d, 27).expect("in range");
        assert_eq!(t.text, "HPI: hypertension and gout.");
        let codes: Vec<&Code> = t.targets.iter().map(|(c, _)| c).collect();
        assert_eq!(codes, d.codes.iter().collect::<Vec<_>>());
        assert!(DocExample::truncated(&d, 9_999).is_none());
    }

    #[test]
    fn a_window_keeps_only_evidence_inside_it() {
        let w = DocExample::from_window(&doc(), 0, 27).expect("in range");
        assert_eq!(w.text, "HPI: hypertension and gout.");
        assert_eq!(w.targets, vec![(code("I10"), vec!["hypertension".to_string()]), (code("M10.9"), vec!["gout".to_string()])]);
        let empty = DocExample::from_window(&doc(), 27, 39).expect("in range");
        assert_eq!(
            Formatter::new(PromptStyle::Plain).doc_target(&empty.targets),
            "none\n"
        );
        assert!(DocExample::from_window(&doc(), 0, 999).is_none());
    }

    #[test]
    fn plain_pairs_close_with_answer_tag() {
        let f = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::CodeFirst);
        let ex = SpanExample {
            span: "type 2\n diabetes".into(),
            context: None,
            codes: vec![code("E11.9")],
            source: "gold".into(),
        };
        let pair = f.span_pair(&ex, None);
        assert_eq!(pair.prompt, format!("{SPAN_INSTRUCTION}\n\nSpan: type 2 diabetes\n\n<answer>\n"));
        assert_eq!(pair.target, "E11.9\n</answer>");
        assert_eq!(f.stop_strings(None), ["</answer>"]);
        let f = Formatter::new(PromptStyle::Plain).with_order(AnswerOrder::EvidenceFirst);
        let pair = f.span_pair(&ex, None);
        assert_eq!(pair.prompt, format!("{SPAN_INSTRUCTION_EVIDENCE_FIRST}\n\nSpan: type 2 diabetes\n\n<answer>\n"));
        assert_eq!(pair.target, "type 2 diabetes => E11.9\n</answer>");
    }
}
